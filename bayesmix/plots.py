"""Pictures of a fit (matplotlib). Each function returns a ``matplotlib.figure.Figure``.

Numbers come from :class:`~bayesmix.results.FitResult`'s tables; this module only draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesmix.errors import BayesmixError

if TYPE_CHECKING:
    from bayesmix.results import FitResult

__all__ = ["plot_caterpillar", "plot_shrinkage", "no_pooling_estimates"]


def _block_for(fit: "FitResult", group: str | None):
    blocks = fit.model.all_blocks
    if not blocks:
        raise BayesmixError("the model has no random effects to plot")
    if group is None:
        return blocks[0]
    for block in blocks:
        if group in (block.name, block.group):
            return block
    raise BayesmixError(f"no grouping factor {group!r}; the model has "
                        f"{', '.join(b.name for b in blocks)}")


def plot_caterpillar(fit: "FitResult", group: str | None = None, prob: float = 0.95,
                     sort: bool = True) -> Figure:
    """Level effects with intervals, one panel per term, levels sorted by the first term.

    >>> fig = bm.plots.plot_caterpillar(fit, "Subject")  # doctest: +SKIP
    >>> fig.savefig("ranef.png")  # doctest: +SKIP
    """
    block = _block_for(fit, group)
    key = next(k for k, b, _ in fit._keyed_blocks() if b is block)
    table = fit.ranef(summary=True, prob=prob)[key]
    table = table[table["term"].isin(block.coef_names)]
    lb, ub = [c for c in table.columns if c.endswith("_lb") or c.endswith("_ub")]
    first = table[table["term"] == block.coef_names[0]].set_index("level")["mean"]
    order = list(first.sort_values().index) if sort else list(block.levels)
    k = block.n_terms
    height = max(3.0, 0.22 * block.n_levels + 1.2)
    fig, axes = plt.subplots(1, k, figsize=(3.6 * k + 1.2, height), sharey=True, squeeze=False)
    ypos = {level: i for i, level in enumerate(order)}
    for ax, term in zip(axes[0], block.coef_names):
        part = table[table["term"] == term]
        y = np.array([ypos[v] for v in part["level"]])
        ax.hlines(y, part[lb], part[ub], color="0.55", lw=1.2)
        ax.plot(part["mean"], y, "o", color="C0", ms=4)
        ax.axvline(0.0, color="C3", lw=0.8, ls="--")
        ax.set_title(term)
        ax.set_xlabel(f"effect ({100 * prob:g}% interval)")
    axes[0][0].set_yticks(range(len(order)), [str(v) for v in order])
    axes[0][0].set_ylabel(block.group)
    whose = "" if key == block.group else f" in {key[:-len(block.group) - 1]}"
    fig.suptitle(f"Random effects of {block.term}{whose}", fontsize=11)
    fig.tight_layout()
    return fig


def no_pooling_estimates(fit: "FitResult", group: str | None = None) -> pd.DataFrame:
    """Per-level least-squares estimates of the block's coefficients (no pooling).

    Other terms are held at their posterior means (partial residuals); gaussian identity
    models only. Levels with too few rows for the fit get NaN.
    """
    model = fit.model
    if model.family.name != "gaussian" or model.link != "identity":
        raise BayesmixError("no-pooling estimates are defined here for gaussian models with "
                            "the identity link only")
    block = _block_for(fit, group)
    design = model.design
    if block not in design.blocks:
        raise BayesmixError(f"no-pooling estimates are defined for the mean's random effects; "
                            f"{block.name!r} belongs to another parameter's formula")
    beta = fit.fixef()["mean"] if len(design.coef_names) else pd.Series(dtype=float)
    shared = [c for c in design.coef_names if c in block.coef_names]
    others = [j for j, c in enumerate(design.coef_names) if c not in shared]
    resid = model.y - design.offset - design.X[:, others] @ beta.iloc[others].to_numpy()
    ranef = fit.ranef()
    for other in design.blocks:
        if other is block:
            continue
        r = ranef[other.group][list(other.coef_names)].to_numpy()
        resid = resid - np.sum(r[other.index] * other.Z, axis=1)
    rows = []
    for j in range(block.n_levels):
        mask = block.index == j
        Zj = block.Z[mask]
        if mask.sum() < block.n_terms or np.linalg.matrix_rank(Zj) < block.n_terms:
            rows.append(np.full(block.n_terms, np.nan))
            continue
        rows.append(np.linalg.lstsq(Zj, resid[mask], rcond=None)[0])
    return pd.DataFrame(rows, index=pd.Index(block.levels, name=block.group),
                        columns=list(block.coef_names))


def plot_shrinkage(fit: "FitResult", group: str | None = None,
                   terms: tuple[str, str] | None = None) -> Figure:
    """Partial pooling: each level's no-pooling estimate, its posterior mean, and an arrow.

    With two or more terms the plane of two coefficients is shown (e.g. intercept and slope
    per subject), with the population mean; with one term, the two estimates per level.
    """
    block = _block_for(fit, group)
    raw = no_pooling_estimates(fit, block.name)
    pooled = fit.coef()[block.group][list(block.coef_names)]
    fixed = fit.fixef()["mean"]
    if block.n_terms >= 2:
        a, b = terms or block.coef_names[:2]
        fig, ax = plt.subplots(figsize=(6.4, 5.2))
        for level in block.levels:
            ax.annotate("", xy=(pooled.loc[level, a], pooled.loc[level, b]),
                        xytext=(raw.loc[level, a], raw.loc[level, b]),
                        arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.9})
        ax.plot(raw[a], raw[b], "o", mfc="none", color="C1", label="no pooling (per level)")
        ax.plot(pooled[a], pooled[b], "o", color="C0", label="partial pooling (posterior mean)")
        if a in fixed and b in fixed:
            ax.plot(fixed[a], fixed[b], "P", color="k", ms=10, label="population (fixed effects)")
        ax.set_xlabel(a)
        ax.set_ylabel(b)
    else:
        term = block.coef_names[0]
        order = list(pooled[term].sort_values().index)
        fig, ax = plt.subplots(figsize=(6.4, max(3.0, 0.22 * len(order) + 1.2)))
        y = np.arange(len(order))
        ax.hlines(y, raw.loc[order, term], pooled.loc[order, term], color="0.6", lw=0.9)
        ax.plot(raw.loc[order, term], y, "o", mfc="none", color="C1", label="no pooling")
        ax.plot(pooled.loc[order, term], y, "o", color="C0", label="partial pooling")
        if term in fixed:
            ax.axvline(fixed[term], color="k", lw=0.8, ls="--", label="population")
        ax.set_yticks(y, [str(v) for v in order])
        ax.set_ylabel(block.group)
        ax.set_xlabel(term)
    ax.set_title(f"Shrinkage of {block.group} estimates toward the population")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
