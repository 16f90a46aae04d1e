"""Run NUTS on a PyMC model with nutpie (default), PyMC, numpyro or blackjax.

Returns an ArviZ DataTree with the internal variables (names starting with ``_``) removed.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from bayesmix import varnames
from bayesmix.errors import SamplerError
from bayesmix.inference.jax_samplers import JAX_SAMPLERS, check_jax_sampler, sample_jax
from bayesmix.inference.nutpie_import import import_nutpie
from bayesmix.model.model import clean_draws

__all__ = ["SamplerSettings", "run_sampler", "sample_model", "add_data_groups", "SAMPLERS"]

SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample: the arguments of :meth:`bayesmix.Model.fit`."""

    sampler: str = "nutpie"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    cores: int | None = None
    random_seed: int | None = None
    target_accept: float = 0.8
    max_treedepth: int = 10
    progressbar: bool = True

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise SamplerError(f"unknown sampler {self.sampler!r}; choose one of "
                               f"{', '.join(SAMPLERS)}")
        for name in ("draws", "chains"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SamplerError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.tune, (int, np.integer)) or self.tune < 0:
            raise SamplerError(f"tune must be a non-negative integer, not {self.tune!r}")
        if not 0.5 <= self.target_accept < 1:
            raise SamplerError(f"target_accept must be in [0.5, 1), not {self.target_accept}")
        if self.random_seed is not None and not isinstance(self.random_seed, (int, np.integer)):
            raise SamplerError(f"random_seed must be an integer or None, not {self.random_seed!r}")
        check_jax_sampler(self.sampler)  # names what to install for numpyro / blackjax

    @property
    def n_cores(self) -> int:
        return self.cores or min(self.chains, os.cpu_count() or 1)


def kernel_enabled() -> bool:
    """Whether models of the standard class use the precompiled kernel
    (:mod:`bayesmix.inference.kernel`); ``BAYESMIX_KERNEL=0`` turns it off."""
    return os.environ.get("BAYESMIX_KERNEL", "1") not in ("0", "false", "no")


def compile_nutpie(model: pm.Model, var_names: list[str] | None = None) -> Any:
    """Compile a model for nutpie (numba backend); the result can be sampled many times.

    ``var_names``: the deterministics to store besides the free variables (None: all).
    Compiled models are cached by structure, in this process and on disk (see
    :mod:`bayesmix.inference.compile_cache`).
    """
    from bayesmix.inference.compile_cache import compile_model

    if var_names is not None:  # those the model has (a marginal model may lack fixef)
        var_names = [rv.name for rv in model.free_RVs] + [
            v for v in var_names if v in model.named_vars]
    return compile_model(model, var_names)


def run_sampler(model: pm.Model, settings: SamplerSettings, compiled: Any = None,
                var_names: list[str] | None = None,
                postprocess: Callable[[xr.Dataset], xr.Dataset] | None = None,
                ) -> tuple[xr.DataTree, dict[str, float], Any]:
    """Sample ``model``; return (DataTree, timings in seconds, compiled nutpie model or None).

    ``postprocess`` maps the raw posterior (internal ``_`` variables included) to the one
    kept, e.g. to derive level effects; then the internal variables are dropped.
    """
    timing: dict[str, float] = {}
    if settings.sampler == "nutpie":
        nutpie = import_nutpie()

        if compiled is None:
            t0 = time.perf_counter()
            compiled = compile_nutpie(model, var_names)
            timing["compile"] = time.perf_counter() - t0
        seed = settings.random_seed if settings.random_seed is not None else \
            int(np.random.SeedSequence().generate_state(1)[0])
        t0 = time.perf_counter()
        idata = nutpie.sample(
            compiled, draws=settings.draws, tune=settings.tune, chains=settings.chains,
            cores=settings.n_cores, seed=seed, progress_bar=settings.progressbar,
            save_warmup=False, target_accept=settings.target_accept,
            maxdepth=settings.max_treedepth)
        timing["sampling"] = time.perf_counter() - t0
    elif settings.sampler in JAX_SAMPLERS:  # chains vectorised on one device
        idata, timing = sample_jax(model, settings, var_names)
    else:
        t0 = time.perf_counter()
        with model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            idata = pm.sample(
                draws=settings.draws, tune=settings.tune, chains=settings.chains,
                cores=settings.n_cores, random_seed=settings.random_seed,
                target_accept=settings.target_accept, progressbar=settings.progressbar,
                nuts_sampler=settings.sampler, compute_convergence_checks=False,
                max_treedepth=settings.max_treedepth)
        timing["sampling"] = time.perf_counter() - t0
    return clean_draws(idata, postprocess), timing, compiled


def sample_model(model: Any, settings: SamplerSettings, compiled: Any = None
                 ) -> tuple[xr.DataTree, dict[str, float], Any]:
    """Sample a :class:`~bayesmix.model.ModelSpec`: the one path every fit takes (``fit``,
    k-fold refits, ``update``-style refits).

    Returns the DataTree (posterior with derived level effects, sample stats, observed and
    constant data), timings in seconds (``build``, ``compile``, ``sampling``) and the
    compiled nutpie model (None for other samplers), which ``compiled`` passes back in for a
    model of the same structure (see :meth:`CompiledPyMCModel.with_data`).
    """
    t0 = time.perf_counter()
    compiled = compiled if settings.sampler == "nutpie" else None
    pm_model = None
    if compiled is None and settings.sampler == "nutpie" and kernel_enabled() and \
            not isinstance(model.kernel_arrays, str):
        from bayesmix.inference.kernel import kernel_model  # (numba loads it on first use)

        compiled = kernel_model(model.kernel_arrays)  # no compilation, no PyMC model
    if compiled is None:
        pm_model = model.pymc_model
    build_time = time.perf_counter() - t0
    idata, timing, compiled = run_sampler(
        pm_model, settings, compiled,
        var_names=model.stored_names(),
        postprocess=functools.partial(model._derive, marginal=model.marginal,
                                      seed=settings.random_seed))
    return add_data_groups(idata, model), {"build": build_time, **timing}, compiled


def add_data_groups(idata: xr.DataTree, model: Any) -> xr.DataTree:
    """Attach observed data (and trials) so ArviZ's PPC and LOO functions find them."""
    obs_dim = varnames.obs_dim(model.response_name)
    rows = model.design.rows
    labels = np.asarray(rows) if rows.is_unique else np.arange(len(rows))  # row labels if usable
    groups = {name: node.to_dataset() for name, node in idata.children.items()}
    groups["observed_data"] = xr.Dataset(
        {model.response_name: ((obs_dim,), model.y)},
        coords={obs_dim: labels})
    constant = {name: ((obs_dim,), values) for name, values in
                (("trials", model.trials), ("weights", model.weights)) if values is not None}
    if constant:
        groups["constant_data"] = xr.Dataset(constant, coords={obs_dim: labels})
    return xr.DataTree.from_dict(groups)
