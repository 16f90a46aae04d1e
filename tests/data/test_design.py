"""Tests of bayesmix.data.design: fixed/random design arrays, coding, missing data, errors, replay."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmix
from bayesmix import datasets
from bayesmix.data.design import Design, RandomBlock, lme4_name, make_design


@pytest.fixture(scope="module")
def sleep():
    return datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_design(sleep):
    return make_design("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture
def small():
    """Nine rows with every column kind."""
    return pd.DataFrame({
        "y": np.arange(9.0),
        "f": pd.Categorical(list("abcabcabc"), categories=["b", "a", "c"]),
        "s": list("zyxzyxzyx"),
        "i": [3, 1, 2] * 3,
        "b": [True, False, True] * 3,
        "g": [10, 20, 30] * 3,
        "x": np.linspace(0.0, 1.0, 9),
    })


# -- fixed effects ----------------------------------------------------------------------------


def test_sleepstudy_design(sleep, sleep_design):
    d = sleep_design
    assert isinstance(d, Design)
    assert d.X.shape == (180, 2)
    assert d.coef_names == ("(Intercept)", "Days")
    assert d.has_intercept
    assert not d.has_offset
    assert d.n == 180
    np.testing.assert_array_equal(d.X[:, 0], np.ones(180))
    np.testing.assert_array_equal(d.X[:, 1], sleep["Days"].to_numpy(float))
    np.testing.assert_array_equal(d.y, sleep["Reaction"].to_numpy())
    assert d.y.dtype == np.float64
    assert d.trials is None
    np.testing.assert_array_equal(d.offset, np.zeros(180))
    assert len(d.dropped) == 0
    assert list(d.rows) == list(range(180))


def test_orthodont_interaction_lme4_names():
    d = make_design("distance ~ age * Sex + (age | Subject)", datasets.load("orthodont"))
    assert d.X.shape == (108, 4)
    assert d.coef_names == ("(Intercept)", "age", "SexFemale", "age:SexFemale")
    df = datasets.load("orthodont")
    female = (df["Sex"] == "Female").to_numpy(float)
    np.testing.assert_array_equal(d.X[:, 2], female)
    np.testing.assert_array_equal(d.X[:, 3], female * df["age"].to_numpy())


def test_cbpp_period_contrasts():
    d = make_design("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    datasets.load("cbpp"))
    assert d.X.shape == (56, 4)
    assert d.coef_names == ("(Intercept)", "period2", "period3", "period4")
    period = datasets.load("cbpp")["period"].astype(str).to_numpy()
    for j, level in enumerate(["2", "3", "4"], start=1):
        np.testing.assert_array_equal(d.X[:, j], (period == level).astype(float))


def test_mathachieve_sector_reference_is_first_category():
    d = make_design("MathAch ~ SES + Sector + (SES | School)", datasets.load("mathachieve"))
    assert d.X.shape == (7185, 3)
    assert d.coef_names == ("(Intercept)", "SES", "SectorCatholic")
    assert d.blocks[0].n_levels == 160
    assert d.blocks[0].Z.shape == (7185, 2)


def test_categorical_reference_respects_user_order(small):
    d = make_design("y ~ f", small)
    assert d.coef_names == ("(Intercept)", "fa", "fc")
    f = small["f"].astype(str).to_numpy()
    np.testing.assert_array_equal(d.X[:, 1], (f == "a").astype(float))
    np.testing.assert_array_equal(d.X[:, 2], (f == "c").astype(float))


def test_no_intercept_full_coding_in_category_order(small):
    d = make_design("y ~ 0 + f", small)
    assert d.coef_names == ("fb", "fa", "fc")
    assert not d.has_intercept
    np.testing.assert_array_equal(d.X.sum(axis=1), np.ones(9))


def test_string_column_alphabetical_reference(small):
    d = make_design("y ~ s", small)
    assert d.coef_names == ("(Intercept)", "sy", "sz")  # reference "x"
    s = small["s"].to_numpy()
    np.testing.assert_array_equal(d.X[:, 1], (s == "y").astype(float))


def test_integer_column_is_numeric(small):
    d = make_design("y ~ i", small)
    assert d.coef_names == ("(Intercept)", "i")
    np.testing.assert_array_equal(d.X[:, 1], small["i"].to_numpy(float))


def test_bool_column_reference_false(small):
    d = make_design("y ~ b", small)
    assert d.X.shape == (9, 2)
    # formulae spells it bTrue; R/lme4 would write bTRUE
    assert d.coef_names[1] in ("bTrue", "bTRUE")
    np.testing.assert_array_equal(d.X[:, 1], small["b"].to_numpy(float))


def test_transforms_in_fixed_part(small):
    # log(i) and C(s) span the same three groups of rows: C(s)z is aliased and dropped
    # (as lme4 does, issue 20); the others are as formulae builds them
    with pytest.warns(bayesmix.RankDeficiencyWarning, match=r"dropping 1 column.*C\(s\)z"):
        d = make_design("y ~ I(x**2) + log(i) + C(s)", small)
    assert d.coef_names == ("(Intercept)", "I(x ** 2)", "log(i)", "C(s)y")
    np.testing.assert_allclose(d.X[:, 1], small["x"].to_numpy() ** 2)
    np.testing.assert_allclose(d.X[:, 2], np.log(small["i"].to_numpy()))


def test_scale_uses_mean_and_sd(small):
    d = make_design("y ~ scale(x)", small)
    assert d.coef_names == ("(Intercept)", "scale(x)")
    x = small["x"].to_numpy()
    np.testing.assert_allclose(d.X[:, 1].mean(), 0.0, atol=1e-12)
    # scale() divides by an sd of x (formulae: population sd)
    assert np.allclose(d.X[:, 1], (x - x.mean()) / x.std()) or \
        np.allclose(d.X[:, 1], (x - x.mean()) / x.std(ddof=1))


def test_transformed_response():
    df = pd.DataFrame({"y": [0.0, 1.0, 2.0, 3.0], "x": [1.0, 2.0, 3.0, 5.0]})
    d = make_design("log1p(y) ~ x", df)
    np.testing.assert_allclose(d.y, np.log1p(df["y"].to_numpy()))


def test_accepts_formula_spec(small):
    spec = bayesmix.parse_formula("y ~ x + (1 | g)")
    d = make_design(spec, small)
    assert d.spec is spec
    assert d.coef_names == ("(Intercept)", "x")


# -- random blocks ----------------------------------------------------------------------------


def test_sleepstudy_random_block(sleep, sleep_design):
    (block,) = sleep_design.blocks
    assert isinstance(block, RandomBlock)
    assert block.name == "Subject"
    assert block.group == "Subject"
    assert block.coef_names == ("(Intercept)", "Days")
    assert block.correlated is True
    assert block.intercept_only is False
    assert block.n_terms == 2
    assert block.n_levels == 18
    assert block.levels == tuple(sleep["Subject"].cat.categories)
    assert all(isinstance(v, str) for v in block.levels)
    assert block.Z.shape == (180, 2)
    np.testing.assert_array_equal(block.Z[:, 0], np.ones(180))
    np.testing.assert_array_equal(block.Z[:, 1], sleep["Days"].to_numpy(float))
    assert block.index.dtype == np.int64
    assert block.index.shape == (180,)
    labels = sleep["Subject"].astype(str).to_numpy()
    np.testing.assert_array_equal(np.asarray(block.levels, dtype=object)[block.index], labels)
    np.testing.assert_array_equal(block.counts(), np.full(18, 10))


def test_uncorrelated_block(sleep):
    d = make_design("Reaction ~ Days + (Days || Subject)", sleep)
    (block,) = d.blocks
    assert block.coef_names == ("(Intercept)", "Days")
    assert block.correlated is False
    assert block.Z.shape == (180, 2)


def test_two_terms_on_same_factor(sleep):
    d = make_design("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    assert [b.name for b in d.blocks] == ["Subject", "Subject.1"]
    assert [b.group for b in d.blocks] == ["Subject", "Subject"]
    assert [b.coef_names for b in d.blocks] == [("(Intercept)",), ("Days",)]
    assert [b.intercept_only for b in d.blocks] == [True, False]
    assert [b.correlated for b in d.blocks] == [False, False]
    assert [b.Z.shape for b in d.blocks] == [(180, 1), (180, 1)]
    np.testing.assert_array_equal(d.blocks[0].index, d.blocks[1].index)


def test_cbpp_intercept_block_counts():
    d = make_design("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    datasets.load("cbpp"))
    (block,) = d.blocks
    assert block.levels == tuple(str(i) for i in range(1, 16))
    assert block.intercept_only is True
    assert block.correlated is False
    assert block.coef_names == ("(Intercept)",)
    np.testing.assert_array_equal(block.counts(),
                                  [4, 3, 4, 4, 4, 4, 4, 1, 4, 4, 4, 4, 4, 4, 4])


def test_nested_pastes():
    df = datasets.load("pastes")
    d = make_design("strength ~ 1 + (1 | batch/cask)", df)
    assert [b.name for b in d.blocks] == ["batch", "batch:cask"]
    assert [b.group for b in d.blocks] == ["batch", "batch:cask"]
    outer, inner = d.blocks
    assert outer.levels == tuple("ABCDEFGHIJ")
    assert inner.n_levels == 30
    assert inner.levels[:4] == ("A:a", "A:b", "A:c", "B:a")
    assert inner.levels == tuple(f"{b}:{c}" for b in "ABCDEFGHIJ" for c in "abc")
    # batch:cask labels coincide with the shipped 'sample' column
    labels = np.asarray(inner.levels, dtype=object)[inner.index]
    np.testing.assert_array_equal(labels, df["sample"].astype(str).to_numpy())
    np.testing.assert_array_equal(inner.index[:10], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(inner.counts(), np.full(30, 2))
    np.testing.assert_array_equal(outer.counts(), np.full(10, 6))


def test_int_group_levels_stay_ints(small):
    d = make_design("y ~ f + (1|g)", small)
    (block,) = d.blocks
    assert block.levels == (10, 20, 30)
    assert all(type(v) is int for v in block.levels)
    np.testing.assert_array_equal(block.index, [0, 1, 2] * 3)


def test_int_group_levels_sorted_numerically():
    df = pd.DataFrame({"y": np.arange(6.0), "g": [5, 3, 5, 3, 10, 10]})
    (block,) = make_design("y ~ (1|g)", df).blocks
    assert block.levels == (3, 5, 10)
    np.testing.assert_array_equal(block.index, [1, 0, 1, 0, 2, 2])


def test_string_group_levels_sorted(small):
    (block,) = make_design("y ~ x + (1|s)", small).blocks
    assert block.levels == ("x", "y", "z")
    np.testing.assert_array_equal(block.index, [2, 1, 0] * 3)


def test_categorical_group_order_and_observed_only():
    df = pd.DataFrame({"y": np.arange(6.0),
                       "h": pd.Categorical(list("uvuvuv"), categories=["x", "v", "u"])})
    (block,) = make_design("y ~ (1|h)", df).blocks
    assert block.levels == ("v", "u")  # user order, unused "x" left out
    np.testing.assert_array_equal(block.index, [1, 0, 1, 0, 1, 0])


def test_categorical_group_respects_order(small):
    (block,) = make_design("y ~ (1|f)", small).blocks
    assert block.levels == ("b", "a", "c")
    np.testing.assert_array_equal(block.index, [1, 0, 2] * 3)


def test_interaction_group(small):
    (block,) = make_design("y ~ (1 | f:s)", small).blocks
    assert block.name == "f:s"
    assert block.levels == ("b:y", "a:z", "c:x")
    np.testing.assert_array_equal(block.index, [1, 0, 2] * 3)


def test_factor_slope_one_column_per_level(small):
    d = make_design("y ~ (0 + f | g)", small)
    (block,) = d.blocks
    assert block.coef_names == ("fb", "fa", "fc")
    assert block.Z.shape == (9, 3)
    assert block.n_terms == 3
    assert block.correlated is True
    f = small["f"].astype(str).to_numpy()
    for j, level in enumerate(["b", "a", "c"]):
        np.testing.assert_array_equal(block.Z[:, j], (f == level).astype(float))


def test_no_dense_z_for_many_levels():
    n, n_levels = 100_000, 10_000
    rng = np.random.default_rng(1)
    g = rng.integers(0, n_levels, n)
    g[:n_levels] = np.arange(n_levels)  # every level observed
    df = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n), "g": g})
    d = make_design("y ~ x + (x | g) + (1 | h)", df.assign(h=g % 7))
    big, small_block = d.blocks
    assert big.n_levels == n_levels
    assert big.Z.shape == (n, 2)
    assert small_block.Z.shape == (n, 1)
    for block in d.blocks:
        assert block.index.dtype == np.int64
        assert block.index.shape == (n,)
        np.testing.assert_array_equal(np.asarray(block.levels)[block.index],
                                      df["g"].to_numpy() if block is big else g % 7)
    # nothing anywhere is n x (levels * terms)
    arrays = [d.X, d.y, d.offset] + [a for b in d.blocks for a in (b.index, b.Z)]
    assert max(a.size for a in arrays) <= 2 * n
    assert big.counts().sum() == n


# -- offsets and binomial responses -------------------------------------------------------------


@pytest.fixture
def counts():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"y": rng.normal(size=12), "x": rng.normal(size=12),
                         "t": np.arange(1.0, 13.0), "g": pd.Categorical(list("abcd") * 3),
                         "s": np.arange(12) % 5, "f": np.arange(12) % 3, "n": np.full(12, 6),
                         "u": [np.nan] * 3 + [1.0] * 9})


def test_offset_log(counts):
    d = make_design("y ~ x + offset(log(t)) + (1|g)", counts)
    assert d.has_offset
    np.testing.assert_allclose(d.offset, np.log(counts["t"].to_numpy()))
    assert d.coef_names == ("(Intercept)", "x")  # the offset is not a column of X


def test_offset_non_finite_raises():
    df = pd.DataFrame({"y": np.arange(4.0), "t": [1.0, 0.0, 2.0, 3.0]})
    with np.errstate(divide="ignore"), pytest.raises(bayesmix.DataError, match="non-finite"):
        make_design("y ~ offset(log(t))", df)


def test_cbind_trials(counts):
    d = make_design("cbind(s, f) ~ x", counts)
    np.testing.assert_array_equal(d.y, counts["s"].to_numpy(float))
    np.testing.assert_array_equal(d.trials, (counts["s"] + counts["f"]).to_numpy(float))


def test_cbind_expression_trials():
    df = datasets.load("cbpp")
    d = make_design("cbind(incidence, size - incidence) ~ period + (1 | herd)", df)
    np.testing.assert_array_equal(d.y, df["incidence"].to_numpy(float))
    np.testing.assert_array_equal(d.trials, df["size"].to_numpy(float))


def test_trials_response(counts):
    d = make_design("s | trials(n) ~ x", counts)
    np.testing.assert_array_equal(d.y, counts["s"].to_numpy(float))
    np.testing.assert_array_equal(d.trials, np.full(12, 6.0))


# -- missing values -----------------------------------------------------------------------------


def test_missing_rows_dropped_with_warning(counts):
    df = counts.copy()
    df.loc[[1, 4], "x"] = np.nan
    df.loc[[4, 7], "g"] = np.nan
    before = copy.deepcopy(df)
    with pytest.warns(bayesmix.MissingDataWarning) as record:
        d = make_design("y ~ x + (1|g)", df)
    messages = [str(w.message) for w in record if w.category is bayesmix.MissingDataWarning]
    assert len(messages) == 1
    msg = messages[0]
    assert "dropped 3 of 12 rows" in msg
    assert "'x' (2)" in msg and "'g' (2)" in msg
    assert "'u'" not in msg
    assert d.n == 9
    assert list(d.dropped) == [1, 4, 7]
    assert list(d.rows) == [0, 2, 3, 5, 6, 8, 9, 10, 11]
    np.testing.assert_array_equal(d.y, df["y"].drop(index=[1, 4, 7]).to_numpy())
    assert d.X.shape == (9, 2)
    assert d.blocks[0].index.shape == (9,)
    # the user's frame is untouched, Categorical dtype included
    pd.testing.assert_frame_equal(df, before)
    assert df["g"].dtype == before["g"].dtype
    assert list(df["g"].cat.categories) == ["a", "b", "c", "d"]


def test_missing_in_unused_column_ignored(counts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = make_design("y ~ x + (1|g)", counts)  # 'u' has NaN but is unused
    assert d.n == 12
    assert len(d.dropped) == 0


def test_missing_raise(counts):
    df = counts.copy()
    df.loc[2, "x"] = np.nan
    with pytest.raises(bayesmix.DataError) as info:
        make_design("y ~ x + (1|g)", df, na_action="raise")
    assert isinstance(info.value, ValueError)
    assert "1 of 12 rows" in str(info.value)
    assert "'x' (1)" in str(info.value)


def test_all_rows_missing_raises():
    df = pd.DataFrame({"y": [np.nan] * 3, "x": [1.0, 2.0, 3.0]})
    with pytest.raises(bayesmix.DataError, match="3 of 3 rows"):
        make_design("y ~ x", df)


def test_bad_na_action(counts):
    with pytest.raises(bayesmix.DataError, match="na_action"):
        make_design("y ~ x", counts, na_action="omit")


def test_data_unchanged_with_categorical_and_bool(small):
    before = copy.deepcopy(small)
    make_design("y ~ f + b + s + (1 | f:s) + (0 + f | g)", small)
    pd.testing.assert_frame_equal(small, before)
    assert small["f"].dtype == before["f"].dtype
    assert small["f"].cat.ordered is False
    assert list(small["f"].cat.categories) == ["b", "a", "c"]
    assert small["b"].dtype == bool


# -- data errors --------------------------------------------------------------------------------


def data_error(formula, data):
    with pytest.raises(bayesmix.DataError) as info:
        make_design(formula, data)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_unknown_fixed_column(sleep):
    msg = data_error("Reaction ~ Dayz + (Days | Subject)", sleep)
    assert "'Dayz'" in msg
    assert "Did you mean 'Days'?" in msg


def test_unknown_random_term_column(sleep):
    msg = data_error("Reaction ~ Days + (Dayz | Subject)", sleep)
    assert "'Dayz'" in msg
    assert "(Dayz | Subject)" in msg
    assert "Did you mean 'Days'?" in msg


def test_unknown_grouping_column(sleep):
    msg = data_error("Reaction ~ Days + (Days | Subjekt)", sleep)
    assert "'Subjekt'" in msg
    assert "Did you mean 'Subject'?" in msg


def test_unknown_interaction_grouping_column(sleep):
    msg = data_error("Reaction ~ Days + (1 | Subject:Dy)", sleep)
    assert "'Dy'" in msg
    assert "random term" in msg


def test_unknown_response_column(sleep):
    msg = data_error("Reactoin ~ Days", sleep)
    assert "'Reactoin'" in msg
    assert "the response" in msg
    assert "Did you mean 'Reaction'?" in msg


def test_unknown_cbind_failures_column(sleep):
    msg = data_error("cbind(Reaction, Dayz) ~ 1", sleep)
    assert "'Dayz'" in msg
    assert "Did you mean 'Days'?" in msg
    assert "the response" in msg


def test_unknown_offset_column(sleep):
    msg = data_error("Reaction ~ Days + offset(log(Dys))", sleep)
    assert "'Dys'" in msg


def test_no_close_match_lists_columns(sleep):
    msg = data_error("Reaction ~ qqqq", sleep)
    assert "Did you mean" not in msg
    assert "Reaction, Days, Subject" in msg


def test_one_level_group(small):
    msg = data_error("y ~ x + (1 | h)", small.assign(h="one"))
    assert "'h'" in msg
    assert "only 1 level" in msg
    assert "'one'" in msg


def test_one_level_after_dropping():
    df = pd.DataFrame({"y": [1.0, 2.0, np.nan], "g": ["a", "a", "b"]})
    with pytest.warns(bayesmix.MissingDataWarning):
        with pytest.raises(bayesmix.DataError, match="'g'"):
            make_design("y ~ (1 | g)", df)


@pytest.mark.parametrize("bad, typename", [({"y": [1.0]}, "dict"), (np.zeros((3, 2)), "ndarray"),
                                           (None, "NoneType")])
def test_non_dataframe(bad, typename):
    with pytest.raises(bayesmix.DataError, match=f"not {typename}"):
        make_design("y ~ x", bad)


# -- replay -------------------------------------------------------------------------------------


def test_replay_slice_reproduces(sleep, sleep_design):
    d = sleep_design
    r = d.replay(sleep.iloc[10:20])
    np.testing.assert_array_equal(r.X, d.X[10:20])
    np.testing.assert_array_equal(r.offset, d.offset[10:20])
    assert len(r.indices) == len(r.Zs) == 1
    np.testing.assert_array_equal(r.indices[0], d.blocks[0].index[10:20])
    assert r.indices[0].dtype == np.int64
    np.testing.assert_array_equal(r.Zs[0], d.blocks[0].Z[10:20])
    assert r.new_levels == {}


def test_replay_without_response(sleep, sleep_design):
    r = sleep_design.replay(sleep.iloc[10:20].drop(columns="Reaction"))
    np.testing.assert_array_equal(r.X, sleep_design.X[10:20])


def test_replay_scale_uses_training_statistics():
    df = pd.DataFrame({"y": np.arange(8.0), "x": [1.0, 4, 2, 8, 5, 7, 3, 6],
                       "g": list("aabbccdd"), "t": np.arange(1.0, 9.0),
                       "f": pd.Categorical(list("pqrpqrpq"), categories=["r", "q", "p"])})
    d = make_design("y ~ scale(x) + f + offset(log(t)) + (1 + x | g)", df)
    assert d.coef_names == ("(Intercept)", "scale(x)", "fq", "fp")
    for rows in ([2, 3, 4], [0], [7, 1]):
        r = d.replay(df.iloc[rows])
        np.testing.assert_allclose(r.X, d.X[rows], rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.offset, d.offset[rows])
        np.testing.assert_array_equal(r.indices[0], d.blocks[0].index[rows])
        np.testing.assert_array_equal(r.Zs[0], d.blocks[0].Z[rows])


def test_replay_new_levels(sleep_design):
    new = pd.DataFrame({"Days": [0, 5, 1], "Subject": ["308", "999", "999"]})
    r = sleep_design.replay(new)
    np.testing.assert_array_equal(r.indices[0], [0, -1, -1])
    assert r.new_levels == {"Subject": ["999"]}
    np.testing.assert_array_equal(r.X, [[1.0, 0.0], [1.0, 5.0], [1.0, 1.0]])
    np.testing.assert_array_equal(r.Zs[0], [[1.0, 0.0], [1.0, 5.0], [1.0, 1.0]])


def test_replay_int_group_new_levels():
    df = pd.DataFrame({"y": np.arange(6.0), "g": [5, 3, 5, 3, 9, 9]})
    d = make_design("y ~ (1|g)", df)
    r = d.replay(pd.DataFrame({"g": [9, 4, 3, 4]}))
    np.testing.assert_array_equal(r.indices[0], [2, -1, 0, -1])
    assert r.new_levels == {"g": [4]}


def test_replay_nested_new_levels():
    df = datasets.load("pastes")
    d = make_design("strength ~ (1 | batch/cask)", df)
    r = d.replay(df.iloc[5:9])
    for idx, block in zip(r.indices, d.blocks):
        np.testing.assert_array_equal(idx, block.index[5:9])
    r = d.replay(pd.DataFrame({"batch": ["A", "K"], "cask": ["c", "a"]}))
    np.testing.assert_array_equal(r.indices[0], [0, -1])
    np.testing.assert_array_equal(r.indices[1], [2, -1])
    assert r.new_levels == {"batch": ["K"], "batch:cask": ["K:a"]}


def test_replay_missing_predictor_column(sleep, sleep_design):
    with pytest.raises(bayesmix.DataError, match="'Days'"):
        sleep_design.replay(sleep.drop(columns="Days"))
    with pytest.raises(bayesmix.DataError, match="'Subject'"):
        sleep_design.replay(sleep.drop(columns="Subject"))


def test_replay_non_dataframe(sleep, sleep_design):
    with pytest.raises(bayesmix.DataError, match="not ndarray"):
        sleep_design.replay(sleep.to_numpy())


def test_replay_missing_values_raise(sleep, sleep_design):
    new = sleep.iloc[:3].copy()
    new.loc[1, "Days"] = np.nan
    with pytest.raises(bayesmix.DataError, match="missing values"):
        sleep_design.replay(new)


# -- lme4_name ----------------------------------------------------------------------------------


@pytest.mark.parametrize("label, expected", [
    ("Intercept", "(Intercept)"),
    ("Sex[Female]", "SexFemale"),
    ("zBase:Trt[1]", "zBase:Trt1"),
    ("age:Sex[Female]", "age:SexFemale"),
    ("period[2]", "period2"),
    ("C(f)[b]", "C(f)b"),
    ("x", "x"),
    ("scale(x)", "scale(x)"),
    ("I(x ** 2)", "I(x ** 2)"),
])
def test_lme4_name(label, expected):
    assert lme4_name(label) == expected


def test_column_named_e():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "e": [1.0, 2.0, 5.0, 3.0]})
    d = make_design("y ~ e", df)
    assert d.coef_names == ("(Intercept)", "e")
    np.testing.assert_array_equal(d.X[:, 1], df["e"].to_numpy())


def test_replay_needs_a_response_column_only_when_it_is_also_a_predictor():
    df = pd.DataFrame({"s": [1, 2, 3, 4, 5, 6], "n": [5, 6, 7, 8, 9, 10],
                       "g": list("aabbcc")})
    design = make_design("cbind(s, n - s) ~ n + (1 | g)", df)
    replayed = design.replay(df[["n", "g"]])  # no 's' needed ...
    np.testing.assert_array_equal(replayed.X, design.X)
    with pytest.raises(bayesmix.DataError, match="'n'"):  # ... but 'n' is a predictor
        design.replay(df[["s", "g"]])


def test_contrast_names_are_not_columns():
    """formulae's C(f, Sum) names a contrast, not a column: fitting and replay both accept it."""
    df = datasets.load("mathachieve")
    design = make_design("MathAch ~ C(Sector, Sum) + (1 | School)", df)
    assert design.coef_names == ("(Intercept)", "C(Sector, Sum)Public")
    rows = df.iloc[[0, 100, 7000]]
    assert np.array_equal(design.replay(rows).X, design.X[[0, 100, 7000]])
    # sum coding: the two sectors get +1 / -1
    assert set(np.unique(design.X[:, 1])) == {-1.0, 1.0}


def test_replay_matches_levels_by_their_text():
    """Subject 308 given as a number finds the fitted level "308" (read from CSV as text)."""
    df = datasets.load("sleepstudy")
    design = make_design("Reaction ~ Days + (1 | Subject)", df)
    level = design.blocks[0].levels[0]
    new = pd.DataFrame({"Days": [1.0], "Subject": [int(level)]})
    replayed = design.replay(new)
    assert replayed.indices[0].tolist() == [0] and not replayed.new_levels


def test_formula_without_fixed_effects(sleep):
    """`y ~ 0 + (1 | g)` (lme4 accepts it): an empty fixed design that replays as empty."""
    d = make_design("Reaction ~ 0 + (1 | Subject)", sleep)
    assert d.X.shape == (180, 0) and d.coef_names == ()
    r = d.replay(sleep.iloc[:5])
    assert r.X.shape == (5, 0)
    assert list(r.indices[0]) == [0, 0, 0, 0, 0]
    ml = bayesmix.Model("Reaction ~ 0 + (1 | Subject)", sleep).fit_ml()
    # Without an intercept the subject effects carry the grand mean (298.5; between-subject
    # SD 37.1 in `Reaction ~ 1 + (1 | Subject)`): their SD is about sqrt(298.5^2 + 37.1^2)
    # = 300.8, and the within-subject residual SD stays that model's 44.26.
    sd_subject, sd_resid = ml.varcorr()["estimate"].tolist()
    assert 295 < sd_subject < 306 and 40 < sd_resid < 48
