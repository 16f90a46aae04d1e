"""fit.icc, fit.r2, fit.hypothesis and fit.contrasts against hand computations and lme4."""

from __future__ import annotations

import numpy as np
import pytest
from _post_fits import cbpp_fit, sleep_fit, sleep_null_fit
from scipy import special, stats

import bayesmix as bm
from bayesmix.posterior.hypothesis import HypothesisError


@pytest.fixture(scope="module")
def sleep():
    return sleep_fit()


@pytest.fixture(scope="module")
def cbpp():
    return cbpp_fit()


# -- ICC and R2 ------------------------------------------------------------------------------------
def test_icc_is_the_subject_variance_share_near_lme4(sleep):
    table = sleep.icc()
    assert list(table.index) == ["Subject"] and table.loc["Subject", "term"] == "(1 | Subject)"
    sd = sleep.posterior["sd_Subject"].values[..., 0]
    sigma = sleep.posterior["sigma"].values
    by_hand = sd ** 2 / (sd ** 2 + sigma ** 2)
    row = table.loc["Subject"]
    assert row["mean"] == pytest.approx(by_hand.mean(), rel=1e-12)
    assert row["eti95_lb"] == pytest.approx(np.quantile(by_hand, 0.025), rel=1e-6)
    # lme4 REML for Reaction ~ Days + (1 | Subject): Subject SD 37.12, residual SD 30.99.
    # A posterior mean and a REML mode of a skewed posterior (18 subjects) differ by a fraction
    # of the posterior SD (~0.09 here): half a posterior SD.
    reml = 37.12 ** 2 / (37.12 ** 2 + 30.99 ** 2)
    assert abs(row["mean"] - reml) < 0.5 * row["sd"]


def test_icc_of_the_null_model_is_near_the_anova_reml_estimate():
    fit = sleep_null_fit()
    # sleepstudy is balanced (18 subjects x 10 days), so REML equals the ANOVA estimates.
    df = bm.datasets.load("sleepstudy")
    groups = df.groupby("Subject", observed=True)["Reaction"]
    msw = groups.var(ddof=1).mean()
    msb = 10 * groups.mean().var(ddof=1)
    tau2 = (msb - msw) / 10
    reml = tau2 / (tau2 + msw)
    row = fit.icc().loc["Subject"]
    assert 0.3 < reml < 0.5
    assert abs(row["mean"] - reml) < 0.5 * row["sd"]


def test_r2_components_by_hand_and_near_lme4(sleep):
    table = sleep.r2()
    assert list(table.index) == ["bayes_R2", "marginal", "conditional"]
    post = sleep.posterior
    days = sleep.model.design.X[:, 1]
    vf = post["fixef"].sel(coef="Days").values ** 2 * days.var(ddof=1)
    vr = post["sd_Subject"].values[..., 0] ** 2
    ve = post["sigma"].values ** 2
    assert table.loc["marginal", "mean"] == pytest.approx((vf / (vf + vr + ve)).mean(), rel=1e-9)
    assert table.loc["conditional", "mean"] == pytest.approx(
        ((vf + vr) / (vf + vr + ve)).mean(), rel=1e-9)
    # Gelman et al.: var(fitted) / (var(fitted) + var(residuals)) per draw.
    mu = sleep.predict(kind="mean")["predictions"]["Reaction"].values
    res = sleep.model.y - mu
    bayes = mu.var(axis=-1, ddof=1) / (mu.var(axis=-1, ddof=1) + res.var(axis=-1, ddof=1))
    assert table.loc["bayes_R2", "mean"] == pytest.approx(bayes.mean(), rel=1e-9)
    # The same formulas at lme4's REML estimates (slope 10.467, SDs 37.12 and 30.99), within
    # half a posterior SD as for the ICC.
    vf0, vr0, ve0 = 10.467 ** 2 * days.var(ddof=1), 37.12 ** 2, 30.99 ** 2
    for name, value in (("marginal", vf0 / (vf0 + vr0 + ve0)),
                        ("conditional", (vf0 + vr0) / (vf0 + vr0 + ve0))):
        assert abs(table.loc[name, "mean"] - value) < 0.5 * table.loc[name, "sd"], name


def test_binomial_icc_uses_the_logit_residual_variance(cbpp):
    table = cbpp.icc()
    assert "pi^2/3" in table.attrs["residual"]
    sd = cbpp.posterior["sd_herd"].values[..., 0]
    expected = (sd ** 2 / (sd ** 2 + np.pi ** 2 / 3)).mean()
    assert table.loc["herd", "mean"] == pytest.approx(expected, rel=1e-12)
    r2 = cbpp.r2()
    assert (r2.loc["marginal", "mean"] < r2.loc["conditional", "mean"])


# -- hypothesis ------------------------------------------------------------------------------------
def test_one_sided_hypothesis_is_the_posterior_probability(sleep):
    table = sleep.hypothesis(["Days > 8", "2*Days - (Intercept) > 0", "`Days` < 11"])
    days = sleep.posterior["fixef"].sel(coef="Days").values
    intercept = sleep.posterior["fixef"].sel(coef="(Intercept)").values
    row = table.loc["Days > 8"]
    assert row["post_prob"] == (days > 8).mean()
    assert row["estimate"] == pytest.approx((days - 8).mean(), rel=1e-12)
    assert row["est_error"] == pytest.approx(days.std(ddof=1), rel=1e-9)
    p = (days < 11).mean()
    assert table.loc["`Days` < 11", "post_prob"] == p
    assert table.loc["`Days` < 11", "evid_ratio"] == pytest.approx(p / (1 - p))
    combo = table.loc["2*Days - (Intercept) > 0"]
    assert combo["estimate"] == pytest.approx((2 * days - intercept).mean(), rel=1e-12)
    assert combo["post_prob"] == (2 * days - intercept > 0).mean()
    assert list(table.columns) == ["estimate", "est_error", "eti95_lb", "eti95_ub",
                                   "evid_ratio", "post_prob", "star"]


def test_hypotheses_about_sds_and_sigma(sleep):
    table = sleep.hypothesis(["sd_Subject[(Intercept)] > 30", "sigma / sd_Subject < 1"])
    sd = sleep.posterior["sd_Subject"].values[..., 0]
    sigma = sleep.posterior["sigma"].values
    assert table.iloc[0]["post_prob"] == (sd > 30).mean()
    assert table.iloc[1]["post_prob"] == (sigma / sd < 1).mean()


def test_point_hypothesis_savage_dickey_ratio(sleep):
    """ER = posterior density / prior density of Days - 10 at 0. The prior of Days is the
    default Normal(0, s) (model.priors), so its density at 10 is known; a kernel estimate
    from 4000 prior draws of a smooth, wide density is within a few percent of it."""
    table = sleep.hypothesis("Days = 10", prior_draws=4000, random_seed=1)
    days = sleep.posterior["fixef"].sel(coef="Days").values.ravel()
    scale = float(sleep.model.priors.loc["Days", "prior"].split("sigma=")[1].rstrip(")"))
    expected = stats.gaussian_kde(days - 10)(0.0)[0] / stats.norm.pdf(10, 0, scale)
    row = table.iloc[0]
    assert row["evid_ratio"] == pytest.approx(expected, rel=0.1)
    assert row["post_prob"] == pytest.approx(row["evid_ratio"] / (1 + row["evid_ratio"]))
    assert row["evid_ratio"] > 1  # 10 is near the posterior mode: evidence for H
    no_prior = sleep.hypothesis("Days = 10", prior_draws=0)
    assert np.isnan(no_prior.iloc[0]["evid_ratio"]) and np.isnan(no_prior.iloc[0]["post_prob"])


@pytest.mark.parametrize("text, message", [
    ("Dayz > 8", "unknown parameter 'Dayz'.*Did you mean 'Days'"),
    ("exp(Days) > 1", "not allowed"),
    ("__import__('os') > 1", "not allowed|unknown parameter"),
    ("Days", "exactly one of"),
    ("Days > 8 > 7", "exactly one of"),
    ("Days >> 8", "exactly one of|cannot parse"),
    ("(Days > 8", "cannot parse"),
])
def test_bad_hypotheses_are_refused_without_evaluation(sleep, text, message):
    with pytest.raises(HypothesisError, match=message):
        sleep.hypothesis(text)


# -- contrasts -------------------------------------------------------------------------------------
def test_contrasts_on_the_linear_scale_are_coefficient_differences(cbpp):
    table = cbpp.contrasts("period")
    assert list(table.index) == ["2 - 1", "3 - 1", "4 - 1", "3 - 2", "4 - 2", "4 - 3"]
    fixef = cbpp.posterior["fixef"]
    p2, p3 = fixef.sel(coef="period2").values, fixef.sel(coef="period3").values
    assert table.loc["2 - 1", "mean"] == pytest.approx(p2.mean(), rel=1e-10)
    assert table.loc["3 - 2", "mean"] == pytest.approx((p3 - p2).mean(), rel=1e-10)
    assert table.loc["3 - 2", "p_gt0"] == ((p3 - p2) > 0).mean()
    assert list(table.columns) == ["mean", "sd", "eti95_lb", "eti95_ub", "p_gt0"]


def test_contrasts_on_the_response_scale_compare_probabilities(cbpp):
    table = cbpp.contrasts("period", scale="response")
    fixef = cbpp.posterior["fixef"]
    b0 = fixef.sel(coef="(Intercept)").values
    diff = special.expit(b0 + fixef.sel(coef="period2").values) - special.expit(b0)
    assert table.loc["2 - 1", "mean"] == pytest.approx(diff.mean(), rel=1e-10)
    marginal = cbpp.contrasts("period", scale="response", effect="marginal")
    assert (marginal["mean"].abs() < 1).all()
    with pytest.raises(bm.BayesmixError, match="scale='response'"):
        cbpp.contrasts("period", effect="marginal")


def test_contrasts_need_a_factor(sleep):
    with pytest.raises(bm.BayesmixError, match="'Days' is numeric"):
        sleep.contrasts("Days")
    with pytest.raises(bm.DataError, match="not a predictor"):
        sleep.contrasts("Subject")
