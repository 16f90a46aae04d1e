"""Run NUTS on a PyMC model with nutpie (default), PyMC, numpyro or blackjax.

Returns an ArviZ DataTree with the internal variables (names starting with ``_``) removed.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from bayesmix.errors import SamplerError

__all__ = ["SamplerSettings", "run_sampler", "SAMPLERS"]

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
        if self.sampler in ("numpyro", "blackjax") and importlib.util.find_spec("jax") is None:
            raise SamplerError(f"sampler={self.sampler!r} needs JAX: pip install 'bayesmix[jax]'")

    @property
    def n_cores(self) -> int:
        return self.cores or min(self.chains, os.cpu_count() or 1)


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
        import nutpie

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
    else:
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = {}
        if settings.sampler == "pymc":
            kwargs["max_treedepth"] = settings.max_treedepth
        with model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            idata = pm.sample(
                draws=settings.draws, tune=settings.tune, chains=settings.chains,
                cores=settings.n_cores, random_seed=settings.random_seed,
                target_accept=settings.target_accept, progressbar=settings.progressbar,
                nuts_sampler=settings.sampler, compute_convergence_checks=False, **kwargs)
        timing["sampling"] = time.perf_counter() - t0
    return clean(idata, postprocess), timing, compiled


def clean(idata: xr.DataTree,
          postprocess: Callable[[xr.Dataset], xr.Dataset] | None = None) -> xr.DataTree:
    """Drop internal variables (``_*``), unused coordinates and warm-up groups; apply
    ``postprocess`` to the posterior and prior groups first."""
    children = {}
    for name, node in idata.children.items():
        if name.startswith("warmup"):
            continue
        ds = node.to_dataset()
        if postprocess is not None and name in ("posterior", "prior"):
            ds = postprocess(ds)
        internal = [v for v in ds.data_vars if str(v).startswith("_")]
        ds = ds.drop_vars(internal)
        unused = [d for d in ds.coords if str(d).startswith("_")]
        ds = ds.drop_vars(unused)
        children[name] = ds
    return xr.DataTree.from_dict(children)
