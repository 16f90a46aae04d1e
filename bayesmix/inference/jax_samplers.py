"""NUTS on JAX: ``fit(sampler="numpyro")`` and ``fit(sampler="blackjax")``.

PyMC translates the model's log density to JAX (``pm.sample(nuts_sampler=...)``); the chains
run *vectorised* on one device (``chain_method="vectorized"``: one XLA program advances all
chains together, which is what a GPU wants; on a CPU it is as fast as running them one after
another). The draws then go through the same post-processing as nutpie's (level effects derived
after sampling, internal variables dropped), so a fit's summary, checks and plots do not depend
on the sampler.

Timings separate JAX's compilation (tracing, lowering and XLA compilation of the sampling
loop, measured with :mod:`jax.monitoring`) from the rest of the call (``sampling``).

Tested with the versions of the ``jax`` extra (``pip install 'bayesmix[jax]'``); blackjax 1.6
and later changed the arguments PyMC 6.4 passes to it, hence the pin ``blackjax<1.6``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from bayesmix.errors import SamplerError

__all__ = ["JAX_SAMPLERS", "check_jax_sampler", "sample_jax", "jax_device"]

JAX_SAMPLERS = ("numpyro", "blackjax")
INSTALL = "pip install 'bayesmix[jax]' (for an NVIDIA GPU also: pip install 'jax[cuda12]')"
# blackjax >= 1.6 no longer accepts the progress_bar argument PyMC 6.4 passes to its warm-up
BLACKJAX_BELOW = (1, 6)
COMPILE_EVENTS = "/jax/core/compile/"


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def check_jax_sampler(sampler: str) -> None:
    """Raise a :class:`~bayesmix.errors.SamplerError` naming what to install when ``sampler``
    cannot run here (nothing is imported: the check is cheap).

    Examples
    --------
    >>> check_jax_sampler("nutpie")  # not a JAX sampler: nothing to check
    >>> try:
    ...     check_jax_sampler("numpyro")
    ... except SamplerError as err:
    ...     print("bayesmix[jax]" in str(err))
    ... else:
    ...     print(True)
    True
    """
    if sampler not in JAX_SAMPLERS:
        return
    missing = [name for name in ("jax", sampler) if importlib.util.find_spec(name) is None]
    if missing:
        raise SamplerError(f"sampler={sampler!r} needs {' and '.join(missing)}, which "
                           f"{'is' if len(missing) == 1 else 'are'} not installed: {INSTALL}")
    if sampler == "blackjax":
        version = importlib.metadata.version("blackjax")
        if _version_tuple(version) >= BLACKJAX_BELOW:
            raise SamplerError(
                f"sampler='blackjax' needs blackjax < {'.'.join(map(str, BLACKJAX_BELOW))} "
                f"with this PyMC ({pm.__version__}); blackjax {version} is installed: "
                "pip install 'blackjax>=1.5,<1.6' (or: pip install 'bayesmix[jax]')")


def jax_device() -> str:
    """The device JAX computes on, in words (e.g. ``"cpu (1 device)"``, ``"gpu: NVIDIA H100
    80GB HBM3 (1 device)"``).

    Examples
    --------
    >>> jax_device().startswith(("cpu", "gpu", "tpu"))  # doctest: +SKIP
    True
    """
    import jax

    devices = jax.devices()
    first = devices[0]
    kind = getattr(first, "device_kind", "") or ""
    name = first.platform if not kind or first.platform == "cpu" else f"{first.platform}: {kind}"
    return f"{name} ({len(devices)} device{'s' if len(devices) > 1 else ''})"


def sample_jax(model: pm.Model, settings: Any, var_names: Sequence[str] | None = None
               ) -> tuple[xr.DataTree, dict[str, float]]:
    """Run numpyro's or blackjax's NUTS (``settings.sampler``) on ``model``, chains vectorised.

    ``var_names``: the deterministics to store besides the free variables (None: all; a
    large model's per-row deterministics would otherwise be computed for every draw).
    Returns the raw DataTree (internal variables still in) and timings in seconds:
    ``compile`` (JAX tracing and XLA compilation) and ``sampling`` (the rest of the call:
    warm-up, draws and the computation of the stored deterministics). The sample stats gain
    ``reached_max_treedepth``, as nutpie's ``maxdepth_reached``.
    """
    check_jax_sampler(settings.sampler)
    import jax.monitoring

    if var_names is not None:
        var_names = list(dict.fromkeys(
            [rv.name for rv in model.free_RVs] + [v for v in var_names if v in model.named_vars]))
    nuts: dict[str, Any] = {"chain_method": "vectorized"}
    if settings.sampler == "numpyro":
        nuts["max_tree_depth"] = settings.max_treedepth
    elif settings.max_treedepth != 10:
        # PyMC hands blackjax's max_num_doublings to the warm-up only, not to the draws
        raise SamplerError("sampler='blackjax' runs with a maximum tree depth of 10; use "
                           "sampler='numpyro' or 'nutpie' for another max_treedepth")
    compile_s = [0.0]

    def listen(event: str, duration: float, **_: Any) -> None:
        if event.startswith(COMPILE_EVENTS):
            compile_s[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    t0 = time.perf_counter()
    try:
        with model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            idata = pm.sample(
                draws=settings.draws, tune=settings.tune, chains=settings.chains,
                random_seed=settings.random_seed, target_accept=settings.target_accept,
                progressbar=settings.progressbar, nuts_sampler=settings.sampler,
                var_names=var_names, compute_convergence_checks=False, nuts=nuts)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    total = time.perf_counter() - t0
    timing = {"compile": compile_s[0], "sampling": max(total - compile_s[0], 0.0)}
    return _tidy(idata, settings), timing


def _writable(ds: xr.Dataset) -> xr.Dataset:
    """NumPy arrays in host memory: PyMC hands over JAX arrays (on the device), whose NumPy
    views are read-only, and the post-processing writes in place."""
    for name, da in ds.data_vars.items():
        if not isinstance(da.data, np.ndarray) or not da.data.flags.writeable:
            ds[name] = da.copy(data=np.array(da.data))
    return ds


def _tidy(idata: xr.DataTree, settings: Any) -> xr.DataTree:
    """Writable arrays, and ``reached_max_treedepth`` from the tree depth each library
    reports (numpyro: ``log2(n_steps) + 1``; blackjax: the number of trajectory doublings)."""
    groups = {name: _writable(node.to_dataset()) for name, node in idata.children.items()}
    stats = groups.get("sample_stats")
    if stats is not None and "tree_depth" in stats:
        limit = settings.max_treedepth if settings.sampler == "numpyro" else 10
        stats["reached_max_treedepth"] = stats["tree_depth"] >= limit
        stats["diverging"] = stats["diverging"].astype(bool)
        stats.attrs["max_treedepth"] = int(limit)
    return xr.DataTree.from_dict(groups)
