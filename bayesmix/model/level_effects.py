"""Level effects ``r_<block>`` from the sampler's draws (numpy, after sampling).

The sampler stores its own coordinates of the level effects (``_z`` for non-centred blocks,
``_gamma`` for centred ones, see :mod:`bayesmix.model.build`); :func:`derive_level_effects` maps
them to lme4's ``r_<block>``. Models whose level effects are integrated out draw them with
:func:`bayesmix.model.integrated.draw_effects` instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from bayesmix import varnames
from bayesmix.data.design import Design
from bayesmix.model.parametrization import absorption, level_values

__all__ = ["derive_level_effects"]


def derive_level_effects(draws: xr.Dataset, design: Design, centered: tuple[bool, ...],
                         inplace: bool = False, lp: str = "", center: bool = True,
                         level_cols: dict[int, tuple[int, ...]] | None = None) -> xr.Dataset:
    """Add ``r_<block>`` (levels x terms) to a posterior or prior dataset (numpy, per draw).

    Mirrors :func:`_random_effects`: centred blocks sampled ``_gamma`` (``intercept + r`` for
    the block that absorbs the intercept), non-centred ones ``_z`` with ``r = z * sd`` or
    ``r = z @ L.T`` where ``L = diag(sd) chol(cor)``, premultiplied by ``L_A`` (the Cholesky
    factor of the known covariance between levels) for ``gr(g, cov=A)`` blocks.
    ``inplace=True`` overwrites the internal ``_gamma``/``_z`` draws where it can (the
    sampler's own, dropped afterwards), so that a model with many levels holds one copy of its
    level draws. ``lp`` names a further linear predictor (its blocks are already named
    ``<lp>_<group>``) and ``center`` says whether its fixed part was centred (only then may a
    block absorb the intercept). ``level_cols``: the level covariates the model was built with
    (:func:`bayesmix.model.parametrization.level_covariates`), part of the intercept's prior mean
    per level.
    """
    absorb = absorption(design, centered) if center else {}
    level_cols = level_cols if absorb and level_cols else {}
    extra = sorted({j for cols in level_cols.values() for j in cols})
    means = _absorbed_means(draws, design, absorb, lp, extra) if absorb else {}
    out = {}
    for i, (block, is_centred) in enumerate(zip(design.blocks, centered)):
        dims = ("chain", "draw", varnames.level_dim(block), varnames.term_dim(block))
        if is_centred:
            gamma = draws[varnames.gamma(block)].transpose(*dims)
            values = gamma.values if inplace else gamma.values.copy()
            for k, j in absorb.get(i, {}).items():
                values[..., k] -= means[j][..., None]
            if level_cols.get(i):
                cols = list(level_cols[i])
                k0 = block.coef_names.index("(Intercept)")
                values[..., k0] -= np.einsum("cdp,lp->cdl", means["fixef"][..., cols],
                                             level_values(block, design.X[:, cols]))
            out[varnames.ranef(block)] = gamma.copy(data=values)
            continue
        z = draws[varnames.z(block)].transpose(*dims)
        sd = draws[varnames.sd(block)].transpose("chain", "draw", dims[3]).values
        if block.correlated:
            cor = draws[varnames.cor(block)].transpose("chain", "draw", ...).values
            L = sd[..., :, None] * np.linalg.cholesky(cor)
            values = np.einsum("cdkl,cdjl->cdjk", L, z.values)
        else:
            values = z.values if inplace else z.values.copy()
            values *= sd[:, :, None, :]
        if block.cov_chol is not None:  # gr(g, cov=A): r = L_A (z L_Sigma^T)
            values = np.matmul(block.cov_chol, values)
        out[varnames.ranef(block)] = z.copy(data=values)
    return draws.assign(out)


def _absorbed_means(draws: xr.Dataset, design: Design, absorb: dict[int, dict[int, int]],
                    lp: str, extra: list[int]) -> dict[Any, np.ndarray]:
    """Per draw, the prior mean of each absorbed term (as :func:`_linear_part` builds it):
    a slope's fixed coefficient; for the intercept, the centred intercept minus the share of
    the centring of the absorbed slopes and the ``extra`` (level covariate) columns; and
    ``"fixef"``, all coefficients."""
    sfx = varnames.suffix(lp)
    j0 = design.coef_names.index("(Intercept)")
    columns = sorted({j for terms in absorb.values() for j in terms.values()})
    moved = sorted({j for j in columns if j != j0} | set(extra))
    fixef = draws[varnames.fixef(lp)].transpose("chain", "draw", varnames.coef_dim(lp)).values \
        if moved else None
    out: dict[Any, np.ndarray] = {j: fixef[..., j] for j in moved}
    out["fixef"] = fixef
    if j0 in columns:
        out[j0] = draws[f"_intercept_c{sfx}"].transpose("chain", "draw").values
        if moved:
            out[j0] = out[j0] - fixef[..., moved] @ design.X[:, moved].mean(axis=0)
    return out
