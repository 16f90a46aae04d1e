"""fit.update(): R's update.formula rules on formula text, and refits through bm.Model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.spec.update import update_formula

OLD = "Reaction ~ Days + (Days | Subject)"


@pytest.mark.parametrize(("new", "expected"), [
    (". ~ . + x", "Reaction ~ Days + (Days | Subject) + x"),
    ("~ . - (Days | Subject) + (1 | Subject)", "Reaction ~ Days + (1 | Subject)"),
    ("~ . - (Days|Subject) + (1 | Subject)", "Reaction ~ Days + (1 | Subject)"),
    ("log(.) ~ .", "log(Reaction) ~ Days + (Days | Subject)"),
    (". ~ . - 1", "Reaction ~ Days + (Days | Subject) + 0"),
    ("y ~ x", "y ~ x"),
])
def test_dots_stand_for_the_old_sides(new, expected):
    assert update_formula(OLD, new) == expected


def test_old_removals_are_kept_and_bad_updates_refused():
    assert update_formula("y ~ x - 1 + (1 | g)", "~ . + z") == "y ~ x + (1 | g) - 1 + z"
    with pytest.raises(bm.FormulaError, match="removes no term"):
        update_formula(OLD, "~ . - Age")
    with pytest.raises(bm.FormulaError, match="needs '~'"):
        update_formula(OLD, ". + Age")
    with pytest.raises(bm.FormulaError, match="leaves no terms"):
        update_formula("y ~ x", "~ . - x")


def test_update_refits_through_the_model_path():
    df = bm.datasets.load("sleepstudy")
    fit = bm.Model("Reaction ~ Days + (1 | Subject)", df).fit(
        draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        slopes = fit.update("~ . - (1 | Subject) + (Days | Subject)")
        again = fit.update(random_seed=1)
    assert slopes.model.spec.formula == OLD
    assert slopes.settings == fit.settings
    assert list(slopes.varcorr()["term"])[:2] == ["(Intercept)", "Days"]
    # the same model and settings: the same draws (the same compiled structure and seed)
    np.testing.assert_allclose(again.idata["posterior"]["fixef"].values,
                               fit.idata["posterior"]["fixef"].values, rtol=1e-8)
    with pytest.raises(bm.DataError, match="Pass the data again"):
        fit.update(". ~ . + Age")
