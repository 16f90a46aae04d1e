"""One precompiled log density and gradient for the standard class of mixed models.

The PyTensor path compiles a new numba program for every model structure (15-30 s on two
cores, once per structure and machine). The models of the standard class
(:mod:`bayesmix.model.kernel_plan`: gaussian, bernoulli, binomial, Poisson and negative
binomial responses, uncorrelated blocks) differ only in the arrays the kernel reads, so this
module's two C entry points (nutpie's log density with gradient, and its "expand" function
that returns the stored variables) are compiled once per machine, cached by numba next to
this file, and serve every formula of the class. ``python -m bayesmix.inference.kernel``
compiles them ahead of time (``make`` does it when it installs).

The code reads the model from two flat arrays (float64 ``F`` and int64 ``I``) whose layout
:mod:`bayesmix.model.kernel_plan` writes; the slot numbers below are the same numbers
(``tests/model/test_kernel.py`` checks it), written out because numba's cache is keyed by
this file's own source.

Set ``BAYESMIX_KERNEL=0`` to use the PyTensor path for every model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

__all__ = ["kernel_model", "logp_and_grad", "expand", "precompile"]

_LOADING = time.perf_counter()  # the entry points compile (or load) while this module loads
_LOG_2PI = math.log(2.0 * math.pi)
_N_META, _N_F, _N_I = 28, 24, 9
_BF = 13  # fields per block (kernel_plan.BLOCK_FIELDS)


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
def _scales(x, F, I, Lf, sd, dsd):
    """The blocks' factor of the terms' covariance (block-diagonal ``Lf``) and the log density
    of the SDs, correlations and their transforms."""
    nblocks = I[3]
    blocks, sdp, sdk, lkj = _i(I, 0), _f(F, I, 11), _i(I, 5), _f(F, I, 15)
    lp = 0.0
    for b in range(nblocks):
        q, pos_sd, t0, corr = blocks[_BF * b + 1], blocks[_BF * b + 3], blocks[_BF * b + 7], \
            blocks[_BF * b + 8]
        for a in range(q):
            t = t0 + a
            if corr == 1:
                ss = 0.0
                for c in range(a + 1):
                    u = x[pos_sd + a * (a + 1) // 2 + c]
                    if c == a:
                        Lf[t, t] = math.exp(u)
                        lp += u
                    else:
                        Lf[t, t0 + c] = u
                    ss += Lf[t, t0 + c] ** 2
                sd[t] = math.sqrt(ss)
                lp += lkj[t] * math.log(Lf[t, t]) - (lkj[t] + a) * math.log(sd[t])
            else:
                u = x[pos_sd + a]
                sd[t] = math.exp(u)
                Lf[t, t] = sd[t]
                lp += u
            v, d = _prior(sdk[t], sdp[3 * t], sdp[3 * t + 1], sdp[3 * t + 2], sd[t])
            lp += v
            dsd[t] += d
    return lp


@njit(cache=True)
def _scales_grad(x, grad, I, F, Lf, sd, dsd, dL):
    """Back from d/dLf (and the SD priors' d/dsd) to the sampler's coordinates."""
    nblocks = I[3]
    blocks, lkj = _i(I, 0), _f(F, I, 15)
    for b in range(nblocks):
        q, pos_sd, t0, corr = blocks[_BF * b + 1], blocks[_BF * b + 3], blocks[_BF * b + 7], \
            blocks[_BF * b + 8]
        for a in range(q):
            t = t0 + a
            if corr == 1:
                s = sd[t]
                for c in range(a + 1):
                    lac = Lf[t, t0 + c]
                    d = dL[t, t0 + c] - (lkj[t] + a) * lac / (s * s) + dsd[t] * lac / s
                    if c == a:
                        d += lkj[t] / lac
                        grad[pos_sd + a * (a + 1) // 2 + c] = d * lac + 1.0
                    else:
                        grad[pos_sd + a * (a + 1) // 2 + c] = d
            else:
                grad[pos_sd + a] = (dL[t, t] + dsd[t]) * sd[t] + 1.0


@njit(cache=True)
def _marginal(x, grad, F, I):
    """The gaussian model with its level effects (and, in mode 2, its fixed effects)
    integrated out: bayesmix.model.integrated.marginal_loglik with the priors, and its
    gradient (V = s^2 I + Z L L' Z' per level; W = L (s^2 I + L'AL)^-1 L')."""
    ndim, nbeta, qr, fixmode = I[2], I[5], I[6], I[7]
    pos_int, pos_beta, pos_fam, mode = I[8], I[9], I[10], I[21]
    q, p, J = I[20], I[22], I[23]
    for k in range(ndim):
        grad[k] = 0.0
    ZtZ, ZtX, Zty = _f(F, I, 16), _f(F, I, 17), _f(F, I, 18)
    ZtZ3, ZtX3 = ZtZ.reshape((J, q, q)), ZtX.reshape((J, q, p))  # per level: A, B
    XtX, Xty, tot = _f(F, I, 19), _f(F, I, 20), _f(F, I, 21)
    yty, n = tot[0], tot[1]
    lp = _f(F, I, 14)[0]
    # fixed effects (mode 1: sampled, with their priors)
    beta = _beta(x, I, F)
    dbeta = np.zeros(nbeta)
    fix = np.zeros(p)
    if mode == 1:
        bprior, bkind = _f(F, I, 9), _i(I, 4)
        for a in range(nbeta):
            v, d = _prior(bkind[a], bprior[3 * a], bprior[3 * a + 1], bprior[3 * a + 2], beta[a])
            lp += v
            dbeta[a] += d
        others, means = _i(I, 7), _f(F, I, 13)
        for a in range(nbeta):
            fix[others[a]] = beta[a]
        if fixmode == 1:
            ip = _f(F, I, 10)
            v, d = _prior(I[19], ip[0], ip[1], ip[2], x[pos_int])
            lp += v
            grad[pos_int] += d
            icpt = x[pos_int]
            for a in range(nbeta):
                icpt -= means[a] * beta[a]
            fix[I[17]] = icpt
    nt = I[20]
    Lf = np.zeros((nt, nt))
    sd = np.empty(nt)
    dsd = np.zeros(nt)
    lp += _scales(x, F, I, Lf, sd, dsd)
    s = math.exp(x[pos_fam])
    s2 = s * s
    fp = _f(F, I, 12)
    v, d = _prior(I[18], fp[0], fp[1], fp[2], s)
    lp += v + x[pos_fam]
    ds = d
    # per level: C (Cholesky of s^2 I + L'AL), W, and the first-pass sums (small matrices:
    # explicit loops into buffers allocated once, faster than BLAS calls at q <= 5)
    Ws = np.empty((J, q, q))
    fit = 0.0
    logdet = 0.0
    H = np.zeros((p, p))
    bvec = np.zeros(p)
    v = np.empty(q)
    AL, M, T1, T2 = np.empty((q, q)), np.empty((q, q)), np.empty((q, q)), np.empty((q, q))
    C, Ci, Minv = np.zeros((q, q)), np.empty((q, q)), np.empty((q, q))
    WB, E, EH = np.empty((q, p)), np.empty((q, p)), np.empty((q, p))
    Wv, AWv = np.empty(q), np.empty(q)
    for j in range(J):
        A, B = ZtZ3[j], ZtX3[j]
        for a in range(q):
            t = Zty[j * q + a]
            if mode == 1:
                for k in range(p):
                    t -= B[a, k] * fix[k]
            v[a] = t
        _mm(A, Lf, AL)
        _mm(Lf.T, AL, M)
        for a in range(q):
            M[a, a] += s2
        _chol(M, q, C)
        _inv_spd(C, q, Ci, Minv)
        _mm(Lf, Minv, T1)
        W = Ws[j]
        _mm(T1, Lf.T, W)
        for a in range(q):
            logdet += math.log(C[a, a])
        _mv(W, v, Wv)
        for a in range(q):
            fit += v[a] * Wv[a]
        if mode == 2:
            _mm(W, B, WB)
            for k in range(p):
                for m in range(p):
                    t = 0.0
                    for a in range(q):
                        t += B[a, k] * WB[a, m]
                    H[k, m] -= t
                bvec[k] -= _dot_col(WB, k, v, q)
    ll = -0.5 * (n * _LOG_2PI + 2.0 * (n - q * J) * math.log(s) + 2.0 * logdet)
    bhat = np.zeros(p)
    Hinv = np.zeros((p, p))
    if mode == 1:
        ll += -0.5 * (_quad_rr(yty, fix, Xty, XtX, p) - fit) / s2
        rr = _quad_rr(yty, fix, Xty, XtX, p)
    else:
        psd = _f(F, I, 22)
        for k in range(p):
            bvec[k] = (bvec[k] + Xty[k]) / s2
            for m in range(p):
                H[k, m] = (H[k, m] + XtX[k * p + m]) / s2
            H[k, k] += 1.0 / (psd[k] * psd[k])
        R = np.zeros((p, p))
        _chol(H, p, R)
        _inv_spd(R, p, np.empty((p, p)), Hinv)
        quad = 0.0
        for k in range(p):
            t = 0.0
            for m in range(p):
                t += Hinv[k, m] * bvec[m]
            bhat[k] = t
        for k in range(p):
            quad += bvec[k] * bhat[k]
            ll += -math.log(R[k, k]) - math.log(psd[k])
        ll += -0.5 * (yty - fit) / s2 + 0.5 * quad
        fix = bhat  # the second pass works at the conditional mean of the fixed effects
        rr = _quad_rr(yty, fix, Xty, XtX, p)
    lp += ll
    # second pass: gradient terms
    G = np.zeros((nt, nt))
    vwv = 0.0
    vwawv = 0.0
    trwa = 0.0
    gfix = np.zeros(p)
    Q = np.zeros((p, p))
    av = np.empty(q)
    for j in range(J):
        A, B = ZtZ3[j], ZtX3[j]
        W = Ws[j]
        for a in range(q):
            t = Zty[j * q + a]
            for k in range(p):
                t -= B[a, k] * fix[k]
            v[a] = t
        _mv(W, v, Wv)
        _mv(A, Wv, AWv)
        _mm(W, A, T1)  # WA
        _mm(A, T1, T2)  # AWA
        for a in range(q):
            vwv += v[a] * Wv[a]
            vwawv += Wv[a] * AWv[a]
            trwa += T1[a, a]
            av[a] = (v[a] - AWv[a]) / s2
        for a in range(q):  # K = (A - AWA) / s^2
            for c in range(q):
                T2[a, c] = (A[a, c] - T2[a, c]) / s2
        if mode == 2:
            _mm(W, B, WB)
            for a in range(q):  # E = (B - A W B) / s^2
                for k in range(p):
                    t = 0.0
                    for c in range(q):
                        t += A[a, c] * WB[c, k]
                    E[a, k] = (B[a, k] - t) / s2
            _mm(E, Hinv, EH)
            for a in range(q):  # K - E H^-1 E'
                for c in range(q):
                    t = 0.0
                    for k in range(p):
                        t += EH[a, k] * E[c, k]
                    T2[a, c] -= t
            for k in range(p):  # Q += -2 B'WB + (WB)' A (WB)
                for m in range(p):
                    t = 0.0
                    for a in range(q):
                        t -= 2.0 * B[a, k] * WB[a, m]
                        for c in range(q):
                            t += WB[a, k] * A[a, c] * WB[c, m]
                    Q[k, m] += t
        else:
            for k in range(p):
                gfix[k] -= _dot_col(B, k, Wv, q)
        for a in range(q):
            for c in range(q):
                G[a, c] += 0.5 * (av[a] * av[c] - T2[a, c])
    alpha2 = (rr - 2.0 * vwv + vwawv) / (s2 * s2)
    trv = (n - trwa) / s2
    if mode == 2:
        for k in range(p):
            for m in range(p):
                Q[k, m] += XtX[k * p + m]
        Q /= s2 * s2
        for k in range(p):
            for m in range(p):
                trv -= Hinv[k, m] * Q[m, k]
    ds += s * (alpha2 - trv)
    grad[pos_fam] = ds * s + 1.0
    dL = np.zeros((nt, nt))
    _mm(G, Lf, dL)
    dL *= 2.0
    _scales_grad(x, grad, I, F, Lf, sd, dsd, dL)
    if mode == 1:  # d/dfixef = X'alpha, then to the intercept and slopes
        others, means = _i(I, 7), _f(F, I, 13)
        for k in range(p):
            t = Xty[k] + gfix[k]
            for m in range(p):
                t -= XtX[k * p + m] * fix[m]
            gfix[k] = t / s2
        for a in range(nbeta):
            dbeta[a] += gfix[others[a]]
        if fixmode == 1:
            grad[pos_int] += gfix[I[17]]
            for a in range(nbeta):
                dbeta[a] -= means[a] * gfix[I[17]]
        if qr == 1:
            rinv, qlog = _f(F, I, 6), _f(F, I, 7)
            for a in range(nbeta):
                lp += qlog[a]
            for b2 in range(nbeta):
                t = 0.0
                for a in range(nbeta):
                    t += rinv[a * nbeta + b2] * dbeta[a]
                grad[pos_beta + b2] = t
        else:
            for a in range(nbeta):
                grad[pos_beta + a] = dbeta[a]
    return lp


@njit(cache=True)
def logp_and_grad(x, grad, F, I):
    """Log density at ``x`` (unconstrained, the PyMC model's order); its gradient into
    ``grad``."""
    if I[21] > 0:
        return _marginal(x, grad, F, I)
    return _conditional(x, grad, F, I)


@njit(cache=True)
def _conditional(x, grad, F, I):
    """The model with its level coefficients sampled."""
    n, family, ndim, nblocks = I[0], I[1], I[2], I[3]
    nkept, nbeta, qr, fixmode = I[4], I[5], I[6], I[7]
    pos_int, pos_beta, pos_fam = I[8], I[9], I[10]
    has_offset, has_weights, int_in_eta, nmoved = I[11], I[12], I[13], I[14]
    for k in range(ndim):
        grad[k] = 0.0
    lp = _f(F, I, 14)[0]
    # fixed effects
    beta = _beta(x, I, F)
    dbeta = np.zeros(nbeta)
    bprior, bkind = _f(F, I, 9), _i(I, 4)
    for a in range(nbeta):
        v, d = _prior(bkind[a], bprior[3 * a], bprior[3 * a + 1], bprior[3 * a + 2], beta[a])
        lp += v
        dbeta[a] += d
    intercept = 0.0
    dintercept = 0.0
    if fixmode == 1:
        ip = _f(F, I, 10)
        v, d = _prior(I[19], ip[0], ip[1], ip[2], x[pos_int])
        lp += v
        grad[pos_int] += d
        intercept = x[pos_int]
        mbar, moved = _f(F, I, 5), _i(I, 3)
        for m in range(nmoved):
            intercept -= mbar[m] * beta[moved[m]]
    # blocks: SDs and level coefficients
    blocks, sdp, sdk, absorb = _i(I, 0), _f(F, I, 11), _i(I, 5), _i(I, 6)
    nterms = I[20]
    sd = np.empty(nterms)
    dsd = np.zeros(nterms)
    ntot = 0
    for b in range(nblocks):
        ntot += blocks[_BF * b] * blocks[_BF * b + 1]
    gamma = np.empty(ntot)
    goff = np.empty(nblocks + 1, dtype=np.int64)
    goff[0] = 0
    nl = 0
    for b in range(nblocks):
        nl += blocks[_BF * b + 1] ** 2 * blocks[_BF * b + 8]
    lmat = np.zeros(nl)  # the Cholesky factors of the correlated blocks, q x q each
    lkj = _f(F, I, 15)
    lvx, lcols = _f(F, I, 23), _i(I, 8)
    for b in range(nblocks):
        L, q, centred, pos_sd, pos_g, t0 = (blocks[_BF * b], blocks[_BF * b + 1], blocks[_BF * b + 2],
                                            blocks[_BF * b + 3], blocks[_BF * b + 4], blocks[_BF * b + 7])
        corr, lo = blocks[_BF * b + 8], blocks[_BF * b + 9]
        goff[b + 1] = goff[b] + L * q
        if corr == 1:  # LKJCholeskyCov: packed rows of L, log diagonal
            for a in range(q):
                ss = 0.0
                for c in range(a + 1):
                    u = x[pos_sd + a * (a + 1) // 2 + c]
                    if c == a:
                        lmat[lo + a * q + a] = math.exp(u)
                        lp += u  # Jacobian of the log diagonal
                    else:
                        lmat[lo + a * q + c] = u
                    ss += lmat[lo + a * q + c] ** 2
                s = math.sqrt(ss)
                t = t0 + a
                sd[t] = s
                v, d = _prior(sdk[t], sdp[3 * t], sdp[3 * t + 1], sdp[3 * t + 2], s)
                lp += v + lkj[t] * math.log(lmat[lo + a * q + a]) - (lkj[t] + a) * math.log(s)
                dsd[t] += d
            for l in range(L):
                for a in range(q):
                    acc = 0.0
                    for c in range(a + 1):
                        acc += x[pos_g + l * q + c] * lmat[lo + a * q + c]
                    gamma[goff[b] + l * q + a] = acc
                    zz = x[pos_g + l * q + a]
                    lp += -0.5 * zz * zz - 0.5 * _LOG_2PI
            continue
        for k in range(q):
            t = t0 + k
            u = x[pos_sd + k]
            s = math.exp(u)
            sd[t] = s
            v, d = _prior(sdk[t], sdp[3 * t], sdp[3 * t + 1], sdp[3 * t + 2], s)
            lp += v + u  # log-transform Jacobian
            dsd[t] += d
        for l in range(L):
            for k in range(q):
                t = t0 + k
                g = x[pos_g + l * q + k]
                if centred == 1:
                    mean = _level_mean(absorb, t, b, l, intercept, beta, blocks, lvx, lcols)
                    gamma[goff[b] + l * q + k] = g
                    d = (g - mean) / sd[t]
                    lp += -0.5 * d * d - math.log(sd[t]) - 0.5 * _LOG_2PI
                else:
                    gamma[goff[b] + l * q + k] = g * sd[t]
                    lp += -0.5 * g * g - 0.5 * _LOG_2PI
    dgamma = np.zeros(ntot)
    # family parameter
    phi, dphi = 0.0, 0.0
    if pos_fam >= 0:
        phi = math.exp(x[pos_fam])
        fp = _f(F, I, 12)
        v, d = _prior(I[18], fp[0], fp[1], fp[2], phi)
        lp += v + x[pos_fam]
        dphi += d
    # rows
    y, trials, w, off = _f(F, I, 0), _f(F, I, 1), _f(F, I, 2), _f(F, I, 3)
    Xc, kept = _f(F, I, 4), _i(I, 2)
    Z, index = _f(F, I, 8), _i(I, 1)
    for i in range(n):
        eta = 0.0
        if has_offset == 1:
            eta += off[i]
        if int_in_eta == 1:
            eta += intercept
        for c in range(nkept):
            eta += Xc[i * nkept + c] * beta[kept[c]]
        for b in range(nblocks):
            q, zo, io = blocks[_BF * b + 1], blocks[_BF * b + 5], blocks[_BF * b + 6]
            l = index[io + i]
            for k in range(q):
                eta += gamma[goff[b] + l * q + k] * Z[zo + i * q + k]
        wi = w[i] if has_weights == 1 else 1.0
        yi = y[i]
        if family == 0:
            r = (yi - eta) / phi
            lp += wi * (-0.5 * r * r - math.log(phi))
            gi = wi * r / phi
            dphi += wi * (r * r - 1.0) / phi
        elif family <= 2:  # bernoulli, binomial (logit): one exp per row
            e = math.exp(-abs(eta))
            softplus = max(eta, 0.0) + math.log1p(e)
            p = 1.0 / (1.0 + e) if eta >= 0.0 else e / (1.0 + e)
            ni = 1.0 if family == 1 else trials[i]
            lp += wi * (yi * eta - ni * softplus)
            gi = wi * (yi - ni * p)
        elif family == 3:
            mu = math.exp(eta)
            lp += wi * (yi * eta - mu)
            gi = wi * (yi - mu)
        else:
            mu = math.exp(eta)
            lam = math.log(phi + mu)
            lp += wi * (math.lgamma(yi + phi) - math.lgamma(phi) + phi * (math.log(phi) - lam)
                        + yi * (eta - lam))
            gi = wi * phi * (yi - mu) / (phi + mu)
            dphi += wi * (_digamma_step(yi, phi) + math.log(phi) - lam + 1.0
                          - (yi + phi) / (phi + mu))
        # scatter d/deta
        if int_in_eta == 1:
            dintercept += gi
        for c in range(nkept):
            dbeta[kept[c]] += gi * Xc[i * nkept + c]
        for b in range(nblocks):
            q, zo, io = blocks[_BF * b + 1], blocks[_BF * b + 5], blocks[_BF * b + 6]
            l = index[io + i]
            for k in range(q):
                dgamma[goff[b] + l * q + k] += gi * Z[zo + i * q + k]
    # back through the level coefficients to z / gamma, the SDs and absorbed means
    for b in range(nblocks):
        L, q, centred, pos_sd, pos_g, t0 = (blocks[_BF * b], blocks[_BF * b + 1], blocks[_BF * b + 2],
                                            blocks[_BF * b + 3], blocks[_BF * b + 4], blocks[_BF * b + 7])
        corr, lo = blocks[_BF * b + 8], blocks[_BF * b + 9]
        if corr == 1:
            dl = np.zeros(q * q)
            for l in range(L):
                for c in range(q):
                    acc = 0.0
                    for a in range(c, q):
                        g = dgamma[goff[b] + l * q + a]
                        acc += g * lmat[lo + a * q + c]
                        dl[a * q + c] += g * x[pos_g + l * q + c]
                    grad[pos_g + l * q + c] = acc - x[pos_g + l * q + c]
            for a in range(q):
                t = t0 + a
                s = sd[t]
                for c in range(a + 1):
                    lac = lmat[lo + a * q + c]
                    d = dl[a * q + c] - (lkj[t] + a) * lac / (s * s) + dsd[t] * lac / s
                    if c == a:
                        d += lkj[t] / lac
                        grad[pos_sd + a * (a + 1) // 2 + c] = d * lac + 1.0
                    else:
                        grad[pos_sd + a * (a + 1) // 2 + c] = d
            continue
        for l in range(L):
            for k in range(q):
                t = t0 + k
                j = goff[b] + l * q + k
                xv = x[pos_g + l * q + k]
                if centred == 1:
                    kind = absorb[2 * t]
                    mean = _level_mean(absorb, t, b, l, intercept, beta, blocks, lvx, lcols)
                    r = (xv - mean) / sd[t]
                    grad[pos_g + l * q + k] = dgamma[j] - r / sd[t]
                    dsd[t] += (r * r - 1.0) / sd[t]
                    if kind == 1 or kind == 3:
                        if kind == 1:
                            dintercept += r / sd[t]
                        nc, vo, co = blocks[_BF * b + 10], blocks[_BF * b + 11], \
                            blocks[_BF * b + 12]
                        for c in range(nc):  # level covariates in the intercept's mean
                            dbeta[lcols[co + c]] += lvx[vo + l * nc + c] * r / sd[t]
                    elif kind == 2:
                        dbeta[absorb[2 * t + 1]] += r / sd[t]
                else:
                    grad[pos_g + l * q + k] = dgamma[j] * sd[t] - xv
                    dsd[t] += dgamma[j] * xv
        for k in range(q):
            grad[pos_sd + k] = dsd[t0 + k] * sd[t0 + k] + 1.0
    if pos_fam >= 0:
        grad[pos_fam] = dphi * phi + 1.0
    if fixmode == 1:
        grad[pos_int] += dintercept
        mbar, moved = _f(F, I, 5), _i(I, 3)
        for m in range(nmoved):
            dbeta[moved[m]] -= mbar[m] * dintercept
    if qr == 1:  # d/dtheta = R_inv^T d/dbeta; the Jacobian is constant
        rinv, qlog = _f(F, I, 6), _f(F, I, 7)
        for a in range(nbeta):
            lp += qlog[a]
        for b2 in range(nbeta):
            s = 0.0
            for a in range(nbeta):
                s += rinv[a * nbeta + b2] * dbeta[a]
            grad[pos_beta + b2] = s
    else:
        for a in range(nbeta):
            grad[pos_beta + a] = dbeta[a]
    return lp


@njit(cache=True)
def expand(x, out, F, I):
    """The stored variables: x itself, the transformed ones (slopes, SDs, the family
    parameter) on their own scale, then ``fixef``."""
    ndim, nblocks, nbeta, qr, fixmode = I[2], I[3], I[5], I[6], I[7]
    pos_fam = I[10]
    for k in range(ndim):
        out[k] = x[k]
    o = ndim
    beta = _beta(x, I, F)
    if qr == 1:
        for a in range(nbeta):
            out[o + a] = beta[a]
        o += nbeta
    blocks = _i(I, 0)
    for b in range(nblocks):
        q, pos_sd, corr = blocks[_BF * b + 1], blocks[_BF * b + 3], blocks[_BF * b + 8]
        if corr == 1:  # the packed Cholesky factor, diagonal on its own scale
            for a in range(q):
                for c in range(a + 1):
                    k = a * (a + 1) // 2 + c
                    out[o + k] = math.exp(x[pos_sd + k]) if c == a else x[pos_sd + k]
            o += q * (q + 1) // 2
            continue
        for k in range(q):
            out[o + k] = math.exp(x[pos_sd + k])
        o += q
    if pos_fam >= 0:
        out[o] = math.exp(x[pos_fam])
        o += 1
    if fixmode == 1:
        ncoef, j0 = I[16], I[17]
        means, others = _f(F, I, 13), _i(I, 7)
        icpt = x[I[8]]
        for a in range(nbeta):
            icpt -= means[a] * beta[a]
            out[o + others[a]] = beta[a]
        out[o + j0] = icpt
        o += ncoef
    for b in range(nblocks):  # sd_ and cor_ of the correlated blocks
        q, pos_sd, corr = blocks[_BF * b + 1], blocks[_BF * b + 3], blocks[_BF * b + 8]
        if corr == 0:
            continue
        lm = np.zeros((q, q))
        for a in range(q):
            for c in range(a + 1):
                k = a * (a + 1) // 2 + c
                lm[a, c] = math.exp(x[pos_sd + k]) if c == a else x[pos_sd + k]
        cov = np.zeros((q, q))
        for a in range(q):
            for c in range(q):
                for e in range(min(a, c) + 1):
                    cov[a, c] += lm[a, e] * lm[c, e]
        for a in range(q):
            out[o + a] = math.sqrt(cov[a, a])
        for a in range(q):
            for c in range(q):
                out[o + q + a * q + c] = cov[a, c] / math.sqrt(cov[a, a] * cov[c, c])
        o += q + q * q
    return o


_LOGP_SIG = types.int64(types.uint64, types.CPointer(types.float64),
                        types.CPointer(types.float64), types.CPointer(types.float64),
                        types.voidptr)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.float64),
                          types.CPointer(types.float64), types.voidptr)


@intrinsic
def _as_pointer(typingctx, src):  # an integer address as a float64 pointer

    sig = types.CPointer(types.float64)(src)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.float64)))

    return sig, codegen


@intrinsic
def _as_int_pointer(typingctx, src):  # an integer address as an int64 pointer

    sig = types.CPointer(types.int64)(src)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.int64)))

    return sig, codegen


@njit(cache=True, inline="always")
def _arrays(user_data):
    ud = carray(user_data, (4,), np.int64)
    F = carray(_as_pointer(ud[0]), (ud[1],), np.float64)
    I = carray(_as_int_pointer(ud[2]), (ud[3],), np.int64)
    return F, I


@cfunc(_LOGP_SIG, cache=True)
def _logp_c(dim, x_, out_, logp_, user_data):
    F, I = _arrays(user_data)
    if dim != I[2]:
        return -1
    x = carray(x_, (dim,))
    out = carray(out_, (dim,))
    logp = carray(logp_, (1,))
    value = logp_and_grad(x, out, F, I)
    logp[0] = value
    for k in range(dim):
        if not np.isfinite(out[k]):
            return 3
    if not np.isfinite(value):
        return 4
    return 0


@cfunc(_EXPAND_SIG, cache=True)
def _expand_c(dim, expanded, x_, out_, user_data):
    F, I = _arrays(user_data)
    if dim != I[2] or expanded != I[15]:
        return -1
    x = carray(x_, (dim,))
    out = carray(out_, (expanded,))
    expand(x, out, F, I)
    return 0


@dataclass(frozen=True)
class _Keep:
    """The arrays the C entry points read, kept alive with the compiled model."""

    F: np.ndarray
    I: np.ndarray
    header: np.ndarray


def kernel_model(arrays: Any) -> Any:
    """A nutpie compiled model running the kernel on ``arrays``
    (:class:`~bayesmix.model.kernel_plan.KernelArrays`)."""
    import pandas as pd

    from bayesmix.inference.nutpie_import import import_nutpie

    CompiledPyMCModel = import_nutpie().compile_pymc.CompiledPyMCModel

    F = np.ascontiguousarray(arrays.F, dtype=np.float64)
    I = np.ascontiguousarray(arrays.I, dtype=np.int64)
    header = np.array([F.ctypes.data, F.size, I.ctypes.data, I.size], dtype=np.int64)
    for a in (F, I, header):
        a.flags.writeable = False
    sizes = [int(np.prod(s)) for s in arrays.shapes]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    slices = [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]
    shape_info = (list(arrays.names), slices, [np.array(s, dtype=np.int64) for s in arrays.shapes])
    coords = {name: pd.Index(values) for name, values in arrays.coords.items()}
    unconstrained = []
    for name, shape in zip(arrays.names, arrays.shapes):
        if name not in arrays.value_names:
            continue
        idx = list(np.ndindex(*shape)) if shape else [()]
        unconstrained += [name if not i else f"{name}_{'.'.join(map(str, i))}" for i in idx]
    coords["unconstrained_parameter"] = pd.Index(unconstrained)
    base = np.asarray(arrays.base_point, dtype=np.float64)

    def initial_point(seed: Any = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return base + rng.uniform(-1.0, 1.0, size=base.shape)

    keep = _Keep(F, I, header)
    model = CompiledPyMCModel(
        _n_dim=arrays.n_dim, dims=dict(arrays.dims), _coords=coords,
        _shapes={name: tuple(s) for name, s in zip(arrays.names, arrays.shapes)},
        compiled_logp_func=_logp_c, compiled_expand_func=_expand_c,
        initial_point_func=initial_point, shared_data={}, shared_var_keys={},
        user_data=header, n_expanded=int(sum(sizes)), shape_info=shape_info,
        logp_func=keep, expand_func=None,
        reparameterized_names=[v for v in arrays.value_names if v.endswith("__")])
    return model


def precompile() -> None:
    """Compile (or load from numba's cache) the kernel's entry points now."""
    _ = _logp_c.address, _expand_c.address


if __name__ == "__main__":  # python -m bayesmix.inference.kernel: compile ahead of time
    precompile()
    print(f"bayesmix kernel ready ({time.perf_counter() - _LOADING:.1f} s)")
