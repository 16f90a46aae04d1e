"""Residual pictures: residuals against fitted values, predictors and groups, Q-Q plots of
residuals and of random effects, and DHARMa-style simulated residuals. Each returns a Figure.

Numbers come from :mod:`bayesmix.diagnostics.residuals` (itself on :mod:`bayesmix.posterior.draws`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import special, stats

from bayesmix import varnames
from bayesmix.diagnostics.residuals import fitted, residuals, simulated_residuals
from bayesmix.errors import BayesmixError
from bayesmix.plots.panels import K_GROUPS, grid, group_boxes, qq_subset, scatter, worst_groups
from bayesmix.results.tables import posterior_of
from bayesmix.spec.formula import expression_variables

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["plot_residuals", "plot_qq", "plot_simulated_residuals", "RESIDUAL_KINDS",
           "QQ_KINDS"]

RESIDUAL_KINDS = ("all", "fitted", "scale_location", "qq", "predictors", "groups")
QQ_KINDS = ("residuals", "ranef")
POINT_QQ = {"s": 12, "alpha": 0.6, "color": "C0", "edgecolor": "none"}
REFERENCE = {"color": "C3", "lw": 0.9, "ls": "--"}
SMOOTH = {"color": "C1", "lw": 1.6}


def _binned(x: np.ndarray, y: np.ndarray, q: float | None = None,
            bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean (or quantile ``q``) of y in bins of x holding equal numbers of points."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    bins = bins or int(np.clip(len(x) // 15, 3, 12))
    order = np.argsort(x, kind="stable")
    parts = np.array_split(order, bins)
    centres = np.array([np.median(x[p]) for p in parts if len(p)])
    values = np.array([np.mean(y[p]) if q is None else np.quantile(y[p], q)
                       for p in parts if len(p)])
    return centres, values


def _smooth(ax: Axes, x: np.ndarray, y: np.ndarray, label: str = "binned mean") -> None:
    """Means of y in ~12 bins of x with equal counts: shows trends without a model."""
    if np.isfinite(x).sum() < 20:
        return
    centres, values = _binned(x, y)
    ax.plot(centres, values, "o-", ms=3, label=label, **SMOOTH)


def fitted_scale(values: np.ndarray, model: "ModelSpec") -> str:
    """"log" for positive fitted values of a log-link model spanning a wide range."""
    positive = values[values > 0]
    wide = len(positive) == len(values) and len(values) and positive.max() > 20 * positive.min()
    return "log" if model.link == "log" and wide else "linear"


def residual_label(type: str, idata: xr.DataTree, model: "ModelSpec") -> str:
    if type == "auto":
        type = "pearson" if model.family.normal else "quantile"
    return {"pearson": "Pearson residual", "response": "response residual",
            "quantile": "quantile residual (normal scale)"}[type]


def panel_fitted(ax: Axes, fit_values: np.ndarray, resid: np.ndarray, response: str,
                 ylabel: str, xscale: str = "linear") -> None:
    scatter(ax, fit_values, resid, xscale)
    ax.set_xscale(xscale)
    ax.axhline(0.0, **REFERENCE)
    _smooth(ax, fit_values, resid)
    ax.set_xlabel(f"fitted {response} (posterior mean)")
    ax.set_ylabel(ylabel)
    ax.set_title("Residuals vs fitted")


def panel_scale(ax: Axes, fit_values: np.ndarray, resid: np.ndarray, response: str,
                ylabel: str, xscale: str = "linear") -> None:
    root = np.sqrt(np.abs(resid))
    scatter(ax, fit_values, root, xscale)
    ax.set_xscale(xscale)
    _smooth(ax, fit_values, root)
    ax.set_xlabel(f"fitted {response} (posterior mean)")
    ax.set_ylabel(f"sqrt(|{ylabel}|)")
    ax.set_title("Scale-location")


def _normal_band(n: int, prob: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal quantiles of the i-th of n order statistics and their pointwise interval
    (uniform order statistics are Beta(i, n - i + 1))."""
    i = np.arange(1, n + 1)
    theory = special.ndtri((i - 0.375) / (n + 0.25))  # Blom's positions
    lo = special.ndtri(stats.beta.ppf((1 - prob) / 2, i, n - i + 1))
    hi = special.ndtri(stats.beta.ppf((1 + prob) / 2, i, n - i + 1))
    return theory, lo, hi


def panel_qq(ax: Axes, resid: np.ndarray, ylabel: str) -> None:
    values = np.sort(resid[np.isfinite(resid)])
    theory, lo, hi = _normal_band(len(values))
    scale = float(np.std(values)) if ylabel.startswith("response") else 1.0
    ax.fill_between(theory, lo * scale, hi * scale, color="0.85",
                    label="95% band of a normal sample")
    shown = qq_subset(len(values))
    ax.scatter(theory[shown], values[shown], **POINT_QQ)
    ax.plot(theory, theory * scale, **REFERENCE)
    ax.set_xlabel("standard normal quantile")
    ax.set_ylabel(ylabel)
    ax.set_title("Normal Q-Q of residuals")


def _panel_predictor(ax: Axes, values: pd.Series, resid: np.ndarray, ylabel: str,
                     k_groups: int = K_GROUPS) -> None:
    name = str(values.name)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > 10:
        x = values.to_numpy(dtype=float)
        scatter(ax, x, resid)
        _smooth(ax, x, resid)
        ax.set_xlabel(name)
    else:
        labels = values.astype(object).to_numpy()
        levels = list(pd.unique(values.sort_values()))
        if len(levels) <= k_groups:
            group_boxes(ax, labels, resid, levels)
            ax.set_xlabel(name)
        else:
            keys = list(worst_groups(labels, resid, k_groups).index)
            group_boxes(ax, labels, resid, keys, rows=True)
            ax.set_xlabel(f"{name}: the {len(keys)} of {len(levels)} levels furthest off "
                          f"(|mean| / SE)", fontsize=8)
    ax.axhline(0.0, **REFERENCE)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Residuals vs {name}")


def _panel_group(ax: Axes, block: Any, resid: np.ndarray, ylabel: str,
                 k_groups: int = K_GROUPS) -> None:
    labels = np.asarray(block.levels, dtype=object)[block.index]
    table = worst_groups(labels, resid, k_groups)
    keys, total = list(table.index), len(pd.unique(labels))
    group_boxes(ax, labels, resid, keys, rows=True)
    ax.axhline(0.0, **REFERENCE)
    if len(keys) < total:
        ax.set_title(f"Residuals per {block.group}: the {len(keys)} of {total} levels "
                     f"furthest off ({total - len(keys)} not shown)")
        ax.set_xlabel(f"{block.group} (rows); levels with the largest |mean residual| / SE, "
                      f"ordered by mean residual")
    else:
        ax.set_title(f"Residuals per {block.group}")
        ax.set_xlabel(f"{block.group} (rows); {total} levels, ordered by mean residual")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left")


def _predictor_columns(idata: xr.DataTree, model: "ModelSpec") -> pd.DataFrame:
    """The user's columns in the fixed part (rows used in fitting); empty without data."""
    data = getattr(model, "data", None)
    if data is None or not data.index.is_unique:  # rows cannot be matched by label
        return pd.DataFrame(index=model.design.rows)
    spec = model.spec
    names = [v for v in dict.fromkeys(expression_variables(spec.fixed)) if v in data.columns]
    return data.loc[model.design.rows, names]


def plot_residuals(idata: xr.DataTree, model: "ModelSpec", kind: str = "all", type: str = "auto",
                   n_sims: int = 1000, random_seed: int | None = 0,
                   k_groups: int = K_GROUPS) -> Figure:
    """Residual checks; ``kind`` picks one panel set or ``"all"`` of them.

    ``"fitted"`` (residuals vs fitted), ``"scale_location"`` (sqrt|residual| vs fitted),
    ``"qq"`` (normal Q-Q with a 95% band), ``"predictors"`` (vs each predictor of the fixed
    part), ``"groups"`` (boxes of the residuals per level of each grouping factor).
    Residuals: Pearson for gaussian models, simulated quantile residuals on the normal scale
    for the other families (``type`` overrides; see :func:`bayesmix.diagnostics.residuals.residuals`).

    Readable at any size: a scatter panel of more than
    :data:`~bayesmix.plots.panels.HEXBIN_ROWS` (5000) rows is a hexbin density with a
    colour bar, fewer points get fainter as they get more; a Q-Q panel of more than 2200
    rows draws 2000 evenly spaced quantiles and the 100 smallest and largest. A factor with
    more than ``k_groups`` levels shows the ``k_groups`` levels whose mean residual is
    furthest from zero in standard errors (``|mean| / (s / sqrt(rows))``, ``s`` the SD of
    all residuals), ordered by mean residual; the title says how many are not shown.
    Tick labels give each level's rows, diamonds its mean. Fewer levels: all, by mean.

    Examples
    --------
    >>> fig = fit.plot_residuals()  # doctest: +SKIP
    >>> fig = fit.plot_residuals(kind="groups", k_groups=10)  # doctest: +SKIP
    """
    if kind not in RESIDUAL_KINDS:
        raise BayesmixError(f"kind must be one of {', '.join(map(repr, RESIDUAL_KINDS))}, "
                            f"not {kind!r}")
    if k_groups < 1:
        raise BayesmixError(f"k_groups must be a positive integer, not {k_groups!r}")
    resid = residuals(idata, model, type, n_sims, random_seed).to_numpy()
    values = fitted(idata, model).to_numpy()
    xscale = fitted_scale(values, model)
    label = residual_label(type, idata, model)
    response = model.spec.response.name
    predictors = _predictor_columns(idata, model) if kind in ("all", "predictors") else None
    blocks = list({b.group: b for b in model.design.blocks}.values()) \
        if kind in ("all", "groups") else []
    panels: list[tuple[Any, ...]] = []
    if kind in ("all", "fitted"):
        panels.append((panel_fitted, values, resid, response, label, xscale))
    if kind in ("all", "scale_location"):
        panels.append((panel_scale, values, resid, response, label, xscale))
    if kind in ("all", "qq"):
        panels.append((panel_qq, resid, label))
    if predictors is not None:
        panels += [(_panel_predictor, predictors[c], resid, label, k_groups)
                   for c in predictors.columns]
    panels += [(_panel_group, b, resid, label, k_groups) for b in blocks]
    if not panels:
        raise BayesmixError(f"nothing to draw for kind={kind!r}: the model has no "
                            f"{'predictors' if kind == 'predictors' else 'grouping factors'}")
    wide = sum(p[0] is _panel_group for p in panels)
    fig, axes = grid(len(panels) - wide, wide)
    for ax, (draw, *args) in zip(axes, panels):
        draw(ax, *args)
    fig.suptitle(f"Residuals of {model.spec.formula}", fontsize=11)
    fig.tight_layout()
    return fig


def ranef_panel(ax: Axes, idata: xr.DataTree, model: "ModelSpec", block: Any, k: int, prob: float) -> None:
    draws = posterior_of(idata)[varnames.ranef(block)].transpose(
        "chain", "draw", varnames.level_dim(block), varnames.term_dim(block)).values[..., k]
    flat = draws.reshape(-1, draws.shape[-1])
    mean = flat.mean(axis=0)
    lo, hi = np.quantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    order = np.argsort(mean, kind="stable")
    n = len(mean)
    theory = special.ndtri((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    ax.vlines(theory, lo[order], hi[order], color="0.6", lw=0.9)
    ax.scatter(theory, mean[order], s=14, color="C0", zorder=3)
    sd = float(posterior_of(idata)[varnames.sd(block)].isel({varnames.term_dim(block): k}).mean())
    ax.plot(theory, theory * sd, **REFERENCE, label=f"N(0, {sd:.3g}) (posterior mean SD)")
    term = block.coef_names[k]
    ax.set_xlabel("standard normal quantile")
    ax.set_ylabel(f"{block.group} effect on {term}")
    ax.set_title(f"{term} in {block.term}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


def plot_qq(idata: xr.DataTree, model: "ModelSpec", kind: str = "residuals", group: str | None = None,
            type: str = "auto", prob: float = 0.95, random_seed: int | None = 0) -> Figure:
    """Normal Q-Q plots: of the residuals (``kind="residuals"``) or of the random effects
    (``kind="ranef"``: one panel per grouping factor and term, posterior means with
    ``prob`` intervals against normal quantiles, and the fitted normal as a line).

    Examples
    --------
    >>> fig = fit.plot_qq("ranef", group="Subject")  # doctest: +SKIP
    """
    if kind not in QQ_KINDS:
        raise BayesmixError(f"kind must be one of {', '.join(map(repr, QQ_KINDS))}, not {kind!r}")
    if kind == "residuals":
        resid = residuals(idata, model, type, random_seed=random_seed).to_numpy()
        fig, ax = plt.subplots(figsize=(5.0, 4.4))
        panel_qq(ax, resid, residual_label(type, idata, model))
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        return fig

    blocks = model.design.blocks
    if not blocks:
        raise BayesmixError("the model has no random effects to plot")
    chosen = [b for b in blocks if group in (None, b.name, b.group)]
    if not chosen:
        model.find_block(group)  # raises the error that names the factors
    panels = [(b, k) for b in chosen for k in range(b.n_terms)]
    fig, axes = grid(len(panels), size=(4.2, 3.8))
    for ax, (block, k) in zip(axes, panels):
        ranef_panel(ax, idata, model, block, k, prob)
    fig.suptitle(f"Normal Q-Q of random effects ({100 * prob:g}% intervals)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_simulated_residuals(idata: xr.DataTree, model: "ModelSpec", n_sims: int = 1000,
                             random_seed: int | None = 0) -> Figure:
    """DHARMa's two panels: uniform Q-Q of simulated quantile residuals with the test
    results, and residuals against the (rank-transformed) prediction with quantile lines.

    Examples
    --------
    >>> fig = fit.plot_simulated_residuals()  # doctest: +SKIP
    """
    res = simulated_residuals(idata, model, n_sims, random_seed)
    tests = res.tests()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.6))
    u = np.sort(res.residuals)
    n = len(u)
    expected = (np.arange(1, n + 1) - 0.5) / n
    lo = stats.beta.ppf(0.025, np.arange(1, n + 1), n - np.arange(1, n + 1) + 1)
    hi = stats.beta.ppf(0.975, np.arange(1, n + 1), n - np.arange(1, n + 1) + 1)
    left.fill_between(expected, lo, hi, color="0.85", label="95% band")
    shown = qq_subset(n)
    left.scatter(expected[shown], u[shown], **POINT_QQ)
    left.plot([0, 1], [0, 1], **REFERENCE)
    left.set_xlabel("expected (uniform quantile)")
    left.set_ylabel("simulated quantile residual")
    left.set_title("Uniform Q-Q")
    text = "\n".join(f"{name}: p = {row.p_value:.3g}" for name, row in tests.iterrows())
    left.text(0.97, 0.03, text, transform=left.transAxes, ha="right", va="bottom", fontsize=8,
              bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
    rank = stats.rankdata(res.predicted) / n
    scatter(right, rank, res.residuals)
    for q in (0.25, 0.5, 0.75):
        right.axhline(q, **REFERENCE)
        centres, values = _binned(rank, res.residuals, q=q)
        right.plot(centres, values, "o-", ms=3, **SMOOTH)
    right.set_xlabel(f"predicted {res.response} (rank-transformed)")
    right.set_ylabel("simulated quantile residual")
    right.set_title("Residuals vs predicted (lines: 25/50/75% quantiles in bins)", fontsize=10)
    right.set_ylim(-0.02, 1.02)
    fig.suptitle(f"Simulated residuals ({res.n_sims} posterior predictive draws) of "
                 f"{model.spec.formula}", fontsize=11)
    fig.tight_layout()
    return fig
