"""Issue 20, property-based: random formula mutations either parse to a spec whose rendered
terms are the input's terms (nothing dropped, nothing added) or raise a FormulaError; random
data edge cases either raise a BayesmixError or give a design with finite values only; nothing
foreign ever escapes ``Model(...)``. Models are constructed, never sampled.

Deterministic (``derandomize=True``, no example database) so that CI is stable.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesmix as bm
from bayesmix.spec.formula import expression_variables, parse_formula

# BAYESMIX_PROPERTY_EXAMPLES=5000 explores further (by hand or nightly); CI runs 150 each.
PROFILE = settings(max_examples=int(os.environ.get("BAYESMIX_PROPERTY_EXAMPLES", "150")),
                   deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

COLUMNS = ("x", "z", "w", "f", "g", "h")
TERMS = ("x", "z", "x:z", "x * f", "f", "I(x ** 2)", "log(w)", "scale(z)", "0", "1",
         "(1 | g)", "(x || g)", "(1 | g/h)", "(1 + x | h)", "offset(w)", "C(f, Sum)")
# Tokens a slip of the keyboard adds: operators, names, punctuation, parentheses
INSERTS = ("+", "*", ":", "|", "||", "/", "(", ")", ",", " x", "z ", "1", "0", "-", "^", "~",
           "True", "y")


def _top_split(text: str) -> list[str]:
    """Split at '+' outside parentheses (an independent reimplementation for the oracle)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "+" and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _expected_terms(rhs: str) -> list[str]:
    """The input's terms with whitespace removed, random terms' nesting expanded as lme4."""
    out = []
    for piece in _top_split(rhs):
        term = re.sub(r"\s+", "", piece)
        m = re.fullmatch(r"\((.*?)(\|\|?)([^|()]*)\)", term)
        if m and "/" in m.group(3):
            parts, prefix = m.group(3).split("/"), []
            for part in parts:
                prefix.append(part)
                out.append(f"({m.group(1)}{m.group(2)}{':'.join(prefix)})")
        else:
            out.append(term)
    return out


@st.composite
def mutated_formulas(draw: st.DrawFn) -> str:
    terms = draw(st.lists(st.sampled_from(TERMS), min_size=1, max_size=4))
    formula = "y ~ " + " + ".join(terms)
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(("insert", "delete", "swap")))
        i = draw(st.integers(4, len(formula)))
        if kind == "insert":
            formula = formula[:i] + draw(st.sampled_from(INSERTS)) + formula[i:]
        elif kind == "delete" and i < len(formula):
            formula = formula[:i] + formula[i + 1:]
        elif i + 1 < len(formula):
            formula = formula[:i] + formula[i + 1] + formula[i] + formula[i + 2:]
    return formula


@PROFILE
@given(mutated_formulas())
def test_mutated_formula_parses_to_its_own_terms_or_raises(formula):
    try:
        spec = parse_formula(formula)
    except bm.FormulaError as err:
        assert err.position is None or 0 <= err.position <= len(formula)
        return
    rhs = formula.split("~", 1)[1]
    rendered = str(spec).split("~", 1)[1]
    assert [re.sub(r"\s+", "", t) for t in spec.terms] == _expected_terms(rhs), formula
    assert re.sub(r"\s+", "", rendered) == "+".join(_expected_terms(rhs))
    # the rendering is a fixed point of the parser
    assert str(parse_formula(str(spec))) == str(spec)


@PROFILE
@given(mutated_formulas())
def test_formulae_keeps_every_variable_of_a_parsed_fixed_part(formula):
    """What the parser accepts, formulae evaluates without dropping a column: every variable
    of the fixed part is in some term of the design."""
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"y": rng.normal(size=24), "x": rng.normal(size=24),
                         "z": rng.normal(size=24), "w": rng.uniform(1, 2, size=24),
                         "f": list("abc") * 8, "g": list("pqrs") * 6, "h": list("uv") * 12})
    try:
        spec = parse_formula(formula)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            design = bm.make_design(spec, data)
    except bm.BayesmixError:
        return
    fixed = design._fixed_design
    if fixed is None:
        assert spec.fixed.replace(" ", "") in ("0", "-1", "0-1", "1-1")
        return
    used = set().union(*(getattr(t, "var_names", set()) for t in fixed.terms.values()))
    assert set(expression_variables(spec.fixed)) <= used | {"Sum"}, formula


# -- data edge cases ----------------------------------------------------------------------------

_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 1e300, -1e-300]),
)


@st.composite
def edge_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    y = draw(st.lists(_VALUES, min_size=n, max_size=n))
    x = draw(st.lists(_VALUES, min_size=n, max_size=n))
    g = draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n))
    frame = pd.DataFrame({"y": y, "x": x, "g": g})
    twist = draw(st.sampled_from(("none", "y_text", "y_cat", "x_text", "x_const", "x_alias",
                                  "dup_col", "g_numeric", "y_bool")))
    if twist == "y_text":
        frame["y"] = frame["y"].astype(str)
    elif twist == "y_cat":
        frame["y"] = pd.Categorical(np.where(frame["x"] > 0, "hi", "lo"))
    elif twist == "x_text":
        frame["x"] = ["1", "two"] * (n // 2) + ["3"] * (n % 2)
    elif twist == "x_const":
        frame["x"] = 2.0
    elif twist == "x_alias":
        frame["x2"] = 2 * frame["x"]
    elif twist == "dup_col":
        frame = pd.concat([frame, frame[["x"]]], axis=1)
    elif twist == "g_numeric":
        frame["g"] = np.arange(n) % 3
    elif twist == "y_bool":
        frame["y"] = frame["x"] > 0
    return frame


@PROFILE
@given(edge_frames(), st.sampled_from(["y ~ x + (1 | g)", "y ~ 0 + x + (x || g)",
                                       "y ~ x + x2 + (1 | g)", "y ~ log(x) + (1 | g)"]),
       st.sampled_from(["gaussian", "poisson", "bernoulli"]))
def test_edge_data_give_a_bayesmix_error_or_a_finite_design(frame, formula, family):
    before = frame.copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = bm.Model(formula, frame, family=family)
    except bm.BayesmixError:
        pass  # anything else (numpy, pandas, formulae, PyMC) fails the test
    else:
        design = model.design
        assert np.isfinite(design.X).all()
        assert all(np.isfinite(b.Z).all() for b in design.blocks)
        assert np.isfinite(model.y).all()
        X = design.X / np.linalg.norm(design.X, axis=0)  # full rank on columns' own scales
        assert X.shape[1] == 0 or np.linalg.matrix_rank(X) == X.shape[1]
    pd.testing.assert_frame_equal(frame, before)  # the user's data are never modified


_PRIOR_VALUES = st.one_of(st.none(), st.booleans(), st.text(max_size=2),
                          st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-3, 3), st.lists(st.integers(), max_size=2))


@PROFILE
@given(st.sampled_from(sorted(bm.priors.KNOWN_DISTRIBUTIONS) + ["normal", ""]),
       st.dictionaries(st.sampled_from(["mu", "sigma", "lower", "upper", "alpha", "beta",
                                        "nu", "lam", "eta", "b", "s"]),
                       _PRIOR_VALUES, max_size=3))
def test_prior_is_valid_or_a_prior_error(dist, params):
    try:
        prior = bm.Prior(dist, **params)
    except bm.PriorError:
        return
    allowed, _ = bm.priors.KNOWN_DISTRIBUTIONS[dist]
    assert set(prior.kwargs) == set(allowed)
    assert all(np.isfinite(v) for v in prior.kwargs.values())
    if dist == "Uniform":
        assert prior.kwargs["lower"] < prior.kwargs["upper"]
