"""Sampling diagnostics in the user's terms (pure numpy/ArviZ; no plotting)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import arviz_stats as az
import numpy as np
import xarray as xr

from bayesmix import varnames
from bayesmix.errors import ConvergenceWarning, warn
from bayesmix.families import PARAM_LINKS

__all__ = ["SamplingReport", "sampling_report", "population_vars", "rank_diagnostics",
           "level_diagnostics"]

RHAT_MAX = 1.01
ESS_MIN_PER_CHAIN = 100
RANK_CHUNK = 512  # level effects ranked together in rank_diagnostics


@dataclass(frozen=True)
class SamplingReport:
    """Worst-case sampling diagnostics over the population-level parameters."""

    n_draws: int
    divergences: int
    treedepth_hits: int
    max_rhat: float
    worst_rhat: str
    min_ess_bulk: float
    worst_ess_bulk: str
    min_ess_tail: float
    min_ess_levels: float
    chains: int

    @property
    def problems(self) -> list[str]:
        out = []
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions: raise target_accept "
                       "(e.g. 0.95) or simplify the random-effects structure")
        if self.max_rhat > RHAT_MAX:
            out.append(f"R-hat {self.max_rhat:.3f} > {RHAT_MAX} for {self.worst_rhat}: "
                       "chains disagree; run longer (more tune/draws)")
        if self.min_ess_bulk < ESS_MIN_PER_CHAIN * self.chains:
            out.append(f"bulk ESS {self.min_ess_bulk:.0f} for {self.worst_ess_bulk} is below "
                       f"{ESS_MIN_PER_CHAIN * self.chains} ({ESS_MIN_PER_CHAIN} per chain over "
                       f"{self.chains} chains): draw more")
        if self.treedepth_hits:
            out.append(f"{self.treedepth_hits} draws hit the maximum tree depth: rescale "
                       "predictors or raise max_treedepth")
        return out

    def text(self) -> str:
        head = (f"{self.divergences} divergences, max R-hat {self.max_rhat:.3f} "
                f"({self.worst_rhat}), min bulk ESS {self.min_ess_bulk:.0f} "
                f"({self.worst_ess_bulk}), min tail ESS {self.min_ess_tail:.0f}")
        return head + "".join(f"\n  ! {p}" for p in self.problems)

    def __str__(self) -> str:  # print(fit.sampling_report()) reads like the summary's line
        return self.text()


def population_vars(posterior: xr.Dataset, blocks: Any) -> dict[str, xr.DataArray]:
    """Non-level parameters, each element as its own labelled DataArray-compatible slice."""
    out: dict[str, xr.DataArray] = {}
    for name in posterior.data_vars:  # the mean's and other parameters' fixed effects
        if name == "fixef" or str(name).startswith("fixef_"):
            out[str(name)] = posterior[name]
    for block in blocks:
        out[varnames.sd(block)] = posterior[varnames.sd(block)]
        if varnames.cor(block) in posterior:
            cor = posterior[varnames.cor(block)]
            k = cor.shape[-1]
            iu = np.triu_indices(k, 1)
            flat = cor.values[..., iu[0], iu[1]]
            labels = [f"{cor.coords[cor.dims[-2]].values[i]}~{cor.coords[cor.dims[-1]].values[j]}"
                      for i, j in zip(*iu)]
            out[varnames.cor(block)] = xr.DataArray(
                flat, dims=("chain", "draw", "pair"), coords={"pair": labels})
    for name in (*PARAM_LINKS, "ar"):  # the family's parameters (sigma, theta...), AR(1)
        if name in posterior:
            out[name] = posterior[name]
    return out


def parameter_label(name: str, da: xr.DataArray, flat_index: int, blocks: Any = ()) -> str:
    """Name one parameter in formula terms: 'the SD of Days in (Days | Subject)'."""
    other = [d for d in da.dims if d not in ("chain", "draw")]
    idx = np.unravel_index(flat_index, [da.sizes[d] for d in other]) if other else ()
    parts = [str(da.coords[d].values[i]) for d, i in zip(other, idx)]
    if name == "fixef":
        return f"the coefficient {parts[0]}"
    if name.startswith("fixef_"):
        return f"the coefficient {parts[0]} of {name[6:]}"
    if name == "sigma":
        return "the residual SD (sigma)"
    if name == "ar":
        return "the residual AR(1) correlation (ar)"
    for block in blocks:
        # a distributional or nonlinear parameter's block: say whose it is
        own = "" if block.name == block.group or block.name.startswith(f"{block.group}.") \
            else f" of {block.name[:block.name.rfind('_' + block.group)]}"
        if name == varnames.sd(block):
            return f"the SD of {parts[0]} in {block.term}{own}"
        if name == varnames.cor(block):
            a, b = parts[0].split("~")
            return f"the correlation of {a} and {b} in {block.term}{own}"
    return f"{name}[{', '.join(parts)}]" if parts else name


def _z_scale(values: np.ndarray) -> np.ndarray:
    """ArviZ's rank normalisation (average ranks for ties, Blom's offset 3/8) of each column
    over all its rows; sorted row-wise on the transpose, as scipy's ``rankdata(axis=0)`` is
    several times slower on thousands of columns."""
    from scipy.special import ndtri

    rows = np.ascontiguousarray(values.T)
    m, n = rows.shape
    order = np.argsort(rows, axis=1)
    ordered = np.take_along_axis(rows, order, axis=1)
    twice = np.broadcast_to(2 * np.arange(n) + 2, rows.shape)  # twice the rank, no ties
    first = np.ones(rows.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    tied = np.flatnonzero(~first.all(axis=1))
    if tied.size:  # repeated draws (rejections) and the folded median: average ranks
        twice = twice.copy()
        position = np.broadcast_to(np.arange(n), (tied.size, n))
        new = first[tied]
        last = np.ones(new.shape, dtype=bool)
        last[:, :-1] = new[:, 1:]
        start = np.maximum.accumulate(np.where(new, position, 0), axis=1)
        end = np.minimum.accumulate(np.where(last, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
        twice[tied] = start + end + 2
    # twice the average rank is an integer in 2..2n: normal scores from a table of those
    table = ndtri((np.arange(2 * n + 1) / 2 - 3 / 8) / (n + 1 / 4))
    scores = np.empty(rows.shape)
    np.put_along_axis(scores, order, table[twice], axis=1)
    return scores.T


def rank_diagnostics(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Rank-normalised split R-hat and bulk ESS of every element of ``da``: ArviZ's
    definitions (``az.rhat(da)``, ``az.ess(da, method="bulk")``), with the ranks of all
    elements computed in one vectorised pass, which matters for thousands of level effects
    (ArviZ ranks each element separately: ~4 s for 4 000 of them, against ~0.5 s here).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.random.default_rng(0).normal(size=(2, 100, 3)),
    ...                   dims=("chain", "draw", "level"))
    >>> rhat, ess = rank_diagnostics(da)
    >>> ess.dims
    ('level',)
    """
    other = [d for d in da.dims if d not in ("chain", "draw")]
    values = da.transpose("chain", "draw", *other).values
    n_chain, n_draw = values.shape[:2]
    if n_draw < 8:  # too short to split; ArviZ answers (NaN where it must)
        return az.rhat(da), az.ess(da, method="bulk")
    half = n_draw // 2
    split = np.concatenate([values[:, :half], values[:, n_draw - half:]], axis=0)
    flat = split.reshape(2 * n_chain * half, -1)
    rhat, ess = np.empty(flat.shape[1]), np.empty(flat.shape[1])
    for start in range(0, flat.shape[1], RANK_CHUNK):  # bounded memory for 10^4+ levels
        cols = flat[:, start:start + RANK_CHUNK]
        rhat[start:start + cols.shape[1]], ess[start:start + cols.shape[1]] = \
            _rank_columns(cols, 2 * n_chain, half)
    shape, coords = values.shape[2:], {d: da.coords[d] for d in other if d in da.coords}
    return (xr.DataArray(rhat.reshape(shape), dims=other, coords=coords),
            xr.DataArray(ess.reshape(shape), dims=other, coords=coords))


def _rank_columns(flat: np.ndarray, n_chain: int, n_draw: int) -> tuple[np.ndarray, np.ndarray]:
    """R-hat and bulk ESS of each column of split-chain draws (rows chain-major)."""
    folded = np.abs(flat - np.median(flat, axis=0))
    z, zf = (xr.DataArray(_z_scale(v).reshape(n_chain, n_draw, -1), dims=("chain", "draw", "k"))
             for v in (flat, folded))
    with np.errstate(invalid="ignore", divide="ignore"):
        constant = np.ptp(flat, axis=0) == 0
        rhat = np.maximum(az.rhat(z, method="identity").values,
                          az.rhat(zf, method="identity").values)
        ess = az.ess(z, method="identity").values
    missing = ~np.isfinite(flat).all(axis=0)
    # as ArviZ: NaN where a draw is missing; a constant has no R-hat and full ESS
    return (np.where(missing | constant, np.nan, rhat),
            np.where(missing, np.nan, np.where(constant, float(flat.shape[0]), ess)))


def level_diagnostics(posterior: xr.Dataset, blocks: Any
                      ) -> dict[str, tuple[xr.DataArray, xr.DataArray]]:
    """Per block with level effects in ``posterior``: their R-hat and bulk ESS
    (:func:`rank_diagnostics`), computed once for the report and the checks."""
    return {b.name: rank_diagnostics(posterior[varnames.ranef(b)]) for b in blocks
            if varnames.ranef(b) in posterior}


def sampling_report(idata: xr.DataTree, blocks: Any, settings: Any,
                    levels: dict[str, tuple[xr.DataArray, xr.DataArray]] | None = None
                    ) -> SamplingReport:
    """Summarise divergences, tree depth, R-hat and ESS (population-level parameters).
    ``levels``: :func:`level_diagnostics` if already computed."""
    posterior = idata["posterior"].to_dataset()
    stats = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else None
    divergences = int(stats["diverging"].sum()) if stats is not None and \
        "diverging" in stats else 0
    depth_var = next((v for v in ("maxdepth_reached", "reached_max_treedepth")
                      if stats is not None and v in stats), None)
    hits = int(stats[depth_var].sum()) if depth_var else 0
    worst = {"rhat": (-np.inf, ""), "bulk": (np.inf, ""), "tail": (np.inf, "")}
    for name, da in population_vars(posterior, blocks).items():
        with np.errstate(invalid="ignore", divide="ignore"):
            for key, values in (("rhat", az.rhat(da)), ("bulk", az.ess(da, method="bulk")),
                                ("tail", az.ess(da, method="tail"))):
                flat = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
                if not np.isfinite(flat).any():
                    continue
                i = int(np.nanargmax(flat) if key == "rhat" else np.nanargmin(flat))
                better = flat[i] > worst[key][0] if key == "rhat" else flat[i] < worst[key][0]
                if better:
                    worst[key] = (float(flat[i]), parameter_label(name, da, i, blocks))
    if levels is None:
        levels = level_diagnostics(posterior, blocks)
    level_ess = [float(np.nanmin(np.asarray(ess))) for _, ess in levels.values()]
    return SamplingReport(
        n_draws=int(posterior.sizes["chain"] * posterior.sizes["draw"]),
        divergences=divergences, treedepth_hits=hits,
        max_rhat=worst["rhat"][0], worst_rhat=worst["rhat"][1],
        min_ess_bulk=worst["bulk"][0], worst_ess_bulk=worst["bulk"][1],
        min_ess_tail=worst["tail"][0],
        min_ess_levels=min(level_ess) if level_ess else float("nan"),
        chains=int(posterior.sizes["chain"]))


def warn_on_problems(report: SamplingReport) -> None:
    """Emit one ConvergenceWarning listing every problem found (none when all is well)."""
    if report.problems:
        warn("sampling problems:\n  " + "\n  ".join(report.problems), ConvergenceWarning)
