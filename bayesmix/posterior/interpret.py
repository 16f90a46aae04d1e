"""Variance shares and comparisons: ``fit.icc()``, ``fit.r2()``, ``fit.contrasts()``.

Variance components follow Nakagawa, Johnson & Schielzeth (2017), per posterior draw:

* fixed-effects variance ``V_f = var_i(x_i beta)`` over the training rows;
* random-effects variance of block b ``V_b = mean_i(z_i' Sigma_b z_i)`` (Johnson 2014): the
  SD squared for a random intercept, the average over the rows' covariates for slopes;
* residual variance ``V_e`` on the latent (link) scale: sigma^2 (gaussian, identity link),
  pi^2/3 (logit), 1 (probit), pi^2/6 (cloglog), and for the log link (Poisson) the log-normal
  approximation ``log(1 + 1/lambda)`` with lambda the mean expected count over the rows,
  averaged over the random effects: mean_i exp(x_i beta + offset_i + sum_b V_b / 2).

``icc``: V_b / (sum_b V_b + V_e) per block (the random-intercept variance share for an
intercept-only block). ``r2``: marginal V_f / (V_f + sum V_b + V_e) and conditional
(V_f + sum V_b) / (...), plus Bayesian R^2 (Gelman, Goodrich, Gabry & Vehtari 2019):
var(E[y]) / (var(E[y]) + var(y - E[y])) over the rows, per draw, with residual draws y - E[y]
as brms ``bayes_R2``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import varnames
from bayesmix.errors import BayesmixError, FamilyError
from bayesmix.families import FAMILIES
from bayesmix.families.proportions import LATENT_RESIDUAL
from bayesmix.posterior.draws import (
    expected_response,
    family_param_draws,
    linear_predictor,
    posterior_values,
)

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["icc", "r2", "contrasts", "variance_components", "LATENT_RESIDUAL"]



def _stats(values: np.ndarray, prob: float, interval: str = "eti") -> pd.Series:
    from bayesmix.results.tables import posterior_stats

    da = xr.DataArray(values, dims=("chain", "draw"))
    return posterior_stats(da, prob, interval).iloc[0]


def variance_components(idata: xr.DataTree, model: "ModelSpec") -> dict[str, np.ndarray]:
    """Per-draw variances (chain, draw): ``fixed``, one per block name, and ``residual``.

    Examples
    --------
    >>> sorted(variance_components(fit.idata, fit.model))  # doctest: +SKIP
    ['Subject', 'fixed', 'residual']
    """
    design = model.design
    out: dict[str, np.ndarray] = {}
    fixed = linear_predictor(idata, model, re="exclude") - design.offset
    out["fixed"] = fixed.var(axis=-1, ddof=1)
    total_random = np.zeros(out["fixed"].shape)
    for block in design.blocks:
        sd = posterior_values(idata, model, varnames.sd(block), (varnames.term_dim(block),), slice(None))
        if block.correlated:
            cor = posterior_values(idata, model, varnames.cor(block),
                                    (varnames.term_dim(block), varnames.term2_dim(block)), slice(None))
        else:
            cor = np.broadcast_to(np.eye(block.n_terms), (*sd.shape, block.n_terms))
        cov = sd[..., :, None] * cor * sd[..., None, :]
        zz = block.Z.T @ block.Z / design.n  # mean of z_i z_i'
        out[block.name] = np.einsum("cdkl,kl->cd", cov, zz)
        total_random = total_random + out[block.name]
    out["residual"] = _residual_variance(idata, model, fixed + design.offset, total_random)
    return out


def _residual_variance(idata: xr.DataTree, model: "ModelSpec", eta_fixed: np.ndarray,
                       total_random: np.ndarray) -> np.ndarray:
    family, link = model.family, model.link
    value = None
    if family.latent_variance is not None:
        value = family.latent_variance(link, lambda: family_param_draws(idata, model),
                                       eta_fixed, total_random)
    if value is None:
        supported = ", ".join(f.name for f in FAMILIES.values() if f.latent_variance is not None)
        raise FamilyError(f"the latent-scale residual variance is not defined here for family "
                          f"{family.name!r} with link {link!r} (defined for: {supported}; "
                          "see the families reference for their links)")
    return value


def icc(idata: xr.DataTree, model: "ModelSpec", prob: float = 0.95) -> pd.DataFrame:
    """Intraclass correlation of each grouping factor: its share of the (latent-scale)
    variance, V_b / (sum of random-effect variances + residual variance), with intervals.

    Examples
    --------
    >>> fit.icc()  # doctest: +SKIP
    """
    blocks = model.design.blocks
    if not blocks:
        raise BayesmixError("the model has no random effects, so no intraclass correlation")
    comps = variance_components(idata, model)
    denom = comps["residual"] + sum(comps[b.name] for b in blocks)
    rows = []
    for block in blocks:
        stats = _stats(comps[block.name] / denom, prob)
        rows.append({"group": block.name, "term": str(block.term), **stats.to_dict()})
    table = pd.DataFrame(rows).set_index("group")
    table.attrs["residual"] = residual_label(idata, model)
    return table


def residual_label(idata: xr.DataTree, model: "ModelSpec") -> str:
    """How the residual variance of :func:`icc` and :func:`r2` is defined for the model."""
    label = model.family.latent_label
    return label(model.link) if label is not None else ""


def r2(idata: xr.DataTree, model: "ModelSpec", prob: float = 0.95) -> pd.DataFrame:
    """R^2 with intervals: ``bayes_R2`` (Gelman et al. 2019) and Nakagawa-Schielzeth
    ``marginal`` (fixed effects only) and ``conditional`` (fixed + random) on the latent scale.

    Examples
    --------
    >>> fit.r2().loc["conditional", "mean"]  # doctest: +SKIP
    """
    mu = expected_response(idata, model)
    resid = model.y - mu
    v_fit, v_res = mu.var(axis=-1, ddof=1), resid.var(axis=-1, ddof=1)
    rows = {"bayes_R2": v_fit / (v_fit + v_res)}
    try:
        comps = variance_components(idata, model)
    except FamilyError:
        comps = None
    if comps is not None:
        random = sum((comps[b.name] for b in model.design.blocks), np.zeros_like(v_fit))
        total = comps["fixed"] + random + comps["residual"]
        rows["marginal"] = comps["fixed"] / total
        rows["conditional"] = (comps["fixed"] + random) / total
    table = pd.DataFrame({k: _stats(v, prob) for k, v in rows.items()}).T
    table.index.name = "R2"
    return table


def contrasts(idata: xr.DataTree, model: "ModelSpec", factor: str, scale: str = "linear", effect: str = "conditional",
              at: dict[str, Any] | None = None, prob: float = 0.95,
              draws: int | None = None) -> pd.DataFrame:
    """Pairwise differences between the levels of a factor of the fixed part: ``"b - a"`` for
    each pair (a before b), other predictors at their typical values (``at`` overrides).

    ``scale="linear"`` compares linear predictors (with treatment coding ``"2 - 1"`` is the
    coefficient of level 2); ``scale="response"`` compares E[y] (binomial: per trial), for a
    typical group (``effect="conditional"``) or averaged over the groups (``"marginal"``).
    Columns: contrast, mean, sd, interval, p_gt0 = P(difference > 0).

    Examples
    --------
    >>> fit.contrasts("period", scale="response")  # doctest: +SKIP
    """
    from bayesmix.posterior.effects import (
        is_factor,
        marginal_draws,
        per_trial_mean,
        reference_grid,
        training_frame,
    )
    from bayesmix.posterior.predict import draw_summary

    if scale not in ("linear", "response"):
        raise BayesmixError(f"scale must be 'linear' or 'response', not {scale!r}")
    if effect not in ("conditional", "marginal"):
        raise BayesmixError(f"effect must be 'conditional' or 'marginal', not {effect!r}")
    grid = reference_grid(idata, model, factor, None, at)
    if not is_factor(training_frame(idata, model)[factor]):
        raise BayesmixError(f"{factor!r} is numeric; contrasts compare the levels of a factor")
    if effect == "marginal":
        if scale == "linear":
            raise BayesmixError("marginal contrasts are on the response scale: "
                                "pass scale='response'")
        values = marginal_draws(idata, model, grid, draws)
    else:
        values = linear_predictor(idata, model, grid, "exclude", draws)
        if scale == "response":
            values = per_trial_mean(idata, model, values, family_param_draws(idata, model, draws, grid, "exclude"))
    levels = list(grid[factor])
    rows, names = [], []
    for i in range(len(levels)):
        for j in range(i + 1, len(levels)):
            diff = values[..., j] - values[..., i]
            stats = draw_summary(diff[..., None], prob).iloc[0].to_dict()
            rows.append({**stats, "p_gt0": float((diff > 0).mean())})
            names.append(f"{levels[j]} - {levels[i]}")
    return pd.DataFrame(rows, index=pd.Index(names, name="contrast"))
