"""Influence of observations and of whole groups, by Pareto-smoothed importance sampling.

* Per observation: PSIS-LOO's Pareto k (``arviz_stats.loo``). Above 0.7 the leave-one-out
  estimate for that row is unreliable and the row is influential.
* Per group (leave-one-group-out): the log-likelihood of a level's rows is summed and PSIS is
  run on that sum; its Pareto k says whether the posterior without the level can be
  approximated from the full posterior.
* Cook's distance analogue: the importance-weighted fixed-effect means without a level,
  ``beta_(-g)``; the shift ``beta_(-g) - beta`` in posterior SDs per coefficient, and
  ``D_g = shift' Cov(beta)^-1 shift / p`` overall (as Cook's D, in units of the posterior).

Groups with k > 0.7 are not refitted here: their shifts are flagged as unreliable; refit the
model without the level to check them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats import loo
from scipy import special

from bayesmix.errors import BayesmixError
from bayesmix.posterior.draws import draw_slice, pointwise_loglik
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["Influence", "influence", "group_psis", "K_THRESHOLD"]

K_THRESHOLD = 0.7


@dataclass(frozen=True, eq=False)
class Influence:
    """:meth:`FitResult.influence`.

    ``observations``: Pareto k and pointwise elpd_loo per training row (index: row labels).
    ``groups[factor]``: per level, its number of rows, the Pareto k of leaving it out,
    Cook's distance analogue ``cooks_distance`` and the standardized shift of each fixed
    effect (columns ``shift:<coef>``).
    """

    observations: pd.DataFrame
    groups: dict[str, pd.DataFrame]

    def most_influential(self, group: str, n: int = 3) -> list[Any]:
        """The ``n`` levels of ``group`` with the largest Cook's distance (or Pareto k)."""
        table = self.groups[_check_group(self, group)]
        col = "cooks_distance" if table["cooks_distance"].notna().any() else "pareto_k"
        return list(table[col].sort_values(ascending=False).index[:n])

    def text(self) -> str:
        k = self.observations["pareto_k"]
        high = k[k > K_THRESHOLD]
        lines = [f"Observations: {len(high)} of {len(k)} with Pareto k > {K_THRESHOLD}"
                 + (f" (rows {', '.join(map(str, high.sort_values().index[::-1][:10]))})"
                    if len(high) else "") + f"; max k {k.max():.2f}."]
        for group, table in self.groups.items():
            bad = table[table["pareto_k"] > K_THRESHOLD]
            top = self.most_influential(group, 3)
            lines.append(f"{group}: leaving out a level, max k {table['pareto_k'].max():.2f}; "
                         f"{len(bad)} of {len(table)} levels with k > {K_THRESHOLD}"
                         + (f" ({', '.join(map(str, bad.index[:10]))})" if len(bad) else "")
                         + "; largest Cook's distance: "
                         + ", ".join(f"{lv} ({table.loc[lv, 'cooks_distance']:.2f})"
                                     for lv in top) + ".")
            if len(bad):
                lines.append(f"  Levels with k > {K_THRESHOLD}: the importance-sampling "
                             "estimate without them is unreliable and bayesmix does not refit "
                             "automatically; refit the model without each to see its real "
                             "influence.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()


def _check_group(result: Influence, group: str) -> str:
    if group not in result.groups:
        raise BayesmixError(f"no grouping factor {group!r}; the model has "
                            f"{', '.join(result.groups) or 'none'}")
    return group


def group_psis(loglik: np.ndarray, index: np.ndarray,
               n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """PSIS for leaving out each level: normalized log weights (chain, draw, level) and k.

    ``loglik`` is pointwise (chain, draw, n); ``index`` maps rows to levels.

    Examples
    --------
    >>> block = fit.model.design.blocks[0]  # doctest: +SKIP
    >>> log_w, k = group_psis(pointwise_loglik(fit.idata, fit.model), block.index, block.n_levels)  # doctest: +SKIP
    """
    c, d, n = loglik.shape
    summed = np.zeros((c, d, n_levels))
    for j in range(n_levels):  # loop: bincount has no axis argument
        summed[..., j] = loglik[..., index == j].sum(axis=-1)
    da = xr.DataArray(summed, dims=("chain", "draw", "level"))
    with np.errstate(invalid="ignore", divide="ignore"):  # k is NaN for constant sums
        log_w, khat = da.azstats.psislw(r_eff=1.0, dim=["chain", "draw"])
    log_w = log_w.transpose("chain", "draw", "level").values
    log_w = log_w - special.logsumexp(log_w, axis=(0, 1), keepdims=True)
    return log_w, np.asarray(khat, dtype=float)


def _cooks(beta: np.ndarray, log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardized shifts (levels, p) and Cook's distance analogue (levels,)."""
    flat = beta.reshape(-1, beta.shape[-1])
    weights = np.exp(log_w.reshape(-1, log_w.shape[-1]))
    mean = flat.mean(axis=0)
    moved = weights.T @ flat - mean
    sd = flat.std(axis=0, ddof=1)
    cov = np.atleast_2d(np.cov(flat, rowvar=False))
    with np.errstate(invalid="ignore", divide="ignore"):
        shifts = moved / sd
    dist = np.einsum("gp,pq,gq->g", moved, np.linalg.pinv(cov), moved) / flat.shape[-1]
    return shifts, dist


def influence(idata: xr.DataTree, model: "ModelSpec", draws: int | None = None) -> Influence:
    """Pareto k per row and per group, and each group's pull on the fixed effects.

    Examples
    --------
    >>> inf = fit.influence()  # doctest: +SKIP
    >>> inf.groups["Subject"].sort_values("cooks_distance").tail(3)  # doctest: +SKIP
    """
    ll = pointwise_loglik(idata, model, draws=draws)
    rows = model.design.rows
    posterior = posterior_of(idata).isel(draw=draw_slice(idata, model, draws))
    dims = ("chain", "draw", "row")
    tree = xr.DataTree.from_dict({
        "posterior": posterior,
        "log_likelihood": xr.Dataset({"y": (dims, ll)}, coords={
            "chain": posterior.chain, "draw": posterior.draw, "row": np.arange(ll.shape[-1])})})
    with warnings.catch_warnings():  # k is reported per row below, not as a warning
        warnings.filterwarnings("ignore", message=".*Pareto distribution.*")
        with np.errstate(invalid="ignore", divide="ignore"):
            elpd = loo(tree, pointwise=True, var_name="y")
    observations = pd.DataFrame({"pareto_k": np.asarray(elpd.pareto_k, dtype=float),
                                 "elpd_loo": np.asarray(elpd.elpd_i, dtype=float)}, index=rows)
    beta = posterior["fixef"].transpose("chain", "draw", "coef").values \
        if "fixef" in posterior else None
    groups: dict[str, pd.DataFrame] = {}
    for block in model.design.blocks:
        if block.group in groups:
            continue
        log_w, khat = group_psis(ll, block.index, block.n_levels)
        table = pd.DataFrame({"n_rows": block.counts(), "pareto_k": khat},
                             index=pd.Index(block.levels, name=block.group))
        if beta is not None and beta.shape[-1]:
            shifts, dist = _cooks(beta, log_w)
            table["cooks_distance"] = dist
            for j, name in enumerate(model.design.coef_names):
                table[f"shift:{name}"] = shifts[:, j]
        else:
            table["cooks_distance"] = np.nan
        groups[block.group] = table
    return Influence(observations, groups)

