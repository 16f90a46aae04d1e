"""Hanging rootogram of a count response (Tukey 1977; Kleiber & Zeileis 2016).

For each count (or bin of counts) the expected frequency under the posterior predictive
distribution is a point on a curve, on a square-root axis; the observed frequency hangs from
it as a bar, so that the bottom of each bar is ``sqrt(expected) - sqrt(observed)``. A model
that fits leaves the bar bottoms on the zero line: a bar ending above zero means fewer rows
with that count than predicted, below zero more. The grey band around zero is where 95% of
simulated data sets' bar bottoms end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bayesmix.posterior.draws import simulate_response
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["rootogram_table", "draw_rootogram", "plot_rootogram", "MAX_BINS"]

#: Beyond this many counts (0 to the largest), counts above 0 are pooled into equal bins.
MAX_BINS = 100
_CELLS = 20_000_000  # simulated values held at once (draws x rows)


def rootogram_table(y: np.ndarray, sims: np.ndarray, prob: float = 0.95,
                    max_bins: int = MAX_BINS) -> dict[str, np.ndarray | int]:
    """Observed and expected frequencies per bin of counts, and the ``prob`` interval of the
    hanging bar's bottom ``sqrt(expected) - sqrt(simulated)`` over the simulated data sets.

    ``sims`` is (sets, rows). Bins are single counts from 0 to the largest observed count or
    the 99.5% quantile of the simulated ones, whichever is larger; beyond ``max_bins`` counts,
    0 stays a bin of its own (zero inflation shows there) and the others are ``width``
    counts wide. Larger counts are left out (``beyond``: the observed rows left out).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> table = rootogram_table(rng.poisson(2, 200), rng.poisson(2, (100, 200)))
    >>> int(table["width"]), table["left"][:3].tolist()
    (1, [0, 1, 2])
    >>> table = rootogram_table(np.arange(0, 500), np.arange(0, 500)[None, :])
    >>> int(table["width"]), table["left"][:3].tolist()
    (6, [0, 1, 7])
    """
    y = np.asarray(y, float)
    sims = np.asarray(sims, float).reshape(-1, sims.shape[-1])
    finite = sims[np.isfinite(sims)]
    upper = int(max(np.nanmax(y), np.quantile(finite, 0.995) if finite.size else 0))
    width = 1 if upper < max_bins else int(np.ceil(upper / (max_bins - 1)))
    left = np.concatenate([[0], np.arange(1, upper + 1, width)]) if width > 1 \
        else np.arange(upper + 1)
    nbins = len(left)

    def bin_of(values: np.ndarray) -> np.ndarray:
        inside = np.isfinite(values) & (values >= 0) & (values <= upper)
        index = np.where(values >= 1, (values - 1) // width + 1, 0) if width > 1 else values
        return np.where(inside, np.nan_to_num(index), nbins).astype(np.int64)

    observed = np.bincount(bin_of(y), minlength=nbins + 1)[:nbins]
    offsets = np.arange(len(sims))[:, None] * (nbins + 1)
    per_set = np.bincount((bin_of(sims) + offsets).ravel(), minlength=len(sims) * (nbins + 1))
    per_set = per_set.reshape(len(sims), nbins + 1)[:, :nbins].astype(float)
    expected = per_set.mean(axis=0)
    bottoms = np.sqrt(expected) - np.sqrt(per_set)
    lo, hi = np.quantile(bottoms, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return {"left": left, "width": width, "observed": observed.astype(float),
            "expected": expected, "band_lo": lo, "band_hi": hi, "upper": upper,
            "beyond": int((y > upper).sum())}


def draw_rootogram(ax: Axes, idata: xr.DataTree, model: "ModelSpec", n_sims: int = 500,
                   random_seed: int | None = 0, prob: float = 0.95) -> dict:
    """Draw the hanging rootogram of ``model``'s response on ``ax``; returns its table.

    Examples
    --------
    >>> fig, ax = plt.subplots()  # doctest: +SKIP
    >>> table = draw_rootogram(ax, fit.idata, fit.model)  # doctest: +SKIP
    """
    y = np.asarray(model.y, float)
    chains = posterior_of(idata).sizes["chain"]
    sets = int(min(n_sims, max(20, _CELLS // max(len(y), 1))))
    sims = simulate_response(idata, model, draws=int(np.ceil(sets / chains)),
                             random_seed=random_seed)
    table = rootogram_table(y, sims, prob)
    width, left = table["width"], table["left"]
    widths = np.where(left == 0, 1, width)
    centre = left + (widths - 1) / 2
    root_e = np.sqrt(table["expected"])
    ax.bar(centre, np.sqrt(table["observed"]), bottom=root_e - np.sqrt(table["observed"]),
           width=0.85 * widths, color="0.78", edgecolor="0.45", lw=0.5, zorder=2,
           label="observed (hanging from expected)")
    step = {"step": "mid", "color": "C0", "alpha": 0.25, "lw": 0, "zorder": 1}
    ax.fill_between(centre, table["band_lo"], table["band_hi"], **step,
                    label=f"{100 * prob:g}% of simulated data sets")
    ax.plot(centre, root_e, "o-", color="C3", ms=3, lw=1.4, zorder=3, label="expected")
    ax.axhline(0.0, color="0.2", lw=0.8, zorder=3)
    response = model.spec.response.name
    ax.set_xlabel(response if width == 1 else f"{response} (0, then bins of {width} counts)")
    ax.set_ylabel("sqrt(frequency)")
    right = ax.secondary_yaxis("right", functions=(_signed_square, _signed_root))
    right.set_ylabel("frequency (rows; square-root spacing)", fontsize=8)
    if table["beyond"]:
        ax.text(0.99, 0.98, f"{table['beyond']} rows above {table['upper']} not shown",
                transform=ax.transAxes, ha="right", va="top", fontsize=7)
    ax.legend(fontsize=7, loc="upper right" if not table["beyond"] else "center right")
    return table


def _signed_square(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.square(v)


def _signed_root(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.sqrt(np.abs(v))


def plot_rootogram(idata: xr.DataTree, model: "ModelSpec", n_sims: int = 500,
                   random_seed: int | None = 0, prob: float = 0.95) -> Figure:
    """A figure holding :func:`draw_rootogram` (what ``fit.plot_ppc("rootogram")`` draws)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    draw_rootogram(ax, idata, model, n_sims, random_seed, prob)
    return fig
