"""Compile PyMC models for nutpie without paying numba's compilation more than once.

nutpie's own ``compile_pymc_model`` spends most of its time (12-17 s for sleepstudy on a
2-core machine) typing and lowering the numba ``cfunc`` entry points that nutpie's Rust
sampler calls; that work is redone in every process because those entry points close over
per-process objects (random shared-variable keys, the data arrays themselves) and numba
refuses to cache them. This module builds the same two entry points (log density with
gradient; the "expand" function that computes the stored deterministics) from generated
source that depends only on the structure of the compiled PyTensor graph:

* the data are read through nutpie's ``user_data`` record at fixed offsets, never captured,
  so the entry point is cacheable and :meth:`CompiledPyMCModel.with_data` keeps working;
* the source is registered with PyTensor's numba cache locator under a key made of the
  PyTensor graph's own cache key and the source text, so a later process (or a later fit
  of a model with the same structure) loads the compiled machine code from
  ``pytensor.config.base_compiledir/numba`` instead of compiling it.

Two levels of caching, both keyed by structure (:func:`structure_key`), never by data values:

1. **in-process** (:data:`_MEMORY`): the compiled entry points and their bookkeeping; a model
   with the same key is bound to them with its own data, initial points and coordinates, and
   nothing is compiled.
2. **on disk**: numba's cache files for the entry points plus a small sidecar
   (``base_compiledir/bayesmix/<key>.pkl``) with what nutpie's ``_make_functions`` would
   recompute (shapes, names, the order of the shared inputs, the un-jittered initial point),
   so that a fresh process skips PyTensor's rewrites as well as numba's compilation.

Set ``BAYESMIX_COMPILE_CACHE=0`` to fall back to ``nutpie.compile_pymc_model`` (no cache).
:data:`STATS` counts compilations and cache hits (used by the tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import warnings
from collections import Counter, OrderedDict
from typing import Any

import numpy as np
import pymc as pm

__all__ = ["compile_model", "structure_key", "clear_memory_cache", "STATS"]

STATS: Counter[str] = Counter()
"""Counters: ``compiles`` (PyTensor + numba compilations), ``memory_hits``, ``disk_hits``,
``fallbacks`` (models compiled by nutpie's own, uncached path), ``disk_cache_errors``."""

_LOG = logging.getLogger("bayesmix")
_MEMORY: OrderedDict[str, Any] = OrderedDict()
_MEMORY_SIZE = 16  # structures kept per process (numba code and bookkeeping, no data)
_LOCK = threading.Lock()


def _enabled() -> bool:
    return os.environ.get("BAYESMIX_COMPILE_CACHE", "1") not in ("0", "false", "no")


def clear_memory_cache() -> None:
    """Forget the compiled models kept in this process (the disk cache is untouched)."""
    with _LOCK:
        _MEMORY.clear()


# -- structural key ---------------------------------------------------------------------------
def structure_key(model: pm.Model, var_names: list[str] | None) -> str:
    """Hash of everything the compiled sampler depends on except the data values.

    It covers the model's graph (random variables, deterministics, potentials: ops,
    constants with their values, e.g. prior scales, static types), the value variables and
    their transforms (so, with the PyMC version in the disk key, the log density) and the names
    and types (dtype, rank) of the shared data inputs, but not their values or lengths, so
    that two models that differ only in their ``pm.Data`` contents share a key. The lengths
    of the model's dimensions (numbers of levels, coefficients) are included. Hashing the
    model graph rather than ``model.logp()`` saves building the log-density graph (0.1-0.5 s).
    """
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant, Variable
    from pytensor.graph.traversal import toposort

    outputs: list[Variable] = [*model.basic_RVs, *model.deterministics, *model.potentials]
    outputs += [model.rvs_to_values[rv] for rv in model.observed_RVs]
    h = hashlib.sha256()
    ids: dict[Variable, int] = {}

    def ref(v: Variable) -> str:
        if v in ids:
            return f"v{ids[v]}"
        if isinstance(v, SharedVariable):
            return f"shared({v.name}:{v.type})"
        if isinstance(v, Constant):
            data = np.asarray(v.data)
            raw = repr(data.tolist()).encode() if data.dtype == object else \
                np.ascontiguousarray(data).tobytes()  # (object arrays: not their addresses)
            return f"const({v.type}:{data.dtype}:{data.shape}:" \
                   f"{hashlib.sha256(raw).hexdigest()[:16]})"
        return f"input({v.name}:{v.type})"

    def graph(outs: list[Variable]) -> None:
        for node in toposort(outs):
            if all(o in ids for o in node.outputs):
                continue
            h.update(f"{node.op}|{type(node.op).__qualname__}|"
                     f"{getattr(node.op, '_props_dict', lambda: {})()!r}|"
                     f"{','.join(ref(i) for i in node.inputs)}>".encode())
            for out in node.outputs:
                ids[out] = len(ids)
                h.update(f"{out.name}:{out.type};".encode())
        h.update(",".join(ref(o) for o in outs).encode())

    def describe(obj: Any) -> str:  # a transform's settings, without object addresses
        if isinstance(obj, Variable):
            graph([obj])
            return ref(obj)
        if isinstance(obj, np.ndarray):
            return hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()[:16]
        text = repr(obj)
        return type(obj).__qualname__ if " at 0x" in text else text

    graph(outputs)
    for rv in model.basic_RVs:
        value, transform = model.rvs_to_values[rv], model.rvs_to_transforms.get(rv)
        settings = {k: describe(v) for k, v in sorted(vars(transform).items())
                    if not k.startswith("__")} if transform is not None else {}
        h.update(f"{rv.name}|{value.name}|{value.type}|{type(transform).__qualname__}"
                 f"{settings!r};".encode())
    h.update(f"check_bounds={model.check_bounds}".encode())
    # Dimension lengths are shared variables too, but they are structure (parameter counts).
    h.update(repr(sorted((name, int(length.get_value() if hasattr(length, "get_value")
                                    else length.eval()))
                         for name, length in model.dim_lengths.items())).encode())
    h.update(repr(sorted(var_names) if var_names is not None else None).encode())
    return h.hexdigest()


# -- compile --------------------------------------------------------------------------------
def compile_model(model: pm.Model, var_names: list[str] | None = None) -> Any:
    """A ``nutpie`` compiled model for ``model``, from the caches when possible.

    ``var_names``: the variables to store besides the free ones (None: all).
    """
    from bayesmix.inference.nutpie_import import import_nutpie

    import_nutpie()  # (before any of the imports of nutpie below)
    if not _enabled():
        return _nutpie_compile(model, var_names)
    try:
        key = structure_key(model, var_names)
    except Exception:  # noqa: BLE001  (an unusual graph: no cache)
        key = None
    if key is None:
        return _fallback(model, var_names, "its graph has no structural key")
    try:
        with _LOCK:
            entry = _MEMORY.get(key)
            if entry is not None:
                _MEMORY.move_to_end(key)
        if entry is not None:
            compiled = _bind(entry, model)
            STATS["memory_hits"] += 1
            return compiled
        entry = _load_entry(key)
        if entry is not None:
            compiled = _bind(entry, model)
            STATS["disk_hits"] += 1
        else:
            entry = _compile_entry(model, var_names, key)
            compiled = _bind(entry, model)
    except Exception as error:  # noqa: BLE001  (anything unusual: nutpie's own compiler)
        return _fallback(model, var_names, f"{type(error).__name__}: {error}")
    with _LOCK:
        _MEMORY[key] = entry
        while len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)
    return compiled


def _fallback(model: pm.Model, var_names: list[str] | None, why: str) -> Any:
    """nutpie's own, uncached compiler, with one logged line saying why (a newer nutpie,
    PyTensor or numba whose private internals this module relies on changed, typically)."""
    STATS["fallbacks"] += 1
    _LOG.warning("bayesmix compile cache not used (%s); compiling with nutpie's own "
                 "compiler, which takes longer", why[:200])
    return _nutpie_compile(model, var_names)


def _nutpie_compile(model: pm.Model, var_names: list[str] | None) -> Any:
    import nutpie

    STATS["compiles"] += 1
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        return nutpie.compile_pymc_model(model, backend="numba", var_names=var_names)


class _Uncacheable(Exception):
    """The model cannot go through the cached path (nutpie's own compiler is used)."""


@dataclasses.dataclass
class _Entry:
    """What a compiled structure needs besides the data: the numba entry points and the
    bookkeeping that nutpie's ``_make_functions`` would otherwise recompute."""

    logp_c: Any
    expand_c: Any
    meta: dict[str, Any]


def _cache_dir() -> "os.PathLike[str]":
    import pytensor

    path = pytensor.config.base_compiledir / "bayesmix"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _disk_key(key: str) -> str:
    import numba
    import nutpie
    import pytensor

    return hashlib.sha256("|".join([key, numba.__version__, pytensor.__version__, pm.__version__,
                                    nutpie.__version__, _SALT]).encode()).hexdigest()


# The module's path is in the key: numba's cache pickles the entry points' globals by module
# name, so entries written under another path (before the package was reorganised) must miss.
_SALT = f"bayesmix-compile-cache-3|{__name__}"


def _load_entry(key: str) -> _Entry | None:
    """The entry stored on disk by an earlier process, if its numba code loads."""
    import pickle

    path = _cache_dir() / f"{_disk_key(key)}.pkl"
    try:
        with open(path, "rb") as f:
            meta = pickle.load(f)
        logp_c = _cfunc(meta["logp_src"], meta["logp_key"], "logp", None, load_only=True)
        expand_c = _cfunc(meta["expand_src"], meta["expand_key"], "expand", None,
                          load_only=True)
    except Exception:  # noqa: BLE001  (missing, stale or unreadable: compile)
        return None
    return _Entry(logp_c, expand_c, meta)


def _store_entry(key: str, meta: dict[str, Any]) -> None:
    import pickle

    path = _cache_dir() / f"{_disk_key(key)}.pkl"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(meta, f)
        os.replace(tmp, path)
    except OSError:
        pass


def _compile_entry(model: pm.Model, var_names: list[str] | None, key: str) -> _Entry:
    """nutpie's ``_compile_pymc_model_numba`` with cacheable entry points."""
    import numba
    import pytensor
    from nutpie.compile_pymc import _make_functions
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    STATS["compiles"] += 1
    base = _base_point(model)
    with warnings.catch_warnings(), pytensor.config.change_flags(traceback__limit=0):
        warnings.filterwarnings("ignore", message=".*BLAS.*")  # (no node tracebacks: faster)
        (n_dim, n_expanded, logp_fn_pt, expand_fn_pt, _, shape_info,
         reparameterized_names) = _make_functions(
            model, mode="NUMBA", compute_grad=True, join_expanded=True,
            pymc_initial_point_fn=_pymc_initial_point_fn(model), var_names=var_names)
    logp_inner, expand_inner = logp_fn_pt.vm.jit_fn, expand_fn_pt.vm.jit_fn
    inner_keys = [CACHED_SRC_FUNCTIONS.get(f.py_func) for f in (logp_inner, expand_inner)]
    if any(k is None for k in inner_keys):
        raise _Uncacheable()
    shared_names: list[str] = []
    for var in [*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]:
        if var.name is None or model.named_vars.get(var.name) is not var:
            raise _Uncacheable()  # a shared input that is not one of the model's pm.Data
        if var.name not in shared_names:
            shared_names.append(var.name)
    meta: dict[str, Any] = {
        "n_dim": n_dim, "n_expanded": n_expanded, "shape_info": shape_info,
        "reparameterized_names": reparameterized_names, "shared_names": shared_names,
        "base_point": base}
    shared_var_keys, shared_data, user_data = _shared(model, shared_names)
    layout = _layout(user_data.dtype, shared_var_keys, shared_data)
    meta["layout"] = layout
    index = {name: f"s{i}" for i, name in enumerate(shared_names)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=numba.NumbaWarning)
        cfuncs = []
        for kind, fn_pt, inner, inner_key in (("logp", logp_fn_pt, logp_inner, inner_keys[0]),
                                              ("expand", expand_fn_pt, expand_inner,
                                               inner_keys[1])):
            src = _source(kind, n_dim, n_expanded, layout,
                          [index[v.name] for v in fn_pt.get_shared()])
            ckey = _entry_key(src, inner_key)
            cfuncs.append(_cfunc(src, ckey, kind, inner))
            meta[f"{kind}_src"], meta[f"{kind}_key"] = src, ckey
    if base is not None:
        _store_entry(key, meta)
    return _Entry(cfuncs[0], cfuncs[1], meta)


def _shared(model: pm.Model, names: list[str]) -> tuple[dict[Any, str], dict[str, np.ndarray],
                                                          np.ndarray]:
    """nutpie's shared-data bookkeeping, with deterministic keys (nutpie uses uuid4: the
    record layout enters the generated source)."""
    from nutpie.compile_pymc import make_user_data

    shared_var_keys = {model.named_vars[name]: f"s{i}" for i, name in enumerate(names)}
    shared_data = {}
    for var, key in shared_var_keys.items():
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
    return shared_var_keys, shared_data, make_user_data(shared_var_keys, shared_data)


def _bind(entry: _Entry, model: pm.Model) -> Any:
    """A nutpie ``CompiledPyMCModel`` running ``entry``'s code on ``model``'s data."""
    from nutpie.compile_pymc import CompiledPyMCModel, _prepare_dims_and_coords

    meta = entry.meta
    shared_var_keys, shared_data, user_data = _shared(model, meta["shared_names"])
    if _layout(user_data.dtype, shared_var_keys, shared_data) != meta["layout"]:
        raise _Uncacheable()  # cannot happen for equal structure keys
    dims, coords = _prepare_dims_and_coords(model, meta["shape_info"],
                                            meta["reparameterized_names"])
    shape_info = meta["shape_info"]
    return CompiledPyMCModel(
        _n_dim=meta["n_dim"], dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=entry.logp_c, compiled_expand_func=entry.expand_c,
        initial_point_func=_initial_point_fn(model, meta), shared_data=shared_data,
        shared_var_keys=shared_var_keys, user_data=user_data, n_expanded=meta["n_expanded"],
        shape_info=shape_info, logp_func=None, expand_func=None,
        reparameterized_names=meta["reparameterized_names"])


# -- initial points -------------------------------------------------------------------------
def _pymc_initial_point_fn(model: pm.Model, jitter: bool = True) -> Any:
    from nutpie.compile_pymc import _wrap_with_lock
    from pymc.initial_point import make_initial_point_fn

    return _wrap_with_lock(make_initial_point_fn(
        model=model, overrides=None, default_strategy="support_point",
        jitter_rvs=set(model.free_RVs) if jitter else set(), return_transformed=True))


def _base_point(model: pm.Model) -> np.ndarray | None:
    """The un-jittered initial point (PyMC's support points, transformed, flattened in the
    order of ``model.free_RVs``), or None when it depends on data (then it is not cached)."""
    from pytensor.tensor.random.type import RandomType

    if any(rv.dtype not in ("float64", "float32") for rv in model.free_RVs):
        return None
    fn = _pymc_initial_point_fn(model, jitter=False)
    inner = getattr(fn, "__wrapped__", None)
    inner = getattr(inner, "__wrapped__", inner)
    shared = inner.get_shared() if hasattr(inner, "get_shared") else None
    def is_dim(v: Any) -> bool:  # compilation clones the dimension lengths: match by name
        return v.name in model.dim_lengths and getattr(v.type, "ndim", None) == 0

    if shared is None or any(not isinstance(v.type, RandomType) and not is_dim(v)
                             for v in shared):
        return None
    point = fn(0)
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    return np.concatenate([np.asarray(point[n], dtype="float64").ravel() for n in names])


def _initial_point_fn(model: pm.Model, meta: dict[str, Any]) -> Any:
    """Initial points as nutpie's default: support point plus U(-1, 1) jitter on the
    unconstrained scale; numpy only, so that cached and fresh compilations agree."""
    base = meta["base_point"]
    if base is None:
        from nutpie.compile_pymc import _rv_dict_to_flat_array_wrapper

        names, _, shapes = meta["shape_info"]
        n_free = len(model.free_RVs)
        return _rv_dict_to_flat_array_wrapper(_pymc_initial_point_fn(model),
                                              names=names[:n_free], shapes=shapes[:n_free])

    def initial_point(seed: Any = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return base + rng.uniform(-1.0, 1.0, size=base.shape)

    return initial_point


# -- numba entry points ---------------------------------------------------------------------
def _layout(dtype: np.dtype, keys: dict[Any, str],
            data: dict[str, np.ndarray]) -> dict[str, tuple[int, int, tuple[int, ...], str]]:
    """Word offsets (8 bytes) of each shared array's pointer, size and shape in nutpie's
    ``user_data`` record, with its numpy dtype name."""
    shared_type, base = dtype.fields["shared"][:2]
    out = {}
    for key in keys.values():
        def off(part: str, k: str = key) -> int:
            sub, sub_off = shared_type.fields[part][:2]
            return base + sub_off + sub.fields[k][1]
        for part in ("data", "size", "shape"):
            if off(part) % 8:
                raise _Uncacheable()
        ndim = data[key].ndim
        out[key] = (off("data") // 8, off("size") // 8,
                    tuple(off("shape") // 8 + d for d in range(ndim)), data[key].dtype.name)
    if dtype.itemsize % 8:
        raise _Uncacheable()
    return out


_C_SIG = {"logp": "int64(uint64, CPointer(float64), CPointer(float64), CPointer(float64), "
                  "voidptr)",
          "expand": "int64(uint64, uint64, CPointer(float64), CPointer(float64), voidptr)"}


def _source(kind: str, n_dim: int, n_expanded: int,
            layout: dict[str, tuple[int, int, tuple[int, ...], str]], keys: list[str]) -> str:
    """Source of nutpie's C entry point; the data come from ``user_data`` at fixed offsets."""
    words = max([w for d, s, sh, _ in layout.values() for w in (d, s, *sh)], default=0) + 1
    lines = []
    for i, key in enumerate(keys):
        data, _, shape, dt = layout[key]
        if shape:
            dims = ", ".join(f"np.intp(ud[{w}])" for w in shape)
            lines.append(f"a{i} = carray(address_as_void_pointer(ud[{data}]), ({dims},), "
                         f"np.{dt})")
        else:
            lines.append(f"a{i} = carray(address_as_void_pointer(ud[{data}]), (1,), "
                         f"np.{dt}).reshape(())")
    args = "".join(f", a{i}" for i in range(len(keys)))
    load = "".join(f"\n        {line}" for line in lines)
    if kind == "logp":
        return f"""
def bayesmix_logp(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        ud = carray(user_data_, ({words},), np.uint64){load}
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_dim},))
        logp = carray(logp_, ())
        logp_val, grad = inner(x{args})
        logp[()] = logp_val
        for i in range({n_dim}):
            out[i] = grad[i]
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:  # noqa
        return 1
    return 0
"""
    return f"""
def bayesmix_expand(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        ud = carray(user_data_, ({words},), np.uint64){load}
        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_expanded},))
        (values,) = inner(x{args})
        for i in range({n_expanded}):
            out[i] = values[i]
    except Exception:  # noqa
        return -2
    return 0
"""


def _entry_key(src: str, inner_key: str) -> str:
    import numba
    import nutpie
    import pytensor

    return hashlib.sha256("|".join([src, inner_key, numba.__version__, pytensor.__version__,
                                    nutpie.__version__, _SALT]).encode()).hexdigest()


class _Miss(Exception):
    pass


def _cfunc(src: str, key: str, kind: str, inner: Any, load_only: bool = False) -> Any:
    """Compile (or load from numba's cache) one entry point; ``load_only`` raises
    :class:`_Miss` instead of compiling."""
    import numba
    from numba import carray
    from numba.core import sigutils
    from numba.core.ccallback import CFunc
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import compile_numba_function_src

    fn = compile_numba_function_src(
        src, f"bayesmix_{kind}",
        global_env={"__name__": __name__, "np": np, "carray": carray, "inner": inner,
                    "address_as_void_pointer": address_as_void_pointer},
        cache_key=key)
    args, ret = sigutils.normalize_signature(_C_SIG[kind])
    cf = CFunc(fn, (args, ret), locals={}, options={})
    cf.enable_caching()
    if load_only:
        def miss() -> Any:
            raise _Miss()
        cf._compile_uncached = miss
        cf.compile()
        return cf
    try:
        cf.compile()
    except Exception as error:  # noqa: BLE001  (an unreadable cache entry: compile uncached)
        STATS["disk_cache_errors"] += 1
        _LOG.warning("bayesmix compile cache: an entry on disk could not be read (%s); "
                     "compiling without it", f"{type(error).__name__}: {error}"[:200])
        cf = numba.cfunc(_C_SIG[kind])(fn)
    return cf
