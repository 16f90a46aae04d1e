"""Building blocks that keep pictures readable from 10 to 10^5 rows: point clouds that turn
into hexbin densities, Q-Q plots thinned to the quantiles the eye can tell apart, the worst
``k`` groups instead of one box per level, and panel grids without empty cells.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

__all__ = ["HEXBIN_ROWS", "QQ_POINTS", "K_GROUPS", "scatter", "point_style", "qq_subset",
           "worst_groups", "group_boxes", "grid"]

#: Above this many points a scatter panel becomes a hexbin density (log colour scale).
HEXBIN_ROWS = 5000
#: A Q-Q plot of more points than this draws this many evenly spaced order statistics plus
#: the 100 smallest and largest.
QQ_POINTS = 2000
#: Per-group residual panels show at most this many levels by default.
K_GROUPS = 20

# Blues without its near-white end, so that a hexagon of one row stays visible.
_HEX_CMAP = ListedColormap(plt.get_cmap("Blues")(np.linspace(0.3, 1.0, 256)), name="bm_hex")
_GREY_CMAP = ListedColormap(plt.get_cmap("Greys")(np.linspace(0.25, 0.85, 256)), name="bm_grey")


def point_style(n: int, color: str = "C0") -> dict[str, Any]:
    """Marker size and alpha for ``n`` points: opaque for a few hundred, fainter up to
    :data:`HEXBIN_ROWS` (alpha 0.6 at 500 points, about 0.19 at 5000).

    Examples
    --------
    >>> point_style(100)["alpha"], round(point_style(5000)["alpha"], 2)
    (0.6, 0.19)
    """
    alpha = float(np.clip(0.6 * np.sqrt(500 / max(n, 1)), 0.05, 0.6))
    size = float(np.clip(12 * np.sqrt(1000 / max(n, 1)), 4, 12))
    return {"s": size, "alpha": alpha, "color": color, "edgecolor": "none"}


def scatter(ax: Axes, x: np.ndarray, y: np.ndarray, xscale: str = "linear",
            grey: bool = False, colorbar: bool = True, **kwargs: Any) -> Any:
    """Points, or above :data:`HEXBIN_ROWS` finite points a hexbin density (log colour
    scale, hexagons with no rows left blank) with a colour bar of the rows per hexagon.

    Returns the PathCollection (points) or PolyCollection (hexbin).

    Examples
    --------
    >>> fig, ax = plt.subplots()
    >>> type(scatter(ax, np.arange(10.0), np.arange(10.0))).__name__
    'PathCollection'
    >>> type(scatter(ax, np.zeros(6000), np.ones(6000))).__name__
    'PolyCollection'
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if xscale == "log":
        ok &= x > 0
    n = int(ok.sum())
    if n <= HEXBIN_ROWS:
        style = point_style(n, "0.55" if grey else "C0") | kwargs
        return ax.scatter(x[ok], y[ok], **style)
    hexes = ax.hexbin(x[ok], y[ok], gridsize=(50, 25), xscale=xscale, bins="log", mincnt=1,
                      cmap=_GREY_CMAP if grey else _HEX_CMAP, linewidths=0.2,
                      edgecolors="face", zorder=1, label=kwargs.get("label"))
    if colorbar:
        ax.figure.colorbar(hexes, ax=ax, pad=0.01, fraction=0.05).set_label(
            "rows per hexagon (log scale)", fontsize=7)
    return hexes


def qq_subset(n: int, points: int = QQ_POINTS, tail: int = 100) -> np.ndarray:
    """Indices of the order statistics a Q-Q plot of ``n`` values draws: all of them up to
    ``points + 2 * tail``, else ``points`` evenly spaced ones and the ``tail`` smallest and
    largest (where departures show).

    Examples
    --------
    >>> len(qq_subset(180)), len(qq_subset(100_000))
    (180, 2200)
    """
    if n <= points + 2 * tail:
        return np.arange(n)
    middle = np.linspace(tail, n - 1 - tail, points).round().astype(int)
    return np.unique(np.concatenate([np.arange(tail), middle, np.arange(n - tail, n)]))


def worst_groups(labels: np.ndarray, resid: np.ndarray, k: int = K_GROUPS) -> pd.DataFrame:
    """Per level: rows, mean residual and its z-score ``mean / (s / sqrt(rows))`` (``s`` the
    SD of all residuals); the ``k`` levels with the largest ``|z|``, ordered by mean residual.

    A level with few rows needs a larger mean to be picked than one with many, so the panel
    shows levels the model fits worst, not the smallest ones. Ties keep the label order.

    Examples
    --------
    >>> table = worst_groups(np.array(["a", "a", "b", "b", "c"]), np.array([1.0, 2, 0, 0.2, -3]), k=2)
    >>> table.index.tolist(), table["rows"].tolist()
    (['c', 'a'], [1, 2])
    """
    frame = pd.DataFrame({"level": labels, "r": resid})
    frame = frame[np.isfinite(frame["r"].to_numpy(dtype=float))]
    scale = float(frame["r"].std()) or 1.0
    table = frame.groupby("level", sort=True, observed=True)["r"].agg(["size", "mean"])
    table.columns = ["rows", "mean"]
    table["z"] = table["mean"] / (scale / np.sqrt(table["rows"]))
    order = table["z"].abs().sort_values(ascending=False, kind="stable").index[:k]
    return table.loc[order].sort_values("mean", kind="stable")


def group_boxes(ax: Axes, labels: np.ndarray, resid: np.ndarray, keys: list[Any],
                rows: bool = False) -> None:
    """A box of the residuals for each level in ``keys`` (in that order) with its mean as a
    diamond; tick labels name the levels (``rows``: with their number of rows)."""
    frame = pd.DataFrame({"level": labels, "r": resid})
    groups = {k: g["r"].to_numpy() for k, g in frame.groupby("level", sort=False, observed=True)}
    data = [groups[k] for k in keys]
    positions = np.arange(len(keys))
    ax.boxplot(data, positions=positions, widths=0.6, showfliers=True,
               flierprops={"markersize": 2.5, "alpha": 0.5}, medianprops={"color": "C0"})
    ax.scatter(positions, [np.mean(d) for d in data], marker="D", s=16, color="C1", zorder=3,
               label="mean")
    text = [f"{k} ({len(d)})" if rows else str(k) for k, d in zip(keys, data)]
    rotation = 90 if max(len(t) for t in text) * len(text) > 40 else 0
    ax.set_xticks(positions, text, rotation=rotation, fontsize=7 if len(keys) > 12 else 8)


def grid(n: int, n_wide: int = 0, ncols: int = 3,
         size: tuple[float, float] = (4.2, 3.4)) -> tuple[Figure, list[Axes]]:
    """``n`` panels in rows of ``ncols`` (2 for 2 or 4 panels), then ``n_wide`` panels each a
    full row wide. A last row that is not full stretches its panels: no empty cells.

    Examples
    --------
    >>> fig, axes = grid(5)
    >>> [len(ax.get_subplotspec().colspan) for ax in axes]  # the last two share a row
    [2, 2, 2, 3, 3]
    """
    if n in (2, 4):
        ncols = 2
    ncols = max(1, min(ncols, n)) if n else ncols
    full, rest = divmod(n, ncols)
    rows = full + (rest > 0) + n_wide
    fig = plt.figure(figsize=(size[0] * ncols, size[1] * max(rows, 1)))
    units = ncols * max(rest, 1)  # columns of the gridspec: a multiple of both row lengths
    spec = fig.add_gridspec(max(rows, 1), units)
    axes = []
    for i in range(n):
        row, col = divmod(i, ncols)
        per = ncols if row < full else rest
        span = units // per
        axes.append(fig.add_subplot(spec[row, col * span:(col + 1) * span]))
    first = full + (rest > 0)
    axes += [fig.add_subplot(spec[first + j, :]) for j in range(n_wide)]
    return fig, axes
