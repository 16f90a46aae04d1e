"""Issue 20: a formula means exactly what the user wrote. Every token is used or the parser
raises a FormulaError with the caret under the first token it could not use; the parsed
formula renders back (``str(spec)``) and the summary prints it."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.spec.formula import parse_formula


def caret(err: bm.FormulaError) -> str:
    """The text from the caret's position on."""
    return err.formula[err.position:]


# (formula, message fragment, text at the caret)
REFUSED = [
    ("y ~ x z + (1 | a/b)", "no operator between", "z + (1 | a/b)"),
    ("y ~ x * (1 | a/b)", "random-effects term '(1 | a/b)'", "(1 | a/b)"),
    ("y ~ x:(1 | g)", "random-effects term", "(1 | g)"),
    ("y ~ (1 nopex || a)", "no operator between", "nopex || a)"),
    ("cnt ~ a x + offsetoffset(og(n)) + (1|a)", "no operator between", "x + offset"),
    ("y ~ poly(Days, 2), + (1|Subject)", "expected '+'", ", + (1|Subject)"),
    ("y ~ x: + offset(z)", "ends too early", "+ offset(z)"),
    ("y ~ x * + z", "ends too early", "+ z"),
    ("y ~ y + x", "response 'y' is also used", "y + x"),
    ("y ~ x + (1 | y)", "response 'y' is also used", "y)"),
    ("y ~ x + (y | g)", "response 'y' is also used", "y | g)"),
    ("log(y) ~ scale(y)", "response 'y' is also used", "y)"),
    ("y ~ True + x", "'True' is a Python constant", "True + x"),
    ("y ~ x + (1 + False | g)", "'False' is a Python constant", "False | g)"),
    ("y ~ 0 + 0", "'0' appears twice", "0"),
    ("y ~ x + z + x", "'x' appears twice", "x"),
    ("y z ~ x", "cannot read the response", "z ~ x"),
    ("y ~ scale(x,, 2)", "cannot read the arguments of scale()", ", 2)"),
    ("y ~ x + (1 x | g)", "no operator between", "x | g)"),
    ("y ~ x $ z", "unexpected character '$'", "$ z"),
    ("y ~ 1e-3 * w", "the number 1e-3 is not a term", "1e-3 * w"),
    ("y ~ 2 * x + z", "the number 2 is not a term", "2 * x"),
    ("y ~ 00", "the number 00", "00"),
    ("y ~ (a + b)^2", "with '**'", "^2"),
    ("y ~ (a + b)**x", "whole number", "x"),
    ("y ~ 1 + 0", "both keeps the intercept", "0"),
    ("y ~ 1 + x - 1", "both keeps the intercept", "x - 1"),
]


@pytest.mark.parametrize(("formula", "message", "at"), REFUSED)
def test_refused_with_caret_at_first_unused_token(formula, message, at):
    with pytest.raises(bm.FormulaError, match=re.escape(message)) as info:
        parse_formula(formula)
    err = info.value
    assert err.position is not None
    assert caret(err).startswith(at), (formula, caret(err))
    assert isinstance(err, ValueError)
    assert "^" in str(err)


ACCEPTED = [
    ("y ~ x + z", "y ~ x + z"),
    ("y~x+(1|g)", "y ~ x + (1 | g)"),
    ("y ~ x * z + (x || g)", "y ~ x * z + (x || g)"),
    ("y ~ 1 + (1 | a/b)", "y ~ 1 + (1 | a) + (1 | a:b)"),
    ("y ~ (1 | g) + x", "y ~ (1 | g) + x"),
    ("y ~ 0 + x", "y ~ 0 + x"),
    ("y ~ x - 1", "y ~ x - 1"),
    ("y ~ -1 + x", "y ~ -1 + x"),
    ("y ~ (a + b)**2", "y ~ (a + b)**2"),
    ("y ~ a %in% b", "y ~ a %in% b"),
    ("y ~ I(x ** 2) + np.log(z) + I(1e-3 * w)", "y ~ I(x ** 2) + np.log(z) + I(1e-3 * w)"),
    ("y ~ C(f, Treatment('b')) + offset(log(n))", "y ~ C(f, Treatment('b')) + offset(log(n))"),
    ("cbind(s, f) ~ x + (1 | g)", "cbind(s, f) ~ x + (1 | g)"),
    ("s | trials(n) ~ n", "s | trials(n) ~ n"),
    ("cbind(s, n - s) ~ n", "cbind(s, n - s) ~ n"),
    ("y.1 ~ x.2 + (1 | gr(g, cov=A))", "y.1 ~ x.2 + (1 | gr(g, cov=A))"),
]


@pytest.mark.parametrize(("formula", "rendered"), ACCEPTED)
def test_accepted_formulas_render_as_parsed(formula, rendered):
    spec = parse_formula(formula)
    assert str(spec) == rendered
    # the rendering parses to the same spec (a fixed point)
    again = parse_formula(str(spec))
    assert (again.fixed, again.offsets, again.response) == (
        spec.fixed, spec.offsets, spec.response)
    assert [str(t) for t in again.random] == [str(t) for t in spec.random]
    assert str(again) == rendered


def test_fixed_terms_exclude_offsets_and_random_terms():
    spec = parse_formula("y ~ x * z + offset(o) + C(f, Sum) + (1 | g)")
    assert spec.fixed_terms() == ("x * z", "C(f, Sum)")
    assert spec.terms == ("x * z", "offset(o)", "C(f, Sum)", "(1 | g)")


def test_variables_keep_a_name_after_a_number_and_space():
    # '1 x' used to lose x as if it were the exponent of 1e3; now it is an error, and
    # inside a function call the name counts
    assert parse_formula("y ~ I(1 * x)").variables == ("y", "x")


def test_unknown_function_is_a_formula_error_naming_it():
    df = pd.DataFrame({"y": [1.0, 2, 3, 4], "x": [0.5, 1, 2, 3]})
    with pytest.raises(bm.FormulaError, match=r"unknown function offsetoffset\(\)") as info:
        bm.make_design("y ~ x + offsetoffset(x)", df)
    assert caret(info.value).startswith("offsetoffset(x)")


def test_summary_prints_the_formula_as_parsed():
    df = bm.datasets.load("pastes")
    model = bm.Model("strength~1+(1|batch/cask)", df)
    assert model.formula_lines == ("strength ~ 1 + (1 | batch) + (1 | batch:cask)",)
    assert "strength ~ 1 + (1 | batch) + (1 | batch:cask)" in repr(model)
    # the user's text is what rebuilds the model
    assert model.constructor_args()["formula"] == "strength~1+(1|batch/cask)"


def test_model_refuses_the_response_as_grouping_factor():
    df = pd.DataFrame({"y": np.arange(8.0) % 4, "x": np.arange(8.0)})
    with pytest.raises(bm.FormulaError, match="response 'y'"):
        bm.Model("y ~ x + (1 | y)", df)


@pytest.mark.parametrize("formula", ["y ~ x + (0 | g)", "y ~ x + (-1 | g)"])
def test_random_term_without_columns(formula):
    df = pd.DataFrame({"y": np.arange(8.0), "x": np.arange(8.0) % 3, "g": list("ab") * 4})
    with pytest.raises(bm.FormulaError, match=r"has no terms before '\|'.*\(1 \| g\)"):
        bm.Model(formula, df)
