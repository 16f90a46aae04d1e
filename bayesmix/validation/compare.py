"""Predictive model comparison: ``fit.loo()``, ``fit.waic()`` and :func:`compare`.

* ``loo``: PSIS-LOO-CV from ArviZ (``arviz_stats.loo``) on the pointwise log-likelihood of the
  training rows. In a mixed model a level with few rows makes its rows influential (removing
  one moves the level's effect), so Pareto k is often high under a correct model; those rows
  are re-estimated by integrated importance sampling (:mod:`bayesmix.validation.integrated`),
  which leaves the level effect out of the importance ratios. Rows whose k stays high get a
  warning with their group levels and the advice to use exact cross-validation:
  ``fit.kfold(k=10)`` (rows) or ``fit.kfold(group=...)``/``fit.logo(...)`` (whole groups).
  (ArviZ's moment matching needs the sampler's unconstrained draws, which bayesmix does not
  keep.)
* ``waic``: WAIC (Watanabe 2010) computed here, as ArviZ >= 1 has none: per row
  ``lppd_i = log mean_s p(y_i | theta_s)``, ``p_waic_i = var_s log p(y_i | theta_s)``,
  ``elpd_waic_i = lppd_i - p_waic_i``; elpd is their sum and se = sqrt(n var(elpd_waic_i)).
  Any p_waic_i > 0.4 triggers the warning of R's loo package (WAIC unreliable: use LOO).
* ``compare``: ArviZ's comparison table (``arviz_stats.compare``) from fits or ELPD results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.utils import ELPDData
from scipy.special import logsumexp

from bayesmix import varnames
from bayesmix.errors import BayesmixError, warn
from bayesmix.posterior.draws import pointwise_loglik
from bayesmix.posterior.predict import log_likelihood
from bayesmix.validation.integrated import integrated_loglik, integration_obstacle

if TYPE_CHECKING:
    import pandas as pd

    from bayesmix.model import ModelSpec


__all__ = ["loo", "waic", "waic_from_loglik", "compare", "ELPDDataWAIC", "LooWarning"]

P_WAIC_MAX = 0.4  # R loo's threshold on any pointwise p_waic


class LooWarning(UserWarning):
    """PSIS-LOO or WAIC estimates may be unreliable for some rows."""


@dataclass(kw_only=True, repr=False)
class ELPDDataWAIC(ELPDData):
    """WAIC results; ``p_waic_i`` holds the pointwise effective number of parameters."""

    _kind: ClassVar[str] = "waic"
    p_waic_i: xr.DataArray = None


def _obs_dim(idata: xr.DataTree, model: "ModelSpec") -> tuple[str, np.ndarray]:
    dim = varnames.obs_dim(model.response_name)
    return dim, idata["observed_data"][dim].values


def waic_from_loglik(loglik: np.ndarray, obs_dim: str = "obs",
                     coords: np.ndarray | None = None) -> ELPDDataWAIC:
    """WAIC from a pointwise log-likelihood array of shape (chain, draw, n).

    Examples
    --------
    >>> ll = np.log(np.full((2, 50, 3), 0.5))
    >>> round(waic_from_loglik(ll).elpd, 4)
    -2.0794
    """
    ll = np.asarray(loglik, float).reshape(-1, loglik.shape[-1])
    s, n = ll.shape
    lppd_i = logsumexp(ll, axis=0) - np.log(s)
    p_i = ll.var(axis=0, ddof=1)
    elpd_i = lppd_i - p_i
    coords = np.arange(n) if coords is None else coords
    warning = bool((p_i > P_WAIC_MAX).any())
    return ELPDDataWAIC(
        elpd=float(elpd_i.sum()), se=float(np.sqrt(n * elpd_i.var(ddof=1))), p=float(p_i.sum()),
        n_samples=s, n_data_points=n, scale="log", warning=warning, good_k=None,
        elpd_i=xr.DataArray(elpd_i, dims=(obs_dim,), coords={obs_dim: coords}),
        p_waic_i=xr.DataArray(p_i, dims=(obs_dim,), coords={obs_dim: coords}))


def _row_labels(idata: xr.DataTree, model: "ModelSpec", positions: np.ndarray) -> list[str]:
    """'row 12 (Subject 309)' for training row positions."""
    design = model.design
    out = []
    for i in positions:
        groups = ", ".join(f"{b.group} {b.levels[b.index[i]]}" for b in design.blocks)
        out.append(f"row {design.rows[i]!r}" + (f" ({groups})" if groups else ""))
    return out


def waic(idata: xr.DataTree, model: "ModelSpec") -> ELPDDataWAIC:
    """WAIC of a fit, pointwise (see the module docstring); warns when p_waic_i > 0.4.

    Examples
    --------
    >>> w = fit.waic()  # doctest: +SKIP
    >>> w.elpd, w.se, w.p  # doctest: +SKIP
    """
    dim, coords = _obs_dim(idata, model)
    result = waic_from_loglik(pointwise_loglik(idata, model), dim, coords)
    if result.warning:
        bad = np.flatnonzero(result.p_waic_i.values > P_WAIC_MAX)
        warn(f"{len(bad)} of {result.n_data_points} rows have p_waic > {P_WAIC_MAX} "
             f"({'; '.join(_row_labels(idata, model, bad[:5]))}{' ...' if len(bad) > 5 else ''}): "
             "WAIC is unreliable here; use fit.loo() or fit.kfold()", LooWarning)
    return result


def _exact_cv_advice(model: "ModelSpec") -> str:
    """What to run instead of PSIS-LOO: exact cross-validation where the model can be
    refitted on a subset of rows, else what the user can do."""
    obstacle = model.refit_obstacle()
    if obstacle is not None:
        return (f"Exact cross-validation (fit.kfold) does not support models with {obstacle} "
                "yet; refit with more draws, or compare the models' elpd with this in mind")
    groups = [b.group for b in model.design.blocks]
    if not groups:
        return "Use exact cross-validation: fit.kfold(k=10)"
    return (f"Use exact cross-validation: fit.kfold(k=10), or fit.kfold(group={groups[0]!r}) "
            f"or fit.logo({groups[0]!r}) to hold out whole groups")


def loo(idata: xr.DataTree, model: "ModelSpec", pointwise: bool = True,
        integrate: bool = True) -> Any:
    """PSIS-LOO-CV (``arviz_stats.loo``) with Pareto k diagnostics; the rows whose k is high
    are re-estimated with their level effects integrated out; warns with the rows and group
    levels whose k stays high and what to do instead.

    ``integrate``: for rows with Pareto k above ArviZ's threshold, estimate ``elpd_loo_i``
    by integrated importance sampling (:mod:`bayesmix.validation.integrated`: the row's level
    effect integrated out per draw, so that the importance ratios do not depend on it). Same
    quantity, a more stable estimator; ``result.pareto_k`` then holds the integrated k of those
    rows and ``result.influence_pareto_k`` every row's plain PSIS k (a measure of the row's
    influence on the whole posterior). ``integrate=False`` gives ArviZ's plain PSIS-LOO.

    Examples
    --------
    >>> result = fit.loo()  # doctest: +SKIP
    >>> result.elpd, result.se, result.pareto_k.max()  # doctest: +SKIP
    """
    import warnings

    import arviz_stats

    with warnings.catch_warnings():  # replaced by the advice below, which names the rows
        warnings.filterwarnings("ignore", message=".*Pareto k.*")
        warnings.filterwarnings("ignore", message=".*[Ee]stimated shape parameter.*")
        # ArviZ's check that rows are not one sum misfires when one row is re-estimated
        warnings.filterwarnings("ignore", message=".*point-wise LOO is the same.*")
        tree = log_likelihood(idata, model)
        result = arviz_stats.loo(tree, pointwise=True, var_name=model.response_name)
        k = np.asarray(result.pareto_k.values, float)
        high = np.flatnonzero(k > result.good_k)
        obstacle = integration_obstacle(model)
        if integrate and len(high) and obstacle is None:
            _integrate_rows(result, tree, idata, model, high)
    k = np.asarray(result.pareto_k.values, float)
    bad = np.flatnonzero(k > result.good_k)
    if len(bad):
        worst = bad[np.argsort(-k[bad])][:5]
        labels = _row_labels(idata, model, worst)
        tried = ("" if not integrate or obstacle is not None else
                 " (after integrating out their level effects)")
        warn(f"{len(bad)} of {len(k)} rows have Pareto k > {result.good_k:.2f}{tried} (worst: "
             f"{'; '.join(f'{lab}: k = {k[i]:.2f}' for lab, i in zip(labels, worst))}"
             f"): PSIS-LOO is unreliable for them. Each is influential: "
             f"{_influence_reason(integrate and obstacle is None)} It matters when models "
             f"differ by a few elpd points. {_exact_cv_advice(model)}", LooWarning)
    if not pointwise:
        result.elpd_i = None
        result.pareto_k = None
    return result


def _influence_reason(integrated: bool) -> str:
    if integrated:  # a level with few rows no longer explains a high k
        return ("an outlier, or a row that moves the fixed effects or variance parameters "
                "(see fit.simulated_residuals() and fit.influence()).")
    return ("typically a row whose level has few observations (common under a correct "
            "model), or an outlier (see fit.simulated_residuals()).")


def _integrate_rows(result: Any, tree: xr.DataTree, idata: xr.DataTree, model: "ModelSpec",
                    rows: np.ndarray) -> None:
    """Replace the PSIS estimates of ``rows`` by integrated importance sampling (in place,
    on the result ArviZ just returned), as ``arviz_stats.reloo`` replaces refitted rows."""
    import arviz_stats

    result.influence_pareto_k = result.pareto_k.copy()
    values, _ = integrated_loglik(idata, model, rows)
    finite = np.isfinite(values).all(axis=(0, 1))  # degenerate rows keep plain PSIS
    rows, values = rows[finite], values[..., finite]
    if not len(rows):
        return
    name = model.response_name
    plain = tree["log_likelihood"][name]
    dim = plain.dims[-1]
    sub = tree.copy()
    sub["log_likelihood"] = xr.Dataset(
        {name: (plain.dims, values)},
        coords={"chain": plain["chain"].values, "draw": plain["draw"].values,
                dim: plain[dim].values[rows]})
    again = arviz_stats.loo(sub, pointwise=True, var_name=name)
    old = float(result.elpd_i.values[rows].sum())
    result.elpd_i.values[rows] = again.elpd_i.values
    result.pareto_k.values[rows] = again.pareto_k.values
    n = result.n_data_points
    result.elpd = float(result.elpd_i.values.sum())
    result.se = float(np.sqrt(n * np.var(result.elpd_i.values, ddof=1)))
    result.p = float(result.p + old - again.elpd_i.values.sum())  # p_loo = lppd - elpd
    result.warning = bool((result.pareto_k.values > result.good_k).any())


def compare(models: dict[str, Any], ic: str = "loo", method: str = "stacking",
            round_to: int | str = "none") -> "pd.DataFrame":
    """Compare fits by expected log predictive density (ArviZ's ``compare`` table).

    ``models`` maps names to fits or to ELPD results (``fit.loo()``, ``fit.waic()``,
    ``fit.kfold()``; all of one kind). Fits are scored with ``ic`` ("loo" or "waic").
    Grouped k-fold results over the same groups get ``se`` and ``dse`` from the per-group
    sums (a group's rows are not independent).
    Numbers are unrounded unless ``round_to`` says otherwise (ArviZ's "auto", or digits).

    Examples
    --------
    >>> bm.compare({"slopes": fit1, "intercepts": fit2})  # doctest: +SKIP
    """
    import arviz_stats


    if not isinstance(models, dict) or len(models) < 2:
        raise BayesmixError("compare needs a dict of at least two named fits, e.g. "
                            "bm.compare({'m1': fit1, 'm2': fit2})")
    if ic not in ("loo", "waic"):
        raise BayesmixError(f"ic must be 'loo' or 'waic', not {ic!r}")
    scored = {}
    n_rows = set()
    for name, value in models.items():
        if not isinstance(value, ELPDData) and callable(getattr(value, ic, None)):
            value = getattr(value, ic)()  # a fit: its fit.loo() or fit.waic()
        if not isinstance(value, ELPDData):
            raise BayesmixError(f"models[{name!r}] is a {type(value).__name__}; give a fit or "
                                "an ELPD result (fit.loo(), fit.waic(), fit.kfold())")
        if value.elpd_i is None:
            raise BayesmixError(f"models[{name!r}] has no pointwise values; compute it with "
                                "pointwise=True")
        n_rows.add(value.n_data_points)
        scored[name] = value
    if len(n_rows) > 1:
        raise BayesmixError(f"the models were scored on different numbers of rows "
                            f"({sorted(n_rows)}): compare fits of the same data (check rows "
                            "dropped for missing values)")
    groups = _grouping(scored)
    table = arviz_stats.compare(scored, method=method,
                                round_to=round_to if groups is None else "none")
    if groups is None:
        return table
    # Held-out groups: the rows of a group share its unseen effect, so the SEs come from the
    # per-group sums (as KFoldResult.per_group), not from the rows as if independent.
    sums = {name: pd.Series(np.asarray(v.elpd_i).ravel()).groupby(groups, sort=False).sum()
            for name, v in scored.items()}
    best = sums[table.index[0]]
    n_groups = len(best)
    for name in table.index:
        table.loc[name, "se"] = float(np.sqrt(n_groups * sums[name].var(ddof=1)))
        diff = best - sums[name]
        table.loc[name, "dse"] = float(np.sqrt(n_groups * diff.var(ddof=1))) \
            if name != table.index[0] else 0.0
    table.attrs["se_from"] = f"{n_groups} held-out groups"
    if round_to != "none":
        digits = 2 if round_to == "auto" else int(round_to)
        table = table.round({c: digits for c in ("elpd", "p", "elpd_diff", "se", "dse")
                             if c in table})
    return table


def _grouping(scored: dict[str, Any]) -> np.ndarray | None:
    """The shared held-out group labels when every result is a grouped k-fold over the same
    groups, else None."""
    labels = [getattr(v, "groups", None) for v in scored.values()]
    if any(g is None for g in labels):
        return None
    first = np.asarray(labels[0], dtype=object)
    if any(len(g) != len(first) or not np.array_equal(np.asarray(g, dtype=object), first)
           for g in labels[1:]):
        return None
    return first
