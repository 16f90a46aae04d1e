"""Numerical core of the frequentist fits in :mod:`bayesmix.inference.ml` (numpy/scipy only).

Follows lme4 (Bates, Maechler, Bolker & Walker 2015, *J. Stat. Softw.* 67(1), sections 3-5):

* the random effects are ``b = Lambda_theta u`` with ``u ~ N(0, sigma^2 I)``; ``Lambda_theta``
  is block diagonal, one lower-triangular ``k x k`` template per random-effects term repeated
  for each level (diagonal for ``(x || g)``);
* a linear mixed model is fitted by penalized least squares and the profiled (RE)ML deviance
  (:class:`LmmProblem`);
* a GLMM by penalized iteratively reweighted least squares for the conditional modes and the
  Laplace approximation of the deviance (:class:`GlmmProblem`).

Every solve goes through :class:`SPDSolver` on the ``q x q`` matrix
``Lambda' Z' W Z Lambda + I``: a dense Cholesky for few random effects (or a moderate number
with a dense matrix), a sparse LU otherwise (scipy has no sparse Cholesky; the LU of an SPD
matrix gives the same log-determinant). The products with ``Z Lambda`` are numpy bincounts
(:class:`ZLambda`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import special

from bayesmix.data.design import RandomBlock
from bayesmix.families import get_link

__all__ = ["RandomStructure", "SPDSolver", "ZLambda", "LmmProblem", "LmmSolution",
           "GlmmProblem", "GlmmSolution", "random_structure", "DENSE_LIMIT"]

# Up to this many random effects the q x q system may be solved densely; beyond it, a sparse
# LU keeps memory linear in the non-zeros.
DENSE_LIMIT = 3000
# Below this size a dense factorisation is faster than a sparse one whatever the sparsity;
# above it, a mostly empty matrix (one grouping factor: block diagonal) is faster sparse.
_SMALL = 64
_LOG2PI = np.log(2 * np.pi)


# -- Z and Lambda ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RandomStructure:
    """Sparse ``Z`` (n x q) and the map from ``theta`` to the non-zeros of ``Lambda``.

    ``z_rows/cols/vals`` are Z's triplets (see :func:`random_structure` for their order);
    ``lambda_rows/cols`` are the coordinates of Lambda's non-zeros and ``lambda_index`` the
    element of ``theta`` each one takes (lme4's ``Lind``). ``templates[b]`` lists, for block
    ``b``, the (row, col) of each of its theta elements in the ``k x k`` template.
    """

    Z: sp.csr_matrix
    z_rows: np.ndarray
    z_cols: np.ndarray
    z_vals: np.ndarray
    lambda_rows: np.ndarray
    lambda_cols: np.ndarray
    lambda_index: np.ndarray
    theta0: np.ndarray
    lower: np.ndarray
    offsets: tuple[int, ...]
    templates: tuple[tuple[tuple[int, int], ...], ...]
    theta_slices: tuple[slice, ...]

    @property
    def q(self) -> int:
        return self.Z.shape[1]

    @property
    def dense(self) -> bool:
        """Few random effects: a dense ``q x q`` system is cheaper than a sparse one."""
        return self.q <= _SMALL

    def lam_mul(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``Lambda_theta u``, block by block (the random effects b from spherical u)."""
        out = np.empty_like(u)
        for b, start in enumerate(self.offsets):
            T = self.template(theta, b)
            end = self.offsets[b + 1] if b + 1 < len(self.offsets) else self.q
            out[start:end] = (u[start:end].reshape(-1, T.shape[0]) @ T.T).ravel()
        return out

    def lam(self, theta: np.ndarray) -> sp.csc_matrix:
        """Relative covariance factor Lambda_theta (q x q, lower triangular)."""
        q = self.q
        return sp.csc_matrix((theta[self.lambda_index], (self.lambda_rows, self.lambda_cols)),
                             shape=(q, q))

    def template(self, theta: np.ndarray, b: int) -> np.ndarray:
        """Block ``b``'s ``k x k`` lower-triangular template at ``theta``."""
        cells = self.templates[b]
        k = max(i for i, _ in cells) + 1
        T = np.zeros((k, k))
        for (i, j), value in zip(cells, theta[self.theta_slices[b]]):
            T[i, j] = value
        return T


def _template_cells(k: int, correlated: bool) -> tuple[tuple[int, int], ...]:
    """Template entries in lme4's order: the lower triangle column by column."""
    if not correlated:
        return tuple((i, i) for i in range(k))
    return tuple((i, j) for j in range(k) for i in range(j, k))


def random_structure(blocks: Sequence[RandomBlock], n: int) -> RandomStructure:
    """Build sparse Z and Lambda's pattern from the design's random blocks.

    Random effects are ordered block by block, then level by level, then term by term
    (as lme4 orders them within a term). Z's triplets are kept in block, term, row order:
    every row has one entry per term of every block (:class:`ZLambda` relies on it).
    """
    z_rows, z_cols, z_vals = [], [], []
    l_rows, l_cols, l_index = [], [], []
    theta0, lower, offsets, templates, slices = [], [], [], [], []
    offset = 0
    for block in blocks:
        k, levels = block.n_terms, block.n_levels
        cells = _template_cells(k, block.correlated)
        start = len(theta0)
        for i, j in cells:
            theta0.append(1.0 if i == j else 0.0)
            lower.append(0.0 if i == j else -np.inf)  # diagonal >= 0 makes Lambda unique
        base = offset + np.arange(levels) * k
        for t, (i, j) in enumerate(cells):
            l_rows.append(base + i)
            l_cols.append(base + j)
            l_index.append(np.full(levels, start + t))
        rows = np.arange(n)
        for j in range(k):
            z_rows.append(rows)
            z_cols.append(offset + block.index * k + j)
            z_vals.append(block.Z[:, j])
        offsets.append(offset)
        templates.append(cells)
        slices.append(slice(start, len(theta0)))
        offset += levels * k
    cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts
           else np.zeros(0, dtype))
    triplets = cat(z_rows, np.int64), cat(z_cols, np.int64), cat(z_vals, float)
    Z = sp.csr_matrix((triplets[2], triplets[:2]), shape=(n, offset))
    return RandomStructure(Z, *triplets, cat(l_rows, np.int64), cat(l_cols, np.int64),
                           cat(l_index, np.int64), np.array(theta0), np.array(lower),
                           tuple(offsets), tuple(templates), tuple(slices))


# -- SPD solves --------------------------------------------------------------------------------

class SPDSolver:
    """Solve with, and take the log-determinant of, a symmetric positive definite matrix.

    Examples
    --------
    >>> s = SPDSolver(sp.csc_matrix(np.array([[4.0, 1.0], [1.0, 3.0]])))
    >>> round(s.logdet, 6) == round(float(np.log(11.0)), 6)
    True
    """

    def __init__(self, matrix: sp.spmatrix | np.ndarray, dense_limit: int | None = None) -> None:
        q = matrix.shape[0]
        dense_limit = DENSE_LIMIT if dense_limit is None else dense_limit
        self._empty = q == 0
        self._lu = None
        self._chol = None
        if self._empty:
            self.logdet = 0.0
        elif not sp.issparse(matrix) or (q <= dense_limit and (
                q <= _SMALL or matrix.nnz > 0.05 * q * q)):
            dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
            self._chol = sla.cho_factor(dense, lower=True, check_finite=False)
            self.logdet = 2.0 * float(np.sum(np.log(np.diag(self._chol[0]))))
        else:
            # Symmetric ordering and no pivoting off the diagonal: stable for SPD matrices.
            self._lu = spla.splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A",
                                 diag_pivot_thresh=0.0, options={"SymmetricMode": True})
            self.logdet = float(np.sum(np.log(np.abs(self._lu.U.diagonal()))))

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        if self._empty:
            return np.zeros_like(rhs, dtype=float)
        if self._chol is not None:
            return sla.cho_solve(self._chol, rhs, check_finite=False)
        return self._lu.solve(np.asarray(rhs, dtype=float))


class ZLambda:
    """``Z Lambda_theta`` on Z's pattern, with the products PIRLS needs, in plain numpy.

    Each row of Z has one entry per term of each block, so ``Z Lambda`` keeps Z's pattern and
    ``Lambda' Z' W Z Lambda`` is a weighted sum over pairs of entries of one row. Both are
    bincounts over index arrays computed once: the inner loop of a GLMM fit then pays no
    scipy.sparse overhead (which dominates for the sizes of typical data).
    """

    def __init__(self, s: RandomStructure) -> None:
        n, q = s.Z.shape
        self.s, self.n, self.q = s, n, q
        slots = len(s.z_rows) // n if n else 0
        entries = np.arange(slots * n).reshape(slots, n).T  # row -> its entries
        self.e1 = np.repeat(entries, slots, axis=1).ravel()
        self.e2 = np.tile(entries, (1, slots)).ravel()
        self.pair_row = s.z_rows[self.e1]
        r, c = s.z_cols[self.e1], s.z_cols[self.e2]
        self.dense = s.dense
        if self.dense:
            self.pos = r * q + c
            return
        keys = np.concatenate([c * q + r, np.arange(q) * (q + 1)])  # column-major + diagonal
        unique, inverse = np.unique(keys, return_inverse=True)
        self.pos, self.diag_pos = inverse[:len(r)], inverse[len(r):]
        self.indices = unique % q
        self.indptr = np.searchsorted(unique // q, np.arange(q + 1))

    def values(self, theta: np.ndarray) -> np.ndarray:
        """Non-zeros of ``Z Lambda`` (same order as Z's triplets)."""
        out, start = np.empty_like(self.s.z_vals), 0
        for b in range(len(self.s.templates)):
            T = self.s.template(theta, b)
            k = T.shape[0]
            Zb = self.s.z_vals[start:start + k * self.n].reshape(k, self.n).T
            out[start:start + k * self.n] = (Zb @ T).T.ravel()
            start += k * self.n
        return out

    def mul(self, zl: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``(Z Lambda) u``."""
        return np.bincount(self.s.z_rows, zl * u[self.s.z_cols], minlength=self.n)

    def tmul(self, zl: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``(Z Lambda)' v`` for a vector or an ``n x p`` matrix."""
        if v.ndim == 2:
            return np.column_stack([self.tmul(zl, col) for col in v.T]) if v.shape[1] \
                else np.zeros((self.q, 0))
        return np.bincount(self.s.z_cols, zl * v[self.s.z_rows], minlength=self.q)

    def gram(self, zl: np.ndarray, w: np.ndarray) -> SPDSolver:
        """Factor ``Lambda' Z' W Z Lambda + I``."""
        weights = w[self.pair_row] * zl[self.e1] * zl[self.e2]
        q = self.q
        if self.dense:
            return SPDSolver(np.bincount(self.pos, weights, minlength=q * q).reshape(q, q)
                             + np.eye(q))
        data = np.bincount(self.pos, weights, minlength=len(self.indices))
        data[self.diag_pos] += 1.0
        return SPDSolver(sp.csc_matrix((data, self.indices, self.indptr), shape=(q, q)))


# -- linear mixed models -----------------------------------------------------------------------

@dataclass(frozen=True)
class LmmSolution:
    """Penalized least squares solution at one ``theta``."""

    deviance: float
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    sigma: float
    beta_cov: np.ndarray


class LmmProblem:
    """Profiled (RE)ML deviance of a gaussian LMM as a function of ``theta``.

    Each evaluation factors ``Lambda' Z' Z Lambda + I`` once and solves the penalized least
    squares problem through its Schur complement in X (lme4's ``RX``).
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, structure: RandomStructure,
                 reml: bool) -> None:
        self.X, self.y, self.s, self.reml = X, y, structure, reml
        self.zl = ZLambda(structure)
        self.ones = np.ones(len(y))
        self.Xy = np.column_stack([X, y])
        self.XtX = X.T @ X
        self.Xty = X.T @ y

    def solve(self, theta: np.ndarray) -> LmmSolution:
        n, p = self.X.shape
        zl = self.zl.values(theta)
        solver = self.zl.gram(zl, self.ones)
        LZXy = self.zl.tmul(zl, self.Xy)  # Lambda' Z' [X y]
        sol = solver.solve(LZXy)
        LZX, MiLZX, MiLZy = LZXy[:, :p], sol[:, :p], sol[:, p]
        XtVX = self.XtX - LZX.T @ MiLZX  # lme4's RX'RX
        cho = sla.cho_factor(XtVX, lower=True) if p else None
        beta = sla.cho_solve(cho, self.Xty - LZX.T @ MiLZy) if p else np.zeros(0)
        u = MiLZy - MiLZX @ beta
        resid = self.y - self.X @ beta - self.zl.mul(zl, u)
        r2 = float(resid @ resid + u @ u)
        dof = n - p if self.reml else n
        deviance = solver.logdet + dof * (1.0 + _LOG2PI + np.log(r2 / dof))
        if self.reml:
            deviance += 2.0 * float(np.sum(np.log(np.diag(cho[0])))) if p else 0.0
        sigma2 = r2 / dof
        cov = sigma2 * sla.cho_solve(cho, np.eye(p)) if p else np.zeros((0, 0))
        return LmmSolution(float(deviance), beta, u, self.s.lam_mul(theta, u),
                           float(np.sqrt(sigma2)), cov)

    def deviance(self, theta: np.ndarray) -> float:
        """The objective; ``inf`` where the fixed-effects system is numerically singular."""
        return _guarded(self.solve, theta)


def _guarded(solve: Callable[..., Any], *args: Any) -> float:
    """Deviance from ``solve(*args)``, or ``inf`` if its linear algebra breaks down.

    A line search may try a huge theta, where ``X'X - X'Z Lambda M^-1 Lambda'Z'X`` loses
    positive definiteness to cancellation; the deviance there is far above the optimum, and
    ``inf`` makes the optimizer step back.
    """
    try:
        return solve(*args).deviance
    except np.linalg.LinAlgError:
        return np.inf


# -- generalized linear mixed models -----------------------------------------------------------

@dataclass(frozen=True)
class GlmmSolution:
    """Conditional modes and the Laplace deviance at one ``(theta, beta)``."""

    deviance: float
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    beta_cov: np.ndarray  # (X'WX - ...)^-1 given theta: lme4's vcov without the Hessian


class GlmmProblem:
    """Laplace deviance of a binomial or Poisson GLMM (``-2 log L``, constants included).

    ``trials`` is 1 for Bernoulli rows and ``None`` for Poisson. Conditional modes are found
    by PIRLS with Fisher-scoring weights, as lme4 does; the last modes start the next search.
    """

    max_iter = 100
    tol = 1e-11

    def __init__(self, X: np.ndarray, y: np.ndarray, trials: np.ndarray | None,
                 offset: np.ndarray, structure: RandomStructure, link: str) -> None:
        self.X, self.y, self.offset, self.s = X, y, offset, structure
        self.poisson = trials is None
        self.m = np.ones_like(y) if trials is None else trials
        self.link = link
        self.inv, self.mu_eta = get_link(link).inverse, get_link(link).mu_eta
        self.zl = ZLambda(structure)
        self.u = np.zeros(structure.q)
        self.beta = self.start()

    # -- the conditional distribution
    def _mu(self, eta: np.ndarray) -> np.ndarray:
        mu = self.inv(np.clip(eta, -700, 700) if self.poisson else eta)
        return mu if self.poisson else np.clip(mu, 1e-15, 1 - 1e-15)

    def loglik(self, eta: np.ndarray) -> float:
        """Conditional log-likelihood of the data (with the binomial coefficients)."""
        mu, y = self._mu(eta), self.y
        if self.poisson:
            return float(np.sum(special.xlogy(y, mu) - mu - special.gammaln(y + 1)))
        m = self.m
        const = special.gammaln(m + 1) - special.gammaln(y + 1) - special.gammaln(m - y + 1)
        return float(np.sum(const + special.xlogy(y, mu) + special.xlog1py(m - y, -mu)))

    def _score_weights(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu, d = self._mu(eta), self.mu_eta(eta)
        var = mu if self.poisson else mu * (1 - mu)
        return (self.y - self.m * mu) * d / var, self.m * d ** 2 / var

    def start(self) -> np.ndarray:
        """A GLM-like starting beta: least squares of the link of a shrunk response."""
        if self.poisson:
            eta = get_link(self.link).link(self.y + 0.1)
        else:
            eta = get_link(self.link).link((self.y + 0.5) / (self.m + 1.0))
        beta, *_ = np.linalg.lstsq(self.X, eta - self.offset, rcond=None)
        return beta

    # -- PIRLS
    def solve(self, theta: np.ndarray, beta: np.ndarray | None = None) -> GlmmSolution:
        """Conditional modes at ``theta``; with ``beta=None`` beta is found jointly (nAGQ=0)."""
        joint = beta is None
        beta = np.array(self.beta if joint else beta, dtype=float)
        u = self.u.copy()
        zl = self.zl.values(theta)
        pdev = self._pdev(zl, u, beta)
        for _ in range(self.max_iter):
            eta = self.offset + self.X @ beta + self.zl.mul(zl, u)
            score, w = self._score_weights(eta)
            du, db, _, _ = self._newton(zl, w, score, u, joint)
            decrement = float(du @ (self.zl.tmul(zl, score) - u)
                              + (db @ (self.X.T @ score) if joint else 0.0))
            step, new = 1.0, np.inf
            for _ in range(30):  # step halving keeps the penalized deviance decreasing
                new = self._pdev(zl, u + step * du, beta + step * db)
                if new <= pdev + 1e-10 * abs(pdev):
                    break
                step /= 2
            u, beta, pdev = u + step * du, beta + step * db, min(new, pdev)
            if decrement < self.tol * (1.0 + abs(pdev)):
                break
        eta = self.offset + self.X @ beta + self.zl.mul(zl, u)
        _, w = self._score_weights(eta)
        _, _, solver, cov = self._newton(zl, w, np.zeros_like(w), u, True)
        if np.all(np.isfinite(u)) and np.all(np.isfinite(beta)):  # warm start for the next
            self.u = u
            if joint:
                self.beta = beta
        deviance = -2.0 * self.loglik(eta) + float(u @ u) + solver.logdet
        return GlmmSolution(float(deviance), beta, u, self.s.lam_mul(theta, u), cov)

    def _pdev(self, zl: np.ndarray, u: np.ndarray, beta: np.ndarray) -> float:
        eta = self.offset + self.X @ beta + self.zl.mul(zl, u)
        return -2.0 * self.loglik(eta) + float(u @ u)

    def _newton(self, zl: np.ndarray, w: np.ndarray, score: np.ndarray, u: np.ndarray,
                joint: bool) -> tuple[np.ndarray, np.ndarray, SPDSolver, np.ndarray]:
        """Fisher-scoring step for u (and beta, through the Schur complement)."""
        X, p = self.X, self.X.shape[1]
        solver = self.zl.gram(zl, w)
        gu = self.zl.tmul(zl, score) - u
        if not joint or p == 0:
            return solver.solve(gu), np.zeros(p), solver, np.zeros((p, p))
        WX = w[:, None] * X
        ZWX = self.zl.tmul(zl, WX)
        schur = X.T @ WX - ZWX.T @ solver.solve(ZWX)
        cov = sla.cho_solve(sla.cho_factor(schur, lower=True), np.eye(p))  # raises if not PD
        db = cov @ (X.T @ score - ZWX.T @ solver.solve(gu))
        du = solver.solve(gu - ZWX @ db)
        return du, db, solver, cov

    def deviance(self, params: np.ndarray) -> float:
        """Laplace deviance at ``params = (theta, beta)`` (lme4's nAGQ=1 objective)."""
        nt = len(self.s.theta0)
        return _guarded(self.solve, params[:nt], params[nt:])

    def profiled_deviance(self, theta: np.ndarray) -> float:
        """Laplace deviance at ``theta`` with beta found jointly (lme4's nAGQ=0 objective)."""
        return _guarded(self.solve, theta)
