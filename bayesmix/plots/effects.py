"""Effects plots: the predicted response against a predictor, with the data it describes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix.errors import BayesmixError
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

__all__ = ["plot_effects"]


def plot_effects(idata: xr.DataTree, model: "ModelSpec", x: str, kind: str = "conditional",
                 by_group: str | bool = False, at: dict[str, Any] | None = None, prob: float = 0.95, data: bool = True,
                 draws: int | None = None, n_re_draws: int = 100) -> Figure:
    """Predicted response against ``x`` with ``prob`` bands: ``kind`` "conditional" (a typical
    group), "marginal" (population-averaged) or "both"; ``by_group`` adds each level's
    conditional curve; ``data`` overlays the observations (binomial: proportions).

    Examples
    --------
    >>> fig = fit.plot_effects("Days", kind="both", by_group=True)  # doctest: +SKIP
    >>> fig.savefig("effects.png")  # doctest: +SKIP
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
    factor = is_factor(training_frame(idata, model)[x])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    positions = {v: i for i, v in enumerate(first[x])} if factor else None

    def xpos(values: Any, shift: float = 0.0) -> np.ndarray:
        if positions is None:
            return np.asarray(values, float)
        return np.array([positions[v] for v in values], float) + shift

    if data:
        xs, ys = observed(idata, model, x)
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(ys)) if factor else 0.0
        ax.plot(xpos(xs) + jitter, ys, "o", ms=3, color="0.7", alpha=0.6, zorder=1,
                label="observed")
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
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Effect of {x} ({100 * prob:g}% intervals)", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
