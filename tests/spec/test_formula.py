"""Tests of bayesmix.spec.formula: parsing every lme4/brms syntax form, variables, and errors."""

from __future__ import annotations

import dataclasses

import pytest

import bayesmix
from bayesmix.spec.formula import (
    FormulaSpec,
    GroupTerm,
    Response,
    expression_variables,
    parse_formula,
)


def terms(spec: FormulaSpec) -> list[tuple[str, str, tuple[str, ...], bool]]:
    return [(t.expr, t.group, t.factors, t.correlated) for t in spec.random]


# -- random-effect syntax -------------------------------------------------------------------


def test_random_intercept():
    spec = parse_formula("y ~ x + (1 | g)")
    assert isinstance(spec, FormulaSpec)
    assert spec.formula == "y ~ x + (1 | g)"
    assert str(spec) == "y ~ x + (1 | g)"
    assert spec.response == Response("single", "y", None)
    assert spec.fixed == "x"
    assert spec.offsets == ()
    assert len(spec.random) == 1
    term = spec.random[0]
    assert isinstance(term, GroupTerm)
    assert (term.expr, term.group, term.factors, term.correlated) == ("1", "g", ("g",), True)
    assert term.source == "(1 | g)"
    assert str(term) == "(1 | g)"
    assert spec.groups == ("g",)
    assert spec.variables == ("y", "x", "g")


def test_correlated_slope():
    spec = parse_formula("y ~ x + (x | g)")
    assert terms(spec) == [("x", "g", ("g",), True)]
    assert str(spec.random[0]) == "(x | g)"


def test_uncorrelated_double_bar():
    spec = parse_formula("y ~ x + (x || g)")
    assert terms(spec) == [("x", "g", ("g",), False)]
    assert str(spec.random[0]) == "(x || g)"
    assert spec.random[0].source == "(x || g)"
    assert spec.fixed == "x"


def test_uncorrelated_several_terms_no_spaces():
    spec = parse_formula("y ~ (x+z||g)")
    assert terms(spec) == [("x+z", "g", ("g",), False)]
    assert str(spec.random[0]) == "(x+z || g)"
    assert spec.fixed == "1"
    assert spec.variables == ("y", "x", "z", "g")


def test_slope_without_intercept():
    spec = parse_formula("y ~ (0 + x | g)")
    assert terms(spec) == [("0 + x", "g", ("g",), True)]
    assert str(spec.random[0]) == "(0 + x | g)"
    assert spec.fixed == "1"


def test_explicit_intercept_and_slope():
    spec = parse_formula("y ~ (1 + x | g)")
    assert terms(spec) == [("1 + x", "g", ("g",), True)]


def test_several_terms_per_factor():
    spec = parse_formula("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)")
    assert terms(spec) == [("1", "Subject", ("Subject",), True),
                           ("0 + Days", "Subject", ("Subject",), True)]
    assert spec.groups == ("Subject",)  # each grouping factor once
    assert spec.variables == ("Reaction", "Days", "Subject")


def test_crossed_no_spaces():
    spec = parse_formula("y~x+(1|a)+(1|b)")
    assert spec.response.expr == "y"
    assert spec.fixed == "x"
    assert terms(spec) == [("1", "a", ("a",), True), ("1", "b", ("b",), True)]
    assert [t.source for t in spec.random] == ["(1|a)", "(1|b)"]
    assert [str(t) for t in spec.random] == ["(1 | a)", "(1 | b)"]
    assert spec.groups == ("a", "b")


def test_spaces_do_not_matter():
    a = parse_formula("y~x+(x|g)")
    b = parse_formula("  y  ~   x  +  (  x  |  g  )  ")
    assert (a.response, a.fixed, terms(a)) == (b.response, b.fixed, terms(b))


def test_nested_two_levels():
    spec = parse_formula("strength ~ 1 + (1 | batch/cask)")
    assert terms(spec) == [("1", "batch", ("batch",), True),
                           ("1", "batch:cask", ("batch", "cask"), True)]
    assert spec.groups == ("batch", "batch:cask")
    assert [t.source for t in spec.random] == ["(1 | batch/cask)"] * 2
    assert [str(t) for t in spec.random] == ["(1 | batch)", "(1 | batch:cask)"]
    assert spec.variables == ("strength", "batch", "cask")
    assert spec.fixed == "1"


def test_nested_three_levels():
    spec = parse_formula("y ~ (1 | a/b/c)")
    assert [t.group for t in spec.random] == ["a", "a:b", "a:b:c"]
    assert [t.factors for t in spec.random] == [("a",), ("a", "b"), ("a", "b", "c")]
    assert spec.groups == ("a", "a:b", "a:b:c")
    assert spec.variables == ("y", "a", "b", "c")


def test_nested_uncorrelated_keeps_flag():
    spec = parse_formula("y ~ x + (x || a/b)")
    assert terms(spec) == [("x", "a", ("a",), False), ("x", "a:b", ("a", "b"), False)]
    assert [str(t) for t in spec.random] == ["(x || a)", "(x || a:b)"]


def test_interaction_grouping():
    spec = parse_formula("y ~ (1 | a:b)")
    assert terms(spec) == [("1", "a:b", ("a", "b"), True)]
    assert spec.groups == ("a:b",)
    assert str(spec.random[0]) == "(1 | a:b)"


def test_interaction_then_nesting():
    spec = parse_formula("y ~ x + (1 | a:b/c)")
    assert [t.factors for t in spec.random] == [("a", "b"), ("a", "b", "c")]
    assert [t.group for t in spec.random] == ["a:b", "a:b:c"]


def test_parenthesised_grouping_factor():
    spec = parse_formula("y ~ x + (1 | (g))")
    assert terms(spec) == [("1", "g", ("g",), True)]


def test_factor_slope():
    spec = parse_formula("y ~ (0 + f | g)")
    assert terms(spec) == [("0 + f", "g", ("g",), True)]
    assert spec.variables == ("y", "f", "g")


# -- fixed part, offsets, responses -----------------------------------------------------------


def test_offset_goes_to_offsets_not_fixed():
    spec = parse_formula("y ~ x + offset(log(t)) + (1|g)")
    assert spec.offsets == ("log(t)",)
    assert spec.fixed == "x"
    assert "offset" not in spec.fixed
    assert spec.variables == ("y", "x", "t", "g")
    assert "log" not in spec.variables


def test_offset_only():
    spec = parse_formula("y ~ offset(log(t))")
    assert spec.fixed == "1"
    assert spec.offsets == ("log(t)",)
    assert spec.random == ()
    assert spec.variables == ("y", "t")


def test_two_offsets():
    spec = parse_formula("y ~ x + offset(a) + offset(log(b))")
    assert spec.offsets == ("a", "log(b)")
    assert spec.fixed == "x"


def test_fixed_text_passes_through():
    spec = parse_formula("y ~ x*z + I(x**2) + scale(w) + C(f)")
    assert spec.fixed == "x*z + I(x**2) + scale(w) + C(f)"
    assert spec.random == ()
    assert spec.groups == ()
    assert spec.variables == ("y", "x", "z", "w", "f")
    for fn in ("I", "scale", "C"):
        assert fn not in spec.variables


def test_fixed_text_with_random_terms_removed():
    spec = parse_formula("y ~ x*z + (1 | g) + I(x**2)")
    assert spec.fixed == "x*z + I(x**2)"


def test_treatment_contrast_no_function_names_or_strings():
    spec = parse_formula("y ~ C(f, Treatment('b')) + (1|g)")
    assert spec.fixed == "C(f, Treatment('b'))"
    assert spec.variables == ("y", "f", "g")
    spec = parse_formula('y ~ C(f, Treatment(reference="lvl")) + x')
    assert spec.variables == ("y", "f", "x")
    assert "lvl" not in spec.variables and "reference" not in spec.variables
    assert "Treatment" not in spec.variables


def test_intercept_only_fixed():
    spec = parse_formula("y ~ 1 + (1|g)")
    assert spec.fixed == "1"
    assert spec.variables == ("y", "g")


def test_random_only_fixed_defaults_to_one():
    assert parse_formula("y ~ (1|g)").fixed == "1"


def test_no_intercept_fixed():
    spec = parse_formula("y ~ 0 + x")
    assert spec.fixed == "0 + x"
    assert spec.random == ()
    assert spec.variables == ("y", "x")


def test_cbind_response():
    spec = parse_formula("cbind(s, n - s) ~ x + (1|g)")
    assert spec.response == Response("cbind", "s", "n - s")
    assert spec.response.kind == "cbind"
    assert spec.response.expr == "s"
    assert spec.response.other == "n - s"
    assert spec.response.name == "s"
    assert spec.variables == ("s", "n", "x", "g")


def test_cbind_response_no_spaces():
    spec = parse_formula("cbind(incidence,size-incidence)~period+(1|herd)")
    assert spec.response == Response("cbind", "incidence", "size-incidence")
    assert spec.fixed == "period"


def test_trials_response():
    spec = parse_formula("s | trials(n) ~ x")
    assert spec.response == Response("trials", "s", "n")
    assert spec.random == ()
    assert spec.fixed == "x"
    assert spec.variables == ("s", "n", "x")


def test_transformed_response_name():
    spec = parse_formula("log(y) ~ x")
    assert spec.response == Response("single", "log(y)", None)
    assert spec.response.name == "log_y"
    assert spec.variables == ("y", "x")


def test_variables_order_of_first_appearance():
    spec = parse_formula("y ~ b + a + (c | d) + a:b + offset(t)")
    # response, fixed, offsets, then random terms (expr, factors)
    assert spec.variables == ("y", "b", "a", "t", "c", "d")


def test_variables_excludes_keywords_and_numbers():
    spec = parse_formula("y ~ I(x ** 2) + np.log(z) + I(1e-3 * w) + I(x > True)")
    assert spec.variables == ("y", "x", "z", "w")
    # a bare True is no column: refused (issue 20), see tests/spec/test_formula_strict.py


def test_variables_single_letter_e_columns():
    # 'e' / 'E2' are ordinary column names (not the exponent of a number literal)
    spec = parse_formula("y ~ e + E2 + (1 | g)")
    assert spec.variables == ("y", "e", "E2", "g")


def test_expression_variables_doc_example():
    assert expression_variables("scale(x) + I(z ** 2) + C(f, Treatment('b'))") == ["x", "z", "f"]
    assert expression_variables("x.y + a") == ["x.y", "a"]
    assert expression_variables("") == []


def test_spec_is_frozen():
    spec = parse_formula("y ~ x + (1 | g)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.fixed = "z"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.random[0].group = "h"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.response.expr = "z"  # type: ignore[misc]


def test_spec_is_hashable_and_equal():
    assert parse_formula("y ~ x + (1|g)") == parse_formula("y ~ x + (1|g)")
    assert hash(parse_formula("y ~ x + (1|g)")) == hash(parse_formula("y ~ x + (1|g)"))


# -- errors -----------------------------------------------------------------------------------


def parse_error(formula):
    with pytest.raises(bayesmix.FormulaError) as info:
        parse_formula(formula)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err, bayesmix.BayesmixError)
    return err


def test_error_unclosed_paren():
    err = parse_error("y ~ x + (1 | g")
    assert err.position == 8
    assert err.token == "("
    assert "never closed" in str(err)
    assert err.formula == "y ~ x + (1 | g"
    # the message shows the formula and a caret under the offending token
    lines = str(err).splitlines()
    assert lines[1] == "  y ~ x + (1 | g"
    assert lines[2] == "  " + " " * 8 + "^"


def test_error_unclosed_paren_in_response():
    err = parse_error("(y ~ x")
    assert err.position == 0
    assert "never closed" in str(err)


def test_error_stray_close_paren():
    err = parse_error("y ~ x)")
    assert err.position == 5
    assert err.token == ")"
    assert "unmatched ')'" in str(err)


def test_error_stray_close_paren_after_term():
    formula = "y ~ (1 | g) )"
    err = parse_error(formula)
    assert err.position == 12
    assert formula[err.position] == ")"


def test_error_stray_close_paren_in_response():
    err = parse_error("y) ~ x")
    assert err.position == 1
    assert "unmatched ')'" in str(err)


def test_error_no_tilde():
    err = parse_error("y x")
    assert err.position == 3  # end of the formula
    assert "no '~'" in str(err)


def test_error_two_tildes():
    err = parse_error("y ~ x ~ z")
    assert err.position == 6
    assert err.token == "~"
    assert "more than one '~'" in str(err)


@pytest.mark.parametrize("formula, position", [("~ x", 0), (" ~ x", 1)])
def test_error_empty_response(formula, position):
    err = parse_error(formula)
    assert err.position == position
    assert formula[err.position] == "~"
    assert "no response" in str(err)


@pytest.mark.parametrize("formula", ["y ~", "y ~ ", "y ~   "])
def test_error_nothing_after_tilde(formula):
    err = parse_error(formula)
    assert err.position == len(formula)
    assert "nothing after '~'" in str(err)
    assert "write 1" in str(err)


def test_error_missing_terms_before_bar():
    formula = "y ~ x + ( | g)"
    err = parse_error(formula)
    assert err.position == 10
    assert formula[err.position] == "|"
    assert "missing terms before '|'" in str(err)


def test_error_missing_grouping_factor():
    formula = "y ~ x + (1 | )"
    err = parse_error(formula)
    # after the '|' (11), at the place where the factor should be
    assert 11 <= err.position <= 13
    assert "missing grouping factor" in str(err)


@pytest.mark.parametrize("formula, position", [("y ~ x | g", 6), ("y ~ x || g", 6),
                                               ("y ~ a + x | g", 10)])
def test_error_bar_outside_parentheses(formula, position):
    err = parse_error(formula)
    assert err.position == position
    assert formula[err.position] == "|"
    assert "outside parentheses" in str(err)


def test_error_double_plus():
    formula = "y ~ x ++ z"
    err = parse_error(formula)
    assert err.position == 7
    assert formula[err.position] == "+"
    assert "two '+' in a row" in str(err)


def test_error_trailing_plus():
    err = parse_error("y ~ x + ")
    assert err.position == 8
    assert "empty term" in str(err)


def test_error_grouping_not_a_column():
    formula = "y ~ (1 | a + b)"
    err = parse_error(formula)
    assert err.position == 9
    assert err.token == "a + b"
    assert "'a + b' is not a column name" in str(err)
    assert "a/b" in str(err)


def test_error_grouping_starts_with_digit():
    err = parse_error("y ~ (1 | 2g)")
    assert err.position == 9
    assert "'2g'" in str(err)


def test_error_two_bars_in_term():
    err = parse_error("y ~ (1|g|h)")
    assert err.position == 4
    assert "needs one '|'" in str(err)


def test_error_duplicate_random_term_different_spelling():
    formula = "y ~ (1|g) + (1 | g)"
    err = parse_error(formula)
    assert err.position == 12  # the second, offending, occurrence
    assert "appears twice" in str(err)
    assert "(1 | g)" in str(err)


def test_error_duplicate_random_term_identical_text():
    formula = "y ~ (1|g) + (1|g)"
    err = parse_error(formula)
    assert "appears twice" in str(err)
    assert err.position == 12  # the second occurrence, not the first (4)


def test_error_duplicate_from_nesting():
    formula = "y ~ (x|g) + (1|g/h) + (1|g)"
    err = parse_error(formula)
    assert err.position == 22
    assert "appears twice" in str(err)
    assert "(1|g/h)" in str(err)


def test_duplicate_check_ignores_spaces_in_expr():
    with pytest.raises(bayesmix.FormulaError, match="appears twice"):
        parse_formula("y ~ (0+x|g) + (0 + x | g)")


def test_same_group_different_terms_is_fine():
    spec = parse_formula("y ~ (1|g) + (0+x|g)")
    assert len(spec.random) == 2


@pytest.mark.parametrize("formula", ["cbind(a) ~ x", "cbind(a, ) ~ x", "cbind(a, b, c) ~ x"])
def test_error_cbind_arguments(formula):
    err = parse_error(formula)
    assert err.position == 0
    assert err.token == "cbind"
    assert "exactly two arguments" in str(err)


def test_error_bad_trials_response():
    formula = "y | n ~ x"
    err = parse_error(formula)
    assert err.position == 4
    assert err.token == "n"
    assert "successes | trials(n)" in str(err)


def test_error_trials_without_successes():
    err = parse_error("| trials(n) ~ x")
    assert "successes | trials(n)" in str(err)


@pytest.mark.parametrize("bad, typename", [(None, "NoneType"), (3, "int"), (b"y ~ x", "bytes")])
def test_error_non_string(bad, typename):
    with pytest.raises(bayesmix.FormulaError) as info:
        parse_formula(bad)
    assert isinstance(info.value, ValueError)
    assert f"must be a string, not {typename}" in str(info.value)
    assert info.value.position is None
