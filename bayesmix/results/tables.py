"""Posterior tables in lme4's vocabulary: fixed effects, variance components, level effects.

Each function takes the fit's DataTree and its model (:class:`bayesmix.model.ModelSpec`) and
returns a DataFrame; :class:`~bayesmix.FitResult`'s methods of the same names call them.
"""

from __future__ import annotations

from typing import Any

import arviz_stats as az
import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import varnames
from bayesmix.errors import BayesmixError

__all__ = ["posterior_of", "posterior_stats", "fixef", "varcorr", "ranef", "coef",
           "family_params"]


def posterior_of(idata: xr.DataTree) -> xr.Dataset:
    """The posterior group of a fit's DataTree as a Dataset."""
    return idata["posterior"].to_dataset()


_SAMPLE_DIMS = varnames.SAMPLE_DIMS


def _interval_names(prob: float, interval: str) -> tuple[str, str]:
    pct = f"{100 * prob:g}"
    return f"{interval}{pct}_lb", f"{interval}{pct}_ub"


def posterior_stats(da: xr.DataArray, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
    """Mean, sd, interval, ESS, R-hat and MCSE of every element of a posterior variable.

    Rows follow the variable's non-sample dims in C order; the index is a MultiIndex of those
    coordinates (a plain index for one dim).
    """
    if interval not in ("eti", "hdi"):
        raise BayesmixError(f"interval must be 'eti' or 'hdi', not {interval!r}")
    if not 0 < prob < 1:
        raise BayesmixError(f"prob must be between 0 and 1, not {prob!r}")
    lb, ub = _interval_names(prob, interval)
    bounds = (az.hdi if interval == "hdi" else az.eti)(da, prob=prob)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {
            "mean": da.mean(_SAMPLE_DIMS),
            "sd": da.std(_SAMPLE_DIMS, ddof=1),
            lb: bounds.sel(ci_bound="lower"),
            ub: bounds.sel(ci_bound="upper"),
            "ess_bulk": az.ess(da, method="bulk"),
            "ess_tail": az.ess(da, method="tail"),
            "r_hat": az.rhat(da),
            "mcse_mean": az.mcse(da),
        }
    other = [d for d in da.dims if d not in _SAMPLE_DIMS]
    if not other:
        return pd.DataFrame({k: [float(v)] for k, v in columns.items()})
    index = pd.MultiIndex.from_product([da.coords[d].values for d in other], names=other) \
        if len(other) > 1 else pd.Index(da.coords[other[0]].values, name=other[0])
    return pd.DataFrame({k: np.asarray(v.transpose(*other)).ravel() for k, v in columns.items()},
                        index=index)


def fixef(idata: xr.DataTree, model: Any, prob: float = 0.95, interval: str = "eti",
          dpar: str | None = None) -> pd.DataFrame:
    """Fixed effects: one row per coefficient (lme4 names).

    Columns: mean, sd, interval bounds (``eti95_lb``/``eti95_ub``, or ``hdi...``),
    ess_bulk, ess_tail, r_hat, mcse_mean. ``dpar`` picks a distributional or nonlinear
    parameter's formula (``"sigma"``, ``"Asym"``; on its link scale); for a nonlinear
    model ``dpar=None`` lists every nonlinear parameter's coefficients as
    ``"Asym:(Intercept)"``.

    Examples
    --------
    >>> fit.fixef().loc["Days", ["mean", "eti95_lb", "eti95_ub"]]  # doctest: +SKIP
    >>> fit.fixef(prob=0.9, interval="hdi")  # doctest: +SKIP
    >>> fit.fixef(dpar="sigma")  # with bm.Formula("y ~ x", "sigma ~ x")  # doctest: +SKIP
    """
    post = posterior_of(idata)
    if dpar is None and model.nonlinear is not None:
        parts = [fixef(idata, model, prob, interval, lp.name) for lp in model.predictors
                 if lp.role == "nlpar"]
        names = [f"{lp.name}:{c}" for lp in model.predictors if lp.role == "nlpar"
                 for c in lp.design.coef_names]
        table = pd.concat(parts)
        table.index = pd.Index(names, name="term")
        return table
    var = "fixef" if dpar is None else model.predictor(dpar).fixef_var
    if var not in post:
        return pd.DataFrame(columns=["mean", "sd"])
    table = posterior_stats(post[var], prob, interval)
    table.index.name = "term"
    return table


def varcorr(idata: xr.DataTree, model: Any, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
    """Variance components: group SDs, correlations and the residual SD.

    Columns: group, term, term2, kind ("sd" | "cor" | "ar"), mean, sd, interval bounds,
    ess_bulk, ess_tail, r_hat. The residual SD of a gaussian model is the row with
    group "Residual"; other families' parameters (student_t's scale ``sigma``, which is
    not the SD of the residuals, included) are in :meth:`family_params`. With
    ``autocor=bm.AR1(...)`` the row of kind "ar" (term "AR(1) rho") is the residual
    correlation at a time gap of 1. Blocks of a distributional or nonlinear parameter's
    formula are listed with their model name as group, e.g. ``"sigma_Subject"``.

    Examples
    --------
    >>> vc = fit.varcorr()  # doctest: +SKIP
    >>> vc[vc.kind == "cor"]  # correlations, one row per pair  # doctest: +SKIP
    """
    post = posterior_of(idata)
    rows = []
    for block in model.all_blocks:
        stats = posterior_stats(post[varnames.sd(block)], prob, interval)
        for term, row in stats.iterrows():
            rows.append({"group": block.name, "term": term, "term2": "", "kind": "sd",
                         **row.to_dict()})
        if block.correlated:
            cor = posterior_stats(post[varnames.cor(block)], prob, interval)
            names = block.coef_names
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    row = cor.loc[(names[i], names[j])]
                    rows.append({"group": block.name, "term": names[i], "term2": names[j],
                                 "kind": "cor", **row.to_dict()})
    if "sigma" in post and model.family.normal:
        row = posterior_stats(post["sigma"], prob, interval).iloc[0]
        rows.append({"group": "Residual", "term": "", "term2": "", "kind": "sd",
                     **row.to_dict()})
    if "ar" in post:  # AR(1) residual correlation at a time gap of 1
        row = posterior_stats(post["ar"], prob, interval).iloc[0]
        rows.append({"group": "Residual", "term": "AR(1) rho", "term2": "", "kind": "ar",
                     **row.to_dict()})
    return pd.DataFrame(rows)


def ranef(idata: xr.DataTree, model: Any, summary: bool = False, prob: float = 0.95,
              interval: str = "eti") -> dict[str, pd.DataFrame]:
    """Level effects per grouping factor.

    ``summary=False``: levels x terms posterior means (lme4's ``ranef``);
    ``summary=True``: long format with level, term, mean, sd and interval bounds.
    Level labels are exactly those of the data. A distributional or nonlinear
    parameter's blocks are keyed ``"<parameter>_<group>"`` (``"sigma_Subject"``). A
    ``gr(g, cov=A)`` block whose levels differ from another block's of ``g`` (relatives
    without records) has its own table, keyed ``"g__A"``.

    Examples
    --------
    >>> fit.ranef()["Subject"].loc[308]  # doctest: +SKIP
    >>> fit.ranef(summary=True)["Subject"].head()  # doctest: +SKIP
    """
    post = posterior_of(idata)
    out: dict[str, list[pd.DataFrame]] = {}
    for key, block, _ in model.keyed_blocks():
        da = post[varnames.ranef(block)]
        if summary:
            table = posterior_stats(da, prob, interval).reset_index()
            table.columns = ["level", "term", *table.columns[2:]]
            out.setdefault(key, []).append(table)
        else:
            mean = da.mean(_SAMPLE_DIMS).transpose(varnames.level_dim(block), varnames.term_dim(block))
            out.setdefault(key, []).append(pd.DataFrame(
                mean.values, index=pd.Index(block.levels, name=block.group),
                columns=list(block.coef_names)))
    if summary:
        return {g: pd.concat(parts, ignore_index=True) for g, parts in out.items()}
    return {g: pd.concat(parts, axis=1) for g, parts in out.items()}


def coef(idata: xr.DataTree, model: Any) -> dict[str, pd.DataFrame]:
    """lme4's ``coef()``: fixed effects plus each level's random effects (posterior means).

    A distributional or nonlinear parameter's groups (``"Asym_Tree"``) combine its own
    fixed effects with its level effects: each tree's Asym.

    Examples
    --------
    >>> fit.coef()["Subject"][["(Intercept)", "Days"]].head()  # doctest: +SKIP
    """
    post = posterior_of(idata)
    owner = {key: lp for key, _, lp in model.keyed_blocks()}
    out = {}
    for group, table in ranef(idata, model).items():
        fixed = fixef(idata, model, dpar=owner[group])["mean"] if owner[group] or \
            "fixef" in post else pd.Series(dtype=float)
        combined = pd.DataFrame(np.tile(fixed.values, (len(table), 1)),
                                index=table.index, columns=list(fixed.index))
        for term in table.columns:
            combined[term] = combined[term] + table[term] if term in combined else table[term]
        out[group] = combined
    return out


def family_params(idata: xr.DataTree, model: Any, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
    """The family's parameters, one row each, with the columns of :meth:`fixef`.

    Rows are named as the posterior variables (``sigma``, ``nu``, ``shape``, ``phi``,
    ``theta``, ``zi``, ``hu``, and ``ar`` with AR(1) residuals); an ordinal model has one
    row per cutpoint, named by the categories it separates (``"1|2"``, ``"2|3"``..., as R's
    ``ordinal::clm``). A parameter with its own formula is not scalar and is left out (see
    ``fixef(dpar=...)``).

    Examples
    --------
    >>> fit.family_params().loc["theta", ["mean", "eti95_lb", "eti95_ub"]]  # doctest: +SKIP
    """
    post = posterior_of(idata)
    tables = []
    for name in (*model.family.params, "ar"):
        if name not in post:
            continue
        table = posterior_stats(post[name], prob, interval)
        table.index = [name] if post[name].ndim == 2 else \
            [str(label) for label in table.index]
        tables.append(table)
    if not tables:
        return pd.DataFrame(columns=["mean", "sd"])
    out = pd.concat(tables)
    out.index.name = "parameter"
    return out
