"""A nested pair of random intercepts integrated out while the other random terms are sampled.

Crossed gaussian designs have no per-level closed form for all their level effects at once.
Given the effects of the other factors, though, a pair of nested random intercepts, such as
lecturers within departments in ``y ~ service + (1 | student) + (1 | lecturer) + (1 | dept)``,
is again the ``(1 | a/b)`` case of :mod:`bayesmix.model.integrated`, applied to the residual ``r = y -
X beta - o`` (``o`` the sampled terms' sum per row): per gradient the residual's sum per inner
level and its square (a sum over the rows, the work the conditional likelihood does anyway),
then two scalar Woodbury steps per level.

Why it pays: the department effects are measured only through their lecturers' effects, and
when both are sampled the department SD, the department effects and each department's mean
lecturer effect form a ridge and a funnel that no parametrisation removes. Integrated out, the
sampler explores the fixed effects, the other factors' effects and the SDs. On the
benchmark's 73 000-row model (2 chains x (1000 + 1000)) the slowest parameter goes from
165-290 effective draws (the department SD) to about 500 (the student SD), in half the
gradient evaluations; see ``docs/performance.md``. Integrating the smallest factor alone out
given all the others was measured too, and gave nothing: its effects stay tied to the
lecturers' means.

After sampling, the sampled blocks' level effects are derived as usual, then the pair's
effects are drawn exactly given each draw (:func:`draw_partial_effects`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import xarray as xr

from bayesmix import varnames
from bayesmix.data.design import Design
from bayesmix.model.integrated import (
    NestedStats,
    crossed_nested_pair,
    draw_nested_effects,
    nested_stats,
    offset_response,
)

__all__ = ["PartialStats", "partial_stats", "partial_loglik_data", "draw_partial_effects",
           "restricted"]


@dataclass(frozen=True, eq=False)
class PartialStats:
    """The statistics of a model whose nested pair of random intercepts is integrated out
    given the other blocks: ``nested`` (:class:`~bayesmix.model.integrated.NestedStats` of the pair
    alone, with the response minus the offset), the pair's and the sampled blocks' indices in
    the design, every block's centring, and per sampled block and term the sparse matrix that
    sums its level effects into the inner levels (for the draws afterwards)."""

    nested: NestedStats
    pair: tuple[int, int]  # (outer, inner) in design.blocks
    sampled: tuple[int, ...]
    centered: tuple[bool, ...]
    inner_index: np.ndarray  # (n,) the inner level of each row
    yt: np.ndarray  # (n,) the response minus the offset
    coupling: dict[str, list[sp.csr_matrix]]  # block name -> per term (inner levels x levels)

    def arrays(self) -> dict[str, np.ndarray]:
        """The constant inputs of the log-likelihood."""
        return {"n_inner": self.nested.n_inner, "outer_of": self.nested.outer_of,
                "inner_index": self.inner_index, "yt": self.yt,
                "n": np.array([float(len(self.yt))])}


def restricted(design: Design, ids: tuple[int, ...]) -> Design:
    """The design with only the blocks ``ids``."""
    return dataclasses.replace(design, blocks=tuple(design.blocks[i] for i in ids))


def partial_stats(design: Design, y: np.ndarray, centered: tuple[bool, ...]) -> PartialStats:
    """The statistics :func:`partial_loglik_data` and :func:`draw_partial_effects` need.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesmix as bm
    >>> rng = np.random.default_rng(1)
    >>> lecturer = rng.integers(0, 12, 300)  # lecturers 0, 3, 6, 9 in department 0, ...
    >>> df = pd.DataFrame({"y": rng.normal(size=300),
    ...                    "student": rng.integers(0, 40, 300).astype(str),
    ...                    "lecturer": lecturer.astype(str), "dept": (lecturer % 3).astype(str)})
    >>> m = bm.Model("y ~ 1 + (1 | student) + (1 | lecturer) + (1 | dept)", df)
    >>> [m.design.blocks[i].group for i in partial_stats(m.design, m.y, m.centered).pair]
    ['dept', 'lecturer']
    """
    pair = crossed_nested_pair(design)
    if pair is None:
        raise ValueError("the design has no nested pair of random intercepts beside other "
                         "random terms")
    nested = nested_stats(restricted(design, pair), y)
    inner = design.blocks[pair[1]]
    sampled = tuple(i for i in range(len(design.blocks)) if i not in pair)
    coupling = {}
    for i in sampled:
        b = design.blocks[i]
        coupling[b.name] = [sp.csr_matrix((b.Z[:, t], (inner.index, b.index)),
                                          shape=(inner.n_levels, b.n_levels))
                            for t in range(b.n_terms)]
    return PartialStats(nested=nested, pair=pair, sampled=sampled,
                        centered=tuple(centered) or (False,) * len(design.blocks),
                        inner_index=inner.index, yt=offset_response(design, y),
                        coupling=coupling)


def partial_loglik_data(data: dict[str, Any], eta: Any) -> dict[str, Any]:
    """The :func:`bayesmix.model.integrated.nested_loglik` inputs (without fixed effects) as PyTensor
    expressions, from the constant ``data`` (:meth:`PartialStats.arrays` as tensors) and
    ``eta``, the sampled part of the mean per row: the residual's sum per inner level and
    its square."""
    import pytensor.tensor as pt

    r = data["yt"] - eta
    K = data["n_inner"].shape[0]
    return {"n_inner": data["n_inner"], "outer_of": data["outer_of"],
            "Sy": pt.inc_subtensor(pt.zeros(K)[data["inner_index"]], r),
            "totals": pt.stack([pt.sum(r ** 2), data["n"][0]])}


def draw_partial_effects(draws: xr.Dataset, design: Design, stats: PartialStats,
                         rng: np.random.Generator) -> xr.Dataset:
    """Add every block's ``r_<block>``: the sampled blocks' from their sampler coordinates
    (:func:`bayesmix.model.level_effects.derive_level_effects`, no block absorbing the intercept),
    then the pair's, per draw exactly from their conditional posterior given the fixed
    effects and the sampled terms (:func:`bayesmix.model.integrated.draw_nested_effects` on each
    draw's residual sums)."""
    from bayesmix.model.level_effects import derive_level_effects

    draws = derive_level_effects(draws, restricted(design, stats.sampled),
                                 tuple(stats.centered[i] for i in stats.sampled),
                                 inplace=True, center=False)
    n_chain, n_draw = draws.sizes["chain"], draws.sizes["draw"]
    taken = np.zeros((stats.nested.Sy.size, n_chain * n_draw))
    for i in stats.sampled:
        b = design.blocks[i]
        r = draws[varnames.ranef(b)].transpose("chain", "draw", varnames.level_dim(b), varnames.term_dim(b)).values
        for t, matrix in enumerate(stats.coupling[b.name]):
            taken += matrix @ r[..., t].reshape(n_chain * n_draw, -1).T
    Sy = stats.nested.Sy - taken.T.reshape(n_chain, n_draw, -1)
    return draw_nested_effects(draws, restricted(design, stats.pair),
                               dataclasses.replace(stats.nested, Sy=Sy), rng)
