"""Effects plots: the predicted response against a predictor, with the data it describes.

The data are drawn so that they stay readable: points fainter as they get more, a hexbin
density above :data:`~bayesmix.plots.panels.HEXBIN_ROWS` rows, boxes per level of a factor
above that, and for 0/1 and binomial responses the observed proportions in bins of ``x``
(the 0/1 values themselves say little). Counts reaching five times the curve's top get a
square-root ``y`` axis, labelled so. The ``x`` axis is in the user's units: a predictor
the formula transforms (``scale(x)``, ``center(x)``, ``log(x)``) is varied on the data's
column. A column that is itself a centred or standardised copy of another (``zAge`` of
``Age``: an exact linear function of it) is drawn in the other's units, with the model's
variable on the top axis, when the other column is at hand: in the model's data, or in the
data frame passed as ``units_from`` (the model keeps only the columns its formula names).
Otherwise a centred predictor says so in its axis label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bayesmix.errors import BayesmixError
from bayesmix.plots.panels import HEXBIN_ROWS, point_style, scatter
from bayesmix.posterior.effects import (
    block_for,
    conditional_effects,
    is_factor,
    marginal_effects,
    observed,
    training_frame,
)

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["plot_effects", "user_units", "binned_proportions"]


def user_units(frame: pd.DataFrame, x: str,
               units_from: pd.DataFrame | None = None) -> tuple[str, float, float] | None:
    """``(column, a, b)`` when the numeric ``x`` is centred (mean 0) and another numeric
    column of ``frame`` that is not equals ``a + b * x`` on every row (to 1e-6 of its SD):
    ``x`` is a standardised copy of ``column``. Columns whose name holds ``x``'s without a
    prefix (``Age`` for ``zAge``) come first; ``units_from``'s columns (matched to ``frame``'s
    rows by index label) are searched too. None otherwise.

    Examples
    --------
    >>> df = pd.DataFrame({"Age": [20.0, 30, 40, 50], "zAge": [-1.5, -0.5, 0.5, 1.5]})
    >>> user_units(df, "zAge")
    ('Age', 35.0, 10.0)
    >>> user_units(df, "Age") is None
    True
    """
    col = frame[x]
    if is_factor(col) or pd.api.types.is_bool_dtype(col):
        return None
    if units_from is not None and units_from.index.is_unique and \
            frame.index.isin(units_from.index).all():
        extra = units_from.loc[frame.index, [c for c in units_from.columns if c not in frame]]
        frame = pd.concat([frame, extra], axis=1)
    v = col.to_numpy(dtype=float)
    ok = np.isfinite(v)
    sd = float(np.std(v[ok])) if ok.any() else 0.0
    if sd == 0 or abs(float(np.mean(v[ok]))) > 1e-6 * sd:
        return None
    names = [c for c in frame.columns if c != x and not is_factor(frame[c])
             and not pd.api.types.is_bool_dtype(frame[c])]
    frame = frame[names]
    names.sort(key=lambda c: not (str(c) in x and str(c) != x))
    for name in names:
        u = frame[name].to_numpy(dtype=float)
        both = ok & np.isfinite(u)
        if both.sum() < 3 or np.std(u[both]) == 0:
            continue
        b, a = np.polyfit(v[both], u[both], 1)
        if abs(float(np.mean(u[both]))) > 1e-6 * float(np.std(u[both])) and \
                np.max(np.abs(a + b * v[both] - u[both])) <= 1e-6 * np.std(u[both]):
            return str(name), round(float(a), 12), round(float(b), 12)
    return None


def _axis_label(col: pd.Series) -> str:
    """The column's name, saying so when its values are centred or standardised."""
    v = col.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    if sd == 0 or abs(float(np.mean(v))) > 1e-6 * sd:
        return str(col.name)
    kind = "standardised: mean 0, SD 1" if abs(sd - 1) < 1e-3 else "centred: mean 0"
    return f"{col.name} ({kind} in the data, not the original units)"


def binned_proportions(x: np.ndarray, successes: np.ndarray, trials: np.ndarray,
                       bins: int | None = None) -> pd.DataFrame:
    """Observed proportion ``sum(successes) / sum(trials)`` in bins of ``x`` holding equal
    numbers of rows (``bins``: ``rows // 40`` between 4 and 20), with its binomial SE.

    Examples
    --------
    >>> table = binned_proportions(np.arange(8.0), np.array([0, 0, 0, 1, 0, 1, 1, 1]),
    ...                            np.ones(8), bins=2)
    >>> table["x"].tolist(), table["p"].tolist()
    ([1.5, 5.5], [0.25, 0.75])
    """
    ok = np.isfinite(x)
    x, successes, trials = x[ok], successes[ok], trials[ok]
    bins = bins or int(np.clip(len(x) // 40, 4, 20))
    parts = [p for p in np.array_split(np.argsort(x, kind="stable"), bins) if len(p)]
    rows = []
    for part in parts:
        n = float(trials[part].sum())
        p = float(successes[part].sum()) / n if n else np.nan
        rows.append({"x": float(np.mean(x[part])), "p": p, "trials": n,
                     "se": float(np.sqrt(p * (1 - p) / n)) if n else np.nan})
    return pd.DataFrame(rows)


def _draw_data(ax: Axes, xs: pd.Series, ys: np.ndarray, trials: np.ndarray | None,
               proportion: bool, factor: bool, xpos: Any) -> None:
    """The observations under the curves (see the module docstring)."""
    n = len(ys)
    if proportion:
        weights = np.ones(n) if trials is None else np.asarray(trials, float)
        if factor:
            frame = pd.DataFrame({"x": list(xs), "s": ys * weights, "n": weights})
            sums = frame.groupby("x", sort=False, observed=True)[["s", "n"]].sum()
            table = pd.DataFrame({"x": list(sums.index), "p": sums["s"] / sums["n"],
                                  "se": np.sqrt(sums["s"] / sums["n"] * (1 - sums["s"] / sums["n"])
                                                / sums["n"])})
            where, what = xpos(table["x"], 0.25), f"observed proportion per {xs.name}"
        else:
            table = binned_proportions(xs.to_numpy(dtype=float), ys * weights, weights)
            where = xpos(table["x"])
            what = f"observed proportion ({len(table)} bins of equal rows)"
        ax.errorbar(np.asarray(where, float), table["p"].to_numpy(float),
                    yerr=1.96 * table["se"].to_numpy(float), fmt="s", ms=4, color="0.25",
                    mfc="white", capsize=0, lw=0.8, zorder=4, label=what)
        return
    if factor:
        if n > HEXBIN_ROWS:
            frame = pd.DataFrame({"x": list(xs), "y": ys})
            groups = {k: g["y"].to_numpy() for k, g in frame.groupby("x", sort=False, observed=True)}
            keys = list(groups)
            ax.boxplot([groups[k] for k in keys], positions=xpos(keys), widths=0.35,
                       showfliers=False, patch_artist=True, zorder=1,
                       boxprops={"facecolor": "0.9", "edgecolor": "0.6"},
                       medianprops={"color": "0.5"}, whiskerprops={"color": "0.6"},
                       capprops={"color": "0.6"}, manage_ticks=False)
            ax.plot([], [], "s", color="0.85", mec="0.6", label="observed (boxes)")
            return
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, n)
        ax.scatter(xpos(xs) + jitter, ys, zorder=1, label="observed", **point_style(n, "0.6"))
        return
    where = xpos(xs)
    values = np.unique(where[np.isfinite(where)])
    label = "observed"
    if 1 < len(values) <= 10 and n <= HEXBIN_ROWS:  # a few values (0/1): spread the points
        where = where + np.random.default_rng(0).uniform(-0.1, 0.1, n) * np.diff(values).min()
        label = "observed (jittered)"
    drawn = scatter(ax, where, ys, grey=True, colorbar=False, zorder=1, label=label)
    if n > HEXBIN_ROWS:  # a grey square in the legend instead of the collection's first colour
        drawn.set_label(None)
        ax.plot([], [], "s", color="0.55", label="observed (hexbin density)")


def plot_effects(idata: xr.DataTree, model: "ModelSpec", x: str, kind: str = "conditional",
                 by_group: str | bool = False, at: dict[str, Any] | None = None, prob: float = 0.95, data: bool = True,
                 draws: int | None = None, n_re_draws: int = 100,
                 units_from: pd.DataFrame | None = None) -> Figure:
    """Predicted response against ``x`` with ``prob`` bands: ``kind`` "conditional" (a typical
    group), "marginal" (population-averaged) or "both"; ``by_group`` adds each level's
    conditional curve; ``data`` overlays the observations: points (a hexbin density above
    5000 rows), for 0/1 and binomial responses observed proportions in bins of ``x`` with
    95% intervals. ``x`` is drawn in the user's units (see the module docstring; pass the
    data frame holding ``Age`` as ``units_from`` to draw a ``zAge`` in years).

    Examples
    --------
    >>> fig = fit.plot_effects("Days", kind="both", by_group=True)  # doctest: +SKIP
    >>> fig.savefig("effects.png")  # doctest: +SKIP
    >>> fig = fit.plot_effects("zAge", units_from=epilepsy)  # axis in Age  # doctest: +SKIP
    """
    if kind not in ("conditional", "marginal", "both"):
        raise BayesmixError(f"kind must be 'conditional', 'marginal' or 'both', not {kind!r}")
    curves = {}
    if kind in ("conditional", "both"):
        curves["conditional (typical group)"] = conditional_effects(idata, model, x, at=at, prob=prob,
                                                                    draws=draws)
    if kind in ("marginal", "both"):
        curves["marginal (population average)"] = marginal_effects(
            idata, model, x, at=at, prob=prob, draws=draws, n_re_draws=n_re_draws)
    first = next(iter(curves.values()))
    lb, ub = first.columns[-2], first.columns[-1]
    frame = training_frame(idata, model)
    factor = is_factor(frame[x])
    units = None if factor else user_units(frame, x, units_from)
    a, b = (units[1], units[2]) if units else (0.0, 1.0)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    positions = {v: i for i, v in enumerate(first[x])} if factor else None

    def xpos(values: Any, shift: float = 0.0) -> np.ndarray:
        if positions is None:
            return a + b * np.asarray(values, float)
        return np.array([positions[v] for v in values], float) + shift

    proportion = model.trials is not None or model.family.response == "binary"
    if data:
        xs, ys = observed(idata, model, x)
        _draw_data(ax, xs, ys, model.trials, proportion, factor, xpos)
    if by_group:
        block = block_for(model, by_group)
        per = conditional_effects(idata, model, x, at=at, by_group=block.name, prob=prob, draws=draws)
        for level, part in per.groupby(block.group, sort=False, observed=True):
            ax.plot(xpos(part[x]), part["mean"], color="C7", lw=0.8, alpha=0.6, zorder=2,
                    marker="." if factor else None,
                    label=f"each {block.group} (conditional)" if level == block.levels[0] else None)
    for i, (label, table) in enumerate(curves.items()):
        color, shift = f"C{i}", (0.08 * (2 * i - len(curves) + 1) if factor else 0.0)
        if factor:
            ax.errorbar(xpos(table[x], shift), table["mean"],
                        yerr=[table["mean"] - table[lb], table[ub] - table["mean"]],
                        fmt="o", color=color, capsize=3, zorder=3, label=label)
        else:
            ax.fill_between(xpos(table[x]), table[lb], table[ub], color=color, alpha=0.2, lw=0,
                            zorder=2)
            ax.plot(xpos(table[x]), table["mean"], color=color, lw=2, zorder=3, label=label)
    if factor:
        ax.set_xticks(range(len(positions)), [str(v) for v in positions])
    name = model.spec.response.expr
    ylabel = f"P({name}) per trial" if model.trials is not None else \
        ("P(" + name + ")" if model.family.response == "binary" else f"E[{name}]")
    ax.set_xlabel(units[0] if units else x if factor else _axis_label(frame[x]))
    if units is not None:
        top = ax.secondary_xaxis("top", functions=(lambda u: (u - a) / b, lambda v: a + b * v))
        top.set_xlabel(f"{x} (the model's predictor: ({units[0]} - {a:.4g}) / {b:.4g})",
                       fontsize=8)
    if data and model.family.response == "count" and np.nanmin(ys) >= 0 and \
            np.nanmax(ys) > 5 * max(float(t[ub].max()) for t in curves.values()):
        ax.set_yscale("function", functions=(np.sqrt, np.square))  # counts far above the curve
        ylabel += " (square-root axis)"
        top_y = float(np.nanmax(ys))
        ticks = [t for t in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
                 if t <= top_y]
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.set_ylim(0, 1.05 * top_y)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Effect of {x} ({100 * prob:g}% intervals)", fontsize=11,
                 pad=22 if units is not None else None)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: not labels[i].startswith("observed"))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="best")
    fig.tight_layout()
    return fig
