"""Tests of bayesmix.datasets: loading, factor detection and level order, reference estimates."""

from __future__ import annotations

import doctest
import re

import pandas as pd
import pytest

import bayesmix.datasets as datasets
from bayesmix.errors import BayesmixError, DatasetError

# Row counts from PROVENANCE.md (the shared reference README).
ROWS = {
    "sleepstudy": 180,
    "penicillin": 144,
    "pastes": 60,
    "dyestuff": 30,
    "dyestuff2": 30,
    "cbpp": 56,
    "grouseticks": 403,
    "orthodont": 108,
    "mathachieve": 7185,
    "orange": 35,
    "radon": 919,
    "mortality": 12,
    "bball1970": 18,
    "roaches": 262,
    "epilepsy": 236,
    "inhaler": 572,
}

# Columns that are quoted in the CSV (R factors), per dataset; every other column is numeric.
FACTORS = {
    "sleepstudy": ["Subject"],
    "penicillin": ["plate", "sample"],
    "pastes": ["batch", "cask", "sample"],
    "dyestuff": ["Batch"],
    "dyestuff2": ["Batch"],
    "cbpp": ["herd", "period"],
    "grouseticks": ["INDEX", "BROOD", "YEAR", "LOCATION"],
    "orthodont": ["Subject", "Sex"],
    "mathachieve": ["School", "Minority", "Sex", "Sector", "HIMINTY"],
    "orange": ["Tree"],
    "radon": ["county"],
    "mortality": ["hospital"],
    "bball1970": ["Player"],
    "roaches": [],
    "epilepsy": ["Trt", "patient", "visit", "obs"],
    "inhaler": [],
}


def categories(df: pd.DataFrame, column: str) -> list[str]:
    return [str(c) for c in df[column].cat.categories]


def test_names_match_readme():
    assert set(datasets.names()) == set(ROWS)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_dataset_loads_with_readme_row_count(name):
    df = datasets.load(name)
    assert isinstance(df, pd.DataFrame)
    assert len(df) == ROWS[name]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_quoted_columns_are_categorical_and_others_numeric(name):
    df = datasets.load(name)
    for column in df.columns:
        if column in FACTORS[name]:
            assert isinstance(df[column].dtype, pd.CategoricalDtype), (name, column)
            assert not df[column].cat.ordered
        else:
            assert pd.api.types.is_numeric_dtype(df[column].dtype), (name, column)


def test_level_orders():
    assert categories(datasets.load("cbpp"), "period") == ["1", "2", "3", "4"]
    assert categories(datasets.load("cbpp"), "herd") == [str(i) for i in range(1, 16)]
    assert categories(datasets.load("grouseticks"), "YEAR") == ["95", "96", "97"]
    assert categories(datasets.load("orthodont"), "Sex") == ["Male", "Female"]
    math = datasets.load("mathachieve")
    assert categories(math, "Sector") == ["Public", "Catholic"]
    assert categories(math, "Sex") == ["Male", "Female"]
    assert categories(math, "Minority") == ["No", "Yes"]
    assert categories(datasets.load("epilepsy"), "Trt") == ["0", "1"]
    assert categories(datasets.load("epilepsy"), "visit") == ["1", "2", "3", "4"]
    assert categories(datasets.load("dyestuff"), "Batch") == list("ABCDEF")
    subject = categories(datasets.load("sleepstudy"), "Subject")
    assert len(subject) == 18
    assert subject[:3] == ["308", "309", "310"]
    assert subject == sorted(subject, key=int)


def test_labels_kept_exactly_as_in_file():
    df = datasets.load("sleepstudy")
    assert df["Subject"].iloc[0] == "308"
    assert df["Reaction"].iloc[0] == pytest.approx(249.56)
    pastes = datasets.load("pastes")
    assert pastes["sample"].iloc[0] == "A:a"


def test_numeric_columns_keep_integer_type():
    df = datasets.load("sleepstudy")
    assert df["Days"].dtype == "int64"
    assert df["Reaction"].dtype == "float64"
    cbpp = datasets.load("cbpp")
    assert cbpp["incidence"].dtype == "int64" and cbpp["size"].dtype == "int64"


def test_name_is_case_insensitive():
    assert datasets.load("SleepStudy").equals(datasets.load("sleepstudy"))
    assert len(datasets.load("cbpp.csv")) == 56


def test_unknown_name_suggests_closest():
    with pytest.raises(DatasetError) as info:
        datasets.load("sleepstudie")
    message = str(info.value)
    assert "'sleepstudy'" in message
    assert "penicillin" in message  # lists the available names
    assert isinstance(info.value, BayesmixError)
    assert isinstance(info.value, ValueError)


def test_load_returns_fresh_copy():
    first = datasets.load("cbpp")
    first.loc[0, "incidence"] = -999
    first["extra"] = 1
    second = datasets.load("cbpp")
    assert second.loc[0, "incidence"] == 2
    assert "extra" not in second.columns


def test_reference_estimates_have_fixef_and_varcorr():
    refs = datasets.reference_estimates()
    assert len(refs) >= 15
    for key, ref in refs.items():
        assert ref["dataset"] in ROWS, key
        assert ref["fixef"] and isinstance(ref["fixef"], dict), key
        assert ref["varcorr"] and isinstance(ref["varcorr"], dict), key
        if "fixef_se" in ref:  # the glmmTMB negative binomial entry ships without it
            assert set(ref["fixef_se"]) == set(ref["fixef"]), key
        assert ref["nobs"] == ROWS[ref["dataset"]], key


def test_reference_estimate_single_key_and_copy():
    ref = datasets.reference_estimates("sleepstudy_slopes")
    assert ref["fixef"]["Days"] == pytest.approx(10.467285959596)
    ref["fixef"]["Days"] = 0.0
    assert datasets.reference_estimates("sleepstudy_slopes")["fixef"]["Days"] != 0.0
    with pytest.raises(DatasetError, match="sleepstudy_slopes"):
        datasets.reference_estimates("sleepstudy_slope")


def test_reference_factor_coefficients_match_level_order():
    # The first level of each factor is R's reference level, absent from the coefficient names.
    checks = [
        ("cbpp_binomial", "cbpp", "period"),
        ("grouseticks_poisson", "grouseticks", "YEAR"),
        ("orthodont_slopes", "orthodont", "Sex"),
        ("mathachieve_slopes", "mathachieve", "Sector"),
        ("epilepsy_poisson", "epilepsy", "Trt"),
    ]
    for key, name, column in checks:
        fixef = datasets.reference_estimates(key)["fixef"]
        levels = categories(datasets.load(name), column)
        expected = {f"{column}{level}" for level in levels[1:]}
        assert expected <= set(fixef), (key, expected)
        assert f"{column}{levels[0]}" not in fixef


def test_list_datasets_table():
    table = datasets.list_datasets()
    assert set(table["name"]) == set(ROWS)
    assert {"name", "rows", "source", "typical_model"} <= set(table.columns)
    assert dict(zip(table["name"], table["rows"])) == ROWS
    row = table.set_index("name").loc["cbpp"]
    assert "lme4" in row["source"]
    assert "cbpp_binomial" in row["references"]


def test_describe():
    text = datasets.describe("Orthodont")
    assert text.startswith("orthodont: 108 rows")
    assert "nlme" in text
    assert re.search(r"Sex\s+factor, 2 levels: Male, Female", text)
    assert "orthodont_slopes" in text
    with pytest.raises(DatasetError):
        datasets.describe("nope")


def test_docstring_examples():
    result = doctest.testmod(datasets, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
