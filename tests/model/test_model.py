"""Tests of bayesmix.Model and FitResult: reproducibility, samplers, priors, families, data
handling, result shapes, sampler settings and centring.

Fits are small (<= 600 rows, short runs) and shared through module fixtures, so that each
model is compiled once. Short runs are for checking the API, not estimation quality, so the
ConvergenceWarning that bayesmix's production thresholds (R-hat 1.01, ESS 100/chain) may raise
for them is silenced in ``quiet_fit`` only; estimation checks use tolerances stated below.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import bayesmix as bm

SLEEP = "Reaction ~ Days + (Days | Subject)"
DYES = "Yield ~ 1 + (1 | Batch)"
FIXEF_COLUMNS = ["mean", "sd", "eti95_lb", "eti95_ub", "ess_bulk", "ess_tail", "r_hat",
                 "mcse_mean"]
VARCORR_COLUMNS = ["group", "term", "term2", "kind", *FIXEF_COLUMNS]
# Two independent MCMC estimates of one posterior mean differ by N(0, mcse1^2 + mcse2^2);
# 4 combined MCSEs leave room for the MCSEs' own estimation error at ESS of a few hundred
# while still catching a real disagreement (several posterior SDs are ~20+ MCSEs here).
MCSE_FACTOR = 4.0


def quiet_fit(model: bm.Model, **kwargs) -> bm.FitResult:
    kwargs.setdefault("progressbar", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        return model.fit(**kwargs)


def combined_mcse(a, b) -> float:
    return float(np.hypot(a["mcse_mean"], b["mcse_mean"]))


# -- shared fits ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sleepstudy():
    return bm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_model(sleepstudy):
    return bm.Model(SLEEP, sleepstudy)


@pytest.fixture(scope="module")
def sleep_fit(sleep_model):
    return quiet_fit(sleep_model, draws=500, tune=500, chains=2, random_seed=1)


@pytest.fixture(scope="module")
def dyes_model():
    return bm.Model(DYES, bm.datasets.load("dyestuff"))


@pytest.fixture(scope="module")
def dyes_fit(dyes_model):
    return quiet_fit(dyes_model, draws=1000, tune=1000, chains=2, random_seed=11)


# -- reproducibility and samplers ----------------------------------------------------------------
def test_same_seed_gives_identical_draws(sleep_model, sleep_fit):
    again = quiet_fit(sleep_model, draws=500, tune=500, chains=2, random_seed=1)
    a = sleep_fit.idata.posterior["fixef"].values
    b = again.idata.posterior["fixef"].values
    assert a.shape == (2, 500, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sleep_fit.idata.posterior["r_Subject"].values,
                                  again.idata.posterior["r_Subject"].values)


def test_different_seed_gives_different_draws(sleep_model, sleep_fit):
    other = quiet_fit(sleep_model, draws=500, tune=500, chains=2, random_seed=2)
    a = sleep_fit.idata.posterior["fixef"].values
    b = other.idata.posterior["fixef"].values
    assert not np.array_equal(a, b)
    # ... but the same posterior: intercept means agree within Monte-Carlo error.
    fa, fb = sleep_fit.fixef().loc["(Intercept)"], other.fixef().loc["(Intercept)"]
    assert abs(fa["mean"] - fb["mean"]) <= MCSE_FACTOR * combined_mcse(fa, fb)


def test_pymc_sampler_agrees_with_nutpie(dyes_model, dyes_fit):
    fit = quiet_fit(dyes_model, draws=1000, tune=1000, chains=2, random_seed=11, sampler="pymc")
    assert fit.settings.sampler == "pymc"
    assert fit.idata.posterior.sizes["chain"] == 2 and fit.idata.posterior.sizes["draw"] == 1000
    assert list(fit.fixef().columns) == FIXEF_COLUMNS
    a, b = dyes_fit.fixef().loc["(Intercept)"], fit.fixef().loc["(Intercept)"]
    # The intercept's posterior SD is ~24 (6 batches); its MCSE ~1 per sampler.
    assert abs(a["mean"] - b["mean"]) <= MCSE_FACTOR * combined_mcse(a, b), (a, b)
    va, vb = dyes_fit.varcorr(), fit.varcorr()
    for i in range(len(va)):  # Batch SD and residual SD
        assert abs(va.iloc[i]["mean"] - vb.iloc[i]["mean"]) <= \
            MCSE_FACTOR * combined_mcse(va.iloc[i], vb.iloc[i]), (va.iloc[i], vb.iloc[i])
    assert "NUTS (pymc)" in str(fit.summary())


# -- priors ---------------------------------------------------------------------------------------
def test_default_prior_table(sleepstudy, sleep_model):
    table = sleep_model.priors
    assert list(table.index) == ["(Intercept)", "Days", "1|Subject", "Days|Subject",
                                 "cor|Subject", "sigma"]
    assert list(table["kind"]) == ["fixed", "fixed", "sd", "sd", "cor", "family"]
    assert list(table["group"]) == ["", "", "Subject", "Subject", "Subject", ""]
    assert set(table["source"]) == {"default"}
    dists = [p.split("(")[0] for p in table["prior"]]
    assert dists == ["Normal", "Normal", "HalfNormal", "HalfNormal", "LKJ", "Exponential"]
    # Coefficient default: Normal(0, 2.5 sd(y) / sd(x)) (bayesmix.priors), = 48.89 here.
    scale = 2.5 * np.std(sleepstudy["Reaction"]) / np.std(sleepstudy["Days"])
    assert table.loc["Days", "prior"] == f"Normal(mu=0, sigma={scale:.4g})"


def test_prior_override_is_marked_user(sleepstudy):
    model = bm.Model(SLEEP, sleepstudy, priors={"Days": bm.Prior("Normal", mu=0, sigma=5)})
    table = model.priors
    assert table.loc["Days", "source"] == "user"
    assert table.loc["Days", "prior"] == "Normal(mu=0, sigma=5)"
    assert (table.drop(index="Days")["source"] == "default").all()


def test_informative_prior_reaches_the_model(sleepstudy):
    model = bm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy,
                     priors={"Days": bm.Prior("Normal", mu=100, sigma=0.01)})
    fit = quiet_fit(model, draws=300, tune=300, chains=2, random_seed=3)
    days = fit.fixef().loc["Days"]
    # The data say ~10.5 (SE ~1.5); a prior with sd 0.01 dominates, so the posterior has
    # sd <= 0.01 around ~100: 0.05 is 5 prior SDs.
    assert abs(days["mean"] - 100) < 0.05, days
    assert days["sd"] < 0.02
    assert "user-set for Days" in str(fit.summary())


def test_unknown_prior_key_lists_valid_keys(sleepstudy):
    with pytest.raises(bm.PriorError) as err:
        bm.Model(SLEEP, sleepstudy, priors={"Dayz": bm.Prior("Normal", mu=0, sigma=1)})
    message = str(err.value)
    assert "Dayz" in message
    for key in ("(Intercept)", "Days", "1|Subject", "Days|Subject", "cor|Subject", "sigma"):
        assert key in message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("priors", [
    {"1|Subject": bm.Prior("Normal", mu=0, sigma=10)},   # SD with real-line support
    {"sd": bm.Prior("Normal", mu=0, sigma=10)},
    {"sigma": bm.Prior("Normal", mu=0, sigma=10)},
    {"Days": bm.Prior("LKJ", eta=2)},                     # LKJ on a coefficient
    {"cor|Subject": bm.Prior("HalfNormal", sigma=1)},    # correlations need LKJ
], ids=["sd-normal", "sd-class-normal", "sigma-normal", "lkj-on-coef", "cor-not-lkj"])
def test_invalid_prior_support_raises(sleepstudy, priors):
    with pytest.raises(bm.PriorError):
        bm.Model(SLEEP, sleepstudy, priors=priors)


def test_prior_constructor_checks():
    with pytest.raises(bm.PriorError):
        bm.Prior("Nromal", mu=0, sigma=1)
    with pytest.raises(bm.PriorError):
        bm.Prior("Normal", mean=0, sigma=1)
    with pytest.raises(bm.PriorError):
        bm.Prior("Normal", mu=0, sigma=float("inf"))


def test_class_prior_keys_apply_to_all():
    model = bm.Model("distance ~ age + Sex + (age | Subject)", bm.datasets.load("orthodont"),
                     priors={"b": bm.Prior("Normal", mu=0, sigma=3),
                             "sd": bm.Prior("HalfStudentT", nu=3, sigma=2),
                             "SexFemale": bm.Prior("Normal", mu=0, sigma=7)})
    table = model.priors
    assert table.loc["age", "prior"] == "Normal(mu=0, sigma=3)"
    # A specific key wins over its class.
    assert table.loc["SexFemale", "prior"] == "Normal(mu=0, sigma=7)"
    assert table.loc["(Intercept)", "source"] == "default"   # "b" excludes the intercept
    for key in ("1|Subject", "age|Subject"):
        assert table.loc[key, "prior"] == "HalfStudentT(nu=3, sigma=2)"
        assert table.loc[key, "source"] == "user"
    assert table.loc["cor|Subject", "source"] == "default"
    assert table.loc["sigma", "source"] == "default"


def test_prior_predictive_shape(dyes_model):
    pp = dyes_model.prior_predictive(draws=50, random_seed=1)
    assert "prior_predictive" in pp.children
    assert pp["prior_predictive"]["Yield"].shape == (1, 50, 30)
    assert "prior" in pp.children


# -- families and response checks -----------------------------------------------------------------
def _frame(y, **extra):
    n = len(y)
    return pd.DataFrame({"resp": y, "x": np.linspace(0, 1, n),
                         "g": [f"g{i % 3}" for i in range(n)], **extra})


@pytest.mark.parametrize("family, y", [
    ("poisson", [0, 1, -2, 3, 4, 5]),
    ("poisson", [0, 1, 2.5, 3, 4, 5]),
    ("bernoulli", [0, 1, 2, 1, 0, 1]),
    ("bernoulli", [0, 1, 0.5, 1, 0, 1]),
], ids=["poisson-negative", "poisson-fraction", "bernoulli-2", "bernoulli-half"])
def test_bad_response_raises_naming_column(family, y):
    with pytest.raises(bm.ResponseError, match="resp") as err:
        bm.Model("resp ~ x + (1 | g)", _frame(y), family=family)
    assert isinstance(err.value, ValueError)


def test_bernoulli_string_labels_second_is_success():
    df = _frame(["no", "yes", "yes", "no", "no", "yes"])
    model = bm.Model("resp ~ x + (1 | g)", df, family="bernoulli")
    np.testing.assert_array_equal(model.y, [0, 1, 1, 0, 0, 1])


def test_bernoulli_three_labels_raise():
    with pytest.raises(bm.ResponseError, match="resp"):
        bm.Model("resp ~ x + (1 | g)", _frame(["a", "b", "c", "a", "b", "c"]),
                 family="bernoulli")


def test_binomial_successes_exceeding_trials_raise():
    df = _frame([1, 2, 9, 3, 0, 1], n=[5, 5, 5, 5, 5, 5])
    with pytest.raises(bm.ResponseError, match="resp"):
        bm.Model("resp | trials(n) ~ x + (1 | g)", df, family="binomial")


def test_binomial_cbind_and_trials_agree():
    df = _frame([1, 2, 3, 3, 0, 1], n=[5, 5, 5, 5, 5, 5])
    df["fail"] = df["n"] - df["resp"]
    a = bm.Model("resp | trials(n) ~ x + (1 | g)", df, family="binomial")
    b = bm.Model("cbind(resp, fail) ~ x + (1 | g)", df, family="binomial")
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.trials, b.trials)
    np.testing.assert_array_equal(a.trials, df["n"])


def test_cbind_with_gaussian_raises():
    df = _frame([1, 2, 3, 3, 0, 1], fail=[4, 3, 2, 2, 5, 4])
    with pytest.raises(bm.ResponseError):
        bm.Model("cbind(resp, fail) ~ x + (1 | g)", df, family="gaussian")


def test_unknown_family_and_bad_link_raise():
    df = _frame([0, 1, 2, 3, 4, 5])
    with pytest.raises(bm.FamilyError, match="gamma2"):
        bm.Model("resp ~ x + (1 | g)", df, family="gamma2")
    with pytest.raises(bm.FamilyError, match="logit"):
        bm.Model("resp ~ x + (1 | g)", df, family="poisson", link="logit")


# -- data handling --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def messy_data(sleepstudy):
    """Sleepstudy with string, int and (non-alphabetical) Categorical grouping columns and
    three rows with missing values."""
    df = sleepstudy.copy()
    df["subj_str"] = "s" + df["Subject"].astype(str)
    df["day_int"] = (df["Days"] * 10 + 3).astype("int64")          # 3, 13, ..., 93
    df["phase"] = pd.Categorical(
        np.array(["low", "mid", "high"])[df["Days"].to_numpy() % 3],
        categories=["mid", "low", "high"])                         # user order, not sorted
    df["unused"] = np.nan                                            # not in the formula
    df.loc[[5, 40], "Reaction"] = np.nan
    df.loc[77, "subj_str"] = None
    return df


@pytest.fixture(scope="module")
def messy_fit(messy_data):
    before = copy.deepcopy(messy_data)
    with pytest.warns(bm.MissingDataWarning, match="3 of 180"):
        model = bm.Model("Reaction ~ Days + (1 | subj_str) + (1 | day_int) + (1 | phase)",
                         messy_data)
    fit = quiet_fit(model, draws=300, tune=300, chains=2, random_seed=5)
    return before, fit


def test_data_unchanged_by_model_and_fit(messy_data, messy_fit):
    before, fit = messy_fit
    pd.testing.assert_frame_equal(messy_data, before)
    assert messy_data["phase"].cat.categories.tolist() == ["mid", "low", "high"]


def test_missing_rows_dropped_and_reported(messy_fit):
    _, fit = messy_fit
    assert fit.model.design.n == 177
    assert sorted(fit.model.design.dropped) == [5, 40, 77]
    assert fit.idata["observed_data"]["Reaction"].shape == (177,)
    assert "3 rows with missing values dropped" in str(fit.summary())


def test_na_action_raise(messy_data):
    with pytest.raises(bm.DataError):
        bm.Model("Reaction ~ Days + (1 | subj_str)", messy_data, na_action="raise")


def test_group_level_labels_kept_exactly(messy_data, messy_fit):
    _, fit = messy_fit
    ranef = fit.ranef()
    assert set(ranef) == {"subj_str", "day_int", "phase"}
    assert ranef["subj_str"].index.tolist() == sorted(messy_data["subj_str"].dropna().unique())
    ints = ranef["day_int"].index
    assert ints.tolist() == list(range(3, 94, 10))
    assert pd.api.types.is_integer_dtype(ints.dtype)
    assert all(isinstance(v, (int, np.integer)) for v in ints)
    assert ranef["phase"].index.tolist() == ["mid", "low", "high"]
    post = fit.idata.posterior
    assert post["r_day_int"].coords["day_int"].values.tolist() == list(range(3, 94, 10))
    assert post["r_phase"].coords["phase"].values.tolist() == ["mid", "low", "high"]


# -- result tables and the DataTree ---------------------------------------------------------------
def test_fixef_table(sleep_fit):
    table = sleep_fit.fixef()
    assert list(table.index) == ["(Intercept)", "Days"]
    assert list(table.columns) == FIXEF_COLUMNS
    assert (table["eti95_lb"] < table["mean"]).all() and (table["mean"] < table["eti95_ub"]).all()


def test_varcorr_table(sleep_fit):
    table = sleep_fit.varcorr()
    assert list(table.columns) == VARCORR_COLUMNS
    rows = list(zip(table["group"], table["term"], table["term2"], table["kind"]))
    assert rows == [("Subject", "(Intercept)", "", "sd"), ("Subject", "Days", "", "sd"),
                    ("Subject", "(Intercept)", "Days", "cor"), ("Residual", "", "", "sd")]
    assert (table.loc[table["kind"] == "sd", "mean"] > 0).all()
    assert -1 <= table.loc[2, "mean"] <= 1


def test_varcorr_hdi_columns_and_bad_interval(sleep_fit):
    table = sleep_fit.varcorr(prob=0.9, interval="hdi")
    assert "hdi90_lb" in table.columns and "hdi90_ub" in table.columns
    assert "eti95_lb" not in table.columns
    assert (table["hdi90_lb"] <= table["mean"]).all() and (table["mean"] <= table["hdi90_ub"]).all()
    with pytest.raises(bm.BayesmixError):
        sleep_fit.varcorr(interval="hpd")
    with pytest.raises(bm.BayesmixError):
        sleep_fit.fixef(interval="quantile")


def test_ranef_and_coef(sleepstudy, sleep_fit):
    levels = list(sleepstudy["Subject"].cat.categories)
    ranef = sleep_fit.ranef()
    assert list(ranef) == ["Subject"]
    table = ranef["Subject"]
    assert table.shape == (18, 2)
    assert list(table.columns) == ["(Intercept)", "Days"]
    assert table.index.tolist() == levels
    long = sleep_fit.ranef(summary=True)["Subject"]
    assert len(long) == 36
    assert {"level", "term", "mean", "sd", "eti95_lb", "eti95_ub"} <= set(long.columns)
    coef = sleep_fit.coef()["Subject"]
    fixed = sleep_fit.fixef()["mean"]
    assert coef.index.tolist() == levels
    for term in ("(Intercept)", "Days"):
        np.testing.assert_allclose(coef[term], fixed[term] + table[term], rtol=1e-12)


def test_idata_dims_and_coords(sleepstudy, sleep_fit):
    post = sleep_fit.idata.posterior
    levels = list(sleepstudy["Subject"].cat.categories)
    assert post["r_Subject"].dims == ("chain", "draw", "Subject", "Subject__term")
    assert post["r_Subject"].coords["Subject"].values.tolist() == levels
    assert post["r_Subject"].coords["Subject__term"].values.tolist() == ["(Intercept)", "Days"]
    assert post["fixef"].dims == ("chain", "draw", "coef")
    assert post["fixef"].coords["coef"].values.tolist() == ["(Intercept)", "Days"]
    assert post["sd_Subject"].dims == ("chain", "draw", "Subject__term")
    assert post["cor_Subject"].dims == ("chain", "draw", "Subject__term", "Subject__term2")
    assert post["sigma"].dims == ("chain", "draw")
    assert not [v for v in post.data_vars if str(v).startswith("_")]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 500
    assert sleep_fit.idata["observed_data"]["Reaction"].shape == (180,)
    # correlation matrices: unit diagonal, symmetric
    cor = post["cor_Subject"].values
    np.testing.assert_allclose(cor[..., 0, 0], 1.0, atol=1e-8)
    np.testing.assert_allclose(cor[..., 0, 1], cor[..., 1, 0])


def test_summary_text(sleep_fit):
    text = str(sleep_fit.summary())
    for piece in ("Random effects", "Fixed effects", SLEEP, "Number of obs: 180",
                  "Subject, 18", "Residual", "(Intercept)", "Days"):
        assert piece in text, piece
    assert repr(sleep_fit.summary()) == text


def test_sampling_report(sleep_fit):
    report = sleep_fit.sampling_report()
    assert report.n_draws == 1000 and report.chains == 2
    assert report.max_rhat < 1.05
    assert report.divergences <= 10


# -- sampler settings ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"sampler": "foo"}, {"draws": 0}, {"target_accept": 1.5}, {"chains": 0}, {"tune": -1},
    {"random_seed": 1.5},
], ids=["sampler", "draws", "target_accept", "chains", "tune", "seed"])
def test_bad_sampler_settings_raise(dyes_model, kwargs):
    with pytest.raises(bm.SamplerError):
        dyes_model.fit(progressbar=False, **kwargs)


# -- centring -------------------------------------------------------------------------------------
# The data-driven rule itself is tested in test_parametrization.py.


def test_centered_override_fits_similarly(sleepstudy, sleep_model, sleep_fit):
    flipped = not sleep_model.centered[0]
    model = bm.Model(SLEEP, sleepstudy, centered={"Subject": flipped})
    assert model.centered == (flipped,)
    fit = quiet_fit(model, draws=500, tune=500, chains=2, random_seed=1)
    a, b = sleep_fit.fixef(), fit.fixef()
    for term in ("(Intercept)", "Days"):
        assert abs(a.loc[term, "mean"] - b.loc[term, "mean"]) <= \
            MCSE_FACTOR * combined_mcse(a.loc[term], b.loc[term]), term


def test_unknown_centering_factor_raises(sleepstudy):
    with pytest.raises(bm.DataError, match="Subjekt"):
        bm.Model(SLEEP, sleepstudy, centered={"Subjekt": True})
    with pytest.raises(bm.DataError):
        bm.Model(SLEEP, sleepstudy, centered={"Subject": "yes"})


# -- bernoulli recovery on simulated data ---------------------------------------------------------
TRUE_INTERCEPT, TRUE_SLOPE, TRUE_SD = -0.5, 1.0, 0.8


@pytest.fixture(scope="module")
def logistic_sim():
    rng = np.random.default_rng(20240)
    n_groups, per_group = 30, 20
    g = np.repeat(np.arange(n_groups), per_group)
    u = rng.normal(0.0, TRUE_SD, n_groups)
    x = rng.normal(0.0, 1.0, n_groups * per_group)
    p = special.expit(TRUE_INTERCEPT + TRUE_SLOPE * x + u[g])
    df = pd.DataFrame({"y": rng.binomial(1, p), "x": x, "school": [f"s{i:02d}" for i in g]})
    fit = quiet_fit(bm.Model("y ~ x + (1 | school)", df, family="bernoulli"),
                    draws=500, tune=500, chains=2, random_seed=7)
    return u, fit


def test_bernoulli_recovery(logistic_sim):
    u, fit = logistic_sim
    fe = fit.fixef()
    sd = fit.varcorr().set_index("group").loc["school"]
    # A calibrated posterior puts the truth within 3 posterior SDs with probability 99.7 %;
    # 2 MCSE of slack for the Monte-Carlo error of the mean. (Posterior SDs: intercept ~0.17,
    # slope ~0.11, group SD ~0.16.)
    for row, truth in ((fe.loc["(Intercept)"], TRUE_INTERCEPT), (fe.loc["x"], TRUE_SLOPE),
                       (sd, TRUE_SD)):
        assert abs(row["mean"] - truth) <= 3 * row["sd"] + 2 * row["mcse_mean"], (row, truth)
    # Level effects: 20 binary rows per group give reliability ~0.64 / (0.64 + 1/(20*0.2))
    # ~ 0.7, i.e. an expected correlation ~0.85 between estimated and true effects.
    est = fit.ranef()["school"]["(Intercept)"].to_numpy()
    assert np.corrcoef(est, u)[0, 1] > 0.6
    assert fit.sampling_report().max_rhat < 1.05


# -- response coding and link-scale priors ---------------------------------------------------------
def test_categorical_binary_response_uses_category_order_like_r():
    # R's glm: the first level is the failure. Categories ["yes", "no"] make "no" the success.
    d = pd.DataFrame({"y": pd.Categorical(["yes", "no", "no", "yes"] * 10,
                                          categories=["yes", "no"]),
                      "g": list("abcd") * 10})
    model = bm.Model("y ~ 1 + (1 | g)", d, family="bernoulli")
    np.testing.assert_array_equal(model.y[:4], [0.0, 1.0, 1.0, 0.0])
    # Plain strings sort as R's factor(): "no" < "yes", so "yes" is the success.
    d["y"] = d["y"].astype(str)
    np.testing.assert_array_equal(bm.Model("y ~ 1 + (1 | g)", d, family="bernoulli").y[:4],
                                  [1.0, 0.0, 0.0, 1.0])


def test_gaussian_log_link_priors_are_on_the_log_scale(sleepstudy):
    model = bm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, link="log")
    priors = model.priors["prior"]
    mean_log = np.log(sleepstudy["Reaction"].mean())
    assert priors["(Intercept)"] == f"Normal(mu={mean_log:.4g}, sigma=2.5)"
    assert priors["1|Subject"] == "HalfNormal(sigma=1)"
