"""The user-facing :class:`Model`: formula + data + family -> checked design -> PyMC model.

The pipeline is visible and every stage is public:
``parse_formula`` -> ``make_design`` -> family check -> ``default_priors``/``resolve_priors``
-> ``build_model`` -> ``run_sampler`` -> :class:`~bayesmix.api.fit.FitResult`.
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import xarray as xr

from bayesmix.model.build import BuildPlan, build_model, stored_names
from bayesmix.diagnostics.checks import warn_on_fit
from bayesmix.data.design import Design, make_design
from bayesmix.errors import DataError, FamilyError, FormulaError
from bayesmix.families import PARAM_LINKS, Family, get_family, ordinal_levels
from bayesmix.spec.formula import FormulaSpec, parse_formula
from bayesmix.spec.distributional import Formula, NonLinear
from bayesmix.data import linpred
from bayesmix.model.level_effects import derive_level_effects
from bayesmix.model.marginal import (MarginalStats, NestedStats, crossed_nested_pair, draw_effects,
                               marginal_obstacle, model_stats)
from bayesmix.model.partial import PartialStats
from bayesmix.model.parametrization import (CENTRE_RATIO, choose_centering, information_ratios,
                                      level_covariates)
from bayesmix.priors import Prior, PriorSpec, default_priors, prior_table, resolve_priors
from bayesmix.inference.sample import SamplerSettings, clean, run_sampler
from bayesmix.data.structured import (AR1, AR_PRIOR_KEY, AR1Structure, ar_prior_specs,
                                 check_ar_prior, model_ar1_structure)

if TYPE_CHECKING:
    from bayesmix.inference.ml import MLResult
    from bayesmix.api.fit import FitResult

__all__ = ["Model"]

class Model:
    """A Bayesian mixed model: lme4 formula, data and family.

    Parameters
    ----------
    formula : str, Formula or NonLinear
        lme4/brms syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``; a
        :class:`~bayesmix.Formula` adds formulas for family parameters
        (``bm.Formula("y ~ x", "sigma ~ x")``), a :class:`~bayesmix.NonLinear` makes the
        mean a nonlinear function of parameters with their own formulas.
    data : pandas.DataFrame
        Never modified; rows with missing values in used columns are dropped with a warning.
    family : str
        ``"gaussian"`` (default), ``"student_t"``, ``"lognormal"``, ``"gamma"``,
        ``"bernoulli"``, ``"binomial"``, ``"beta_binomial"``, ``"beta"``, ``"poisson"``,
        ``"negativebinomial"``, ``"zero_inflated_poisson"``,
        ``"zero_inflated_negativebinomial"``, ``"hurdle_poisson"``,
        ``"hurdle_negativebinomial"`` or ``"cumulative"`` (ordinal); see
        :mod:`bayesmix.families` for their parametrisations.
    link : str, optional
        Defaults to the family's canonical link.
    priors : dict, optional
        Overrides, e.g. ``{"Days": bm.Prior("Normal", mu=0, sigma=5)}``; see ``model.priors``.
    centered : dict, optional
        Force the parametrisation per grouping factor, e.g. ``{"Subject": False}``; by
        default it is chosen from the data (see :mod:`bayesmix.model.parametrization`).
    na_action : {"drop", "raise"}
    weights : str, optional
        A column of positive observation weights: each row's log-likelihood is multiplied by
        its weight (brms's ``weights()``; a weight of 2 counts the row twice). Rows with a
        missing weight are handled like other missing data. Stored as ``model.weights``.
    data2 : dict, optional
        Matrices the formula names, e.g. ``{"A": A}`` for ``(1 | gr(animal, cov=A))``: a
        DataFrame whose index and columns are the levels (see :mod:`bayesmix.data.structured`).
    autocor : AR1, optional
        ``bm.AR1(time="Days", group="Subject")``: AR(1) residuals within each group (gaussian
        family; marginal SD ``sigma``, correlation ``ar ** |t_i - t_j|`` as in nlme).
    marginalize : bool, optional
        Integrate the level effects out of the likelihood and draw them exactly after
        sampling (:mod:`bayesmix.model.marginal`): the sampler explores the fixed effects, SDs,
        correlations and ``sigma`` only, which mixes several times better per second. By
        default on where possible: gaussian family with identity link, every random term on
        one grouping factor (at most 5 terms) or two nested random intercepts (``(1 |
        a/b)``), no AR(1), weights or further formulas, and ``centered`` not given. Such a
        nested pair beside other factors (``(1 | student) + (1 | lecturer) + (1 | dept)``,
        lecturers within departments) is integrated out given the other factors' effects,
        which are sampled, non-centred unless ``centered`` names them (it may, and the pair
        stays integrated out; :mod:`bayesmix.model.partial`, ``model.integrated_blocks``).
        ``True`` where impossible raises a ``FamilyError`` saying why. Stored as
        ``model.marginal``.

    Examples
    --------
    >>> import bayesmix as bm
    >>> model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> model.priors.loc["Days", "prior"]
    'Normal(mu=0, sigma=48.89)'
    """

    def __init__(self, formula: str | FormulaSpec | Formula | NonLinear, data: pd.DataFrame,
                 family: str | Family = "gaussian", link: str | None = None,
                 priors: dict[str, Prior] | None = None, centered: dict[str, bool] | None = None,
                 na_action: str = "drop", weights: str | None = None,
                 data2: dict[str, Any] | None = None, autocor: AR1 | None = None,
                 marginalize: bool | None = None) -> None:
        self.family: Family = get_family(family)
        self.link: str = self.family.resolve_link(link)
        # Further linear predictors (distributional / nonlinear parameters): bayesmix.data.linpred
        self.predictors: tuple[linpred.LinearPredictor, ...] = ()
        self.setup: linpred.Setup | None = None
        self._formula = formula
        self._weights_column = weights
        self.weights: np.ndarray | None = None
        self.categories: tuple[Any, ...] = ()
        if isinstance(formula, (Formula, NonLinear)):
            if data2 or weights is not None or self.family.ordinal:
                raise DataError("bm.Formula and bm.NonLinear models do not yet take data2, "
                                "weights or an ordinal family; use a single formula for these")
            self.setup = linpred.make_setup(formula, data, self.family, na_action)
            design: Design = self.setup.design
            self.predictors = self.setup.predictors
            response = design.y
        else:
            spec = formula if isinstance(formula, FormulaSpec) else parse_formula(formula)
            _check_weights_argument(weights, data)
            design = make_design(spec, data, na_action=na_action, data2=data2,
                                 extra_columns=(weights,) if weights is not None else ())
            if weights is not None:
                self.weights = _checked_weights(design.extra[weights], weights)
            response = _family_response(self.family, design)
        self.spec: FormulaSpec = design.spec
        if autocor is not None and any(lp.name == "sigma" for lp in self.predictors):
            raise FamilyError("AR(1) residuals need a single residual SD; drop the 'sigma ~ ...' "
                              "formula or the autocor argument")
        y, trials = self.family.check(response, design.trials, self.spec.response.name)
        if self.family.ordinal:  # the cutpoints replace the intercept
            self.categories = ordinal_levels(response, self.spec.response.name)[1]
            design = _ordinal_design(design, self.spec.formula)
        self.design: Design = design
        self.y: np.ndarray = y
        self.trials: np.ndarray | None = trials
        self.autocor: AR1 | None = autocor
        self.autocor_structure: AR1Structure | None = None if autocor is None else \
            model_ar1_structure(autocor, data, self.design, self.family.name)
        defaults, priors = linpred.extend_priors(
            default_priors(self.design, self.family, self.link, y, trials)
            + ar_prior_specs(self.autocor_structure), self.predictors, y, priors)
        self.prior_specs: tuple[PriorSpec, ...] = tuple(linpred.finish_priors(
            resolve_priors(defaults, priors), self.predictors))
        if self.autocor_structure is not None:
            check_ar_prior(self.prior_dict[AR_PRIOR_KEY], self.autocor_structure)
        centered, self.predictors = linpred.split_centering(centered, self.design,
                                                            self.predictors)
        ratios = information_ratios(self.design, self.family, self.link, y, trials)
        self.centered: tuple[bool, ...] = choose_centering(
            self.design, self.family, self.link, y, trials, centered,
            ar_group=self.ar_group, ratios=ratios)
        self.marginal: bool = _resolve_marginal(self, marginalize, centered)
        if 0 < len(self.integrated_blocks) < len(self.centered):
            # A partly integrated model's sampled blocks mix best non-centred unless the user
            # says otherwise: centred, without an intercept to absorb (it stays apart), their
            # mean ridges with the intercept (bayesmix.model.partial for the measurements)
            given = centered or {}
            self.centered = tuple(given.get(b.name, given.get(b.group, False))
                                  for b in self.design.blocks)
        # Level-constant predictors that the intercept-absorbing centred block takes into its
        # levels' prior mean (decided on the full data, kept for k-fold refits)
        self.level_covariates: dict[int, tuple[int, ...]] = {} if (
            self.family.ordinal or self.setup is not None) else \
            level_covariates(self.design, self.centered)
        # The fixed effects are integrated out with the levels (normal priors permitting)
        # where the levels are well measured: there a fixed effect's spread depends on the SDs,
        # a funnel when both are sampled; elsewhere they stay in the sampler (see
        # bayesmix.model.marginal for the measurements).
        self.marginal_priors: dict[str, Prior] | None = self.prior_dict if self.marginal and \
            ratios and max(ratios) >= CENTRE_RATIO else None
        # The used columns of the data as given (never a view): typical values for effect
        # grids, and what save/load and pickling rebuild the design from.
        used = [c for c in data.columns if c in self._used_columns()]
        self.data: pd.DataFrame = data.loc[:, used].copy()
        self.data2: dict[str, Any] | None = data2
        self.na_action: str = na_action
        self._compiled: Any = None

    def _used_columns(self) -> set[str]:
        """Every data column any formula, the nonlinear expression or AR(1) refers to."""
        used = set(self.spec.variables)
        for lp in self.predictors:
            used |= set(lp.design.spec.variables)
        if self.setup is not None:
            used |= set(self.setup.covariates)
        if self.autocor is not None:
            used |= {self.autocor.time} | ({self.autocor.group} if self.autocor.group else set())
        if self._weights_column is not None:
            used.add(self._weights_column)
        return used

    def constructor_args(self) -> dict[str, Any]:
        """Arguments that rebuild this model exactly: ``bm.Model(**model.constructor_args())``.

        User priors are listed per parameter (class keys such as ``"b"`` expanded) and the
        centring per block as chosen, so the rebuilt model needs no data-driven choice.

        Examples
        --------
        >>> import bayesmix as bm
        >>> m = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
        >>> sorted(m.constructor_args())
        ['autocor', 'centered', 'data', 'data2', 'family', 'formula', 'link', 'marginalize', 'na_action', 'priors', 'weights']
        """
        formula = self._formula if self.setup is not None else self.spec.formula
        return {"formula": formula, "data": self.data, "family": self.family.name,
                "link": self.link, "na_action": self.na_action,
                "priors": {s.key: s.prior for s in self.prior_specs if s.source == "user"},
                "centered": {**{b.name: c for b, c in zip(self.design.blocks, self.centered)},
                             **{b.name: c for lp in self.predictors
                                for b, c in zip(lp.design.blocks, lp.centered)}},
                "data2": self.data2, "autocor": self.autocor, "weights": self._weights_column,
                "marginalize": self.marginal}

    def __getstate__(self) -> dict[str, Any]:
        # The formulae design objects hold interpreter frames and the PyMC/nutpie models
        # compiled code: none pickles, so a pickle carries the constructor arguments only.
        # (constructor_args names the family: Family objects hold local check functions)
        return self.constructor_args()

    def __setstate__(self, state: dict[str, Any]) -> None:
        import warnings

        from bayesmix.errors import MissingDataWarning

        with warnings.catch_warnings():  # the original construction already warned
            warnings.simplefilter("ignore", MissingDataWarning)
            self.__init__(**state)  # type: ignore[misc]

    # -- inspection ---------------------------------------------------------------------------
    @property
    def priors(self) -> pd.DataFrame:
        """Every parameter's prior (default or user), one row each."""
        return prior_table(list(self.prior_specs))

    @property
    def nonlinear(self) -> Any:
        """The nonlinear expression of a :class:`~bayesmix.NonLinear` model, else None."""
        return self.setup.nonlinear if self.setup is not None else None

    @property
    def ar_group(self) -> str | None | bool:
        """The grouping factor of AR(1) residual series (None: one series; False: none)."""
        return False if self.autocor is None else self.autocor.group

    @property
    def all_blocks(self) -> tuple[Any, ...]:
        """Random-effects blocks of every linear predictor (the mean's first)."""
        return self.design.blocks + tuple(b for lp in self.predictors for b in lp.design.blocks)

    @property
    def formula_lines(self) -> tuple[str, ...]:
        return self.setup.lines if self.setup is not None else (self.spec.formula,)

    @property
    def prior_dict(self) -> dict[str, Prior]:
        """Each parameter's prior, keyed as in ``model.priors``."""
        return {s.key: s.prior for s in self.prior_specs}

    @property
    def response_name(self) -> str:
        name = self.spec.response.name
        taken = {"fixef", "ar", *PARAM_LINKS} | {f"{p}_{b.name}" for b in self.all_blocks
                                                 for p in ("sd", "cor", "r")}
        taken |= {lp.fixef_var for lp in self.predictors}
        return f"{name}_obs" if name in taken else name

    @functools.cached_property
    def pymc_model(self) -> pm.Model:
        """The PyMC model that is sampled (built once, on first use); with ``marginal``, its
        level effects are integrated out."""
        return self._build(self.marginal)

    @functools.cached_property
    def conditional_pymc_model(self) -> pm.Model:
        """The PyMC model with its level effects as parameters (for prior predictive draws)."""
        return self._build(False) if self.marginal else self.pymc_model

    @functools.cached_property
    def marginal_stats(self) -> MarginalStats | NestedStats | PartialStats | None:
        """The per-level cross-products of a marginal model (:mod:`bayesmix.model.marginal`)."""
        return model_stats(self.design, self.y, self.marginal_priors, self.centered) \
            if self.marginal else None

    @functools.cached_property
    def integrated_blocks(self) -> tuple[int, ...]:
        """Indices (in ``design.blocks``) of the blocks whose level effects are integrated
        out of the sampled model: all of them, a nested pair among other factors
        (:mod:`bayesmix.model.partial`), or none."""
        if not self.marginal:
            return ()
        pair = crossed_nested_pair(self.design)  # None for (1 | a/b) alone: two blocks only
        return tuple(sorted(pair)) if pair else tuple(range(len(self.design.blocks)))

    def _build(self, marginal: bool) -> pm.Model:
        stats = self.marginal_stats if marginal else None
        plan = BuildPlan(self.family.name, self.link, self.prior_specs, self.centered,
                         self.response_name, self.predictors, self.nonlinear,
                         self.setup.covariates if self.setup is not None else {},
                         self.autocor_structure, self.categories, stats,
                         self.level_covariates)
        # No creation tracebacks on the graph's nodes: collecting them is about 40% of the
        # build time, and they point into bayesmix, not into the user's code.
        with pytensor.config.change_flags(traceback__limit=0):
            return build_model(self.design, plan, self.y, self.trials, self.weights)

    def __repr__(self) -> str:
        groups = ", ".join(dict.fromkeys(f"{b.group} ({b.n_levels})"
                                         for b in self.all_blocks)) or "none"
        return (f"bayesmix.Model({'; '.join(self.formula_lines)!r}, "
                f"family={self.family.name!r}, "
                f"link={self.link!r}, n={self.design.n}, groups: {groups})")

    # -- sampling -----------------------------------------------------------------------------
    def prior_predictive(self, draws: int = 500, random_seed: int | None = None) -> xr.DataTree:
        """Draws from the prior and the prior predictive distribution.

        Examples
        --------
        >>> import bayesmix as bm
        >>> m = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
        >>> pp = m.prior_predictive(draws=50, random_seed=1)
        >>> pp["prior_predictive"]["Yield"].shape
        (1, 50, 30)
        """
        with self.conditional_pymc_model, warnings.catch_warnings():
            # AR(1) responses draw with numpy inside numba's object mode: expected, harmless
            warnings.filterwarnings("ignore", message=".*object mode.*")
            # Observation weights enter as a potential; they do not change the prior or the
            # family's predictive draws, so PyMC's note that potentials are ignored is moot.
            warnings.filterwarnings("ignore", message=".*Potentials.*ignored.*")
            logger = logging.getLogger("pymc")  # its "Sampling: [...]" line names internals
            level = logger.level
            logger.setLevel(logging.WARNING)
            try:
                idata = pm.sample_prior_predictive(draws=draws, random_seed=random_seed)
            finally:
                logger.setLevel(level)
        return clean(idata, functools.partial(self._derive, marginal=False))

    def _derive(self, draws: xr.Dataset, marginal: bool = False,
                seed: int | None = None) -> xr.Dataset:
        if marginal:
            return draw_effects(draws, self.design, self.marginal_stats,
                                np.random.default_rng(seed))
        draws = derive_level_effects(draws, self.design, self.centered, inplace=True,
                                     level_cols=self.level_covariates)
        for lp in self.predictors:
            draws = derive_level_effects(draws, lp.design, lp.centered, True, lp.name,
                                         lp.center)
        return draws

    def fit(self, draws: int = 1000, tune: int = 1000, chains: int = 4, *,
            sampler: str = "nutpie", random_seed: int | None = None, cores: int | None = None,
            target_accept: float = 0.8, max_treedepth: int = 10,
            progressbar: bool = True) -> "FitResult":
        """Sample the posterior with NUTS and return a :class:`~bayesmix.FitResult`.

        A fixed ``random_seed`` gives the same draws on the same machine and versions, equal
        to rounding (a model loaded from the compile cache may differ in the last bits).

        Examples
        --------
        >>> import bayesmix as bm
        >>> m = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
        >>> fit = m.fit(draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
        >>> round(float(fit.fixef().loc["(Intercept)", "mean"]), -2)
        1500.0
        """
        from bayesmix.api.fit import FitResult

        settings = SamplerSettings(sampler=sampler, draws=draws, tune=tune, chains=chains,
                                   cores=cores, random_seed=random_seed,
                                   target_accept=target_accept, max_treedepth=max_treedepth,
                                   progressbar=progressbar)
        t0 = time.perf_counter()
        model = self.pymc_model
        build_time = time.perf_counter() - t0
        idata, timing, compiled = run_sampler(
            model, settings, self._compiled if sampler == "nutpie" else None,
            var_names=stored_names(self.design, self.family.name) + [
                v for lp in self.predictors for v in stored_names(lp.design, lp=lp.name)],
            postprocess=functools.partial(self._derive, marginal=self.marginal,
                                          seed=settings.random_seed))
        if sampler == "nutpie":
            self._compiled = compiled
        timing = {"build": build_time, **timing}
        idata = _add_data_groups(idata, self)
        fit = FitResult(model=self, idata=idata, settings=settings, timing=timing)
        warn_on_fit(fit)
        return fit

    def fit_ml(self, reml: bool = True) -> "MLResult":
        """Maximum-likelihood fit: REML/ML (gaussian) or Laplace (``reml=False``; GLMMs).

        See :func:`bayesmix.inference.ml.fit_ml`.
        """
        from bayesmix.inference.ml import fit_ml

        return fit_ml(self, reml=reml)


def _resolve_marginal(model: Model, marginalize: bool | None,
                      centered: dict[str, bool] | None) -> bool:
    """Whether the model integrates its level effects out (see the ``marginalize`` argument).
    By default not when ``centered`` is given, except where it names only factors that stay
    in the sampler beside an integrated nested pair (:mod:`bayesmix.model.partial`)."""
    obstacle = marginal_obstacle(model.design, model.family.name, model.link,
                                 predictors=model.predictors, nonlinear=model.nonlinear,
                                 autocor=model.autocor, weights=model.weights)
    if marginalize and obstacle is not None:
        raise FamilyError(f"marginalize=True: the level effects cannot be integrated out "
                          f"because {obstacle}; drop marginalize=True")
    if marginalize is None:
        if obstacle is not None or not centered:
            return obstacle is None
        design = model.design
        pair = crossed_nested_pair(design)
        return pair is not None and not any(
            design.blocks[i].name in centered or design.blocks[i].group in centered
            for i in pair)
    return bool(marginalize)


def _add_data_groups(idata: xr.DataTree, model: Model) -> xr.DataTree:
    """Attach observed data (and trials) so ArviZ's PPC and LOO functions find them."""
    obs_dim = f"{model.response_name}_dim_0"
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


def _family_response(family: Family, design: Design) -> Any:
    """The response as the family check takes it: ordinal families get the user's pandas
    Categorical (its category order matters), the others ``design.y``."""
    if family.ordinal and design.y_categorical is not None:
        return design.y_categorical
    return design.y


def _check_weights_argument(weights: Any, data: pd.DataFrame) -> None:
    if weights is None:
        return
    if not isinstance(weights, str):
        raise DataError(f"weights must be the name of a column of the data, not "
                        f"{type(weights).__name__}; e.g. weights='w'")
    if isinstance(data, pd.DataFrame) and weights not in data.columns:
        raise DataError(f"the weights column {weights!r} is not in the data; available "
                        f"columns: {', '.join(map(str, data.columns))}")


def _checked_weights(values: np.ndarray, column: str) -> np.ndarray:
    """Positive finite floats; anything else is a DataError naming the column."""
    try:
        w = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"the weights column {column!r} must be numeric; it has values like "
                        f"{values[0]!r}") from None
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        raise DataError(f"the weights column {column!r} must hold positive finite numbers; "
                        f"found {w[bad][0]:g} in {int(bad.sum())} rows. Drop rows that should "
                        "not count instead of giving them weight 0")
    return w


def _ordinal_design(design: Design, formula: str) -> Design:
    """The design without its intercept; refuse fixed effects the cutpoints duplicate."""
    stripped = design.without_intercept()
    X = stripped.X
    if X.shape[1] and np.linalg.matrix_rank(np.column_stack([np.ones(len(X)), X])) <= X.shape[1]:
        raise FormulaError(
            f"in {formula!r} the fixed effects include a constant combination of columns "
            f"({', '.join(stripped.coef_names)}), which the cutpoints of an ordinal model "
            "already provide; with '0 +' or '- 1' a factor gets a column for every level. "
            "Keep the intercept in the formula (bayesmix drops it for you)")
    return stripped
