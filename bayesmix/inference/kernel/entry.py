"""The kernel's entry points: the log density with gradient and the stored variables as numba
functions, their C versions for nutpie, and the nutpie model that runs them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from bayesmix.inference.kernel.conditional import _conditional
from bayesmix.inference.kernel.marginal import _marginal
from bayesmix.inference.kernel.numerics import _BF, _beta, _f, _i


@njit(cache=True)
def logp_and_grad(x, grad, F, I):
    """Log density at ``x`` (unconstrained, the PyMC model's order); its gradient into
    ``grad``."""
    if I[21] > 0:
        return _marginal(x, grad, F, I)
    return _conditional(x, grad, F, I)




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
