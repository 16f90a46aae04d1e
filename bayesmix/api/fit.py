""":class:`FitResult`: posterior summaries in lme4's vocabulary, on top of the ArviZ DataTree."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import xarray as xr

from bayesmix.inference.convergence import SamplingReport, level_diagnostics, sampling_report
from bayesmix.inference.sample import SamplerSettings
from bayesmix.results import tables
from bayesmix.text import Summary

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["FitResult"]

@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted model: the ArviZ DataTree plus lme4-style accessors.

    Examples
    --------
    >>> import bayesmix as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff")).fit(
    ...     draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    >>> list(fit.varcorr()["group"])
    ['Batch', 'Residual']
    """

    model: "ModelSpec"
    idata: xr.DataTree
    settings: SamplerSettings
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    # -- tables ---------------------------------------------------------------------------------
    def fixef(self, prob: float = 0.95, interval: str = "eti",
              dpar: str | None = None) -> pd.DataFrame:
        """Fixed effects: one row per coefficient (lme4 names).

        Columns: mean, sd, interval bounds (``eti95_lb``/``eti95_ub``, or ``hdi...``),
        ess_bulk, ess_tail, r_hat, mcse_mean. ``dpar`` picks a distributional or nonlinear
        parameter's formula (``"sigma"``, ``"Asym"``; on its link scale); for a nonlinear
        model ``dpar=None`` lists every nonlinear parameter's coefficients as
        ``"Asym:(Intercept)"``.

        Examples
        --------
        >>> fit.fixef().loc["Days", ["mean", "eti95_lb", "eti95_ub"]]  # doctest: +SKIP
        >>> fit.fixef(prob=0.9, interval="hdi")  # doctest: +SKIP
        >>> fit.fixef(dpar="sigma")  # with bm.Formula("y ~ x", "sigma ~ x")  # doctest: +SKIP
        """
        return tables.fixef(self.idata, self.model, prob, interval, dpar)

    def varcorr(self, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """Variance components: group SDs, correlations and the residual SD.

        Columns: group, term, term2, kind ("sd" | "cor" | "ar"), mean, sd, interval bounds,
        ess_bulk, ess_tail, r_hat. The residual SD of a gaussian model is the row with
        group "Residual"; other families' parameters (student_t's scale ``sigma``, which is
        not the SD of the residuals, included) are in :meth:`family_params`. With
        ``autocor=bm.AR1(...)`` the row of kind "ar" (term "AR(1) rho") is the residual
        correlation at a time gap of 1. Blocks of a distributional or nonlinear parameter's
        formula are listed with their model name as group, e.g. ``"sigma_Subject"``.

        Examples
        --------
        >>> vc = fit.varcorr()  # doctest: +SKIP
        >>> vc[vc.kind == "cor"]  # correlations, one row per pair  # doctest: +SKIP
        """
        return tables.varcorr(self.idata, self.model, prob, interval)

    def ranef(self, summary: bool = False, prob: float = 0.95,
              interval: str = "eti") -> dict[str, pd.DataFrame]:
        """Level effects per grouping factor.

        ``summary=False``: levels x terms posterior means (lme4's ``ranef``);
        ``summary=True``: long format with level, term, mean, sd and interval bounds.
        Level labels are exactly those of the data. A distributional or nonlinear
        parameter's blocks are keyed ``"<parameter>_<group>"`` (``"sigma_Subject"``). A
        ``gr(g, cov=A)`` block whose levels differ from another block's of ``g`` (relatives
        without records) has its own table, keyed ``"g__A"``.

        Examples
        --------
        >>> fit.ranef()["Subject"].loc[308]  # doctest: +SKIP
        >>> fit.ranef(summary=True)["Subject"].head()  # doctest: +SKIP
        """
        return tables.ranef(self.idata, self.model, summary, prob, interval)

    def coef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``coef()``: fixed effects plus each level's random effects (posterior means).

        A distributional or nonlinear parameter's groups (``"Asym_Tree"``) combine its own
        fixed effects with its level effects: each tree's Asym.

        Examples
        --------
        >>> fit.coef()["Subject"][["(Intercept)", "Days"]].head()  # doctest: +SKIP
        """
        return tables.coef(self.idata, self.model)

    def family_params(self, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """The family's parameters, one row each, with the columns of :meth:`fixef`.

        Rows are named as the posterior variables (``sigma``, ``nu``, ``shape``, ``phi``,
        ``theta``, ``zi``, ``hu``, and ``ar`` with AR(1) residuals); an ordinal model has one
        row per cutpoint, named by the categories it separates (``"1|2"``, ``"2|3"``..., as R's
        ``ordinal::clm``). A parameter with its own formula is not scalar and is left out (see
        ``fixef(dpar=...)``).

        Examples
        --------
        >>> fit.family_params().loc["theta", ["mean", "eti95_lb", "eti95_ub"]]  # doctest: +SKIP
        """
        return tables.family_params(self.idata, self.model, prob, interval)

    # -- diagnostics ----------------------------------------------------------------------------
    @functools.cached_property
    def _levels(self) -> dict[str, Any]:
        # the level effects' R-hat and ESS take seconds for thousands of levels: once per fit
        return level_diagnostics(self.posterior, self.model.all_blocks)

    def sampling_report(self) -> SamplingReport:
        """Divergences, tree depth, worst R-hat and ESS over the non-level parameters."""
        return sampling_report(self.idata, self.model.all_blocks, self.settings, self._levels)

    def check(self) -> Any:
        """Every sampling problem (R-hat, ESS, divergences, tree depth, E-BFMI) named in formula
        terms with remedies in the order to try them, and variance components or correlations
        at their boundary (lme4's singular fit); see :mod:`bayesmix.diagnostics.checks`.

        Examples
        --------
        >>> print(fit.check())  # doctest: +SKIP
        """
        from bayesmix.diagnostics.checks import check_fit

        return check_fit(self.idata, self.model, self.settings, levels=self._levels)

    def residuals(self, type: str = "auto", n_sims: int = 1000,
                  random_seed: int | None = 0) -> pd.Series:
        """Residuals per row: "response", "pearson", "quantile" or "auto"; see
        :func:`bayesmix.diagnostics.residuals.residuals`."""
        from bayesmix.diagnostics.residuals import residuals

        return residuals(self.idata, self.model, type, n_sims, random_seed)

    def simulated_residuals(self, n_sims: int = 1000, random_seed: int | None = 0) -> Any:
        """DHARMa-style simulated quantile residuals with ``.tests()``; see
        :func:`bayesmix.diagnostics.residuals.simulated_residuals`."""
        from bayesmix.diagnostics.residuals import simulated_residuals

        return simulated_residuals(self.idata, self.model, n_sims, random_seed)

    def overdispersion(self, n_sims: int = 1000, random_seed: int | None = 0) -> Any:
        """Overdispersion test of a count or binomial model: ``ratio``, ``p_value``,
        ``verdict``; see :func:`bayesmix.diagnostics.residuals.overdispersion`."""
        from bayesmix.diagnostics.residuals import overdispersion

        return overdispersion(self.idata, self.model, n_sims, random_seed)

    def influence(self, draws: int | None = None) -> Any:
        """Pareto k per row and per group, Cook's distance analogue per group; see
        :func:`bayesmix.diagnostics.influence.influence`."""
        from bayesmix.diagnostics.influence import influence

        return influence(self.idata, self.model, draws)

    def summary(self, prob: float = 0.95, interval: str = "eti") -> Summary:
        """lme4-style summary: model, data, random effects, fixed effects, diagnostics."""
        from bayesmix.results.printing import render_summary

        return Summary(render_summary(self.idata, self.model, self.settings, self.timing,
                                      self.sampling_report(), prob, interval))

    # -- pictures -------------------------------------------------------------------------------
    def plot_caterpillar(self, group: str | None = None, prob: float = 0.95) -> Any:
        """Level effects with intervals; see :func:`bayesmix.plots.plot_caterpillar`."""
        from bayesmix.plots import plot_caterpillar

        return plot_caterpillar(self.idata, self.model, group, prob)

    def plot_shrinkage(self, group: str | None = None, terms: tuple[str, str] | None = None,
                       kind: str = "auto") -> Any:
        """No pooling vs partial pooling per level; see :func:`bayesmix.plots.plot_shrinkage`."""
        from bayesmix.plots import plot_shrinkage

        return plot_shrinkage(self.idata, self.model, group, terms, kind)

    def plot_fixef(self, intercept: bool | None = None, prob: float = 0.95) -> Any:
        """Forest plot of the fixed effects; see :func:`bayesmix.plots.plot_fixef`."""
        from bayesmix.plots import plot_fixef

        return plot_fixef(self.idata, self.model, intercept, prob)

    plot_forest = plot_fixef

    def plot_residuals(self, kind: str = "all", type: str = "auto", n_sims: int = 1000,
                       random_seed: int | None = 0, k_groups: int = 20) -> Any:
        """Residuals vs fitted, scale-location, Q-Q, vs predictors, per group (the
        ``k_groups`` levels furthest off); see :func:`bayesmix.plots.plot_residuals`."""
        from bayesmix.plots import plot_residuals

        return plot_residuals(self.idata, self.model, kind, type, n_sims, random_seed, k_groups)

    def plot_qq(self, kind: str = "residuals", group: str | None = None, type: str = "auto",
                prob: float = 0.95, random_seed: int | None = 0) -> Any:
        """Normal Q-Q of residuals or (``kind="ranef"``) of random effects; see
        :func:`bayesmix.plots.plot_qq`."""
        from bayesmix.plots import plot_qq

        return plot_qq(self.idata, self.model, kind, group, type, prob, random_seed)

    def plot_simulated_residuals(self, n_sims: int = 1000, random_seed: int | None = 0) -> Any:
        """DHARMa-style uniform Q-Q and residuals vs predicted; see
        :func:`bayesmix.plots.plot_simulated_residuals`."""
        from bayesmix.plots import plot_simulated_residuals

        return plot_simulated_residuals(self.idata, self.model, n_sims, random_seed)

    def plot_ppc(self, kind: str = "auto", num_samples: int = 50, n_sims: int = 500,
                 random_seed: int | None = 0) -> Any:
        """Posterior predictive check (density, ecdf, bars, rootogram, loo_pit); see
        :func:`bayesmix.plots.plot_ppc`."""
        from bayesmix.plots import plot_ppc

        return plot_ppc(self.idata, self.model, kind, num_samples, n_sims, random_seed)

    def plot_influence(self, group: str | None = None, n_label: int = 3) -> Any:
        """Pareto k and Cook's distance index plots; see :func:`bayesmix.plots.plot_influence`."""
        from bayesmix.plots import plot_influence

        return plot_influence(self.idata, self.model, group, n_label)

    def plot_diagnostics(self, n_sims: int = 500, random_seed: int | None = 0) -> Any:
        """One-figure dashboard; see :func:`bayesmix.plots.plot_diagnostics`."""
        from bayesmix.plots import plot_diagnostics

        return plot_diagnostics(self.idata, self.model, n_sims, random_seed)

    # -- predictions (bayesmix.posterior.predict, bayesmix.posterior.effects) ----------------------------------
    def predict(self, newdata: pd.DataFrame | None = None, kind: str = "mean",
                re: str = "include", draws: int | None = None, random_seed: int | None = None,
                summary: bool = False, prob: float = 0.95) -> Any:
        """Predictions (linear predictor, mean or response draws) for the training rows or
        new data; see :func:`bayesmix.posterior.predict.predict`.

        Examples
        --------
        >>> fit.predict(df.iloc[:3], summary=True)  # doctest: +SKIP
        """
        from bayesmix.posterior.predict import predict

        return predict(self.idata, self.model, newdata, kind, re, draws, random_seed, summary, prob)

    def posterior_predictive(self, random_seed: int | None = None,
                             draws: int | None = None) -> xr.DataTree:
        """``idata`` plus posterior_predictive and log_likelihood groups (ArviZ PPC/LOO).

        Examples
        --------
        >>> dt = fit.posterior_predictive(random_seed=1)  # doctest: +SKIP
        """
        from bayesmix.posterior.predict import posterior_predictive

        return posterior_predictive(self.idata, self.model, random_seed, draws)

    def log_likelihood(self) -> xr.DataTree:
        """``idata`` plus the pointwise log_likelihood group.

        Examples
        --------
        >>> arviz_stats.loo(fit.log_likelihood())  # doctest: +SKIP
        """
        from bayesmix.posterior.predict import log_likelihood

        return log_likelihood(self.idata, self.model)

    def conditional_effects(self, x: str, **kwargs: Any) -> pd.DataFrame:
        """Predicted response of a typical group over a grid of ``x``; see
        :func:`bayesmix.posterior.effects.conditional_effects`.

        Examples
        --------
        >>> fit.conditional_effects("Days", by_group="Subject")  # doctest: +SKIP
        """
        from bayesmix.posterior.effects import conditional_effects

        return conditional_effects(self.idata, self.model, x, **kwargs)

    def marginal_effects(self, x: str, **kwargs: Any) -> pd.DataFrame:
        """Population-averaged predicted response over a grid of ``x``; see
        :func:`bayesmix.posterior.effects.marginal_effects`.

        Examples
        --------
        >>> fit.marginal_effects("period")  # doctest: +SKIP
        """
        from bayesmix.posterior.effects import marginal_effects

        return marginal_effects(self.idata, self.model, x, **kwargs)

    def effect_ratios(self, x: str, **kwargs: Any) -> pd.DataFrame:
        """Odds ratios / rate ratios / differences of each level of ``x`` against its
        reference, conditional and marginal; see :func:`bayesmix.posterior.effects.effect_ratios`.

        Examples
        --------
        >>> fit.effect_ratios("period")  # doctest: +SKIP
        """
        from bayesmix.posterior.effects import effect_ratios

        return effect_ratios(self.idata, self.model, x, **kwargs)

    def plot_effects(self, x: str, kind: str = "conditional", by_group: str | bool = False,
                     **kwargs: Any) -> Any:
        """Predicted response against ``x`` with bands; see :func:`bayesmix.posterior.effects.plot_effects`.

        Examples
        --------
        >>> fit.plot_effects("period", kind="both").savefig("period.png")  # doctest: +SKIP
        """
        from bayesmix.plots.effects import plot_effects

        return plot_effects(self.idata, self.model, x, kind, by_group, **kwargs)

    # -- interpretation (bayesmix.posterior.interpret, bayesmix.posterior.hypothesis) ----------------------------
    def icc(self, prob: float = 0.95) -> pd.DataFrame:
        """Intraclass correlation per grouping factor; see :func:`bayesmix.posterior.interpret.icc`.

        Examples
        --------
        >>> fit.icc().loc["Subject", "mean"]  # doctest: +SKIP
        """
        from bayesmix.posterior.interpret import icc

        return icc(self.idata, self.model, prob)

    def r2(self, prob: float = 0.95) -> pd.DataFrame:
        """Bayesian, marginal and conditional R^2; see :func:`bayesmix.posterior.interpret.r2`.

        Examples
        --------
        >>> fit.r2()  # doctest: +SKIP
        """
        from bayesmix.posterior.interpret import r2

        return r2(self.idata, self.model, prob)

    def hypothesis(self, hypotheses: str | list[str], prob: float = 0.95,
                   prior_draws: int = 4000, random_seed: int | None = 0) -> pd.DataFrame:
        """brms-style hypothesis tests; see :func:`bayesmix.posterior.hypothesis.hypothesis`.

        Examples
        --------
        >>> fit.hypothesis(["Days > 8", "2*Days - (Intercept) > 0"])  # doctest: +SKIP
        """
        from bayesmix.posterior.hypothesis import hypothesis

        return hypothesis(self.idata, self.model, hypotheses, prob, prior_draws, random_seed)

    def contrasts(self, factor: str, scale: str = "linear", **kwargs: Any) -> pd.DataFrame:
        """Pairwise differences between a factor's levels; see
        :func:`bayesmix.posterior.interpret.contrasts`.

        Examples
        --------
        >>> fit.contrasts("period", scale="response")  # doctest: +SKIP
        """
        from bayesmix.posterior.interpret import contrasts

        return contrasts(self.idata, self.model, factor, scale, **kwargs)

    # -- model comparison (bayesmix.validation.compare, bayesmix.validation.crossval) ------------------------------
    def loo(self, pointwise: bool = True, integrate: bool = True) -> Any:
        """PSIS-LOO-CV, high-k rows re-estimated with their level effects integrated out, with
        Pareto k advice; see :func:`bayesmix.validation.compare.loo`.

        Examples
        --------
        >>> fit.loo().elpd  # doctest: +SKIP
        """
        from bayesmix.validation.compare import loo

        return loo(self.idata, self.model, pointwise, integrate)

    def waic(self) -> Any:
        """WAIC from the pointwise log-likelihood; see :func:`bayesmix.validation.compare.waic`.

        Examples
        --------
        >>> fit.waic().elpd  # doctest: +SKIP
        """
        from bayesmix.validation.compare import waic

        return waic(self.idata, self.model)

    def kfold(self, k: int = 10, group: Any = None, **kwargs: Any) -> Any:
        """Exact (grouped) k-fold cross-validation by refitting; see
        :func:`bayesmix.validation.crossval.kfold`.

        Examples
        --------
        >>> fit.kfold(k=5, group="Subject", random_seed=1).elpd  # doctest: +SKIP
        """
        from bayesmix.validation.crossval import kfold

        return kfold(self.idata, self.model, self.settings, k, group, **kwargs)

    def logo(self, group: Any = None, **kwargs: Any) -> Any:
        """Leave-one-group-out cross-validation; see :func:`bayesmix.validation.crossval.logo`.

        Examples
        --------
        >>> fit.logo("Subject").elpd  # doctest: +SKIP
        """
        from bayesmix.validation.crossval import logo

        return logo(self.idata, self.model, self.settings, group, **kwargs)

    # -- refits --------------------------------------------------------------------------------
    def update(self, formula: Any = None, data: pd.DataFrame | None = None,
               **changes: Any) -> "FitResult":
        """Refit with a changed formula, data, model arguments or sampler settings (lme4's and
        brms's ``update``), through the same ``bm.Model(...).fit(...)`` path as any fit.

        ``formula`` may use ``.`` for the old formula's sides (:func:`~bayesmix.spec.update.
        update_formula`: ``". ~ . + x"``, ``"~ . - (1 | g) + (1 + x | g)"``). ``changes`` are
        arguments of :class:`bayesmix.Model` (``family=``, ``priors=``...) or of ``fit``
        (``draws=``, ``random_seed=``...). Everything else is this fit's: the data, family,
        link, user priors, weights and sampler settings; default priors, the centring and the
        integration of level effects are chosen afresh for the new model and data (brms's
        ``update`` keeps the old data-dependent default priors). A refit of the same
        structure reuses the compiled model (the compile cache is keyed by structure).

        Examples
        --------
        >>> slopes = fit.update("~ . - (1 | Subject) + (Days | Subject)")  # doctest: +SKIP
        >>> longer = fit.update(draws=2000, random_seed=2)  # doctest: +SKIP
        """
        from bayesmix.errors import DataError
        from bayesmix.spec.formula import parse_formula
        from bayesmix.spec.update import update_formula

        sampler_keys = {f.name for f in dataclasses.fields(SamplerSettings)}
        settings = {**dataclasses.asdict(self.settings),
                    **{k: v for k, v in changes.items() if k in sampler_keys}}
        args = self.model.constructor_args()
        structural = formula is not None or data is not None or "family" in changes
        if structural:  # choices made for the old design do not carry over
            args.pop("centered")
            args.pop("marginalize")
        if formula is not None:
            old = args["formula"]
            args["formula"] = update_formula(old, formula) if isinstance(formula, str) and \
                isinstance(old, str) else formula
        if data is not None:
            args["data"] = data
        elif isinstance(args["formula"], str):  # the fit keeps only the columns it used
            missing = [v for v in parse_formula(args["formula"]).variables
                       if v not in args["data"].columns]
            if missing:
                raise DataError(f"the updated formula uses {', '.join(map(repr, missing))}, "
                                "which the fitted model did not: a fit keeps only the columns "
                                "its model uses. Pass the data again: fit.update(..., data=df)")
        args.update({k: v for k, v in changes.items() if k not in sampler_keys})
        return type(self.model)(**args).fit(**settings)

    # -- persistence (bayesmix.results.persist) ------------------------------------------------------
    def save(self, path: Any, overwrite: bool = False) -> Any:
        """Write the fit to a directory that :func:`bayesmix.load` reads back exactly.

        Examples
        --------
        >>> fit.save("sleep.bayesmix")  # doctest: +SKIP
        """
        from bayesmix.results.persist import save

        return save(self.idata, self.model, self.settings, self.timing, path, overwrite)

    def __repr__(self) -> str:
        return (f"<FitResult {'; '.join(self.model.formula_lines)!r} "
                f"({self.model.family.name}), "
                f"{self.settings.chains} chains x {self.settings.draws} draws>")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(repr(self))
