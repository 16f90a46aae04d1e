"""The model with its level coefficients sampled: fixed effects, random-effect blocks
(centred or not, correlated or not), and the rows of the five families."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesmix.inference.kernel.numerics import (
    _BF,
    _LOG_2PI,
    _beta,
    _block_rows,
    _digamma_step,
    _f,
    _fixed_priors,
    _i,
    _level_mean,
    _logistic_rows,
    _poisson_rows,
    _prior,
    _slopes_grad,
)


@njit(cache=True)
def _conditional(x, grad, F, I):
    """The model with its level coefficients sampled."""
    n, family, ndim, nblocks = I[0], I[1], I[2], I[3]
    nbeta, fixmode = I[5], I[7]
    pos_int, pos_fam = I[8], I[10]
    has_weights, nmoved = I[12], I[14]
    for k in range(ndim):
        grad[k] = 0.0
    lp = _f(F, I, 14)[0]
    # fixed effects
    beta = _beta(x, I, F)
    dbeta = np.zeros(nbeta)
    lp = _fixed_priors(x, grad, F, I, beta, dbeta, lp)
    intercept = 0.0
    dintercept = 0.0
    if fixmode == 1:
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
    # rows: the linear predictor by columns, the family's terms, then d/deta scattered back
    y, trials, w = _f(F, I, 0), _f(F, I, 1), _f(F, I, 2)
    eta = _linear_predictor(F, I, intercept, beta, gamma, goff)
    gi = np.empty(n)
    if family == 1 or family == 2 or family == 3:  # logit and Poisson rows: vectorized
        lpi = np.empty(n)
        if family == 3:
            _poisson_rows(eta, y, lpi, gi)
        else:
            _logistic_rows(eta, y, trials, family, lpi, gi)
        if has_weights == 1:
            for i in range(n):
                lp += w[i] * lpi[i]
                gi[i] *= w[i]
        else:
            for i in range(n):
                lp += lpi[i]
    else:
        for i in range(n):
            e = eta[i]
            wi = w[i] if has_weights == 1 else 1.0
            yi = y[i]
            if family == 0:
                r = (yi - e) / phi
                lp += wi * (-0.5 * r * r - math.log(phi))
                gi[i] = wi * r / phi
                dphi += wi * (r * r - 1.0) / phi
            else:
                mu = math.exp(e)
                lam = math.log(phi + mu)
                lp += wi * (math.lgamma(yi + phi) - math.lgamma(phi) + phi * (math.log(phi) - lam)
                            + yi * (e - lam))
                gi[i] = wi * phi * (yi - mu) / (phi + mu)
                dphi += wi * (_digamma_step(yi, phi) + math.log(phi) - lam + 1.0
                              - (yi + phi) / (phi + mu))
    dintercept += _scatter(F, I, gi, dbeta, dgamma, goff)
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
    lp = _slopes_grad(F, I, dbeta, grad, lp)
    return lp




@njit(cache=True)
def _linear_predictor(F, I, intercept, beta, gamma, goff):
    """eta per row, one column at a time (each pass a tight loop; the terms are added in the
    order of the former row-at-a-time loop, so eta is the same to the bit)."""
    n, nblocks, nkept = I[0], I[3], I[4]
    has_offset, int_in_eta = I[11], I[13]
    eta = np.empty(n)
    if has_offset == 1:
        off = _f(F, I, 3)
        for i in range(n):
            eta[i] = off[i]
    else:
        for i in range(n):
            eta[i] = 0.0
    if int_in_eta == 1:
        for i in range(n):
            eta[i] += intercept
    Xc, kept = _f(F, I, 4), _i(I, 2)  # X is stored column by column
    for c in range(nkept):
        bc = beta[kept[c]]
        col = Xc[c * n:(c + 1) * n]
        for i in range(n):
            eta[i] += col[i] * bc
    for b in range(nblocks):
        q, unit, Z, idx = _block_rows(F, I, b)
        g0 = goff[b]
        if unit == 1:  # one term whose column is all ones: a random intercept
            for i in range(n):
                eta[i] += gamma[g0 + idx[i]]
            continue
        for k in range(q):
            zk = Z[k * n:(k + 1) * n]
            for i in range(n):
                eta[i] += gamma[g0 + idx[i] * q + k] * zk[i]
    return eta


@njit(cache=True)
def _scatter(F, I, gi, dbeta, dgamma, goff):
    """d/deta per row (gi) into the fixed slopes, the level coefficients and (returned) the
    intercept; each sum runs over the rows in order, as the former row loop did."""
    n, nblocks, nkept, int_in_eta = I[0], I[3], I[4], I[13]
    dintercept = 0.0
    if int_in_eta == 1:
        for i in range(n):
            dintercept += gi[i]
    Xc, kept = _f(F, I, 4), _i(I, 2)
    for c in range(nkept):
        col = Xc[c * n:(c + 1) * n]
        acc = dbeta[kept[c]]
        for i in range(n):
            acc += gi[i] * col[i]
        dbeta[kept[c]] = acc
    for b in range(nblocks):
        q, unit, Z, idx = _block_rows(F, I, b)
        g0 = goff[b]
        if unit == 1:
            for i in range(n):
                dgamma[g0 + idx[i]] += gi[i]
            continue
        for k in range(q):
            zk = Z[k * n:(k + 1) * n]
            for i in range(n):
                dgamma[g0 + idx[i] * q + k] += gi[i] * zk[i]
    return dintercept
