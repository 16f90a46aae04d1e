"""The user-facing :class:`Model`: formula + data + family -> checked design -> PyMC model.

The pipeline is visible and every stage is public:
``parse_formula`` -> ``make_design`` -> family check -> ``default_priors``/``resolve_priors``
-> ``build_model`` -> ``run_sampler`` -> :class:`~bayesmix.results.FitResult`.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import xarray as xr

from bayesmix.build import BuildPlan, build_model, derive_level_effects, stored_names
from bayesmix.design import Design, make_design
from bayesmix.diagnostics import warn_on_problems
from bayesmix.families import Family, get_family
from bayesmix.formula import FormulaSpec, parse_formula
from bayesmix.parametrization import choose_centering
from bayesmix.priors import Prior, PriorSpec, default_priors, prior_table, resolve_priors
from bayesmix.sample import SamplerSettings, clean, run_sampler

if TYPE_CHECKING:
    from bayesmix.results import FitResult

__all__ = ["Model"]

class Model:
    """A Bayesian mixed model: lme4 formula, data and family.

    Parameters
    ----------
    formula : str
        lme4/brms syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
        Never modified; rows with missing values in used columns are dropped with a warning.
    family : str
        ``"gaussian"`` (default), ``"bernoulli"``, ``"binomial"`` or ``"poisson"``.
    link : str, optional
        Defaults to the family's canonical link.
    priors : dict, optional
        Overrides, e.g. ``{"Days": bm.Prior("Normal", mu=0, sigma=5)}``; see ``model.priors``.
    centered : dict, optional
        Force the parametrisation per grouping factor, e.g. ``{"Subject": False}``; by
        default it is chosen from the data (see :mod:`bayesmix.parametrization`).
    na_action : {"drop", "raise"}

    Example
    -------
    >>> import bayesmix as bm
    >>> model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> model.priors.loc["Days", "prior"]
    'Normal(mu=0, sigma=48.89)'
    """

    def __init__(self, formula: str | FormulaSpec, data: pd.DataFrame,
                 family: str | Family = "gaussian", link: str | None = None,
                 priors: dict[str, Prior] | None = None, centered: dict[str, bool] | None = None,
                 na_action: str = "drop") -> None:
        self.spec: FormulaSpec = formula if isinstance(formula, FormulaSpec) \
            else parse_formula(formula)
        self.family: Family = get_family(family)
        self.link: str = self.family.resolve_link(link)
        self.design: Design = make_design(self.spec, data, na_action=na_action)
        y, trials = self.family.check(self.design.y, self.design.trials,
                                      self.spec.response.name)
        self.y: np.ndarray = y
        self.trials: np.ndarray | None = trials
        self.prior_specs: tuple[PriorSpec, ...] = tuple(resolve_priors(
            default_priors(self.design, self.family, self.link, y, trials), priors))
        self.centered: tuple[bool, ...] = choose_centering(
            self.design, self.family, self.link, y, trials, centered)
        self._compiled: Any = None

    # -- inspection ---------------------------------------------------------------------------
    @property
    def priors(self) -> pd.DataFrame:
        """Every parameter's prior (default or user), one row each."""
        return prior_table(list(self.prior_specs))

    @property
    def response_name(self) -> str:
        name = self.spec.response.name
        taken = {"fixef", "sigma"} | {f"{p}_{b.name}" for b in self.design.blocks
                                      for p in ("sd", "cor", "r")}
        return f"{name}_obs" if name in taken else name

    @functools.cached_property
    def pymc_model(self) -> pm.Model:
        """The PyMC model (built once, on first use)."""
        plan = BuildPlan(self.family.name, self.link, self.prior_specs, self.centered,
                         self.response_name)
        # No creation tracebacks on the graph's nodes: collecting them is about 40% of the
        # build time, and they point into bayesmix, not into the user's code.
        with pytensor.config.change_flags(traceback__limit=0):
            return build_model(self.design, plan, self.y, self.trials)

    def __repr__(self) -> str:
        groups = ", ".join(f"{b.group} ({b.n_levels})" for b in self.design.blocks) or "none"
        return (f"bayesmix.Model({self.spec.formula!r}, family={self.family.name!r}, "
                f"link={self.link!r}, n={self.design.n}, groups: {groups})")

    # -- sampling -----------------------------------------------------------------------------
    def prior_predictive(self, draws: int = 500, random_seed: int | None = None) -> xr.DataTree:
        """Draws from the prior and the prior predictive distribution.

        >>> import bayesmix as bm
        >>> m = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
        >>> pp = m.prior_predictive(draws=50, random_seed=1)
        >>> pp["prior_predictive"]["Yield"].shape
        (1, 50, 30)
        """
        with self.pymc_model:
            idata = pm.sample_prior_predictive(draws=draws, random_seed=random_seed)
        return clean(idata, self._derive)

    def _derive(self, draws: xr.Dataset) -> xr.Dataset:
        return derive_level_effects(draws, self.design, self.centered, inplace=True)

    def fit(self, draws: int = 1000, tune: int = 1000, chains: int = 4, *,
            sampler: str = "nutpie", random_seed: int | None = None, cores: int | None = None,
            target_accept: float = 0.8, max_treedepth: int = 10,
            progressbar: bool = True) -> "FitResult":
        """Sample the posterior with NUTS and return a :class:`~bayesmix.FitResult`.

        A fixed ``random_seed`` gives identical draws on the same machine and versions.

        >>> import bayesmix as bm
        >>> m = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
        >>> fit = m.fit(draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
        >>> round(float(fit.fixef().loc["(Intercept)", "mean"]), -2)
        1500.0
        """
        from bayesmix.results import FitResult

        settings = SamplerSettings(sampler=sampler, draws=draws, tune=tune, chains=chains,
                                   cores=cores, random_seed=random_seed,
                                   target_accept=target_accept, max_treedepth=max_treedepth,
                                   progressbar=progressbar)
        t0 = time.perf_counter()
        model = self.pymc_model
        build_time = time.perf_counter() - t0
        idata, timing, compiled = run_sampler(
            model, settings, self._compiled if sampler == "nutpie" else None,
            var_names=stored_names(self.design), postprocess=self._derive)
        if sampler == "nutpie":
            self._compiled = compiled
        timing = {"build": build_time, **timing}
        idata = _add_data_groups(idata, self)
        fit = FitResult(model=self, idata=idata, settings=settings, timing=timing)
        warn_on_problems(fit.sampling_report())
        return fit


def _add_data_groups(idata: xr.DataTree, model: Model) -> xr.DataTree:
    """Attach observed data (and trials) so ArviZ's PPC and LOO functions find them."""
    obs_dim = f"{model.response_name}_dim_0"
    rows = model.design.rows
    labels = np.asarray(rows) if rows.is_unique else np.arange(len(rows))  # row labels if usable
    groups = {name: node.to_dataset() for name, node in idata.children.items()}
    groups["observed_data"] = xr.Dataset(
        {model.response_name: ((obs_dim,), model.y)},
        coords={obs_dim: labels})
    if model.trials is not None:
        groups["constant_data"] = xr.Dataset({"trials": ((obs_dim,), model.trials)},
                                             coords={obs_dim: labels})
    return xr.DataTree.from_dict(groups)
