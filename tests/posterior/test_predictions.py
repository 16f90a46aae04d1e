"""fit.predict, posterior_predictive, conditional/marginal effects and their plot.

Shared fits (tests/_post_fits.py): sleepstudy with random intercepts and cbpp (binomial).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import arviz_stats
import numpy as np
import pandas as pd
import pytest
from _post_fits import cbpp_fit, sleep_fit
from scipy import special

import bayesmix as bm
from bayesmix.posterior.effects import marginal_draws, reference_grid


@pytest.fixture(scope="module")
def sleep():
    return sleep_fit()


@pytest.fixture(scope="module")
def cbpp():
    return cbpp_fit()


@pytest.fixture(scope="module")
def sleep_data():
    return bm.datasets.load("sleepstudy")


def values(tree) -> np.ndarray:
    return tree["predictions"]["Reaction"].values


# -- predict ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "mean"])
def test_predicting_a_subset_gives_those_rows_of_predicting_all(sleep, sleep_data, kind):
    rows = [3, 17, 42, 100, 179]
    everything = values(sleep.predict(sleep_data, kind=kind))
    part = values(sleep.predict(sleep_data.iloc[rows], kind=kind))
    np.testing.assert_allclose(part, everything[..., rows], rtol=1e-12)
    training = values(sleep.predict(kind=kind))  # newdata=None: the training rows
    np.testing.assert_allclose(training, everything, rtol=1e-12)


def test_mean_is_the_fixed_part_plus_the_level_effect(sleep, sleep_data):
    post = sleep.posterior
    row = sleep_data.iloc[[25]]  # Subject 310, Days 5
    expected = (post["fixef"].sel(coef="(Intercept)") + 5 * post["fixef"].sel(coef="Days")
                + post["r_Subject"].sel(Subject="310", Subject__term="(Intercept)")).values
    assert row["Subject"].iloc[0] == "310" and row["Days"].iloc[0] == 5
    np.testing.assert_allclose(values(sleep.predict(row))[..., 0], expected, rtol=1e-12)
    excluded = values(sleep.predict(row, re="exclude"))[..., 0]
    np.testing.assert_allclose(excluded, (post["fixef"].sel(coef="(Intercept)")
                                          + 5 * post["fixef"].sel(coef="Days")).values)


def test_tree_layout_and_summary_follow_newdata_order_and_index(sleep, sleep_data):
    new = sleep_data.iloc[[50, 3, 120]].set_axis(["c", "a", "b"])
    tree = sleep.predict(new)
    da = tree["predictions"]["Reaction"]
    assert da.dims == ("chain", "draw", "obs") and da.shape == (2, 500, 3)
    assert list(da.coords["obs"].values) == ["c", "a", "b"]
    assert da.attrs == {"kind": "mean", "re": "include"}
    table = sleep.predict(new, summary=True)
    assert list(table.index) == ["c", "a", "b"]
    assert list(table.columns) == ["mean", "sd", "eti95_lb", "eti95_ub"]
    flat = da.values.reshape(-1, 3)
    np.testing.assert_allclose(table["mean"], flat.mean(axis=0))
    np.testing.assert_allclose(table["eti95_ub"], np.quantile(flat, 0.975, axis=0))
    assert list(sleep.predict(new, summary=True, prob=0.9).columns)[2:] == \
        ["eti90_lb", "eti90_ub"]


def test_unseen_levels_are_an_error_naming_them(sleep):
    new = pd.DataFrame({"Days": [1, 2, 3], "Subject": ["Ann", "Bob", "308"]})
    with pytest.raises(bm.DataError, match=r"Subject: 'Ann', 'Bob'.*re='sample_new'"):
        sleep.predict(new)


def test_sample_new_draws_one_effect_per_new_level_from_the_group_sd(sleep):
    new = pd.DataFrame({"Days": [0, 0, 0, 0], "Subject": ["Ann", "Bob", "Ann", "308"]})
    eta = values(sleep.predict(new, kind="linear", re="sample_new", random_seed=5))
    base = values(sleep.predict(new, kind="linear", re="exclude"))
    b = eta - base
    np.testing.assert_array_equal(b[..., 0], b[..., 2])  # same level, same draw
    assert np.all(b[..., 0] != b[..., 1])  # different new levels, different draws
    seen = sleep.posterior["r_Subject"].sel(Subject="308").values[..., 0]
    np.testing.assert_allclose(b[..., 3], seen)  # a seen level keeps its fitted effect
    # Across draws b ~ N(0, sd_s): its SD is sqrt(mean sd_s^2). The SD estimated from 2000
    # values (two levels x 1000 draws) has a relative standard error of ~1/sqrt(2*2000) = 1.6%;
    # 8% is 5 standard errors.
    sd = sleep.posterior["sd_Subject"].values[..., 0]
    assert np.std(b[..., :2]) == pytest.approx(np.sqrt(np.mean(sd ** 2)), rel=0.08)


def test_same_seed_same_predictions_and_response_draws_average_to_the_mean(sleep, sleep_data):
    new = sleep_data.iloc[[0, 40, 80, 120, 160]]
    a = values(sleep.predict(new, kind="response", random_seed=11))
    b = values(sleep.predict(new, kind="response", random_seed=11))
    c = values(sleep.predict(new, kind="response", random_seed=12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    mean = values(sleep.predict(new, kind="mean"))
    assert a.shape == mean.shape == (2, 500, 5)
    # Each row's response draws average to its mean within 5 standard errors of a mean of
    # 1000 draws (sd ~ sqrt(var(mu) + sigma^2) ~ 33).
    se = a.reshape(-1, 5).std(axis=0) / np.sqrt(1000)
    assert np.all(np.abs(a.mean(axis=(0, 1)) - mean.mean(axis=(0, 1))) < 5 * se)


def test_draws_thins_the_posterior(sleep, sleep_data):
    tree = sleep.predict(sleep_data.iloc[:4], draws=100)
    da = tree["predictions"]["Reaction"]
    assert da.shape == (2, 100, 4)
    assert list(da.coords["draw"].values[:3]) == [0, 5, 10]


def test_bad_kind_and_re_are_named(sleep, sleep_data):
    with pytest.raises(bm.BayesmixError, match="kind must be one of 'mean', 'linear'"):
        sleep.predict(sleep_data, kind="epred")
    with pytest.raises(bm.BayesmixError, match="re must be one of"):
        sleep.predict(sleep_data, re="new")


def test_binomial_newdata_with_the_trials_columns_predicts_counts(cbpp):
    data = bm.datasets.load("cbpp").iloc[:6]
    counts = values_of(cbpp.predict(data), "incidence")
    per_trial = values_of(cbpp.predict(data[["herd", "period"]]), "incidence")
    np.testing.assert_allclose(counts, per_trial * data["size"].to_numpy(), rtol=1e-12)
    assert per_trial.max() < 1
    draws = values_of(cbpp.predict(data, kind="response", random_seed=1), "incidence")
    assert np.all(draws <= data["size"].to_numpy()) and draws.max() > 1
    bernoulli = values_of(cbpp.predict(data[["herd", "period"]], kind="response",
                                       random_seed=1), "incidence")
    assert set(np.unique(bernoulli)) == {0.0, 1.0}


def values_of(tree, name: str) -> np.ndarray:
    return tree["predictions"][name].values


# -- posterior predictive ---------------------------------------------------------------------------
def test_posterior_predictive_groups_work_with_arviz(sleep):
    dt = sleep.posterior_predictive(random_seed=1)
    assert {"posterior", "observed_data", "posterior_predictive", "log_likelihood"} <= \
        set(dt.children)
    pp = dt["posterior_predictive"]["Reaction"]
    assert pp.dims == ("chain", "draw", "Reaction_dim_0") and pp.shape == (2, 500, 180)
    np.testing.assert_array_equal(pp["Reaction_dim_0"].values,
                                  dt["observed_data"]["Reaction_dim_0"].values)
    again = sleep.posterior_predictive(random_seed=1)["posterior_predictive"]["Reaction"]
    np.testing.assert_array_equal(pp.values, again.values)
    assert "posterior_predictive" not in sleep.idata.children  # the fit is unchanged
    result = arviz_stats.loo(dt)
    assert result.elpd == pytest.approx(sleep.loo(integrate=False).elpd, rel=1e-12)
    # Replicated data reproduce the observed mean within Monte-Carlo error of 1000 draws.
    y = sleep.model.y
    assert abs(pp.values.mean() - y.mean()) < 5 * y.std() / np.sqrt(180)


# -- effects ---------------------------------------------------------------------------------------
def test_conditional_effects_are_the_fixed_part_for_a_typical_subject(sleep):
    table = sleep.conditional_effects("Days", n_points=4)
    assert list(table.columns) == ["Days", "mean", "sd", "eti95_lb", "eti95_ub"]
    np.testing.assert_allclose(table["Days"], [0, 3, 6, 9])
    fixef = sleep.posterior["fixef"]
    line = fixef.sel(coef="(Intercept)") + fixef.sel(coef="Days") * 3.0
    assert table.loc[1, "mean"] == pytest.approx(float(line.mean()), rel=1e-12)
    # Identity link: averaging over the random effects changes nothing (antithetic draws
    # make the Monte-Carlo average exact).
    marginal = sleep.marginal_effects("Days", n_points=4)
    np.testing.assert_allclose(marginal["mean"], table["mean"], rtol=1e-10)


def test_by_group_curves_use_each_levels_effects(sleep):
    table = sleep.conditional_effects("Days", values=[0.0], by_group="Subject")
    assert len(table) == 18 and list(table.columns[:2]) == ["Days", "Subject"]
    coef = sleep.coef()["Subject"]["(Intercept)"]
    np.testing.assert_allclose(table.set_index("Subject")["mean"], coef.loc[table["Subject"]],
                               rtol=1e-10)


def test_reference_grid_errors_name_the_predictors(sleep):
    with pytest.raises(bm.DataError, match="'Dayz' is not a predictor.*choose one of Days"):
        reference_grid(sleep.idata, sleep.model, "Dayz")
    with pytest.raises(bm.DataError, match="at=\\{'Age': ...\\} is not a column"):
        reference_grid(sleep.idata, sleep.model, "Days", at={"Age": 3})


def test_marginal_odds_ratio_is_attenuated_as_zeger_predicts(cbpp):
    """Population-averaged log odds ratio ~ conditional x 1/sqrt(1 + 0.346 sigma^2) (Zeger,
    Liang & Albert 1988) for a random intercept with SD sigma. Their probit approximation of
    the logistic-normal integral is accurate to about 1-2% at sigma ~ 0.6; the Monte-Carlo
    error of 100 antithetic draws per posterior draw averages out over 1000 draws. 5%."""
    grid = reference_grid(cbpp.idata, cbpp.model, "period")
    mu = marginal_draws(cbpp.idata, cbpp.model, grid, n_re_draws=200, random_seed=1)
    log_or = special.logit(mu[..., 1]) - special.logit(mu[..., 0])
    beta = cbpp.posterior["fixef"].sel(coef="period2").values
    sigma = cbpp.posterior["sd_herd"].values[..., 0]
    zeger = beta / np.sqrt(1 + 0.346 * sigma ** 2)
    assert log_or.mean() == pytest.approx(zeger.mean(), rel=0.05)
    assert abs(log_or.mean()) < abs(beta.mean())  # attenuated toward zero
    ratios = cbpp.effect_ratios("period")
    cond = ratios[(ratios.effect == "conditional") & (ratios.level == "2")].iloc[0]
    assert cond["measure"] == "odds ratio" and cond["reference"] == "1"
    assert cond["mean"] == pytest.approx(np.exp(beta).mean(), rel=1e-10)


def test_marginal_probabilities_exceed_typical_herd_ones_for_rare_outcomes(cbpp):
    cond = cbpp.conditional_effects("period").set_index("period")["mean"]
    marg = cbpp.marginal_effects("period").set_index("period")["mean"]
    fixef = cbpp.posterior["fixef"]
    p1 = special.expit(fixef.sel(coef="(Intercept)").values).mean()
    assert cond.loc["1"] == pytest.approx(p1, rel=1e-10)
    # For probabilities below 1/2 the average of expit over a symmetric spread is larger
    # than expit at the centre.
    assert (marg > cond).all()


def test_plot_effects_draws_bands_groups_and_data(cbpp, sleep, tmp_path):
    fig = cbpp.plot_effects("period", kind="both", by_group="herd")
    fig.savefig(tmp_path / "cbpp_effects.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "period" and ax.get_ylabel() == "P(incidence) per trial"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["observed proportion per period", "each herd (conditional)",
                      "conditional (typical group)", "marginal (population average)"]
    assert len([ln for ln in ax.lines if ln.get_color() == "C7"]) == 15  # one per herd
    fig = sleep.plot_effects("Days", kind="conditional")
    fig.savefig(tmp_path / "sleep_effects.png")
    ax = fig.axes[0]
    kinds = sorted(type(c).__name__ for c in ax.collections)
    assert kinds == ["FillBetweenPolyCollection", "PathCollection"]  # one band, the data
    assert len(ax.collections[0].get_offsets()) == 180
    assert ax.get_ylabel() == "E[Reaction]"
    with pytest.raises(bm.BayesmixError, match="kind must be"):
        sleep.plot_effects("Days", kind="population")
