"""Which integration a model uses, and the exact draws of its integrated-out level effects.

A gaussian model's level effects are integrated out in one of three ways
(:mod:`bayesmix.model.integrated`: one grouping factor, or a nested pair ``(1 | a/b)``;
:mod:`bayesmix.model.integrated_pair`: a nested pair among other, sampled factors). These two
functions dispatch on the design (before sampling) and on the statistics (after).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from bayesmix.data.design import Design
from bayesmix.model.integrated import (
    NestedStats,
    crossed_nested_pair,
    draw_level_effects,
    draw_nested_effects,
    nested_pair,
    nested_stats,
    sufficient_stats,
)
from bayesmix.model.integrated_pair import PartialStats, draw_partial_effects, partial_stats

__all__ = ["model_stats", "draw_effects"]


def model_stats(design: Design, y: np.ndarray, priors: dict[str, Any] | None = None,
                centered: tuple[bool, ...] = ()) -> Any:
    """The statistics of a marginal model: :func:`~bayesmix.model.integrated.nested_stats` for ``(1 | a/b)``,
    :func:`bayesmix.model.integrated_pair.partial_stats` for such a pair among other factors (``centered``:
    the blocks' centring, used for the sampled ones), else :func:`~bayesmix.model.integrated.sufficient_stats`
    (``priors``: integrate normal-prior fixed effects out too)."""
    if nested_pair(design) is not None:
        return nested_stats(design, y)
    if crossed_nested_pair(design) is not None:
        return partial_stats(design, y, centered)
    return sufficient_stats(design, y, priors)


def draw_effects(draws: xr.Dataset, design: Design, stats: Any,
                 rng: np.random.Generator) -> xr.Dataset:
    """:func:`~bayesmix.model.integrated.draw_nested_effects`, :func:`~bayesmix.model.integrated.draw_level_effects` or
    :func:`bayesmix.model.integrated_pair.draw_partial_effects`, as ``stats`` says."""
    if isinstance(stats, NestedStats):
        return draw_nested_effects(draws, design, stats, rng)
    if isinstance(stats, PartialStats):
        return draw_partial_effects(draws, design, stats, rng)
    return draw_level_effects(draws, design, stats, rng)
