"""Issue 20: bad data and priors raise a named BayesmixError before any sampling; aliased
fixed-effect columns are dropped with a warning naming them (as lme4 does)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.data import checks


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return bm.datasets.load("sleepstudy")


# -- non-finite values, names, size -------------------------------------------------------------

@pytest.mark.parametrize(("formula", "column", "rows"), [
    ("Reaction ~ log(Days) + (1 | Subject)", "log(Days)", 18),
    ("Reaction ~ Days + I(Days / 0) + (1 | Subject)", "I(Days / 0)", 180),
    ("Reaction ~ Days + big + (1 | Subject)", "big", 72),
    ("Reaction ~ Days + (log(Days) | Subject)", "log(Days)", 18),
])
def test_non_finite_design_values_are_a_data_error(sleep, formula, column, rows):
    data = sleep.assign(big=np.where(sleep.Days > 5, np.inf, 1.0))
    before = data.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's own note on log(0)
        with pytest.raises(bm.DataError, match="non-finite") as info:
            bm.Model(formula, data)
    assert f"'{column}'" in str(info.value)
    assert f"in {rows} of 180 rows" in str(info.value)
    pd.testing.assert_frame_equal(data, before)


def test_duplicated_column_names(sleep):
    data = pd.concat([sleep, sleep[["Days"]]], axis=1)
    with pytest.raises(bm.DataError, match="2 columns named 'Days'"):
        bm.Model("Reaction ~ Days + (1 | Subject)", data)


def test_multiindex_column_names(sleep):
    data = sleep.copy()
    data.columns = pd.MultiIndex.from_tuples([(c, "") for c in sleep.columns])
    with pytest.raises(bm.DataError, match="MultiIndex"):
        bm.Model("Reaction ~ Days + (1 | Subject)", data)


def test_huge_fixed_factor_is_refused_before_building(monkeypatch):
    monkeypatch.setattr(checks, "MAX_FIXED_CELLS", 1_000_000)
    n = 4000
    data = pd.DataFrame({"y": np.arange(n) % 7 * 1.0,
                         "f": [f"L{i % 2000}" for i in range(n)]})
    with pytest.raises(bm.DataError, match=r"'f' has 2000 levels.*\(1 \| f\)"):
        bm.make_design("y ~ f", data)


def test_huge_fixed_factor_default_limit():
    # the case: a factor of 10 000 levels on 20 000 rows (a 20 000 x 10 000 matrix)
    n = 20_000
    data = pd.DataFrame({"y": np.arange(n) % 5 * 1.0, "f": np.arange(n) % 10_000})
    data["f"] = data["f"].astype(str)
    with pytest.raises(bm.DataError, match="10000 levels"):
        bm.Model("y ~ f", data)


# -- aliased columns ---------------------------------------------------------------------------

def test_aliased_column_dropped_with_warning(sleep):
    data = sleep.assign(x2=2 * sleep.Days)
    with pytest.warns(bm.RankDeficiencyWarning,
                      match=r"rank deficient so dropping 1 column / coefficient: x2"):
        model = bm.Model("Reaction ~ Days + x2 + (1 | Subject)", data)
    assert model.design.coef_names == ("(Intercept)", "Days")
    assert list(model.priors.index[:2]) == ["(Intercept)", "Days"]
    assert "x2" not in model.priors.index
    # new data replay the same columns
    replay = model.design.replay(data.iloc[:4])
    assert replay.X.shape == (4, 2)


def test_constant_predictor_dropped_with_warning(sleep):
    with pytest.warns(bm.RankDeficiencyWarning, match="dropping 2 columns / coefficients: c, d"):
        design = bm.make_design("Reaction ~ c + Days + d", sleep.assign(c=3.0, d=1.0))
    assert design.coef_names == ("(Intercept)", "Days")


def test_full_rank_design_does_not_warn(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.RankDeficiencyWarning)
        design = bm.make_design("Reaction ~ Days * I(Days ** 2)", sleep)
    assert design.X.shape == (180, 4)


# -- response type -----------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "what"), [
    (lambda d: pd.Categorical(np.where(d.Days > 4, "hi", "lo")), "categorical"),
    (lambda d: d.Reaction.round(1).astype(str), "text"),
    (lambda d: d.Days > 4, "boolean"),
])
def test_label_response_refused_for_gaussian(sleep, values, what):
    data = sleep.assign(y=values(sleep))
    with pytest.raises(bm.ResponseError, match=f"'y' is {what}.*family 'gaussian'"):
        bm.Model("y ~ Days + (1 | Subject)", data)


def test_label_response_kept_for_bernoulli(sleep):
    model = bm.Model("y ~ Days + (1 | Subject)", sleep.assign(y=sleep.Days > 4),
                     family="bernoulli")
    assert model.y.sum() == 90


def test_zero_variance_response(sleep):
    with pytest.raises(bm.ResponseError, match=r"same value \(3\) in all 180 rows"):
        bm.Model("y ~ Days + (1 | Subject)", sleep.assign(y=3.0))


# -- priors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "kwargs", "fragment"), [
    (("Normal",), {"mu": None, "sigma": 1}, "mu=None must be a number"),
    (("Normal",), {"mu": "a", "sigma": 1}, "mu='a' must be a number"),
    (("Normal",), {"mu": True, "sigma": 1}, "mu=True must be a number"),
    ((["Normal"],), {}, "must be a name such as 'Normal'"),
    (("Normal", 0, 1), {}, "by name"),
    (("Normal",), {"mu": 0, "sigma": -1}, "sigma=-1 must be positive"),
    (("Normal",), {"mu": 0, "sigma": 0}, "sigma=0 must be positive"),
    (("Uniform",), {"lower": 5, "upper": 1}, "lower < upper"),
    (("Gamma",), {"alpha": -1, "beta": 1}, "alpha=-1 must be positive"),
    (("Normal",), {"mu": 0}, "needs the parameter(s) sigma"),
    (("StudentT",), {"mu": 0, "sigma": 1}, "needs the parameter(s) nu"),
    (("HalfNormal",), {"sigma": float("nan")}, "finite"),
    (("Exponential",), {"rate": 1}, "no parameter 'rate'"),
])
def test_invalid_prior_is_a_prior_error(args, kwargs, fragment):
    with pytest.raises(bm.PriorError) as info:
        bm.Prior(*args, **kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_valid_priors_still_accepted():
    assert repr(bm.Prior("Cauchy", alpha=-1, beta=2)) == "Cauchy(alpha=-1, beta=2)"
    assert repr(bm.Prior("Uniform", lower=-1, upper=1)) == "Uniform(lower=-1, upper=1)"
    assert repr(bm.Prior("Normal", mu=np.float32(1), sigma=np.int64(2))) == \
        "Normal(mu=1, sigma=2)"


@pytest.mark.parametrize(("key", "prior", "fragment"), [
    ("b", bm.Prior("HalfNormal", sigma=1), "the class 'b'"),
    ("b", bm.Prior("LKJ", eta=2), "the class 'b'"),
    ("sd", bm.Prior("Normal", mu=0, sigma=1), "the class 'sd'"),
    ("cor", bm.Prior("HalfNormal", sigma=1), "the class 'cor'"),
])
def test_class_keys_refuse_unfit_distributions(sleep, key, prior, fragment):
    with pytest.raises(bm.PriorError, match=fragment):
        bm.Model("Reaction ~ Days + (Days | Subject)", sleep, priors={key: prior})
