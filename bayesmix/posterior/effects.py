"""Conditional and marginal (population-averaged) effects of one predictor, and their plot.

For a GLMM the two differ:

* **conditional** effects set the random effects to zero: the predicted response of a
  *typical* group (lme4's ``re.form = NA``, brms ``conditional_effects``), optionally one
  line per group with that group's fitted effects;
* **marginal** effects average the response over the random-effect distribution, per posterior
  draw: E_b[g^-1(x beta + z b)] with b ~ N(0, Sigma), by Monte Carlo with ``n_re_draws``
  antithetic draws of b per posterior draw (exact for the identity link). On the logit scale
  they are attenuated toward zero (Zeger, Liang & Albert 1988: by about
  1 / sqrt(1 + 0.346 sigma^2) for a random intercept with SD sigma).

The predictor varies over a grid (numeric: ``n_points`` values from its minimum to maximum;
factor: its levels); every other predictor sits at its mean (numeric) or reference level
(factor) unless ``at`` gives a value. Binomial responses are predicted per trial.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import varnames
from bayesmix.errors import BayesmixError, DataError
from bayesmix.posterior.draws import (
    draw_slice,
    family_param_draws,
    linear_predictor,
    model_arrays,
    posterior_values,
)
from bayesmix.posterior.predict import draw_summary
from bayesmix.spec.formula import expression_variables

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec


__all__ = ["reference_grid", "conditional_effects", "marginal_effects", "effect_ratios",
           "observed"]


# -- the grid -------------------------------------------------------------------------------------
def training_frame(idata: xr.DataTree, model: "ModelSpec") -> pd.DataFrame:
    data = model.data
    return data[~data.isna().any(axis=1).to_numpy()]


def is_factor(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col) \
        or not pd.api.types.is_numeric_dtype(col)


def _levels(col: pd.Series) -> list[Any]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [v for v in col.cat.categories if (col == v).any()]
    if pd.api.types.is_bool_dtype(col):
        return [False, True]
    values = pd.unique(col)
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def _as_column(values: list[Any], template: pd.Series) -> Any:
    """Grid values with the training column's categories, so the fitted contrasts apply."""
    if isinstance(template.dtype, pd.CategoricalDtype):
        return pd.Categorical(values, categories=template.cat.categories,
                              ordered=template.cat.ordered)
    if is_factor(template) and not pd.api.types.is_bool_dtype(template):
        return pd.Categorical(values, categories=_levels(template), ordered=True)
    return values


def _predictors(idata: xr.DataTree, model: "ModelSpec") -> list[str]:
    spec = model.spec
    return [v for v in expression_variables(spec.fixed) if v in model.data.columns]


def reference_grid(idata: xr.DataTree, model: "ModelSpec", x: str, values: Any = None, at: dict[str, Any] | None = None,
                   n_points: int = 50) -> pd.DataFrame:
    """New data varying ``x`` over a grid, other predictors typical (see the module docstring).

    Examples
    --------
    >>> grid = reference_grid(fit.idata, fit.model, "Days", n_points=3)  # doctest: +SKIP
    >>> grid["Days"].tolist()  # doctest: +SKIP
    [0.0, 4.5, 9.0]
    """
    frame = training_frame(idata, model)
    predictors = _predictors(idata, model)
    if x not in predictors:
        raise DataError(f"{x!r} is not a predictor of the fixed part of "
                        f"'{model.spec.formula}'; choose one of {', '.join(predictors)}")
    at = dict(at or {})
    unknown = [k for k in at if k not in frame.columns]
    if unknown:
        raise DataError(f"at={{{unknown[0]!r}: ...}} is not a column of the model; its columns "
                        f"are {', '.join(map(str, frame.columns))}")
    col = frame[x]
    if values is None:
        values = _levels(col) if is_factor(col) else np.linspace(col.min(), col.max(), n_points)
    values = list(np.atleast_1d(values))
    if x in at:
        raise DataError(f"{x!r} is the varied predictor; do not also fix it in at=")
    groups = {f for block in model.design.blocks for f in block.term.factors}
    response = model.spec.response
    response_only = set(expression_variables(f"{response.expr} {response.other or ''}")) \
        - set(expression_variables(model.spec.fixed))
    grid: dict[str, Any] = {x: _as_column(values, col)}
    for name in frame.columns:
        if name == x or (name in response_only and name not in groups):
            continue
        column = frame[name]
        if name in at:
            value = at[name]
        elif name in groups:
            value = column.iloc[0]  # any seen level: conditional effects exclude it
        elif is_factor(column):
            value = _levels(column)[0]
        else:
            value = float(column.mean())
        grid[name] = _as_column([value] * len(values), column)
    return pd.DataFrame(grid)


# -- draws ------------------------------------------------------------------------------------------
def per_trial_mean(idata: xr.DataTree, model: "ModelSpec", eta: np.ndarray,
                   params: dict[str, np.ndarray]) -> np.ndarray:
    trials = None if model.trials is None else np.ones(eta.shape[-1])
    return model.family.mean(eta, model.link, params, trials)


def _params_for(params: dict[str, np.ndarray], chain: int) -> dict[str, np.ndarray]:
    """One chain's family parameters, shaped (draw, 1, 1) against (draw, M, n)."""
    return {k: v[chain][:, None, :] for k, v in params.items()}


def antithetic_effects(idata: xr.DataTree, model: "ModelSpec", block: Any, keep: slice, n_draws: int,
                        rng: np.random.Generator) -> np.ndarray:
    """(chain, draw, M, k) draws of b ~ N(0, Sigma) per posterior draw, in +/- pairs."""
    sd = posterior_values(idata, model, varnames.sd(block), (varnames.term_dim(block),), keep)
    half = max(1, n_draws // 2)
    z = rng.standard_normal((*sd.shape[:2], half, block.n_terms))
    z = np.concatenate([z, -z], axis=2)
    if block.correlated:
        cor = posterior_values(idata, model, varnames.cor(block),
                                (varnames.term_dim(block), varnames.term2_dim(block)), keep)
        L = sd[..., :, None] * np.linalg.cholesky(cor)
        return np.einsum("cdkl,cdml->cdmk", L, z)
    return z * sd[:, :, None, :]


def marginal_draws(idata: xr.DataTree, model: "ModelSpec", grid: pd.DataFrame, draws: int | None = None,
                   n_re_draws: int = 100, random_seed: int | None = 0) -> np.ndarray:
    """Population-averaged E[y] per posterior draw and grid row, shape (chain, draw, n)."""
    if n_re_draws < 2:
        raise BayesmixError(f"n_re_draws must be at least 2, not {n_re_draws!r}")
    rng = np.random.default_rng(random_seed)
    eta = linear_predictor(idata, model, grid, "exclude", draws)
    params = family_param_draws(idata, model, draws, grid, "exclude")
    blocks = model.design.blocks
    if not blocks:
        return per_trial_mean(idata, model, eta, params)
    keep = draw_slice(idata, model, draws)
    arrays = model_arrays(idata, model, grid)
    effects = [antithetic_effects(idata, model, b, keep, n_re_draws, rng) for b in blocks]
    out = np.empty_like(eta)
    for c in range(eta.shape[0]):  # per chain: bounds the (draw, M, n) temporary
        full = eta[c][:, None, :] + sum(np.einsum("dmk,nk->dmn", b[c], Z)
                                        for b, Z in zip(effects, arrays.Zs))
        out[c] = per_trial_mean(idata, model, full, _params_for(params, c)).mean(axis=1)
    return out


def block_for(model: "ModelSpec", group: str | bool) -> Any:
    """The mean's block whose levels get their own curves (``by_group``); one grouping column."""
    block = model.find_block(None if group is True else group, mean_only=True)
    if len(block.term.factors) > 1:
        raise BayesmixError(f"per-group lines need a single grouping column; "
                            f"{block.group!r} combines {', '.join(block.term.factors)}")
    return block


def _group_draws(idata: xr.DataTree, model: "ModelSpec", grid: pd.DataFrame, block: Any, levels: list[Any],
                 draws: int | None) -> np.ndarray:
    """E[y] per level (typical values elsewhere, other blocks at zero): (chain, draw, L, n)."""
    keep = draw_slice(idata, model, draws)
    eta = linear_predictor(idata, model, grid, "exclude", draws)
    params = family_param_draws(idata, model, draws, grid, "exclude")
    i = model.design.blocks.index(block)
    Z = model_arrays(idata, model, grid).Zs[i]
    r = posterior_values(idata, model, varnames.ranef(block),
                         (varnames.level_dim(block), varnames.term_dim(block)), keep)
    lookup = {v: j for j, v in enumerate(block.levels)}
    missing = [v for v in levels if v not in lookup]
    if missing:
        raise DataError(f"levels not in the fitted {block.group!r}: {missing[:5]}")
    idx = np.array([lookup[v] for v in levels])
    out = np.empty((*eta.shape[:2], len(levels), eta.shape[-1]))
    for c in range(eta.shape[0]):
        full = eta[c][:, None, :] + np.einsum("dlk,nk->dln", r[c][:, idx, :], Z)
        out[c] = per_trial_mean(idata, model, full, _params_for(params, c))
    return out


# -- tables -----------------------------------------------------------------------------------------
def conditional_effects(idata: xr.DataTree, model: "ModelSpec", x: str, values: Any = None,
                        at: dict[str, Any] | None = None, by_group: str | bool | None = None,
                        scale: str = "response", prob: float = 0.95, draws: int | None = None,
                        n_points: int = 50) -> pd.DataFrame:
    """Predicted response of a typical group (random effects at zero) over a grid of ``x``.

    ``scale="linear"`` gives the linear predictor instead. ``by_group="Subject"`` (or True
    for the first grouping factor) gives one curve per level, with that level's effects.
    Columns: x, (the group), mean, sd, eti95_lb, eti95_ub.

    Examples
    --------
    >>> fit.conditional_effects("Days", n_points=5)  # doctest: +SKIP
    >>> fit.conditional_effects("period", by_group="herd")  # doctest: +SKIP
    """
    if scale not in ("response", "linear"):
        raise BayesmixError(f"scale must be 'response' or 'linear', not {scale!r}")
    grid = reference_grid(idata, model, x, values, at, n_points)
    if by_group:
        block = block_for(model, by_group)
        if scale == "linear":
            raise BayesmixError("per-group curves are on the response scale; drop scale=")
        values_ = _group_draws(idata, model, grid, block, list(block.levels), draws)
        parts = []
        for j, level in enumerate(block.levels):
            table = draw_summary(values_[:, :, j, :], prob)
            table.insert(0, block.group, level)
            table.insert(0, x, list(grid[x]))
            parts.append(table)
        return pd.concat(parts, ignore_index=True)
    eta = linear_predictor(idata, model, grid, "exclude", draws)
    out = eta if scale == "linear" else per_trial_mean(
        idata, model, eta, family_param_draws(idata, model, draws, grid, "exclude"))
    table = draw_summary(out, prob)
    table.insert(0, x, list(grid[x]))
    return table


def marginal_effects(idata: xr.DataTree, model: "ModelSpec", x: str, values: Any = None,
                     at: dict[str, Any] | None = None, prob: float = 0.95,
                     draws: int | None = None, n_re_draws: int = 100,
                     random_seed: int | None = 0, n_points: int = 50) -> pd.DataFrame:
    """Population-averaged predicted response over a grid of ``x``: the response averaged
    over the random-effect distribution, per posterior draw (see the module docstring).

    Examples
    --------
    >>> fit.marginal_effects("period")  # doctest: +SKIP
    """
    grid = reference_grid(idata, model, x, values, at, n_points)
    table = draw_summary(marginal_draws(idata, model, grid, draws, n_re_draws, random_seed), prob)
    table.insert(0, x, list(grid[x]))
    return table


_MEASURES = {"logit": "odds ratio", "probit": "odds ratio", "cloglog": "odds ratio",
             "log": "ratio of means", "identity": "difference"}


def _contrast(measure: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if measure == "odds ratio":
        return (a / (1 - a)) / (b / (1 - b))
    if measure == "ratio of means":
        return a / b
    return a - b


def effect_ratios(idata: xr.DataTree, model: "ModelSpec", x: str, at: dict[str, Any] | None = None,
                  prob: float = 0.95, draws: int | None = None, n_re_draws: int = 100,
                  random_seed: int | None = 0) -> pd.DataFrame:
    """Each level of the factor ``x`` against its reference level, conditional (a typical
    group) and marginal (population-averaged): odds ratios for binary/binomial links, ratios
    of means for the log link (rate ratios), differences for the identity link.

    Examples
    --------
    >>> fit.effect_ratios("period")  # doctest: +SKIP
    """
    frame = training_frame(idata, model)
    if x in frame.columns and not is_factor(frame[x]) and set(frame[x].unique()) != {0, 1}:
        raise DataError(f"{x!r} is numeric; effect_ratios compares factor levels (or 0/1)")
    grid = reference_grid(idata, model, x, None, at)
    measure = _MEASURES.get(model.link, "difference")
    params = family_param_draws(idata, model, draws)
    kinds = {"conditional": per_trial_mean(idata, model, linear_predictor(idata, model, grid, "exclude", draws),
                                            params),
             "marginal": marginal_draws(idata, model, grid, draws, n_re_draws, random_seed)}
    levels = list(grid[x])
    rows = []
    for kind, mu in kinds.items():
        for j in range(1, len(levels)):
            stats = draw_summary(_contrast(measure, mu[..., j], mu[..., 0])[..., None], prob)
            rows.append({"level": levels[j], "reference": levels[0], "effect": kind,
                         "measure": measure, **stats.iloc[0].to_dict()})
    return pd.DataFrame(rows)


# -- picture ----------------------------------------------------------------------------------------
def observed(idata: xr.DataTree, model: "ModelSpec", x: str) -> tuple[pd.Series, np.ndarray]:
    frame = training_frame(idata, model)
    y = np.asarray(model.y, float)
    if model.trials is not None:
        y = y / model.trials
    return frame[x], y
