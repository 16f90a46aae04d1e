"""The power curve of :func:`bayesmix.power`: estimated power with Monte-Carlo intervals."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesmix.errors import BayesmixError

__all__ = ["plot_power"]


def plot_power(table: pd.DataFrame, x: str | None = None,
               design_columns: tuple[str, ...] = (), ax: Any = None,
               title: str | None = None) -> Figure:
    """Power against one design variable: points with 95% Wilson intervals, one line per
    combination of the other varying design variables, closed forms dashed where known.

    Examples
    --------
    >>> res = bm.power(0.5, n_groups=[10, 20, 30], n_per_group=5)  # doctest: +SKIP
    >>> plot_power(res.table, x="n_groups")  # doctest: +SKIP
    """
    varying = [c for c in design_columns if c in table] or \
        [c for c in table.columns if c in ("effect_size", "n_groups", "n_per_group")]
    x = x or (varying[0] if varying else "n_groups")
    if x not in table:
        raise BayesmixError(f"x={x!r} is not a design column; columns: "
                            f"{', '.join(c for c in varying)}")
    others = [c for c in varying if c != x]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    groups = table.groupby(others, sort=True) if others else [((), table)]
    for i, (key, sub) in enumerate(groups):
        sub = sub.sort_values(x)
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{c}={v}" for c, v in zip(others, key)) or "simulation"
        colour = f"C{i}"
        xs = np.asarray(sub[x], dtype=float)
        err = np.vstack([sub["power"] - sub["lower"], sub["upper"] - sub["power"]])
        ax.errorbar(xs, sub["power"], yerr=err, fmt="o-", color=colour, capsize=3,
                    label=f"{label} (95% MC interval)")
        if "power_t" in sub:
            ax.plot(xs, sub["power_t"], "--", color=colour, alpha=0.8,
                    label="closed form (t)" if i == 0 else None)
        if "power_z" in sub:
            ax.plot(xs, sub["power_z"], ":", color=colour, alpha=0.8,
                    label="closed form (normal)" if i == 0 else None)
    ax.axhline(0.8, color="0.6", lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel("power")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
