"""Pictures of a fit (matplotlib). Each function returns a ``matplotlib.figure.Figure``.

Numbers come from :class:`~bayesmix.api.fit.FitResult`'s tables; this module only draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from scipy import stats

from bayesmix import varnames
from bayesmix.errors import BayesmixError
from bayesmix.results import tables
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["plot_caterpillar", "plot_shrinkage", "no_pooling_estimates", "shrinkage_table",
           "plot_fixef", "plot_forest"]


def plot_caterpillar(idata: xr.DataTree, model: "ModelSpec", group: str | None = None, prob: float = 0.95,
                     sort: bool = True) -> Figure:
    """Level effects with intervals, one panel per term, levels sorted by the first term.

    Examples
    --------
    >>> fig = bm.plots.plot_caterpillar(fit.idata, fit.model, "Subject")  # doctest: +SKIP
    >>> fig.savefig("ranef.png")  # doctest: +SKIP
    """
    block = model.find_block(group)
    key = next(k for k, b, _ in model.keyed_blocks() if b is block)
    table = tables.ranef(idata, model, summary=True, prob=prob)[key]
    table = table[table["term"].isin(block.coef_names)]
    lb, ub = [c for c in table.columns if c.endswith("_lb") or c.endswith("_ub")]
    first = table[table["term"] == block.coef_names[0]].set_index("level")["mean"]
    order = list(first.sort_values().index) if sort else list(block.levels)
    k = block.n_terms
    height = max(3.0, 0.22 * block.n_levels + 1.2)
    fig, axes = plt.subplots(1, k, figsize=(3.6 * k + 1.2, height), sharey=True, squeeze=False,
                             layout="constrained")  # keeps the suptitle clear of tall panels
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
    return fig


def no_pooling_estimates(idata: xr.DataTree, model: "ModelSpec", group: str | None = None) -> pd.DataFrame:
    """Per-level least-squares estimates of the block's coefficients (no pooling).

    Other terms are held at their posterior means (partial residuals); gaussian identity
    models only. Levels with too few rows for the fit get NaN.
    """
    if not model.family.normal or model.link != "identity":
        raise BayesmixError("no-pooling estimates are defined here for gaussian models with "
                            "the identity link only")
    block = model.find_block(group)
    design = model.design
    if block not in design.blocks:
        raise BayesmixError(f"no-pooling estimates are defined for the mean's random effects; "
                            f"{block.name!r} belongs to another parameter's formula")
    beta = tables.fixef(idata, model)["mean"] if len(design.coef_names) else pd.Series(dtype=float)
    shared = [c for c in design.coef_names if c in block.coef_names]
    others = [j for j, c in enumerate(design.coef_names) if c not in shared]
    resid = model.y - design.offset - design.X[:, others] @ beta.iloc[others].to_numpy()
    ranef = tables.ranef(idata, model)
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


def shrinkage_table(idata: xr.DataTree, model: "ModelSpec", group: str | None = None) -> pd.DataFrame:
    """Per level: its number of rows, no-pooling and partial-pooling estimates of each term,
    and the distance between them (Euclidean over the terms, in the terms' units).

    Examples
    --------
    >>> table = bm.plots.shrinkage_table(fit.idata, fit.model, "county")  # doctest: +SKIP
    >>> table[["n_rows", "distance"]].corr()  # small counties move most  # doctest: +SKIP
    """
    block = model.find_block(group)
    raw = no_pooling_estimates(idata, model, block.name)
    pooled = tables.coef(idata, model)[block.group][list(block.coef_names)]
    table = pd.DataFrame({"n_rows": block.counts()}, index=raw.index)
    for term in block.coef_names:
        table[f"no_pooling:{term}"] = raw[term]
        table[f"partial_pooling:{term}"] = pooled[term]
    table["distance"] = np.sqrt(((raw - pooled) ** 2).sum(axis=1, min_count=1))
    return table


def _population_ellipse(idata: xr.DataTree, model: "ModelSpec", block: Any, a: str, b: str,
                        prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Contour of the fitted normal distribution of (a, b) coefficients holding ``prob``."""
    i, j = block.coef_names.index(a), block.coef_names.index(b)
    sd = posterior_of(idata)[varnames.sd(block)].transpose("chain", "draw", ...).values
    sd = sd.reshape(-1, block.n_terms)[:, [i, j]]
    rho = np.zeros(len(sd))
    if block.correlated:
        cor = posterior_of(idata)[varnames.cor(block)].transpose("chain", "draw", ...).values
        rho = cor.reshape(-1, block.n_terms, block.n_terms)[:, i, j]
    cov = np.array([[np.mean(sd[:, 0] ** 2), np.mean(rho * sd[:, 0] * sd[:, 1])],
                    [np.mean(rho * sd[:, 0] * sd[:, 1]), np.mean(sd[:, 1] ** 2)]])
    fixed = tables.fixef(idata, model)["mean"]
    centre = np.array([fixed.get(a, 0.0), fixed.get(b, 0.0)])
    vals, vecs = np.linalg.eigh(cov)
    radius = np.sqrt(stats.chi2.ppf(prob, 2))
    t = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(t), np.sin(t)])
    curve = vecs @ (np.sqrt(np.maximum(vals, 0))[:, None] * circle) * radius
    return centre[0] + curve[0], centre[1] + curve[1]


def plot_shrinkage(idata: xr.DataTree, model: "ModelSpec", group: str | None = None,
                   terms: tuple[str, str] | None = None, kind: str = "auto") -> Figure:
    """Partial pooling: each level's no-pooling estimate, its posterior mean, and an arrow.

    ``kind="2d"`` (the default with two or more terms): the plane of two coefficients
    (e.g. intercept and slope per subject) with arrows from no pooling to partial pooling,
    the population mean and the 50% and 95% contours of the fitted population distribution.
    ``kind="1d"``: per term, the two estimates of each level on one line (levels sorted; the
    default for one term and up to 30 levels). ``kind="size"``: per term, both estimates
    against the level's number of rows (the default for one term and more levels): small
    levels move most. Gaussian models with the identity link.

    Examples
    --------
    >>> fig = fit.plot_shrinkage("Subject")  # doctest: +SKIP
    >>> fig = fit.plot_shrinkage("county", kind="1d")  # doctest: +SKIP
    """
    if kind not in ("auto", "1d", "2d", "size"):
        raise BayesmixError(f"kind must be 'auto', '1d', '2d' or 'size', not {kind!r}")
    block = model.find_block(group)
    if kind == "2d" and block.n_terms < 2:
        raise BayesmixError(f"kind='2d' needs two terms; {block.term} has one: use kind='1d'")
    raw = no_pooling_estimates(idata, model, block.name)
    pooled = tables.coef(idata, model)[block.group][list(block.coef_names)]
    fixed = tables.fixef(idata, model)["mean"]
    if kind == "2d" or (kind == "auto" and block.n_terms >= 2):
        a, b = terms or block.coef_names[:2]
        for t in (a, b):
            if t not in block.coef_names:
                raise BayesmixError(f"{t!r} is not a term of {block.term}; it has "
                                    f"{', '.join(block.coef_names)}")
        fig, ax = plt.subplots(figsize=(6.4, 5.2))
        for level in block.levels:
            ax.annotate("", xy=(pooled.loc[level, a], pooled.loc[level, b]),
                        xytext=(raw.loc[level, a], raw.loc[level, b]),
                        arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.9})
        ax.plot(raw[a], raw[b], "o", mfc="none", color="C1", label="no pooling (per level)")
        ax.plot(pooled[a], pooled[b], "o", color="C0", label="partial pooling (posterior mean)")
        if a in fixed and b in fixed:
            ax.plot(fixed[a], fixed[b], "P", color="k", ms=10, label="population (fixed effects)")
        for prob, style in ((0.5, ":"), (0.95, "--")):
            x, y = _population_ellipse(idata, model, block, a, b, prob)
            ax.plot(x, y, style, color="k", lw=0.9, label=f"population {100 * prob:g}% contour")
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.set_title(f"Shrinkage of {block.group} estimates toward the population")
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        return fig
    if kind == "size" or (kind == "auto" and block.n_levels > 30):
        return _shrinkage_by_size(idata, model, block, raw, pooled, fixed)
    order = list(pooled[block.coef_names[0]].sort_values().index)
    k = block.n_terms
    fig, axes = plt.subplots(1, k, figsize=(5.2 * k + 1.2, max(3.0, 0.2 * len(order) + 1.4)),
                             sharey=True, squeeze=False)
    y = np.arange(len(order))
    for ax, term in zip(axes[0], block.coef_names):
        ax.hlines(y, raw.loc[order, term], pooled.loc[order, term], color="0.6", lw=0.9)
        ax.plot(raw.loc[order, term], y, "o", mfc="none", color="C1", label="no pooling")
        ax.plot(pooled.loc[order, term], y, "o", color="C0", label="partial pooling")
        if term in fixed:
            ax.axvline(fixed[term], color="k", lw=0.8, ls="--", label="population")
        ax.set_xlabel(term)
        ax.legend(fontsize=8, loc="best")
    axes[0][0].set_yticks(y, [str(v) for v in order], fontsize=8 if len(order) <= 30 else 6)
    axes[0][0].set_ylabel(block.group)
    fig.suptitle(f"Shrinkage of {block.group} estimates toward the population", fontsize=11)
    fig.tight_layout()
    return fig


def _shrinkage_by_size(idata: xr.DataTree, model: "ModelSpec", block: Any, raw: pd.DataFrame, pooled: pd.DataFrame,
                       fixed: pd.Series) -> Figure:
    """Per term: estimates against the level's number of rows (log scale), a segment from
    no pooling to partial pooling: small levels move most (Gelman & Hill's radon picture)."""
    k = block.n_terms
    fig, axes = plt.subplots(1, k, figsize=(6.0 * k, 4.6), squeeze=False)
    rng = np.random.default_rng(0)  # horizontal jitter so that levels of equal size separate
    n = block.counts() * np.exp(rng.uniform(-0.08, 0.08, block.n_levels))
    for ax, term in zip(axes[0], block.coef_names):
        ax.vlines(n, raw[term], pooled[term], color="0.6", lw=0.8)
        ax.plot(n, raw[term], "o", mfc="none", color="C1", ms=4, label="no pooling")
        ax.plot(n, pooled[term], "o", color="C0", ms=4, label="partial pooling")
        if term in fixed:
            ax.axhline(fixed[term], color="k", lw=0.8, ls="--", label="population")
        ax.set_xscale("log")
        ax.set_xlabel(f"rows per {block.group} (log scale)")
        ax.set_ylabel(term)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"Shrinkage of {block.n_levels} {block.group} estimates\n(smaller levels move "
                 "further toward the population)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_fixef(idata: xr.DataTree, model: "ModelSpec", intercept: bool | None = None, prob: float = 0.95) -> Figure:
    """Forest plot of the fixed effects (arviz-plots): posterior mean, 50% and ``prob``
    intervals per coefficient, and a line at zero. The intercept is left out by default when
    there are other coefficients (its scale would dwarf theirs).

    Examples
    --------
    >>> fig = fit.plot_fixef()  # doctest: +SKIP
    """
    import arviz_plots as azp

    names = list(model.design.coef_names)
    if not names:
        raise BayesmixError("the model has no fixed effects to plot")
    if intercept is None:
        intercept = names == ["(Intercept)"]
    shown = [n for n in names if intercept or n != "(Intercept)"]
    tree = xr.DataTree.from_dict({"posterior": posterior_of(idata)[["fixef"]]})
    pc = azp.plot_forest(tree, var_names=["fixef"], coords={"coef": shown}, combined=True,
                         labels=["coef"], ci_probs=(0.5, prob), backend="matplotlib")
    fig = pc.get_viz("figure")
    forest = fig.axes[-1]
    if forest.get_xlim()[0] < 0 < forest.get_xlim()[1]:
        forest.axvline(0.0, color="C3", lw=0.8, ls="--")
    forest.set_xlabel(f"coefficient (point: mean; bars: 50% and {100 * prob:g}% intervals)")
    fig.axes[0].set_xticks([])  # arviz labels the label column "coef"
    fig.suptitle(f"Fixed effects of {model.spec.formula}", fontsize=11)
    fig.set_size_inches(7.5, 1.6 + 0.45 * len(shown))
    fig.tight_layout()
    return fig


plot_forest = plot_fixef
