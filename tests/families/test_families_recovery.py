"""Simulation recovery for every family, and epilepsy's negative binomial against glmmTMB.

Each family simulates a random-intercept model (300 rows, 25 groups, fixed seed) from known
parameters and fits it with 2 chains x 500 draws. Checks, per parameter:

* the truth lies in the posterior 99 % equal-tailed interval. Over the ~60 checks of the
  suite a 95 % interval would miss about three truths by design; 99 % keeps the expected
  number of chance misses below one while still failing a biased likelihood (a wrong
  parametrisation moves the posterior by many posterior SDs);
* the posterior mean is within 3 posterior SDs (+ 3 MCSEs) of the truth.

A fixed seed makes each data set one draw: seed 2025 gave a student_t set whose own OLS and
t-likelihood ML slopes (0.917, 0.898) are 2.7 sampling SDs above the truth 0.8 (SD 0.044 over
300 simulated sets, mean 0.8006), so no correct posterior covers the truth; the seed was
changed to SEED, and any seed-driven miss should be diagnosed the same way (the data's own
ML estimate against the truth) before a tolerance is touched.

The simulated level effects are centred to mean zero, so that the intercept (or the
cutpoints) of the simulation is the one the model estimates. Parameters that one data set
barely identifies (student_t's ``nu``) get the interval check only. Fits are module-scoped
and shared; the default run has student_t, negativebinomial, zero_inflated_poisson, beta and
cumulative, the rest is ``slow``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import bayesmix as bm
from bayesmix.posterior import draws as predict

N, GROUPS, SD_G = 300, 25, 0.6
SEED = 31
RUN = dict(draws=500, tune=500, chains=2)
PROB = 0.99
LB, UB = "eti99_lb", "eti99_ub"


@dataclass(frozen=True)
class Case:
    family: str
    fixef: dict[str, float]
    params: dict[str, float]
    link: str | None = None
    loose: tuple[str, ...] = ()  # parameters checked by interval only
    extra: dict[str, float] = field(default_factory=dict)
    seed: int = SEED  # the data set's seed (see the module docstring before changing one)


CASES = {
    "student_t": Case("student_t", {"(Intercept)": 2.0, "x": 0.8}, {"sigma": 0.5, "nu": 4.0},
                      loose=("nu",)),
    "negativebinomial": Case("negativebinomial", {"(Intercept)": 0.7, "x": 0.6},
                             {"theta": 2.0}),
    "zero_inflated_poisson": Case("zero_inflated_poisson", {"(Intercept)": 1.0, "x": 0.5},
                                  {"zi": 0.3}),
    "beta": Case("beta", {"(Intercept)": -0.5, "x": 0.8}, {"phi": 10.0}),
    "cumulative": Case("cumulative", {"x": 1.0}, {"cutpoints": (-1.0, 0.3, 1.5)}),
    # SEED's lognormal set has REML residual SD 0.444 on log(y) (2.6 SEs above 0.4): seed 32
    # gives 0.387.
    "lognormal": Case("lognormal", {"(Intercept)": 1.0, "x": 0.4}, {"sigma": 0.4}, seed=32),
    "gamma": Case("gamma", {"(Intercept)": 0.5, "x": 0.3}, {"shape": 4.0}),
    "beta_binomial": Case("beta_binomial", {"(Intercept)": -0.4, "x": 0.5}, {"phi": 8.0}),
    "zero_inflated_negativebinomial": Case("zero_inflated_negativebinomial",
                                           {"(Intercept)": 1.2, "x": 0.5},
                                           {"theta": 3.0, "zi": 0.25}),
    "hurdle_poisson": Case("hurdle_poisson", {"(Intercept)": 0.8, "x": 0.5}, {"hu": 0.4}),
    "hurdle_negativebinomial": Case("hurdle_negativebinomial", {"(Intercept)": 1.0, "x": 0.5},
                                    {"theta": 2.5, "hu": 0.35}),
}
DEFAULT = ("student_t", "negativebinomial", "zero_inflated_poisson", "beta", "cumulative")


def simulate(case: Case, seed: int | None = None) -> pd.DataFrame:
    """Rows of ``y ~ x + (1 | g)`` drawn with the family's own numpy simulator."""
    rng = np.random.default_rng(case.seed if seed is None else seed)
    g = np.arange(N) % GROUPS
    x = rng.normal(size=N)
    u = rng.normal(0.0, SD_G, GROUPS)
    u -= u.mean()
    family = bm.get_family(case.family)
    eta = case.fixef.get("(Intercept)", 0.0) + case.fixef["x"] * x + u[g]
    params = {k: np.asarray(v) for k, v in case.params.items()}
    trials = rng.integers(5, 15, N).astype(float) if family.needs_trials else None
    y = family.simulate(rng, eta, case.link or family.default_link, params, trials)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    if trials is not None:
        df["n"] = trials
    return df


def quiet_fit(model: bm.Model, **kwargs) -> bm.FitResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)  # short runs: checked below
        return model.fit(**RUN, random_seed=7, progressbar=False, **kwargs)


class Fits:
    def __init__(self) -> None:
        self._fits: dict[str, bm.FitResult] = {}

    def __getitem__(self, name: str) -> bm.FitResult:
        if name not in self._fits:
            case = CASES[name]
            formula = "y | trials(n) ~ x + (1 | g)" if case.family == "beta_binomial" \
                else "y ~ x + (1 | g)"
            model = bm.Model(formula, simulate(case), family=case.family, link=case.link)
            self._fits[name] = quiet_fit(model)
        return self._fits[name]


@pytest.fixture(scope="module")
def fits() -> Fits:
    return Fits()


def _check(row: pd.Series, truth: float, what: str, loose: bool = False) -> None:
    assert row[LB] <= truth <= row[UB], (
        f"{what}: truth {truth:.4g} outside the 99% ETI [{row[LB]:.4g}, {row[UB]:.4g}] "
        f"(mean {row['mean']:.4g})")
    if not loose:
        tol = 3 * row["sd"] + 3 * row["mcse_mean"]
        assert abs(row["mean"] - truth) <= tol, (
            f"{what}: posterior mean {row['mean']:.4g} is more than 3 sd ({row['sd']:.3g}) "
            f"from the truth {truth:.4g}")


CASE_PARAMS = [name if name in DEFAULT else pytest.param(name, marks=pytest.mark.slow)
               for name in CASES]


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_simulated_parameters_are_recovered(fits, name):
    case, fit = CASES[name], fits[name]
    fixef = fit.fixef(prob=PROB)
    assert list(fixef.index) == list(case.fixef)
    for term, truth in case.fixef.items():
        _check(fixef.loc[term], truth, f"{name} {term}")
    table = fit.family_params(prob=PROB)
    for param, truth in case.params.items():
        if param == "cutpoints":
            assert list(table.index) == ["1|2", "2|3", "3|4"]
            for label, value in zip(table.index, truth):
                _check(table.loc[label], value, f"{name} cutpoint {label}")
        else:
            _check(table.loc[param], truth, f"{name} {param}", loose=param in case.loose)
    sd = fit.varcorr(prob=PROB).iloc[0]
    print(name, fit.sampling_report().text().splitlines()[0])  # shown with pytest -rP
    print(pd.concat([fixef, table, sd.to_frame("sd_g").T])[["mean", "sd", LB, UB, "r_hat"]])
    _check(sd, SD_G, f"{name} sd of g")


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_short_runs_converge(fits, name):
    report = fits[name].sampling_report()
    assert report.max_rhat < 1.05, report.text()
    assert report.divergences <= 5, report.text()  # 1000 draws: at most 0.5 %


# -- predictions from the new families ----------------------------------------------------------
def test_cumulative_predictions_are_consistent(fits):
    fit = fits["cumulative"]
    draws = predict.family_param_draws(fit.idata, fit.model)
    assert draws["cutpoints"].shape == (2, 500, 1, 3)
    probs = predict.category_probabilities(fit.idata, fit.model, draws=50)
    assert probs.shape == (2, 50, N, 4)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)
    mean = predict.expected_response(fit.idata, fit.model, draws=50)
    np.testing.assert_allclose(mean, (probs * np.arange(1, 5)).sum(axis=-1), rtol=1e-10)
    # the pointwise log-likelihood is log P(y = observed category), from independent draws
    loglik = predict.pointwise_loglik(fit.idata, fit.model, draws=50)
    chosen = np.take_along_axis(probs, (fit.model.y.astype(int) - 1)[None, None, :, None],
                                axis=-1)[..., 0]
    np.testing.assert_allclose(loglik, np.log(chosen), rtol=1e-8)
    sims = predict.simulate_response(fit.idata, fit.model, draws=50, random_seed=1)
    assert set(np.unique(sims)) <= {1.0, 2.0, 3.0, 4.0}
    # posterior predictive category shares match the data's within sampling noise
    observed = np.bincount(fit.model.y.astype(int), minlength=5)[1:] / N
    np.testing.assert_allclose(np.bincount(sims.astype(int).ravel(), minlength=5)[1:]
                               / sims.size, observed, atol=0.05)


def test_ordinal_summary_prints_thresholds(fits):
    text = str(fits["cumulative"].summary())
    assert text.startswith("Cumulative link mixed model fit by NUTS")
    assert "Thresholds (cutpoints):\n    Estimate Est.Error" in text and "\n1|2 " in text
    assert "(Intercept)" in text  # the random intercept's SD only
    assert "Fixed effects:\n  Estimate" in text


def test_zero_inflated_pointwise_loglik_matches_scipy_at_a_posterior_draw(fits):
    fit = fits["zero_inflated_poisson"]
    post = fit.posterior.isel(chain=1, draw=123)
    design = fit.model.design
    eta = design.X @ post["fixef"].values + post["r_g"].values[design.blocks[0].index, 0]
    zi, y = float(post["zi"]), fit.model.y
    pois = stats.poisson(np.exp(eta))
    expected = np.log(np.where(y == 0, zi + (1 - zi) * pois.pmf(0), (1 - zi) * pois.pmf(y)))
    values = predict.pointwise_loglik(fit.idata, fit.model)[1, 123]
    np.testing.assert_allclose(values, expected, rtol=1e-9)
    summary = fit.family_params()
    assert list(summary.index) == ["zi"]
    assert summary.index.name == "parameter"


def test_negative_binomial_reports_theta_not_a_residual(fits):
    fit = fits["negativebinomial"]
    assert list(fit.varcorr()["group"]) == ["g"]
    assert "theta" in fit.posterior and "sigma" not in fit.posterior
    text = str(fit.summary())
    assert "Family parameters:" in text and "\ntheta " in text
    sims = predict.simulate_response(fit.idata, fit.model, draws=100, random_seed=3)
    # NB2 variance mu + mu^2 / theta: the predictive variance exceeds the mean
    assert sims.var() > 1.5 * sims.mean()


def test_beta_expected_response_is_the_mean_proportion(fits):
    fit = fits["beta"]
    mean = predict.expected_response(fit.idata, fit.model, draws=100)
    assert np.all((mean > 0) & (mean < 1))
    eta = predict.linear_predictor(fit.idata, fit.model, draws=100)
    np.testing.assert_allclose(mean, special.expit(eta))


# -- epilepsy: negative binomial against glmmTMB ------------------------------------------------
@pytest.mark.slow
def test_epilepsy_negative_binomial_matches_glmmtmb():
    """glmmTMB nbinom2 ML estimates; fixed effects within one SE (the Poisson GLMM's SEs,
    since the reference lists none for this fit), theta (``dispersion``, glmmTMB's
    sigma(fit)) within 25 %; both with 2 MCSEs of slack."""
    ref = bm.datasets.reference_estimates("epilepsy_negbinomial")
    se = bm.datasets.reference_estimates("epilepsy_poisson")["fixef_se"]
    model = bm.Model(ref["formula"], bm.datasets.load("epilepsy"), family="negativebinomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        fit = model.fit(draws=1000, tune=1000, chains=2, random_seed=3, progressbar=False)
    fixef = fit.fixef()
    for term, value in ref["fixef"].items():
        row = fixef.loc[term]
        assert abs(row["mean"] - value) <= se[term] + 2 * row["mcse_mean"], (term, row["mean"])
    theta = fit.family_params().loc["theta"]
    assert abs(theta["mean"] - ref["dispersion"]) <= 0.25 * ref["dispersion"] + \
        2 * theta["mcse_mean"], theta["mean"]
    sd = fit.varcorr().iloc[0]
    print(fixef[["mean", "sd"]], theta[["mean", "sd"]], sd[["mean", "sd"]])
    assert sd["eti95_lb"] <= ref["varcorr"]["patient::sd"] <= sd["eti95_ub"]
    assert fit.sampling_report().max_rhat < 1.05


# -- observation weights, end to end ----------------------------------------------------------------
def test_weighted_fit_matches_the_fit_of_duplicated_rows():
    """nutpie samples the weighted model (a potential on top of the observed variable); with
    weight 2 on every row its posterior is that of the data set with every row twice. Two
    independent MCMC estimates of one mean differ by N(0, mcse1^2 + mcse2^2): 4 combined MCSEs."""
    df = bm.datasets.load("dyestuff").assign(w=2.0)
    twice = pd.concat([df, df], ignore_index=True)
    kwargs = dict(centered={"Batch": False})
    weighted = quiet_fit(bm.Model("Yield ~ 1 + (1 | Batch)", df, weights="w", **kwargs))
    doubled = quiet_fit(bm.Model("Yield ~ 1 + (1 | Batch)", twice, **kwargs))
    assert weighted.idata["constant_data"]["weights"].values.tolist() == [2.0] * 30
    a = pd.concat([weighted.fixef(), weighted.varcorr().set_index("group")])
    b = pd.concat([doubled.fixef(), doubled.varcorr().set_index("group")])
    for row in ["(Intercept)", "Batch", "Residual"]:
        gap = abs(a.loc[row, "mean"] - b.loc[row, "mean"])
        assert gap <= 4 * np.hypot(a.loc[row, "mcse_mean"], b.loc[row, "mcse_mean"]), row
    # the pointwise log-likelihood is per row, unweighted unless asked
    plain = predict.pointwise_loglik(weighted.idata, weighted.model, draws=20)
    np.testing.assert_allclose(predict.pointwise_loglik(weighted.idata, weighted.model, draws=20, weighted=True),
                               2 * plain)
    assert plain.shape == (2, 20, 30)
