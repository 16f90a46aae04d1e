"""WAIC, PSIS-LOO, bm.compare, and exact (grouped) k-fold / leave-one-group-out CV."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import xarray as xr
from _post_fits import sleep_fit, sleep_null_fit
from scipy import stats

import bayesmix as bm
from bayesmix.api.fit import FitResult
from bayesmix.validation.compare import waic_from_loglik
from bayesmix.validation.crossval import heldout_loglik


@pytest.fixture(scope="module")
def sleep():
    return sleep_fit()


@pytest.fixture(scope="module")
def grouped_cv(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)  # short refits
        return sleep.kfold(k=3, group="Subject", random_seed=4, draws=300, tune=300)


# -- WAIC and LOO ----------------------------------------------------------------------------------
def test_waic_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    ll = rng.normal(-1.0, 0.3, size=(2, 200, 5))
    ll[..., 4] = rng.normal(-3.0, 1.0, size=(2, 200))  # one influential row: var > 0.4
    flat = ll.reshape(400, 5)
    lppd = np.log(np.mean(np.exp(flat), axis=0))
    p_waic = np.var(flat, axis=0, ddof=1)
    elpd_i = lppd - p_waic
    result = waic_from_loglik(ll)
    assert result.elpd == pytest.approx(elpd_i.sum(), rel=1e-12)
    assert result.p == pytest.approx(p_waic.sum(), rel=1e-12)
    assert result.se == pytest.approx(np.sqrt(5 * np.var(elpd_i, ddof=1)), rel=1e-12)
    np.testing.assert_allclose(result.p_waic_i.values, p_waic)
    assert result.kind == "waic" and result.n_samples == 400 and result.n_data_points == 5
    assert result.warning  # row 4 has p_waic ~ 1 > 0.4
    assert not waic_from_loglik(ll[..., :4]).warning


def test_loo_is_close_to_waic_for_a_well_behaved_model(sleep):
    loo = sleep.loo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.LooWarning)
        waic = sleep.waic()
    assert loo.kind == "loo" and loo.n_data_points == 180
    # sleepstudy has a couple of outlying days (subject 332); with 1000 draws good_k is 0.667,
    # and the worst row's k-hat varies with the seed (0.58-0.85 over seeds 1-6 with the level
    # effects integrated out, 0.67-1.14 sampled), so allow two rows above good_k and a worst
    # below 1 (where LOO's estimate would have no finite variance).
    assert int((loo.pareto_k > loo.good_k).sum()) <= 2 and float(loo.pareto_k.max()) < 1.0
    # Both estimate elpd; they agree to well under their standard error (~14) here.
    assert abs(loo.elpd - waic.elpd) < 1.0
    assert abs(loo.p - waic.p) < 1.0
    assert loo.elpd_i.dims == ("Reaction_dim_0",)


def test_waic_warns_naming_rows_with_large_p_waic(sleep):
    with pytest.warns(bm.LooWarning, match=r"rows have p_waic > 0.4 \(row \d+ \(Subject \d+\)"):
        sleep.waic()


def test_high_pareto_k_warning_names_rows_groups_and_remedies(sleep):
    model = copy.copy(sleep.model)  # same design, a gross outlier in row 7
    model.y = sleep.model.y.copy()
    model.y[7] += 400
    broken = FitResult(model=model, idata=sleep.idata, settings=sleep.settings)
    with pytest.warns(bm.LooWarning, match=r"row 7 \(Subject 308\): k = .*fit.kfold\(k=10\).*"
                                           r"fit.logo\('Subject'\)"):
        result = broken.loo()
    assert result.pareto_k.values[7] > result.good_k


def test_compare_ranks_the_model_with_days_first(sleep):
    null = sleep_null_fit()
    table = bm.compare({"days": sleep, "null": null})
    assert list(table.index) == ["days", "null"]
    assert table.loc["null", "elpd_diff"] < -4 * table.loc["null", "dse"]
    assert table.loc["days", "elpd"] == pytest.approx(sleep.loo().elpd, rel=1e-12)
    assert table.loc["null", "elpd_diff"] == pytest.approx(null.loo().elpd - sleep.loo().elpd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.LooWarning)
        by_waic = bm.compare({"days": sleep.waic(), "null": null.waic()})
    assert list(by_waic.index) == ["days", "null"]


def test_compare_refuses_bad_input(sleep):
    with pytest.raises(bm.BayesmixError, match="at least two"):
        bm.compare({"one": sleep})
    with pytest.raises(bm.BayesmixError, match="ic must be"):
        bm.compare({"a": sleep, "b": sleep}, ic="dic")
    with pytest.raises(bm.BayesmixError, match="models\\['b'\\] is a str"):
        bm.compare({"a": sleep, "b": "sleep"})


# -- cross-validation ------------------------------------------------------------------------------
def test_grouped_kfold_holds_out_whole_groups_once(sleep, grouped_cv):
    cv = grouped_cv
    subjects = sleep.model.design.blocks[0]
    labels = np.asarray(subjects.levels, dtype=object)[subjects.index]
    folds = cv.folds
    assert folds.shape == (180,) and set(folds) == {0, 1, 2}
    for level in subjects.levels:  # no subject split across folds
        assert len(set(folds[labels == level])) == 1
    assert sorted(np.bincount(folds)) == [60, 60, 60]  # 6 subjects of 10 rows per fold
    assert cv.n_folds == 3 and cv.kind == "loo_kfold"
    assert cv.elpd == pytest.approx(cv.elpd_i.values.sum())
    assert cv.timing["compiles"] == 0  # every refit served by the compile cache
    per_group = cv.per_group()
    assert len(per_group) == 18 and per_group["n"].eq(10).all()
    assert per_group["elpd"].sum() == pytest.approx(cv.elpd)
    assert cv.per_fold()["n"].tolist() == [60, 60, 60]
    # New subjects are harder to predict than new days of known subjects.
    assert cv.elpd < sleep.loo().elpd - 20


def test_row_kfold_deals_rows_evenly(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        cv = sleep.kfold(k=4, random_seed=2, draws=200, tune=200)
        grouped = sleep.kfold(k=3, group="Subject", random_seed=4, draws=200, tune=200)
    assert sorted(np.bincount(cv.folds)) == [45, 45, 45, 45]
    assert cv.groups is None
    # Held-out rows of known subjects: close to PSIS-LOO (within a few se of the difference).
    assert abs(cv.elpd - sleep.loo().elpd) < 15
    table = bm.compare({"rows": cv, "grouped": grouped})
    assert list(table.index) == ["rows", "grouped"]
    assert "se_from" not in table.attrs  # row-level folds: row-level SEs (ArviZ's)


def test_kfold_refits_a_model_with_level_covariates_in_the_compiled_structure():
    """epilepsy Poisson (centred patients with their predictors in the patients' mean): the
    refits reuse the compiled model and agree with PSIS-LOO for held-out rows."""
    model = bm.Model("count ~ zAge + zBase * Trt + (1 | patient)", bm.datasets.load("epilepsy"),
                     family="poisson")
    assert model.level_covariates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short runs; PSIS-LOO's k warnings
        fit = model.fit(draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
        cv = fit.kfold(k=4, random_seed=3, draws=300, tune=300)
        loo = fit.loo()
    assert cv.timing["compiles"] == 0  # every refit served by the compile cache
    # rows of known patients: k-fold a little below LOO (fewer rows per fit). Measured:
    # -673.3 against LOO's -666.2 (se 35); the non-centred model's refits gave -670.3.
    assert loo.elpd - 15 < cv.elpd < loo.elpd + 5


def test_compare_grouped_kfold_takes_se_from_group_sums(sleep, grouped_cv):
    # a second grouped result over the same subjects: the same folds, shifted elpd per row
    other = copy.copy(grouped_cv)
    loss = np.where(np.arange(180) % 10 == 0, 3.0, 0.0)  # one worse row per subject
    other.elpd_i = grouped_cv.elpd_i - loss
    other.elpd = float(other.elpd_i.values.sum())
    table = bm.compare({"a": grouped_cv, "b": other})
    sums = grouped_cv.per_group()
    assert table.attrs["se_from"] == "18 held-out groups"
    assert table.loc["a", "se"] == pytest.approx(sums.attrs["se"])
    # every subject loses exactly 3: the difference has zero spread over groups
    assert abs(table.loc["b", "elpd_diff"]) == pytest.approx(54.0)
    assert table.loc["b", "dse"] == pytest.approx(0.0, abs=1e-9)


def test_logo_has_one_fold_per_subject(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        cv = sleep.logo("Subject", draws=200, tune=200, random_seed=1)
    assert cv.n_folds == 18
    block = sleep.model.design.blocks[0]
    np.testing.assert_array_equal(cv.folds, block.index)  # fold j = j-th subject
    assert cv.per_group().index.name == "Subject"


def test_heldout_rows_of_a_new_group_integrate_over_its_effect(sleep):
    """For a gaussian random-intercept model a new subject's row has the closed-form
    predictive N(mu, sigma^2 + tau^2) per draw. The Monte-Carlo average over M new effects
    has log error ~ CV / sqrt(M) (CV ~ 1.4 here: 0.03 at M = 2000)."""
    post = sleep.posterior.isel(draw=slice(0, 10))
    small = FitResult(model=sleep.model, settings=sleep.settings, idata=xr.DataTree.from_dict(
        {"posterior": post, "observed_data": sleep.idata["observed_data"].to_dataset()}))
    rows = np.arange(10)  # subject 308
    seen = [np.arange(18) != 0]
    ll = heldout_loglik(small.idata, small.model, rows, seen, 2000, np.random.default_rng(0))
    fixef = post["fixef"]
    mu = fixef.sel(coef="(Intercept)").values[..., None] + \
        fixef.sel(coef="Days").values[..., None] * sleep.model.design.X[rows, 1]
    sd = np.sqrt(post["sigma"].values ** 2 + post["sd_Subject"].values[..., 0] ** 2)[..., None]
    exact = stats.norm.logpdf(sleep.model.y[rows], mu, sd)
    err = ll - exact
    assert ll.shape == (2, 10, 10)
    assert np.sqrt(np.mean(err ** 2)) < 0.06 and abs(err.mean()) < 0.02
    # A seen subject uses its fitted effect: the plain log-likelihood.
    known = heldout_loglik(small.idata, small.model, rows, [np.ones(18, bool)], 5, np.random.default_rng(0))
    r = post["r_Subject"].sel(Subject="308").values[..., 0][..., None]
    np.testing.assert_allclose(known, stats.norm.logpdf(sleep.model.y[rows], mu + r,
                                                        post["sigma"].values[..., None]))


def test_kfold_input_errors(sleep):
    with pytest.raises(bm.BayesmixError, match="between 2 and the number of 'Subject' groups"):
        sleep.kfold(k=30, group="Subject")
    with pytest.raises(bm.DataError, match="group 'Subjct' is neither"):
        sleep.kfold(k=3, group="Subjct")
    with pytest.raises(bm.BayesmixError, match="one fold per row"):
        sleep.kfold(folds=np.zeros(5))


def test_folds_by_a_column_the_formula_does_not_use(sleep):
    """A grouping outside the formula is given as a Series aligned with the model's data."""
    from bayesmix.validation.crossval import make_folds

    data = bm.datasets.load("sleepstudy")
    cohort = (data["Subject"].astype(int) % 3).rename("cohort")  # 3 cohorts of 5-7 subjects
    folds, labels = make_folds(sleep.idata, sleep.model, k=3, group=cohort, random_seed=0)
    assert sorted(np.bincount(folds)) == sorted(cohort.value_counts())
    for c in range(3):  # each cohort in exactly one fold
        assert len(set(folds[labels == c])) == 1
    with pytest.raises(bm.DataError, match=r"group=df\['cohort'\]"):
        sleep.kfold(k=3, group="cohort")
    with pytest.raises(bm.DataError, match="group 'cohort' has no label for 30"):
        make_folds(sleep.idata, sleep.model, k=3, group=cohort.iloc[30:])
    with pytest.raises(bm.BayesmixError, match="number of 'cohort' groups"):
        make_folds(sleep.idata, sleep.model, k=5, group=cohort)
