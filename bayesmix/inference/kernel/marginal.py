"""The integrated gaussian likelihood: level effects (and optionally the fixed effects) of one
grouping factor integrated out in closed form, from per-level sufficient statistics."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.inference.kernel.numerics import (
    _BF,
    _LOG_2PI,
    _beta,
    _chol,
    _dot_col,
    _f,
    _fixed_priors,
    _i,
    _inv_spd,
    _mm,
    _mv,
    _prior,
    _quad_rr,
    _slopes_grad,
)


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
    ndim, nbeta, fixmode = I[2], I[5], I[7]
    pos_int, pos_fam, mode = I[8], I[10], I[21]
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
        lp = _fixed_priors(x, grad, F, I, beta, dbeta, lp)
        others, means = _i(I, 7), _f(F, I, 13)
        for a in range(nbeta):
            fix[others[a]] = beta[a]
        if fixmode == 1:
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
        lp = _slopes_grad(F, I, dbeta, grad, lp)
    return lp


