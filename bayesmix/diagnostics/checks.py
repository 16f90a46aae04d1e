""":func:`check_fit`: every sampling problem and boundary estimate of a fit, in formula terms,
with remedies.

Sampling problems (R-hat > 1.01, bulk or tail ESS below 100 per chain, divergences, tree-depth
saturation, E-BFMI < 0.3) are tied to the terms involved, and the remedies come in a fixed order:
switch the parametrisation of that grouping factor, rescale predictors, raise ``target_accept``,
tune longer, simplify the random-effects structure, tighten the priors of the SDs. Boundary
estimates (:mod:`bayesmix.diagnostics.boundary`) are the Bayesian analogue of lme4's singular fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import arviz_stats as az
import numpy as np
import xarray as xr

from bayesmix import varnames
from bayesmix.diagnostics.boundary import BoundaryFlag, boundary_flags
from bayesmix.errors import ConvergenceWarning, SingularFitWarning, warn
from bayesmix.inference.convergence import (
    ESS_MIN_PER_CHAIN,
    RHAT_MAX,
    SamplingReport,
    level_diagnostics,
    parameter_label,
    population_vars,
    sampling_report,
)
from bayesmix.inference.sample import SamplerSettings
from bayesmix.model.parametrization import centre_threshold, information_ratios, rule_may_centre
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["Problem", "CheckReport", "check_fit", "ebfmi", "predictor_scales",
           "warn_on_fit", "EBFMI_MIN"]

EBFMI_MIN = 0.3
# Divergences concentrated this many posterior SDs below the mean of log(SD) mark a funnel.
FUNNEL_SHIFT = 0.3


@dataclass(frozen=True)
class Problem:
    """One sampling problem: ``kind`` (divergences | rhat | ess_bulk | ess_tail | treedepth |
    ebfmi), a sentence naming the parameters, and the random-effects blocks involved."""

    kind: str
    message: str
    blocks: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    """Result of :meth:`FitResult.check`: ``str(report)`` names every problem and its remedies.

    Examples
    --------
    >>> report = fit.check()  # doctest: +SKIP
    >>> report.ok, [p.kind for p in report.problems]  # doctest: +SKIP
    (False, ['divergences'])
    >>> print(report)  # doctest: +SKIP
    """

    formula: str
    sampling: SamplingReport
    problems: tuple[Problem, ...]
    remedies: tuple[str, ...]
    boundary: tuple[BoundaryFlag, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when neither sampling problems nor boundary estimates were found."""
        return not self.problems and not self.boundary

    def text(self) -> str:
        lines = [f"Checks of {self.formula}",
                 f"Sampling: {self.sampling.text().splitlines()[0]}"]
        if self.problems:
            lines.append("Sampling problems:")
            lines += [f"  {i}. {p.message}" for i, p in enumerate(self.problems, 1)]
            lines.append("Remedies, in the order to try them:")
            lines += [f"  {i}. {r}" for i, r in enumerate(self.remedies, 1)]
        else:
            lines.append("No sampling problems (R-hat, ESS, divergences, tree depth, E-BFMI).")
        if self.boundary:
            lines.append("Boundary estimates (the Bayesian analogue of lme4's singular fit, "
                         "isSingular):")
            for flag in self.boundary:
                lines.append(f"  - {flag.message}")
                lines.append(f"    {flag.advice}")
        else:
            lines.append("No variance component or correlation at its boundary.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()


def ebfmi(idata: xr.DataTree) -> np.ndarray:
    """Energy Bayesian fraction of missing information per chain (NaN without energy draws).

    E-BFMI = sum((E_t - E_{t-1})^2) / sum((E_t - mean E)^2); below 0.3 the momentum resampling
    explores the energy distribution poorly (Betancourt 2016).

    Examples
    --------
    >>> ebfmi(fit.idata)  # doctest: +SKIP
    array([1.02, 0.97])
    """
    if "sample_stats" not in idata.children or "energy" not in idata["sample_stats"]:
        return np.array([np.nan])
    energy = idata["sample_stats"]["energy"].transpose("chain", "draw").values.astype(float)
    num = np.sum(np.diff(energy, axis=1) ** 2, axis=1)
    den = np.sum((energy - energy.mean(axis=1, keepdims=True)) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def predictor_scales(design: Any) -> dict[str, float]:
    """Fixed-effect columns whose scale hampers NUTS: SD > 10 or < 0.1, or the extremes when
    SDs differ more than 100-fold. 0/1 columns (dummies) are never named.

    Examples
    --------
    >>> predictor_scales(bm.Model("y ~ income + age + (1 | g)", df).design)  # doctest: +SKIP
    {'income': 10234.5}
    """
    sds = {}
    for j, name in enumerate(design.coef_names):
        col = design.X[:, j]
        if name == "(Intercept)" or np.isin(col, (0.0, 1.0)).all():
            continue
        sd = float(np.std(col))
        if sd > 0:
            sds[name] = sd
    flagged = {k: v for k, v in sds.items() if v > 10 or v < 0.1}
    if len(sds) >= 2 and max(sds.values()) > 100 * min(sds.values()):
        for pick in (max, min):
            key = pick(sds, key=sds.get)
            flagged[key] = sds[key]
    return flagged


def _block_of(label: str, blocks: Any) -> tuple[str, ...]:
    return tuple(b.name for b in blocks if label.endswith(str(b.term)))


def _population_problems(posterior: xr.Dataset, blocks: Any, chains: int) -> list[Problem]:
    """One problem per (diagnostic, parameter) over the population-level parameters."""
    found: dict[str, list[tuple[str, float]]] = {"rhat": [], "ess_bulk": [], "ess_tail": []}
    ess_min = ESS_MIN_PER_CHAIN * chains
    for name, da in population_vars(posterior, blocks).items():
        with np.errstate(invalid="ignore", divide="ignore"):
            values = {"rhat": az.rhat(da), "ess_bulk": az.ess(da, method="bulk"),
                      "ess_tail": az.ess(da, method="tail")}
        for key, arr in values.items():
            flat = np.atleast_1d(np.asarray(arr, dtype=float)).ravel()
            for i, v in enumerate(flat):
                if np.isfinite(v) and ((v > RHAT_MAX) if key == "rhat" else (v < ess_min)):
                    found[key].append((parameter_label(name, da, i, blocks), float(v)))
    problems = []
    for key, hits in found.items():
        if not hits:
            continue
        hits.sort(key=lambda h: -h[1] if key == "rhat" else h[1])
        listing = "; ".join(f"{label} ({v:.3f})" if key == "rhat" else f"{label} ({v:.0f})"
                            for label, v in hits)
        involved = tuple(dict.fromkeys(b for label, _ in hits for b in _block_of(label, blocks)))
        if key == "rhat":
            text = (f"R-hat above {RHAT_MAX} (the chains disagree) for {listing}")
        else:
            what = "bulk" if key == "ess_bulk" else "tail (5% and 95% quantiles)"
            text = (f"{what} effective sample size below {ESS_MIN_PER_CHAIN} per chain "
                    f"({ess_min} in all) for {listing}")
        problems.append(Problem(key, text, involved))
    return problems


def _level_problems(levels: dict[str, tuple[xr.DataArray, xr.DataArray]], blocks: Any,
                    chains: int) -> list[Problem]:
    """Worst R-hat and bulk ESS of each block's level effects, per term (``levels``:
    :func:`bayesmix.inference.convergence.level_diagnostics`)."""
    problems = []
    for block in blocks:
        if block.name not in levels:
            continue
        dims = (varnames.level_dim(block), varnames.term_dim(block))
        rhat, ess = (np.asarray(v.transpose(*dims)) for v in levels[block.name])
        for k, term in enumerate(block.coef_names):
            worst_r, worst_e = np.nanmax(rhat[:, k]), np.nanmin(ess[:, k])
            where = f"the {block.group} levels' {term} effects in {block.term}"
            if np.isfinite(worst_r) and worst_r > RHAT_MAX:
                level = block.levels[int(np.nanargmax(rhat[:, k]))]
                problems.append(Problem("rhat", f"R-hat up to {worst_r:.3f} for {where} "
                                                f"(worst: level {level!r})", (block.name,)))
            if np.isfinite(worst_e) and worst_e < ESS_MIN_PER_CHAIN * chains:
                problems.append(Problem("ess_bulk", f"bulk ESS down to {worst_e:.0f} for "
                                                    f"{where}", (block.name,)))
    return problems


def _funnel_blocks(posterior: xr.Dataset, diverging: np.ndarray, blocks: Any) -> list[tuple]:
    """(block, term, shift) where divergent draws sit at small SDs: the funnel signature."""
    out = []
    for block in blocks:
        sd = posterior[varnames.sd(block)].transpose("chain", "draw", varnames.term_dim(block)).values
        logsd = np.log(np.maximum(sd, 1e-300)).reshape(-1, block.n_terms)
        flat = diverging.reshape(-1)
        for k, term in enumerate(block.coef_names):
            spread = np.std(logsd[:, k])
            if spread <= 0:
                continue
            shift = (np.mean(logsd[flat, k]) - np.mean(logsd[:, k])) / spread
            if shift < -FUNNEL_SHIFT:
                out.append((block, term, float(shift)))
    return out


def _sampler_problems(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings,
                      report: SamplingReport) -> list[Problem]:
    blocks = model.design.blocks
    posterior = posterior_of(idata)
    problems = []
    if report.divergences:
        stats = idata["sample_stats"]
        diverging = stats["diverging"].transpose("chain", "draw").values.astype(bool)
        # integrated-out level effects leave no funnel to name
        funnels = _funnel_blocks(posterior, diverging, [
            b for i, b in enumerate(blocks) if i not in model.integrated_blocks])
        share = 100 * report.divergences / report.n_draws
        plural = "s" if report.divergences > 1 else ""
        text = (f"{report.divergences} divergent transition{plural} ({share:.1f}% of the "
                "draws)")
        if funnels:
            where = "; ".join(f"the SD of {t} in {b.term}" for b, t, _ in funnels)
            text += (f", concentrated at small values of {where}: a funnel, where the level "
                     "effects and their SD cannot both be sampled with one step size")
            involved = tuple(dict.fromkeys(b.name for b, _, _ in funnels))
        else:
            text += "; the estimates may be biased"
            involved = tuple(b.name for b in blocks)
        problems.append(Problem("divergences", text, involved))
    if report.treedepth_hits:
        share = 100 * report.treedepth_hits / report.n_draws
        problems.append(Problem(
            "treedepth", f"{report.treedepth_hits} draws ({share:.1f}%) hit the maximum tree "
            f"depth ({settings.max_treedepth}): the posterior has very different scales "
            "or strong correlations, and sampling is slow", tuple(b.name for b in blocks)))
    low = [(c, v) for c, v in enumerate(ebfmi(idata)) if np.isfinite(v) and v < EBFMI_MIN]
    if low:
        chains = ", ".join(f"chain {c} ({v:.2f})" for c, v in low)
        problems.append(Problem(
            "ebfmi", f"E-BFMI below {EBFMI_MIN} in {chains}: the sampler explores the "
            "energy distribution poorly, typical of a funnel or heavy-tailed SDs",
            tuple(b.name for b in blocks)))
    return problems


def _centering_key(block: Any, blocks: Any) -> str:
    shared = sum(b.group == block.group for b in blocks) > 1
    return block.name if shared else block.group


def _remedies(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings,
              problems: list[Problem], flags: list[BoundaryFlag]) -> list[str]:
    """Concrete remedies for ``problems``, in the order they should be tried."""
    blocks = model.design.blocks
    kinds = {p.kind for p in problems}
    involved = [b for b in blocks if any(b.name in p.blocks for p in problems)]
    out = []
    ratios = information_ratios(model.design, model.family, model.link, model.y, model.trials) \
        if involved else ()
    for block in involved:
        i = blocks.index(block)
        key = _centering_key(block, blocks)
        if i in model.integrated_blocks:  # not in the sampler: no parametrisation to switch
            continue
        if model.centered[i]:
            out.append(f"Sample {block.term} non-centred (it is centred now): "
                       f"bm.Model(..., centered={{{key!r}: False}}). This removes the funnel "
                       f"between the {block.group} effects and their SD when the data say "
                       f"little about each level of {block.group}.")
        elif ratios[i] >= 1.0 and rule_may_centre(  # below 1: a level is barely measured
                model.design, i, model.ar_group):
            out.append(f"Sample {block.term} centred (it is non-centred now): "
                       f"bm.Model(..., centered={{{key!r}: True}}). This helps when the data "
                       f"pin each level of {block.group} down (information ratio "
                       f"{ratios[i]:.2g}; bayesmix centres from "
                       f"{centre_threshold(model.design, i):g}).")
    scales = predictor_scales(model.design)
    if scales and kinds & {"divergences", "treedepth", "rhat", "ess_bulk", "ess_tail"}:
        listing = ", ".join(f"{k} (SD {v:.3g})" for k, v in scales.items())
        out.append(f"Rescale the predictors with large or small spread: {listing}; e.g. "
                   "write scale(x) in the formula, or change units (x / 1000).")
    if "divergences" in kinds:
        target = 0.95 if settings.target_accept < 0.95 else 0.99
        out.append(f"Raise target_accept (now {settings.target_accept:g}): "
                   f"fit(..., target_accept={target}). Smaller steps avoid some divergences "
                   "at the cost of slower sampling.")
    if "treedepth" in kinds:
        out.append(f"Raise max_treedepth (now {settings.max_treedepth}): "
                   f"fit(..., max_treedepth={settings.max_treedepth + 2}).")
    tune = max(2 * settings.tune, 1000)
    if kinds & {"rhat", "ess_bulk", "ess_tail"}:
        draws = max(2 * settings.draws, 1000)
        out.append(f"Tune and draw longer (now tune={settings.tune}, draws={settings.draws}): "
                   f"fit(..., tune={tune}, draws={draws}).")
    elif kinds & {"divergences", "ebfmi"}:
        out.append(f"Tune longer (now tune={settings.tune}): fit(..., tune={tune}).")
    simplify = []
    for block in involved:
        if block.correlated:
            simplify.append(f"drop the correlation: ({block.term.expr} || {block.group}) "
                            f"instead of {block.term} (it assumes the {block.group} levels' "
                            "effects are uncorrelated)")
        slopes = [t for t in block.coef_names if t != "(Intercept)"]
        if slopes and "(Intercept)" in block.coef_names:
            simplify.append(f"drop the slope{'s' if len(slopes) > 1 else ''} "
                            f"{', '.join(slopes)}: (1 | {block.group}) instead of {block.term} "
                            f"(if the effect does vary by {block.group}, the fixed effect's "
                            "interval then comes out too narrow; Barr et al. 2013)")
        elif block.intercept_only and any(f.block == block.name for f in flags):
            simplify.append(f"drop {block.term}: the data barely tell its levels apart, but "
                            "dropping it pools them completely (see the boundary check below "
                            "for the cost; compare the two models with LOO)")
    if simplify:
        out.append("Simplify the random effects: " + "; or ".join(simplify) + ".")
    priors = _tighter_priors(model, involved)
    if priors:
        out.append("Give the SDs stronger priors (half the current scale shown): "
                   f"bm.Model(..., priors={{{', '.join(priors)}}}).")
    return out


def _tighter_priors(model: Any, blocks: list[Any]) -> list[str]:
    specs = {s.key: s for s in model.prior_specs}
    out = []
    for block in blocks:
        for term in block.coef_names:
            key = f"{'1' if term == '(Intercept)' else term}|{block.name}"
            spec = specs.get(key)
            if spec is None:
                continue
            scale = _prior_scale(spec.prior)
            if scale is None:
                continue
            out.append(f"{key!r}: bm.Prior('HalfNormal', sigma={float(f'{scale / 2:.2g}'):g})")
    return out


def _prior_scale(prior: Any) -> float | None:
    kwargs = prior.kwargs
    for name in ("sigma", "beta"):
        if name in kwargs and prior.dist != "Gamma":
            return float(kwargs[name])
    if "lam" in kwargs:
        return 1.0 / float(kwargs["lam"])
    return None


def check_fit(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings,
              boundary: bool = True, levels: dict[str, Any] | None = None) -> CheckReport:
    """Sampling problems with remedies, and boundary estimates (see the module docstring).

    ``levels``: the level effects' rank diagnostics if already computed
    (:func:`~bayesmix.inference.convergence.level_diagnostics`; seconds at 10^4 levels).

    Examples
    --------
    >>> print(check_fit(fit.idata, fit.model, fit.settings))  # doctest: +SKIP
    """
    blocks = model.design.blocks
    posterior = posterior_of(idata)
    if levels is None:
        levels = level_diagnostics(posterior, model.all_blocks)
    report = sampling_report(idata, blocks, settings, levels)
    chains = int(posterior.sizes["chain"])
    problems = _sampler_problems(idata, model, settings, report)
    problems += _population_problems(posterior, blocks, chains)
    problems += _level_problems(levels, blocks, chains)
    order = ["divergences", "rhat", "ess_bulk", "ess_tail", "treedepth", "ebfmi"]
    problems.sort(key=lambda p: order.index(p.kind))
    flags = boundary_flags(idata, model) if boundary else []
    remedies = _remedies(idata, model, settings, problems, flags) if problems else []
    return CheckReport(model.spec.formula, report, tuple(problems), tuple(remedies),
                       tuple(flags))


def warn_on_fit(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings,
                levels: dict[str, Any] | None = None) -> CheckReport:
    """Warn at the end of ``Model.fit``: one ConvergenceWarning with every sampling problem
    and its remedies, and one SingularFitWarning for boundary estimates.

    Examples
    --------
    >>> warnings.simplefilter("ignore", bm.SingularFitWarning)  # silence one kind  # doctest: +SKIP
    """
    report = check_fit(idata, model, settings, levels=levels)
    if report.problems:
        text = "sampling problems:\n" + "\n".join(
            f"  {i}. {p.message}" for i, p in enumerate(report.problems, 1))
        text += "\nRemedies, in the order to try them:\n" + "\n".join(
            f"  {i}. {r}" for i, r in enumerate(report.remedies, 1))
        warn(text, ConvergenceWarning)
    if report.boundary:
        text = "boundary (singular) fit: " + "; ".join(f.short for f in report.boundary)
        warn(text + ". See fit.check() for what it means and what to do.", SingularFitWarning)
    return report
