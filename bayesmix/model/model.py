"""The user-facing :class:`Model`: formula + data + family -> checked design -> PyMC model.

The pipeline is visible and every stage is public:
``parse_formula`` -> ``make_design`` -> family check -> ``default_priors``/``resolve_priors``
-> ``build_model`` -> ``run_sampler`` -> :class:`~bayesmix.api.fit.FitResult`.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import xarray as xr

from bayesmix import varnames
from bayesmix.data import linpred
from bayesmix.data.design import Design, make_design, restrict_rows
from bayesmix.data.structured import AR1, AR_PRIOR_KEY, AR1Structure, model_ar1_structure
from bayesmix.errors import BayesmixError, DataError, FamilyError, FormulaError, ResponseError
from bayesmix.families import PARAM_LINKS, Family, get_family, ordinal_levels
from bayesmix.model import kernel_plan
from bayesmix.model.build import BuildPlan, build_model, stored_names
from bayesmix.model.integrated import (
    MarginalStats,
    NestedStats,
    crossed_nested_pair,
    marginal_obstacle,
)
from bayesmix.model.integrated_pair import PartialStats
from bayesmix.model.integration import draw_effects, model_stats
from bayesmix.model.level_effects import derive_level_effects
from bayesmix.model.parametrization import (
    CENTRE_RATIO,
    choose_centering,
    information_ratios,
    level_covariates,
)
from bayesmix.priors import (
    Prior,
    PriorSpec,
    ar_prior_specs,
    check_ar_prior,
    default_priors,
    extend_priors,
    finish_priors,
    prior_table,
    resolve_priors,
)
from bayesmix.spec.distributional import Formula, NonLinear
from bayesmix.spec.formula import FormulaSpec, parse_formula

__all__ = ["ModelSpec", "clean_draws"]

class ModelSpec:
    """A mixed model as checked and decided: formula, data and family turned into a design,
    priors, the parametrisation and what is integrated out; and its PyMC model.

    Everything below the user-facing :class:`bayesmix.Model` (which adds ``fit``) works on
    this object: analyses take it with the fit's DataTree. The arguments are
    :class:`bayesmix.Model`'s.
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
        _check_response_type(self.family, data, self.spec)
        if autocor is not None and any(lp.name == "sigma" for lp in self.predictors):
            raise FamilyError("AR(1) residuals need a single residual SD; drop the 'sigma ~ ...' "
                              "formula or the autocor argument")
        y, trials = self.family.check(response, design.trials, self.spec.response.name)
        _check_response_varies(self.family, y, self.spec.response.name)
        if self.family.ordinal:  # the cutpoints replace the intercept
            self.categories = ordinal_levels(response, self.spec.response.name)[1]
            design = _ordinal_design(design, self.spec.formula)
        self.design: Design = design
        self.y: np.ndarray = y
        self.trials: np.ndarray | None = trials
        self.autocor: AR1 | None = autocor
        self.autocor_structure: AR1Structure | None = None if autocor is None else \
            model_ar1_structure(autocor, data, self.design, self.family)
        defaults, priors = extend_priors(
            default_priors(self.design, self.family, self.link, y, trials)
            + ar_prior_specs(self.autocor_structure), self.predictors, y, priors)
        self.prior_specs: tuple[PriorSpec, ...] = tuple(finish_priors(
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
            # mean ridges with the intercept (bayesmix.model.integrated_pair for the measurements)
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
        # bayesmix.model.integrated for the measurements).
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
        >>> sorted(m.constructor_args())  # doctest: +NORMALIZE_WHITESPACE
        ['autocor', 'centered', 'data', 'data2', 'family', 'formula', 'link', 'marginalize', 'na_action',
         'priors', 'weights']
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

    def predictor(self, dpar: str) -> linpred.LinearPredictor:
        """The linear predictor of a distributional or nonlinear parameter, by name."""
        for lp in self.predictors:
            if lp.name == dpar:
                return lp
        have = ", ".join(repr(lp.name) for lp in self.predictors) or "none"
        raise BayesmixError(f"the model has no formula for the parameter {dpar!r}; "
                            f"parameters with formulas: {have}")

    def find_block(self, group: str | None = None, mean_only: bool = False) -> Any:
        """The random-effects block named ``group`` (a block name or its grouping factor);
        the first block when ``group`` is None. ``mean_only``: the mean's blocks only."""
        blocks = self.design.blocks if mean_only else self.all_blocks
        if not blocks:
            raise BayesmixError("the model has no random effects")
        if group is None:
            return blocks[0]
        for block in blocks:
            if group in (block.name, block.group):
                return block
        raise BayesmixError(f"no grouping factor {group!r}; the model has "
                            f"{', '.join(b.name for b in blocks)}")

    def keyed_blocks(self) -> list[tuple[str, Any, str | None]]:
        """(``fit.ranef()`` key, block, parameter name or None for the mean) of every block."""
        # a gr() block with levels of its own (relatives without records) gets its own key
        out = [(b.dim or b.group, b, None) for b in self.design.blocks]
        out += [(lp.block_key(b), b, lp.name) for lp in self.predictors
                for b in lp.design.blocks]
        return out

    @property
    def formula_lines(self) -> tuple[str, ...]:
        # the formula as parsed (terms expanded), so the summary shows what is fitted
        return self.setup.lines if self.setup is not None else (str(self.spec),)

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
    def kernel_arrays(self) -> Any:
        """The model as the precompiled kernel reads it
        (:class:`~bayesmix.model.kernel_plan.KernelArrays`), or why it is outside the
        kernel's class (a sentence); see :mod:`bayesmix.model.kernel_plan`."""
        stats = self.marginal_stats
        if stats is not None and not isinstance(stats, MarginalStats):
            return "a nested pair of random intercepts integrated out"
        if self.nonlinear is not None or self.predictors or self.autocor_structure is not None:
            return "a nonlinear, distributional or AR(1) model"
        return kernel_plan.kernel_arrays(self.design, self.family.name, self.link,
                                         self.prior_dict, self.centered, self.y, self.trials,
                                         self.weights, self.level_covariates, marginal=stats)

    @functools.cached_property
    def conditional_pymc_model(self) -> pm.Model:
        """The PyMC model with its level effects as parameters (for prior predictive draws)."""
        return self._build(False) if self.marginal else self.pymc_model

    @functools.cached_property
    def marginal_stats(self) -> MarginalStats | NestedStats | PartialStats | None:
        """The per-level cross-products of a marginal model (:mod:`bayesmix.model.integrated`)."""
        return model_stats(self.design, self.y, self.marginal_priors, self.centered) \
            if self.marginal else None

    @functools.cached_property
    def integrated_blocks(self) -> tuple[int, ...]:
        """Indices (in ``design.blocks``) of the blocks whose level effects are integrated
        out of the sampled model: all of them, a nested pair among other factors
        (:mod:`bayesmix.model.integrated_pair`), or none."""
        if not self.marginal:
            return ()
        pair = crossed_nested_pair(self.design)  # None for (1 | a/b) alone: two blocks only
        return tuple(sorted(pair)) if pair else tuple(range(len(self.design.blocks)))

    def stored_names(self) -> list[str]:
        """The deterministics the sampler stores besides the free variables."""
        return stored_names(self.design, self.family.name) + [
            v for lp in self.predictors for v in stored_names(lp.design, lp=lp.name)]

    def refit_obstacle(self) -> str | None:
        """What keeps :meth:`on_rows` (exact cross-validation) from refitting this model on a
        subset of its rows, in words, or None."""
        if self.nonlinear is not None:
            return "bm.NonLinear"
        if self.predictors:
            return "bm.Formula (a formula for a family parameter)"
        if self.autocor_structure is not None:
            return "AR(1) residuals"
        return None

    def require_refit(self) -> None:
        """Raise, before any refit, if :meth:`on_rows` cannot refit this model."""
        what = self.refit_obstacle()
        if what is not None:
            raise BayesmixError(f"exact cross-validation (kfold, logo) does not support models "
                                f"with {what} yet; use fit.loo() for this model")

    def on_rows(self, rows: np.ndarray) -> "ModelSpec":
        """This model on a subset of its rows (positions), every level and column kept: the
        model of a k-fold refit. Family, link, priors, centring, the ordinal categories,
        observation weights and the integration of level effects are this model's, so the
        refit is built, compiled (the compile cache is keyed by the graph's structure) and
        sampled by the path every fit takes (:func:`bayesmix.inference.sample.sample_model`).

        Models that a subset of rows cannot refit raise: nonlinear and distributional models
        (their held-out predictions need each parameter's design) and AR(1) residuals (holding
        rows out breaks the series).

        Examples
        --------
        >>> import bayesmix as bm
        >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
        >>> fold = m.on_rows(np.arange(100))
        >>> fold.design.n, fold.y.shape, fold.centered == m.centered
        (100, (100,), True)
        """
        self.require_refit()
        rows = np.asarray(rows)
        fold = copy.copy(self)
        for name, attr in vars(ModelSpec).items():  # every cached value was for the full data
            if isinstance(attr, functools.cached_property):
                fold.__dict__.pop(name, None)
        fold.design = restrict_rows(self.design, rows)
        fold.y = self.y[rows]
        fold.trials = None if self.trials is None else self.trials[rows]
        fold.weights = None if self.weights is None else self.weights[rows]
        fold.data = self.data.loc[fold.design.rows]
        fold._compiled = None
        return fold

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
        return clean_draws(idata, functools.partial(self._derive, marginal=False))

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


def _resolve_marginal(model: ModelSpec, marginalize: bool | None,
                      centered: dict[str, bool] | None) -> bool:
    """Whether the model integrates its level effects out (see the ``marginalize`` argument).
    By default not when ``centered`` is given, except where it names only factors that stay
    in the sampler beside an integrated nested pair (:mod:`bayesmix.model.integrated_pair`)."""
    obstacle = marginal_obstacle(model.design, model.family, model.link,
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



def _check_response_type(family: Family, data: pd.DataFrame, spec: FormulaSpec) -> None:
    """Refuse a categorical, text or boolean response column for a family of numbers (0/1
    families read two labels, ordinal ones ordered categories; a category's codes or text
    parsed as numbers would otherwise fit silently)."""
    name = spec.response.expr
    labels = family.ordinal or family.response in ("binary", "successes")
    if (spec.response.kind != "single" or labels
            or not isinstance(data, pd.DataFrame) or name not in data.columns):
        return
    col = data[name]
    if isinstance(col.dtype, pd.CategoricalDtype):
        what = f"categorical (categories {', '.join(map(repr, col.cat.categories[:4]))})"
    elif pd.api.types.is_bool_dtype(col):
        what = "boolean"
    elif not pd.api.types.is_numeric_dtype(col):
        what = f"text ({col.dropna().astype(str).head(3).map(repr).str.cat(sep=', ')}, ...)"
    else:
        return
    raise ResponseError(
        f"the response {name!r} is {what}, but family {family.name!r} needs numbers. "
        f"Convert it (pd.to_numeric(df[{name!r}]) for numbers stored as text), or choose a "
        "family for labels: 'bernoulli' for two, 'cumulative' for ordered categories")


def _check_response_varies(family: Family, y: np.ndarray, name: str) -> None:
    """A response with one value leaves a residual SD of zero: nothing to fit; one beyond
    1e150 overflows every sum of squares (the starting fits' included)."""
    if len(y) and np.abs(y).max() > 1e150:
        raise ResponseError(f"the response {name!r} has values as large as "
                            f"{np.abs(y).max():.3g}, beyond what double precision can model "
                            "(their squares overflow); rescale it")
    if "sigma" in family.params and len(y) and np.ptp(y) == 0:
        raise ResponseError(f"the response {name!r} has the same value ({y[0]:g}) in all "
                            f"{len(y)} rows; family {family.name!r} cannot estimate its "
                            "residual SD 'sigma'. Check the column (or the rows kept)")


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


def clean_draws(idata: xr.DataTree,
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
        internal = [v for v in ds.data_vars if varnames.is_internal(str(v))]
        ds = ds.drop_vars(internal)
        unused = [d for d in ds.coords if varnames.is_internal(str(d))]
        ds = ds.drop_vars(unused)
        children[name] = ds
    return xr.DataTree.from_dict(children)
