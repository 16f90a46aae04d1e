"""The standard class's arrays for the precompiled kernel (numpy only).

Most mixed models people fit are one of a few shapes: a gaussian, bernoulli, binomial,
Poisson or negative binomial response on its default link, a fixed-effect design, any number
of uncorrelated random-effect blocks (crossed or nested, intercepts and slopes, centred or
not), an offset and observation weights. For that class one log density and gradient,
written once in numba (:mod:`bayesmix.inference.kernel`, compiled once per machine and cached
on disk), serves every formula: the formula only changes the arrays this module packs. It
mirrors :func:`bayesmix.model.build.build_model` decision by decision (centring, hierarchical
centring of absorbed terms, the QR coordinates of the slopes, the priors), so the kernel's
density is the PyMC model's, which ``tests/model/test_kernel.py`` checks to 1e-10.

:func:`kernel_arrays` returns the packed arrays, or the reason (in words) why the model is
outside the class; such a model takes the PyTensor path.

Layout: every array lives in one float64 vector ``F`` or one int64 vector ``I``. ``I`` starts
with :data:`N_META` scalars (indices ``M_*``), then the (offset, length) of each float slot
(``F_*``) and each int slot (``I_*``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesmix import varnames
from bayesmix.data.design import Design
from bayesmix.model.build import coords_of
from bayesmix.model.parametrization import absorption, level_values
from bayesmix.model.transforms import qr_transform
from bayesmix.priors import Prior

__all__ = ["KernelArrays", "kernel_arrays", "FAMILY_CODES", "PRIOR_CODES"]

# scalars at the start of I
(M_N, M_FAMILY, M_NDIM, M_NBLOCKS, M_NKEPT, M_NBETA, M_QR, M_FIXMODE, M_POS_INTERCEPT,
 M_POS_BETA, M_POS_FAM, M_HAS_OFFSET, M_HAS_WEIGHTS, M_INTERCEPT_IN_ETA, M_NMOVED,
 M_NEXPANDED, M_NCOEF, M_J0, M_FAM_PRIOR, M_INTERCEPT_PRIOR, M_NTERMS, M_MARGINAL, M_P,
 M_LEVELS) = range(24)
N_META = 28
# float slots
(F_Y, F_TRIALS, F_WEIGHTS, F_OFFSET, F_XC, F_MBAR, F_RINV, F_QRLOG, F_Z, F_BETA_PRIOR,
 F_INTERCEPT_PRIOR, F_SD_PRIOR, F_FAM_PRIOR, F_XMEANS, F_CONST, F_LKJ, F_ZTZ, F_ZTX, F_ZTY,
 F_XTX, F_XTY, F_TOTALS, F_PRIOR_SD, F_LEVELX) = range(24)
N_FSLOTS = 24
# int slots
(I_BLOCKS, I_INDEX, I_KEPT, I_MOVED, I_BETA_PRIOR, I_SD_PRIOR, I_ABSORB, I_OTHERS,
 I_LEVELCOLS) = range(9)
N_ISLOTS = 9
# per block: levels, terms, centred, position of its SDs (or packed Cholesky factor), position
# of its level coefficients, Z offset, index offset, first term, correlated, offset of its
# Cholesky factor in the kernel's work array, number of level covariates, offset of their
# values (levels x covariates) in F_LEVELX, offset of their slopes' indices in I_LEVELCOLS,
# 1 if the block is one term whose column is all ones (a random intercept)
BLOCK_FIELDS = 14

FAMILY_CODES = {("gaussian", "identity"): 0, ("bernoulli", "logit"): 1, ("binomial", "logit"): 2,
                ("poisson", "log"): 3, ("negativebinomial", "log"): 4}
_FAMILY_PARAM = {"gaussian": "sigma", "negativebinomial": "theta"}
# prior -> (code, its parameters in the kernel's order)
PRIOR_CODES = {"Normal": (0, ("mu", "sigma")), "StudentT": (1, ("nu", "mu", "sigma")),
               "HalfNormal": (2, ("sigma",)), "HalfStudentT": (3, ("nu", "sigma")),
               "Exponential": (4, ("lam",)), "HalfCauchy": (5, ("beta",)),
               "Gamma": (6, ("alpha", "beta"))}
_POSITIVE = {"HalfNormal", "HalfStudentT", "Exponential", "HalfCauchy", "Gamma"}
_REAL = {"Normal", "StudentT"}


@dataclass(frozen=True)
class KernelArrays:
    """A model of the standard class as the kernel reads it, with what nutpie needs to
    name the draws (the same names, shapes and dimensions as the PyMC model's)."""

    F: np.ndarray
    I: np.ndarray
    n_dim: int
    names: tuple[str, ...]  # expanded variables: value variables, transformed, deterministics
    shapes: tuple[tuple[int, ...], ...]
    dims: dict[str, tuple[str, ...]]
    coords: dict[str, list[Any]]
    base_point: np.ndarray  # un-jittered start (PyMC's support points), unconstrained
    value_names: tuple[str, ...]  # the free variables' value names, in x's order


def _prior_row(prior: Prior, support: set[str]) -> tuple[int, list[float]] | None:
    if prior.dist not in support or prior.dist not in PRIOR_CODES:
        return None
    code, keys = PRIOR_CODES[prior.dist]
    if set(prior.kwargs) != set(keys):
        return None
    values = [float(prior.kwargs[k]) for k in keys]
    if not all(np.ndim(prior.kwargs[k]) == 0 for k in keys):
        return None
    return code, values + [0.0] * (3 - len(values))


def _support_point(prior: Prior) -> float:
    """PyMC's support point (its default start) of the supported priors."""
    kw = prior.kwargs
    return {"Normal": lambda: kw["mu"], "StudentT": lambda: kw["mu"],
            "HalfNormal": lambda: kw["sigma"], "HalfStudentT": lambda: kw["sigma"],
            "Exponential": lambda: 1.0 / kw["lam"], "HalfCauchy": lambda: kw["beta"],
            "Gamma": lambda: kw["alpha"] / kw["beta"]}[prior.dist]()


def kernel_arrays(design: Design, family: str, link: str, priors: dict[str, Prior],
                  centered: tuple[bool, ...], y: np.ndarray, trials: np.ndarray | None,
                  weights: np.ndarray | None,
                  level_covariates: dict[int, tuple[int, ...]] | None = None,
                  marginal: Any = None) -> KernelArrays | str:
    """The packed arrays of a model of the standard class, or why it is not one.

    ``marginal``: the :class:`~bayesmix.model.integrated.MarginalStats` of a gaussian model
    whose level effects (and, with ``marginal.fixed``, fixed effects) are integrated out; the
    kernel then computes :func:`~bayesmix.model.integrated.marginal_loglik`.

    Examples
    --------
    >>> import bayesmix as bm
    >>> m = bm.Model("y ~ x + (1 | g)", bm.datasets.load("sleepstudy").rename(
    ...     columns={"Reaction": "y", "Days": "x", "Subject": "g"}), family="gaussian")
    >>> arrays = kernel_arrays(m.design, "gaussian", "identity", m.prior_dict, m.centered,
    ...                        m.y, None, None)
    >>> arrays.n_dim, arrays.value_names[-1]
    (22, 'sigma_log__')
    """
    code = FAMILY_CODES.get((family, link))
    if marginal is not None:
        code = 5 if code == 0 else None
        centered = (False,) * len(design.blocks)  # (a marginal model samples no levels)
    if code is None:
        return f"the {family} family with the {link} link"
    for block, is_centred in zip(design.blocks, centered):
        if block.correlated and is_centred:
            return f"centred correlated random effects ({block.term.expr} | {block.group})"
        if block.cov_chol is not None:
            return f"a known covariance between levels (gr({block.group}, cov=...))"
    n, names = design.n, list(design.coef_names)
    has_int = design.has_intercept
    absorb = absorption(design, centered)
    j0 = names.index("(Intercept)") if has_int else -1
    level_covariates = level_covariates if absorb and level_covariates else {}
    moved_cols = {j for terms in absorb.values() for j in terms.values()} | \
        {j for cols in level_covariates.values() for j in cols}
    value_names: list[str] = []
    dims: dict[str, tuple[str, ...]] = {}
    coords = coords_of(design)
    base: list[np.ndarray] = []
    transformed: list[tuple[str, tuple[int, ...]]] = []
    # -- fixed part
    others = [j for j in range(len(names)) if j != j0] if has_int else list(range(len(names)))
    fixmode = 0 if not names else (1 if has_int else 2)
    if marginal is not None and marginal.fixed is not None:  # integrated out as well
        fixmode, others = 0, []
    beta_priors = [priors[names[j]] for j in others]
    rows = [_prior_row(p, _REAL if fixmode == 1 else _REAL | _POSITIVE) for p in beta_priors]
    if any(r is None for r in rows) or len({(p.dist, tuple(sorted(p.kwargs))) for p in
                                            beta_priors}) > 1:
        return "fixed-effect priors outside Normal and Student-t, or of several kinds"
    if fixmode == 2 and beta_priors[0].dist in _POSITIVE:
        return "positive priors on fixed effects"
    pos = 0
    pos_intercept = -1
    intercept_prior = None
    if fixmode == 1:
        intercept_prior = _prior_row(priors["(Intercept)"], _REAL)
        if intercept_prior is None:
            return "an intercept prior outside Normal and Student-t"
        value_names.append("_intercept_c")
        base.append(np.array([_support_point(priors["(Intercept)"])]))
        pos_intercept, pos = pos, pos + 1
    X = design.X
    if fixmode == 1:
        means = X[:, others].mean(axis=0) if others else np.zeros(0)
        Xc_all = X[:, others] - means
        kept = [i for i, j in enumerate(others) if j not in moved_cols]
        moved = [i for i, j in enumerate(others) if j in moved_cols]
    else:
        means = np.zeros(len(others))
        Xc_all = X
        kept, moved = list(range(len(others))), []
    qr = None
    if fixmode == 1 and others and not moved:
        qr = qr_transform(Xc_all, [p.dist for p in beta_priors])
    nbeta = len(others)
    pos_beta = pos
    beta0 = np.array([_support_point(p) for p in beta_priors])
    if nbeta:
        bname = "_beta" if fixmode == 1 else varnames.fixef()
        bdim = "_slope" if fixmode == 1 else varnames.coef_dim()
        dims[bname] = (bdim,)
        if qr is not None:
            value_names.append(f"{bname}_qr__")
            dims[f"{bname}_qr__"] = (bdim,)
            transformed.append((bname, (nbeta,)))
            base.append(qr.R @ beta0)
        else:
            value_names.append(bname)
            base.append(beta0)
        pos += nbeta
    # -- blocks
    block_rows, index_parts, z_parts, sd_rows, absorb_rows = [], [], [], [], []
    z_off = idx_off = term_off = l_off = lv_off = lc_off = 0
    lv_parts: list[np.ndarray] = []
    lc_parts: list[np.ndarray] = []
    lkj_rows: list[float] = []
    lkj_const = 0.0
    shapes_extra: dict[str, tuple[int, ...]] = {}
    deterministics: list[tuple[str, tuple[int, ...], tuple[str, ...]]] = []
    for i, (block, is_centred) in enumerate(zip(design.blocks, centered)):
        q, L = block.n_terms, block.n_levels
        sd_priors = [priors[f"{'1' if t == '(Intercept)' else t}|{block.name}"]
                     for t in block.coef_names]
        srows = [_prior_row(p, _POSITIVE) for p in sd_priors]
        if any(r is None for r in srows) or len({(p.dist, tuple(sorted(p.kwargs))) for p in
                                                 sd_priors}) > 1:
            return f"SD priors of ({block.term.expr} | {block.group}) outside the kernel's"
        sd_rows += srows
        sd_name, tdim, ldim = varnames.sd(block), varnames.term_dim(block), varnames.level_dim(block)
        if block.correlated:  # LKJCholeskyCov: packed Cholesky factor, log diagonal
            eta = float(priors[f"cor|{block.name}"].kwargs.get("eta", 1.0))
            packed = q * (q + 1) // 2
            chol = f"_chol_{block.name}"
            value_names.append(f"{chol}_cholesky-cov-packed__")
            transformed.append((chol, (packed,)))
            shapes_extra[f"{chol}_cholesky-cov-packed__"] = (packed,)
            base.append(np.zeros(packed))
            lkj_rows += [2.0 * eta - 2.0 + q - a for a in range(q)]
            lkj_const += _lkj_constant(eta, q)
            deterministics += [(sd_name, (q,), (tdim,)),
                               (varnames.cor(block), (q, q), (tdim, varnames.term2_dim(block)))]
            pos_sd, pos = pos, pos + packed
            lo, l_off = l_off, l_off + q * q
        else:
            value_names.append(f"{sd_name}_log__")
            dims[sd_name] = dims[f"{sd_name}_log__"] = (tdim,)
            transformed.append((sd_name, (q,)))
            shapes_extra[f"{sd_name}_log__"] = (q,)
            base.append(np.log([_support_point(p) for p in sd_priors]))
            lkj_rows += [0.0] * q
            pos_sd, pos = pos, pos + q
            lo = 0
        if marginal is not None:
            block_rows.append((L, q, 0, pos_sd, -1, 0, 0, term_off, int(block.correlated), lo,
                               0, 0, 0, 0))
            term_off += q
            continue
        gname = varnames.gamma(block) if is_centred else varnames.z(block)
        value_names.append(gname)
        dims[gname] = (ldim, tdim)
        start = np.zeros((L, q))
        terms = absorb.get(i, {})
        lc_here = bool(level_covariates.get(i))
        for k in range(q):
            j = terms.get(k)
            if j is None and lc_here and block.coef_names[k] == "(Intercept)":
                absorb_rows.append((3, -1))  # level covariates only (the mean starts at 0)
            elif j is None:
                absorb_rows.append((0, -1))
            elif j == j0:
                absorb_rows.append((1, -1))
                start[:, k] = _location(priors[names[j]])
            else:
                absorb_rows.append((2, others.index(j)))
                start[:, k] = _location(priors[names[j]])
        base.append(start.ravel())
        pos_gamma, pos = pos, pos + L * q
        cols = list(level_covariates.get(i, ()))
        unit = int(q == 1 and bool(np.all(np.asarray(block.Z) == 1.0)))
        block_rows.append((L, q, int(is_centred), pos_sd, pos_gamma, z_off, idx_off, term_off,
                           int(block.correlated), lo, len(cols), lv_off, lc_off, unit))
        if cols:  # level covariates: in the absorbed intercept's prior mean, per level
            lv_parts.append(level_values(block, X[:, cols]).ravel())
            lc_parts.append(np.array([others.index(j) for j in cols], dtype=np.int64))
            lv_off += L * len(cols)
            lc_off += len(cols)
        if not unit:  # a random intercept's column of ones is not stored
            z_parts.append(np.asarray(block.Z, dtype=np.float64).T.ravel())  # column by column
            z_off += n * q
        index_parts.append(np.asarray(block.index, dtype=np.int64))
        idx_off += n
        term_off += q
    # -- family parameter
    pos_fam, fam_prior = -1, None
    pname = _FAMILY_PARAM.get(family) if marginal is None else "sigma"
    if pname is not None:
        fam_prior = _prior_row(priors[pname], _POSITIVE)
        if fam_prior is None:
            return f"a {pname} prior outside the kernel's"
        value_names.append(f"{pname}_log__")
        transformed.append((pname, ()))
        base.append(np.log([_support_point(priors[pname])]))
        pos_fam, pos = pos, pos + 1
    n_dim = pos
    # -- expanded variables: x, then the transformed ones, then fixef
    shapes = {"_intercept_c": ()}
    if nbeta:
        shapes[value_names[1 if fixmode == 1 else 0]] = (nbeta,)
    shapes.update(shapes_extra)
    for block, is_centred in zip(design.blocks, centered):
        if marginal is None:
            gname = varnames.gamma(block) if is_centred else varnames.z(block)
            shapes[gname] = (block.n_levels, block.n_terms)
    if pname is not None:
        shapes[f"{pname}_log__"] = ()
    out_names = list(value_names) + [name for name, _ in transformed]
    out_shapes = [shapes[v] for v in value_names] + [s for _, s in transformed]
    if fixmode == 1:
        out_names.append(varnames.fixef())
        out_shapes.append((len(names),))
        dims[varnames.fixef()] = (varnames.coef_dim(),)
    for name, shape, dim in deterministics:
        out_names.append(name)
        out_shapes.append(shape)
        dims[name] = dim
    n_expanded = int(sum(math.prod(s) for s in out_shapes))
    # -- data
    yv = np.asarray(y, dtype=np.float64)
    tv = np.asarray(trials, dtype=np.float64) if trials is not None else np.zeros(0)
    wv = np.asarray(weights, dtype=np.float64) if weights is not None else np.zeros(0)
    const = _loglik_constant(code, yv, tv, wv if weights is not None else np.ones(n))
    prior_arr = lambda rows_: np.array([r[1] for r in rows_], dtype=np.float64).ravel()  # noqa: E731
    fslots = [yv, tv, wv, np.asarray(design.offset, dtype=np.float64) if design.has_offset
              else np.zeros(0),
              np.asarray(Xc_all[:, kept], dtype=np.float64).T.ravel(),  # column by column
              np.asarray(means[moved], dtype=np.float64),
              qr.R_inv.ravel() if qr is not None else np.zeros(0),
              np.asarray(qr._log_diag if qr is not None else np.zeros(0), dtype=np.float64),
              np.concatenate(z_parts) if z_parts else np.zeros(0),
              prior_arr(rows), np.array(intercept_prior[1] if intercept_prior else [0.0] * 3),
              prior_arr(sd_rows), np.array(fam_prior[1] if fam_prior else [0.0] * 3),
              np.asarray(means, dtype=np.float64), np.array([const + lkj_const]),
              np.array(lkj_rows, dtype=np.float64), *_marginal_slots(marginal),
              np.concatenate(lv_parts) if lv_parts else np.zeros(0)]
    islots = [np.array(block_rows, dtype=np.int64).ravel(),
              np.concatenate(index_parts) if index_parts else np.zeros(0, np.int64),
              np.array(kept, dtype=np.int64), np.array(moved, dtype=np.int64),
              np.array([r[0] for r in rows], dtype=np.int64),
              np.array([r[0] for r in sd_rows], dtype=np.int64),
              np.array(absorb_rows, dtype=np.int64).ravel(),
              np.array(others, dtype=np.int64),
              np.concatenate(lc_parts) if lc_parts else np.zeros(0, np.int64)]
    meta = np.zeros(N_META, dtype=np.int64)
    intercept_in_eta = int(fixmode == 1 and j0 not in moved_cols)
    for k, v in ((M_N, n), (M_FAMILY, code), (M_NDIM, n_dim), (M_NBLOCKS, len(design.blocks)),
                 (M_NKEPT, len(kept)), (M_NBETA, nbeta), (M_QR, int(qr is not None)),
                 (M_FIXMODE, fixmode), (M_POS_INTERCEPT, pos_intercept),
                 (M_POS_BETA, pos_beta), (M_POS_FAM, pos_fam),
                 (M_HAS_OFFSET, int(design.has_offset)), (M_HAS_WEIGHTS, int(weights is not None)),
                 (M_INTERCEPT_IN_ETA, intercept_in_eta), (M_NMOVED, len(moved)),
                 (M_NEXPANDED, n_expanded), (M_NCOEF, len(names)), (M_J0, j0),
                 (M_FAM_PRIOR, fam_prior[0] if fam_prior else -1),
                 (M_INTERCEPT_PRIOR, intercept_prior[0] if intercept_prior else -1),
                 (M_NTERMS, term_off),
                 (M_MARGINAL, 0 if marginal is None else (1 if marginal.fixed is None else 2)),
                 (M_P, 0 if marginal is None else marginal.XtX.shape[0]),
                 (M_LEVELS, 0 if marginal is None else marginal.ZtZ.shape[0])):
        meta[k] = v
    F, table_f = _pack(fslots, np.float64)
    Iarr, table_i = _pack(islots, np.int64)
    table_i[0::2] += N_META + 2 * N_FSLOTS + 2 * N_ISLOTS  # int slots follow the header
    I = np.concatenate([meta, table_f, table_i, Iarr])
    return KernelArrays(F=F, I=I, n_dim=n_dim, names=tuple(out_names),
                        shapes=tuple(tuple(s) for s in out_shapes), dims=dims, coords=coords,
                        base_point=np.concatenate(base) if base else np.zeros(0),
                        value_names=tuple(value_names))


def _location(prior: Prior) -> float:
    for key in ("mu", "alpha", "loc"):
        if key in prior.kwargs and np.ndim(prior.kwargs[key]) == 0:
            return float(prior.kwargs[key])
    return 0.0


def _marginal_slots(stats: Any) -> list[np.ndarray]:
    """The sufficient statistics of a marginal model, in the kernel's slots."""
    if stats is None:
        return [np.zeros(0)] * 7
    prior_sd = stats.fixed.sd if stats.fixed is not None else np.zeros(0)
    return [np.ascontiguousarray(a, dtype=np.float64).ravel() for a in
            (stats.ZtZ, stats.ZtX, stats.Zty, stats.XtX, stats.Xty, stats.totals, prior_sd)]


def _lkj_constant(eta: float, n: int) -> float:
    """The LKJ density's log normalising constant, written as PyMC 6 writes it
    (``pymc.distributions.multivariate._lkj_normalizing_constant``)."""
    from scipy.special import gammaln

    k = np.arange(1, n)
    return float((n - 1) * gammaln(eta + 0.5 * (n - 1))
                 - np.sum(0.5 * k * np.log(np.pi) + gammaln(eta + 0.5 * (n - 1 - k))))


def _pack(parts: list[np.ndarray], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``parts``; the (offset, length) of each."""
    table = np.zeros(2 * len(parts), dtype=np.int64)
    offset = 0
    for k, part in enumerate(parts):
        table[2 * k], table[2 * k + 1] = offset, part.size
        offset += part.size
    flat = np.concatenate([np.asarray(p, dtype=dtype).ravel() for p in parts]) if parts else \
        np.zeros(0, dtype)
    return np.ascontiguousarray(flat, dtype=dtype), table


def _loglik_constant(code: int, y: np.ndarray, trials: np.ndarray, w: np.ndarray) -> float:
    """The weighted sum of the likelihood's terms that depend on the data only."""
    from scipy.special import gammaln

    if code == 0:
        return float(np.sum(w) * -0.5 * np.log(2 * np.pi))
    if code == 2:
        return float(np.sum(w * (gammaln(trials + 1) - gammaln(y + 1) - gammaln(trials - y + 1))))
    if code in (3, 4):
        return float(np.sum(w * -gammaln(y + 1)))
    return 0.0
