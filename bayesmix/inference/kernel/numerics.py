"""The kernel's numerics: slot access into the packed arrays, priors, special functions, small
dense linear algebra, and a vectorizable logistic log-likelihood (numba, cached on disk)."""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic

_LOG_2PI = math.log(2.0 * math.pi)
_N_META, _N_F, _N_I = 28, 24, 9
_BF = 14  # fields per block (kernel_plan.BLOCK_FIELDS)


@njit(cache=True, inline="always")
def _f(F, I, slot):
    o = I[_N_META + 2 * slot]
    return F[o:o + I[_N_META + 2 * slot + 1]]


@njit(cache=True, inline="always")
def _i(I, slot):
    o = I[_N_META + 2 * _N_F + 2 * slot]
    return I[o:o + I[_N_META + 2 * _N_F + 2 * slot + 1]]


@njit(cache=True)
def _digamma(x):
    r = 0.0
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132)))))
    return r + math.log(x) - 0.5 / x + t


@njit(cache=True)
def _digamma_step(y, phi):
    """digamma(y + phi) - digamma(phi) for a count y: the finite sum sum_k 1 / (phi + k) for
    small counts, exact where the difference of two digammas cancels (phi >> y)."""
    if y <= 64.0 and y == math.floor(y):
        s = 0.0
        for k in range(int(y)):
            s += 1.0 / (phi + k)
        return s
    return _digamma(y + phi) - _digamma(phi)


@njit(cache=True)
def _prior(code, a, b, c, x):
    """(log density, its derivative) of a prior at x (codes: kernel_plan.PRIOR_CODES)."""
    if code == 0:  # Normal(mu=a, sigma=b)
        d = (x - a) / b
        return -0.5 * d * d - math.log(b) - 0.5 * _LOG_2PI, -d / b
    if code == 1:  # StudentT(nu=a, mu=b, sigma=c)
        d = (x - b) / c
        lp = (math.lgamma(0.5 * (a + 1.0)) - math.lgamma(0.5 * a) - 0.5 * math.log(math.pi * a)
              - math.log(c) - 0.5 * (a + 1.0) * math.log1p(d * d / a))
        return lp, -(a + 1.0) * d / (c * (a + d * d))
    if code == 2:  # HalfNormal(sigma=a)
        d = x / a
        return -0.5 * d * d + 0.5 * math.log(2.0 / math.pi) - math.log(a), -d / a
    if code == 3:  # HalfStudentT(nu=a, sigma=b)
        d = x / b
        lp = (math.log(2.0) + math.lgamma(0.5 * (a + 1.0)) - math.lgamma(0.5 * a)
              - 0.5 * math.log(math.pi * a) - math.log(b) - 0.5 * (a + 1.0) * math.log1p(d * d / a))
        return lp, -(a + 1.0) * d / (b * (a + d * d))
    if code == 4:  # Exponential(lam=a)
        return math.log(a) - a * x, -a
    if code == 5:  # HalfCauchy(beta=a)
        d = x / a
        return math.log(2.0) - math.log(math.pi) - math.log(a) - math.log1p(d * d), \
            -2.0 * d / (a * (1.0 + d * d))
    # Gamma(alpha=a, beta=b)
    return a * math.log(b) - math.lgamma(a) + (a - 1.0) * math.log(x) - b * x, (a - 1.0) / x - b


@njit(cache=True, inline="always")
def _level_mean(absorb, t, b, l, intercept, beta, blocks, lvx, lcols):
    """The prior mean of level l's coefficient for term t of a centred block: the absorbed
    intercept (plus the block's level covariates times their slopes) or slope, else 0."""
    kind = absorb[2 * t]
    if kind == 1 or kind == 3:  # the intercept (kind 1) and/or level covariates
        mean = intercept if kind == 1 else 0.0
        nc, vo, co = blocks[_BF * b + 10], blocks[_BF * b + 11], blocks[_BF * b + 12]
        for c in range(nc):
            mean += lvx[vo + l * nc + c] * beta[lcols[co + c]]
        return mean
    if kind == 2:
        return beta[absorb[2 * t + 1]]
    return 0.0


@njit(cache=True)
def _beta(x, I, F):
    """The fixed slopes (beta) from the sampler's coordinates (QR or not)."""
    nbeta, pos = I[5], I[9]
    beta = np.empty(nbeta)
    if I[6] == 1:
        rinv = _f(F, I, 6)
        for a in range(nbeta):
            s = 0.0
            for b in range(nbeta):
                s += rinv[a * nbeta + b] * x[pos + b]
            beta[a] = s
    else:
        for a in range(nbeta):
            beta[a] = x[pos + a]
    return beta


@njit(cache=True, inline="always")
def _mm(A, B, out):
    """out = A B (small dense matrices, explicit loops; pass ``A.T`` or ``B.T`` for A'B, AB')."""
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            t = 0.0
            for k in range(A.shape[1]):
                t += A[i, k] * B[k, j]
            out[i, j] = t


@njit(cache=True, inline="always")
def _mv(A, v, out):
    for i in range(A.shape[0]):
        t = 0.0
        for k in range(A.shape[1]):
            t += A[i, k] * v[k]
        out[i] = t


@njit(cache=True, inline="always")
def _dot_col(B, k, v, q):
    """B[:, k] . v"""
    t = 0.0
    for a in range(q):
        t += B[a, k] * v[a]
    return t


@njit(cache=True)
def _quad_rr(yty, fix, Xty, XtX, p):
    """r'r = y'y - 2 b'X'y + b'X'X b."""
    rr = yty
    for k in range(p):
        rr -= 2.0 * fix[k] * Xty[k]
        for m in range(p):
            rr += fix[k] * XtX[k * p + m] * fix[m]
    return rr


@njit(cache=True)
def _chol(M, q, C):
    """Cholesky factor (lower) of a small symmetric positive-definite matrix, into ``C``
    (whose upper triangle must be zero: it is never written). Buffers, not new arrays:
    these run once per level per gradient, where allocation cost more than the arithmetic."""
    for j in range(q):
        s = M[j, j]
        for m in range(j):
            s -= C[j, m] * C[j, m]
        C[j, j] = math.sqrt(s)
        for i in range(j + 1, q):
            t = M[i, j]
            for m in range(j):
                t -= C[i, m] * C[j, m]
            C[i, j] = t / C[j, j]


@njit(cache=True)
def _inv_spd(C, q, Ci, out):
    """(C C')^-1 from the Cholesky factor C, into ``out`` (``Ci``: a q x q work buffer)."""
    for j in range(q):  # columns of C^-1
        for i in range(q):
            t = 1.0 if i == j else 0.0
            for m in range(i):
                t -= C[i, m] * Ci[m, j]
            Ci[i, j] = t / C[i, i]
    for a in range(q):
        for b in range(q):
            t = 0.0
            for m in range(q):
                t += Ci[m, a] * Ci[m, b]
            out[a, b] = t






@njit(cache=True)
def _fixed_priors(x, grad, F, I, beta, dbeta, lp):
    """The fixed slopes' priors (their derivatives added to ``dbeta``) and, where the
    intercept is sampled apart from the slopes (fixed mode 1), its prior (into ``grad``).
    Returns ``lp`` plus their log densities."""
    nbeta, fixmode, pos_int = I[5], I[7], I[8]
    bprior, bkind = _f(F, I, 9), _i(I, 4)
    for a in range(nbeta):
        v, d = _prior(bkind[a], bprior[3 * a], bprior[3 * a + 1], bprior[3 * a + 2], beta[a])
        lp += v
        dbeta[a] += d
    if fixmode == 1:
        ip = _f(F, I, 10)
        v, d = _prior(I[19], ip[0], ip[1], ip[2], x[pos_int])
        lp += v
        grad[pos_int] += d
    return lp


@njit(cache=True, inline="always")
def _block_rows(F, I, b):
    """Block ``b``'s per-row data: terms, whether it is one random intercept (no Z stored),
    its Z columns (one after another) and the level of each row."""
    n, blocks = I[0], _i(I, 0)
    q, zo, io, unit = blocks[_BF * b + 1], blocks[_BF * b + 5], blocks[_BF * b + 6], \
        blocks[_BF * b + 13]
    Z = _f(F, I, 8)
    return q, unit, Z[zo:zo + (1 - unit) * n * q], _i(I, 1)[io:io + n]

@njit(cache=True)
def _slopes_grad(F, I, dbeta, grad, lp):
    """d/d(the sampler's slope coordinates) from d/dbeta into ``grad``: through R_inv^T where
    the slopes are sampled in QR coordinates. Returns ``lp`` plus the log Jacobian of that
    (constant) transform."""
    nbeta, qr, pos_beta = I[5], I[6], I[9]
    if qr == 0:
        for a in range(nbeta):
            grad[pos_beta + a] = dbeta[a]
        return lp
    rinv, qlog = _f(F, I, 6), _f(F, I, 7)
    for a in range(nbeta):
        lp += qlog[a]
    for b in range(nbeta):
        t = 0.0
        for a in range(nbeta):
            t += rinv[a * nbeta + b] * dbeta[a]
        grad[pos_beta + b] = t
    return lp

# -- the logistic and Poisson rows, vectorized: libm's exp and log1p are scalar calls, which keep LLVM from
# vectorizing the loop (about 20 ns per row); these polynomial versions vectorize (about 3 ns
# per row on AVX-512) and agree with libm to a few units in the last place
# (tests/model/test_kernel.py::test_vectorized_rows_match_libm).
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (Cody and Waite): k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00


@intrinsic
def _bits_as_float(typingctx, src):  # an int64's bits as a float64 (vectorizes, unlike a table)
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())

    return sig, codegen


@njit(cache=True, inline="always", error_model="numpy")
def _exp(x):
    """exp(x): x = k ln 2 + r with |r| <= ln 2 / 2, exp(r) by its Taylor polynomial of degree
    13 (truncation below 5e-18), times 2^k built from its bits; x is clipped to [-708, 709]
    (exp(-708) ~ 3e-308 stands for 0, exp(709) ~ 8e307 for an overflow)."""
    x = min(max(x, -708.0), 709.0)
    k = math.floor(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _bits_as_float((np.int64(k) + 1023) << 52)


@njit(cache=True, inline="always", error_model="numpy")
def _log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1: 2 atanh(s), s = e / (2 + e) <= 1/3, by its series to s^33
    (truncation below 2e-17 relative)."""
    s = e / (2.0 + e)
    s2 = s * s
    p = 2.0 / 33.0
    for k in range(15, 0, -1):
        p = p * s2 + 2.0 / (2 * k + 1)
    return s * (2.0 + s2 * p)


@njit(cache=True, error_model="numpy")
def _logistic_rows(eta, y, trials, family, lpi, g):
    """Per row, the binomial (logit) log-likelihood without its constant and its derivative in
    eta: y eta - n softplus(eta) and y - n sigmoid(eta), n = 1 for bernoulli (family 1)."""
    n = eta.size
    if family == 1:
        for i in range(n):
            x = eta[i]
            e = _exp(-abs(x))
            r = 1.0 / (1.0 + e)
            lpi[i] = y[i] * x - (max(x, 0.0) + _log1p_unit(e))
            g[i] = y[i] - (r if x >= 0.0 else e * r)
    else:
        for i in range(n):
            x = eta[i]
            e = _exp(-abs(x))
            r = 1.0 / (1.0 + e)
            lpi[i] = y[i] * x - trials[i] * (max(x, 0.0) + _log1p_unit(e))
            g[i] = y[i] - trials[i] * (r if x >= 0.0 else e * r)


@njit(cache=True, error_model="numpy")
def _poisson_rows(eta, y, lpi, g):
    """Per row, the Poisson (log) log-likelihood without its constant, y eta - exp(eta), and
    its derivative in eta."""
    for i in range(eta.size):
        mu = _exp(eta[i])
        lpi[i] = y[i] * eta[i] - mu
        g[i] = y[i] - mu
