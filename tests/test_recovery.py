"""Recovery tests: bayesmix posteriors against the lme4 / glmmTMB reference fits.

Every gaussian, binomial and poisson key of ``bm.datasets.reference_estimates()`` is fitted
with the reference's own formula and family (default priors, automatic centring) and compared
with the published point estimates. The criteria (from the issue):

* fixed effects: posterior mean within one reference standard error;
* well-identified group / residual SDs: posterior mean within 20 % of the estimate;
* correlations: posterior mean within 0.25.

Each comparison also allows for the Monte-Carlo error of the posterior mean (``MC_SLACK``
times its MCSE), so that a different seed or sampler version cannot fail a correct model.
Where the likelihood is flat (few groups, an SD near zero, an extrapolated intercept), the
posterior mean legitimately moves away from the ML/REML mode; those cases are listed in
``LOOSER`` with the measured values and the reason, and get a looser, stated check.

The fits are cached per session (fixture ``recovery_fits``): each model is fitted once and
shared by all the checks of its key.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

import pytest

import bayesmix as bm

SEED = 20240

# Keys that are not part of these tests, and why.
SKIPPED = {"epilepsy_negbinomial": "its reference has no fixef_se; checked in "
                                   "tests/families/test_families_recovery.py"}

# Big data sets: fitted with 1000 draws x 4 chains and only under `-m slow`.
SLOW = {"mathachieve_slopes", "radon_intercepts"}

DEFAULT_RUN = dict(draws=500, tune=500, chains=2)
SLOW_RUN = dict(draws=1000, tune=1000, chains=4)
# Small models whose 500-draw run mixes too slowly for the R-hat < 1.05 check (measured with
# SEED): penicillin's intercept traded off against the 6 centred `sample` effects (R-hat
# 1.083, bulk ESS 33 at 500 draws, before hierarchical centring), epilepsy's zBase and
# zBase:Trt1 are strongly correlated (R-hat 1.054, ESS 36 at 500; 1.011 / 88 at 1000), and
# pastes' batch SD (10 batches) is weakly identified: 500 tuning steps leave 13 divergences
# in 1000 draws, 1000 leave 0-2 (seeds 1, 2). Sampling these costs < 1 s, compiling ~10 s,
# so the longer run is cheap. grouseticks' location SD (63 locations beside 118 broods, both
# non-centred) passed at 500 draws on one machine and gave R-hat 1.086 / 16 divergences with
# the same seed on another (AMD EPYC); at 1000 draws there, 6-54 divergences (seeds 1, 2, SEED),
# with target_accept=0.95 none and R-hat 1.011-1.016: the funnel needs the smaller steps.
# pastes at 1000 draws gave 24 divergences there too (R-hat 1.034), hence 0.95 as well
# (since its nested intercepts are integrated out, bayesmix.model.integrated, it has none either way).
LONGER_RUN = {"penicillin_crossed": dict(draws=1000, tune=1000, chains=2),
              "epilepsy_poisson": dict(draws=1000, tune=1000, chains=2),
              "pastes_nested": dict(draws=1000, tune=1000, chains=2, target_accept=0.95),
              "grouseticks_poisson": dict(draws=1000, tune=1000, chains=2, target_accept=0.95),
              # the age-slope SD (lme4 0.26, correlation -0.77) mixes slowly: at 500 draws,
              # SEED gave R-hat 1.054 on one machine, < 1.05 on another; at 1000 draws
              # 1.005-1.011 over seeds 1, 2, 3 and SEED
              "orthodont_slopes": dict(draws=1000, tune=1000, chains=2)}

# bayesmix warns (ConvergenceWarning) above production thresholds: R-hat > 1.01, bulk ESS < 100
# per chain, any divergence. The default suite's 500-draw, 2-chain runs trip them for most keys
# (measured with SEED: e.g. sleepstudy_slopes R-hat 1.012, pastes 3 divergences, dyestuff
# ESS 160 of 1000 draws, bball1970 R-hat 1.024), so the warning is recorded, not raised, for
# short runs, and `test_sampling_diagnostics` applies short-run checks instead (R-hat < 1.05,
# divergences <= 1 % of draws). The slow suite's 4 x 1000-draw runs must not warn at all.

SD_RTOL = 0.20       # well-identified SDs: within 20 % (issue criterion)
COR_ATOL = 0.25      # correlations: within 0.25 (issue criterion)
MC_SLACK = 2.0       # allow 2 MCSE of Monte-Carlo error on top of every tolerance
MAX_RHAT = 1.05      # short-run convergence check (bayesmix warns above 1.01)
MAX_DIVERGENT_FRACTION = 0.01

# Sampling problems of bayesmix itself (not of a short run), expected to fail until fixed.
# mathachieve: the automatic choice makes the (SES | School) block centred (median 47 students
# per school; the intercept is well pinned), but a school's SES slope is not (its SE ~1.3
# against an SD of 0.66), so sd_School[SES] sits in a funnel. 4 x 1000 draws, SEED: R-hat
# 1.102 / bulk ESS 29 (rule "median rows >= 20") and 1.076 / 66 (information-ratio rule, which
# looks at the block's first covariate only); with centered={"School": False}: 1.004 / 793.
# Keys whose sampling is known to fail the checks (xfail, strict): none at present. The
# centred (SES|School) block of mathachieve was one (sd_School[SES] R-hat 1.08-1.10) until the
# centring rule started counting slopes; it is now non-centred and passes.
KNOWN_SAMPLING_PROBLEMS: dict[str, str] = {}

# Parameters with a flat likelihood, checked more loosely: (key, group, term, term2) -> reason.
# "interval": the reference lies in the posterior 95 % ETI, and the posterior mean is within
# SHIFT_SDS posterior SDs of it (the expected size of a Bayesian shift from the ML mode).
SHIFT_SDS = 1.0
LOOSER = {
    # 10 batches, whose casks vary 2.3x more than the batches: the batch SD's posterior has
    # CV ~60 % (sd 0.76-0.87). Two valid parametrisations of the same model gave posterior
    # means 1.26 (non-centred) and 1.52 (centred) against the REML 1.29, so 20 % is not a
    # meaningful bound here.
    ("pastes_nested", "batch", "(Intercept)", ""): "interval",
    # 12 hospitals: the SD's posterior has CV ~40 % (mean 0.435-0.437, sd 0.17-0.18, median
    # 0.41-0.42 over two parametrisations) and is right-skewed, so its mean sits above the ML
    # mode 0.357 (+22 %; median +15 %).
    ("mortality_hospitals", "hospital", "(Intercept)", ""): "interval",
    # SD near zero with 18 players: a player's logit batting average has binomial noise
    # ~ 1/sqrt(45 * 0.27 * 0.73) = 0.33 >> 0.08, so the data barely bound the SD away from
    # zero; the posterior (mean 0.17, sd 0.12, 95 % ETI [0.005-0.009, 0.43]) is twice the mode.
    ("bball1970_players", "Player", "(Intercept)", ""): "interval",
    # Orthodont: ages are 8-14, so the intercept SD and the intercept-slope correlation refer
    # to age 0, an extrapolation; the age SD is small (0.23) against residual noise 1.31 with
    # only 4 visits per child. The ML log-likelihood at bayesmix's posterior means is -217.45
    # against -216.47 at the REML estimates (computed with the marginal gaussian density),
    # i.e. the data hardly separate them. Measured: intercept SD 1.72-1.86 (ref 2.80, 95 % ETI
    # ~[0.2, 3.5]), age SD 0.14-0.15 (ref 0.226, ETI ~[0.02, 0.32]), cor -0.22 (ref -0.77, ETI
    # ~[-0.89, 0.89]).
    ("orthodont_slopes", "Subject", "(Intercept)", ""): "interval-only",
    ("orthodont_slopes", "Subject", "age", ""): "interval-only",
    ("orthodont_slopes", "Subject", "(Intercept)", "age"): "interval-only",
}


# -- reference data ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """One reference fit, with varcorr keys translated to bayesmix's (group, term, term2)."""

    key: str
    dataset: str
    formula: str
    family: str
    fixef: dict[str, float]
    fixef_se: dict[str, float]
    sds: dict[tuple[str, str], float] = field(default_factory=dict)
    cors: dict[tuple[str, str, str], float] = field(default_factory=dict)


def _bayesmix_group(lme4_group: str) -> str:
    """lme4's group label -> bayesmix block name.

    ``Subject.1`` (lme4 splits ``(Days || Subject)`` into numbered terms) -> ``Subject``;
    nested ``cask:batch`` (lme4 writes inner:outer) -> ``batch:cask`` (``(1|batch/cask)``
    expands to ``(1|batch) + (1|batch:cask)`` in bayesmix).
    """
    group = re.sub(r"\.\d+$", "", lme4_group)
    return ":".join(reversed(group.split(":")))


def load_reference(key: str) -> Reference:
    """The reference estimates of ``key`` in bayesmix's names."""
    raw = bm.datasets.reference_estimates()[key]
    sds: dict[tuple[str, str], float] = {}
    cors: dict[tuple[str, str, str], float] = {}
    for name, value in raw["varcorr"].items():
        parts = name.split(":")
        if parts[-1] == "sd":
            group, term = ":".join(parts[:-2]), parts[-2]
            sds[("Residual", "") if group == "Residual" else (_bayesmix_group(group), term)] = value
        elif parts[-1] == "cor":
            group = ":".join(parts[:-3])
            cors[(_bayesmix_group(group), parts[-3], parts[-2])] = value
        else:
            raise AssertionError(f"unexpected varcorr key {name!r} in {key}")
    return Reference(key, raw["dataset"], raw["formula"], raw["family"], dict(raw["fixef"]),
                     dict(raw["fixef_se"]), sds, cors)


REFERENCE_KEYS = sorted(k for k, v in bm.datasets.reference_estimates().items()
                        if v["family"] in ("gaussian", "binomial", "poisson") and k not in SKIPPED)
KEY_PARAMS = [pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k
              for k in REFERENCE_KEYS]


def run_settings(key: str) -> dict[str, int]:
    if key in SLOW:
        return SLOW_RUN
    return LONGER_RUN.get(key, DEFAULT_RUN)


# -- fitted models, once per session -------------------------------------------------------------
@dataclass
class Fitted:
    ref: Reference
    fit: bm.FitResult
    convergence_warnings: list[str]


class FitCache:
    def __init__(self) -> None:
        self._fits: dict[str, Fitted] = {}

    def __getitem__(self, key: str) -> Fitted:
        if key not in self._fits:
            ref = load_reference(key)
            model = bm.Model(ref.formula, bm.datasets.load(ref.dataset), family=ref.family)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", bm.ConvergenceWarning)
                fit = model.fit(**run_settings(key), random_seed=SEED, progressbar=False)
            conv = [str(w.message) for w in caught if issubclass(w.category, bm.ConvergenceWarning)]
            for w in caught:  # hand every other warning back to pytest
                if not issubclass(w.category, bm.ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            self._fits[key] = Fitted(ref, fit, conv)
            _dump(key, self._fits[key])
        return self._fits[key]


def _dump(key: str, fitted: Fitted) -> None:
    """With BAYESMIX_RECOVERY_DUMP=<dir>, write the measured tables (for tuning tolerances)."""
    folder = os.environ.get("BAYESMIX_RECOVERY_DUMP")
    if not folder:
        return
    fit = fitted.fit
    with open(os.path.join(folder, f"{key}.txt"), "w") as fh:
        fh.write(f"{key} {run_settings(key)} centered={fit.model.centered}\n")
        fh.write(fit.sampling_report().text() + "\n")
        fh.write(fit.fixef().to_string() + "\n" + fit.varcorr().to_string() + "\n")
        for block in fit.model.design.blocks:
            fh.write(f"median sd_{block.name}: "
                     f"{fit.posterior[f'sd_{block.name}'].median(('chain', 'draw')).values}\n")


@pytest.fixture(scope="session")
def recovery_fits() -> FitCache:
    return FitCache()


def _row(varcorr, group: str, term: str, term2: str = ""):
    kind = "cor" if term2 else "sd"
    sel = varcorr[(varcorr["group"] == group) & (varcorr["term"] == term)
                  & (varcorr["term2"] == term2) & (varcorr["kind"] == kind)]
    assert len(sel) == 1, f"no unique varcorr row {group}/{term}/{term2}:\n{varcorr}"
    return sel.iloc[0]


def _looser_check(key: str, what: str, row, ref_value: float, mode: str) -> None:
    lb, ub = row["eti95_lb"], row["eti95_ub"]
    assert lb <= ref_value <= ub, (
        f"{key} {what}: reference {ref_value:.4g} outside the posterior 95% ETI "
        f"[{lb:.4g}, {ub:.4g}] (mean {row['mean']:.4g})")
    if mode == "interval":
        tol = SHIFT_SDS * row["sd"] + MC_SLACK * row["mcse_mean"]
        assert abs(row["mean"] - ref_value) <= tol, (
            f"{key} {what}: posterior mean {row['mean']:.4g} is more than {SHIFT_SDS} posterior "
            f"sd ({row['sd']:.4g}) from the reference {ref_value:.4g}")


# -- the checks ----------------------------------------------------------------------------------
def test_reference_keys_are_covered():
    expected = {"sleepstudy_slopes", "sleepstudy_uncorrelated", "penicillin_crossed",
                "pastes_nested", "dyestuff", "dyestuff2_singular", "cbpp_binomial",
                "grouseticks_poisson", "orthodont_slopes", "mathachieve_slopes",
                "radon_intercepts", "mortality_hospitals", "bball1970_players",
                "epilepsy_poisson"}
    assert set(REFERENCE_KEYS) == expected


@pytest.mark.parametrize("key", REFERENCE_KEYS)
def test_reference_translates_to_bayesmix_names(key):
    """Every reference parameter maps onto a coefficient / block / term of the bayesmix model."""
    ref = load_reference(key)
    model = bm.Model(ref.formula, bm.datasets.load(ref.dataset), family=ref.family)
    assert list(model.design.coef_names) == list(ref.fixef)
    terms = {(b.name, t) for b in model.design.blocks for t in b.coef_names}
    for group, term in ref.sds:
        assert group == "Residual" or (group, term) in terms, (group, term, terms)
    for group, term, term2 in ref.cors:
        assert (group, term) in terms and (group, term2) in terms


@pytest.mark.parametrize("key", KEY_PARAMS)
def test_sampling_diagnostics(recovery_fits, key, request):
    if key in KNOWN_SAMPLING_PROBLEMS:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_SAMPLING_PROBLEMS[key], strict=True))
    fitted = recovery_fits[key]
    report = fitted.fit.sampling_report()
    assert report.max_rhat < MAX_RHAT, report.text()
    assert report.divergences <= MAX_DIVERGENT_FRACTION * report.n_draws, report.text()
    if key in SLOW:
        assert not fitted.convergence_warnings, fitted.convergence_warnings


@pytest.mark.parametrize("key", KEY_PARAMS)
def test_fixed_effects_recovered(recovery_fits, key):
    fitted = recovery_fits[key]
    table = fitted.fit.fixef()
    assert list(table.index) == list(fitted.ref.fixef)
    for name, value in fitted.ref.fixef.items():
        row = table.loc[name]
        se = fitted.ref.fixef_se[name]
        tol = se + MC_SLACK * row["mcse_mean"]
        assert abs(row["mean"] - value) <= tol, (
            f"{key} {name}: posterior mean {row['mean']:.4g} vs reference {value:.4g} "
            f"(SE {se:.3g}, MCSE {row['mcse_mean']:.2g})")


@pytest.mark.parametrize("key", KEY_PARAMS)
def test_standard_deviations_recovered(recovery_fits, key):
    fitted = recovery_fits[key]
    varcorr = fitted.fit.varcorr()
    sd_rows = varcorr[varcorr["kind"] == "sd"]
    assert {(g, t) for g, t in zip(sd_rows["group"], sd_rows["term"])} == set(fitted.ref.sds)
    for (group, term), value in fitted.ref.sds.items():
        if value == 0:  # a boundary (singular) estimate: see test_singular_fit_sd_near_zero
            continue
        row = _row(varcorr, group, term)
        mode = LOOSER.get((key, group, term, ""))
        if mode:
            _looser_check(key, f"sd {group}/{term}", row, value, mode)
            continue
        rel = abs(row["mean"] / value - 1)
        assert rel <= SD_RTOL + MC_SLACK * row["mcse_mean"] / value, (
            f"{key} sd {group}/{term}: posterior mean {row['mean']:.4g} vs reference "
            f"{value:.4g} ({100 * rel:.0f}% off, MCSE {row['mcse_mean']:.2g})")


@pytest.mark.parametrize("key", [p for p in KEY_PARAMS
                                 if load_reference(getattr(p, "values", [p])[0]).cors])
def test_correlations_recovered(recovery_fits, key):
    fitted = recovery_fits[key]
    varcorr = fitted.fit.varcorr()
    assert (varcorr["kind"] == "cor").sum() == len(fitted.ref.cors)
    for (group, term, term2), value in fitted.ref.cors.items():
        row = _row(varcorr, group, term, term2)
        mode = LOOSER.get((key, group, term, term2))
        if mode:
            _looser_check(key, f"cor {group}/{term}/{term2}", row, value, mode)
            continue
        assert abs(row["mean"] - value) <= COR_ATOL + MC_SLACK * row["mcse_mean"], (
            f"{key} cor({term}, {term2}): posterior mean {row['mean']:.3f} vs reference "
            f"{value:.3f}")


def test_singular_fit_sd_near_zero(recovery_fits):
    """Dyestuff2: lme4's Batch SD is exactly 0 (singular fit).

    A posterior cannot put its mass at a point, but it must sit near zero relative to the
    residual SD. Measured: Batch SD median 0.73, 95 % ETI [0.03, 3.02]; residual SD 3.80.
    """
    fitted = recovery_fits["dyestuff2_singular"]
    post = fitted.fit.posterior
    batch_sd = post["sd_Batch"].sel(Batch__term="(Intercept)")
    residual = float(post["sigma"].median())
    assert float(batch_sd.median()) < 0.5 * residual
    lower = float(batch_sd.quantile(0.025))
    assert lower < 0.05 * residual, f"lower 95% bound {lower:.3g} is not close to 0"
    # The residual SD absorbs the batch variance; it is well identified (30 observations).
    row = _row(fitted.fit.varcorr(), "Residual", "")
    assert abs(row["mean"] / fitted.ref.sds[("Residual", "")] - 1) <= SD_RTOL
