"""Distributional (bm.Formula) and nonlinear (bm.NonLinear) models before sampling: syntax and
its errors, designs on common rows, priors, centring, and the PyMC log density against a
hand computation with scipy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from _post_fits import ORANGE_PRIORS
from scipy import special, stats

import bayesmix as bm
from bayesmix.model.build import pytensor_functions
from bayesmix.spec.nonlinear import FUNCTIONS, NonlinearExpr

LOGISTIC = "circumference ~ Asym / (1 + exp(-(age - xmid) / scal))"
NL_PRIORS = ORANGE_PRIORS


@pytest.fixture(scope="module")
def orange():
    return bm.datasets.load("orange")


@pytest.fixture(scope="module")
def hetero():
    rng = np.random.default_rng(7)
    n = 120
    g = rng.integers(0, 8, n)
    x = rng.normal(2.0, 3.0, n)
    y = 1 + 0.5 * x + rng.normal(0, 1, 8)[g] + rng.normal(size=n) * np.exp(-0.5 + 0.2 * x)
    return pd.DataFrame({"y": y, "x": x, "g": g, "w": rng.normal(size=n)})


def orange_nl() -> bm.NonLinear:
    return bm.NonLinear(LOGISTIC, Asym="1 + (1 | Tree)", xmid="1", scal="1")


# -- syntax ---------------------------------------------------------------------------------------
def test_formula_keeps_each_parameters_formula_with_the_mean_response():
    f = bm.Formula("y ~ x + (1 | g)", "sigma ~ x + (1 | g)")
    assert f.dpar_names == ("sigma",)
    spec = f.specs["sigma"]
    assert spec.fixed == "x" and [str(t) for t in spec.random] == ["(1 | g)"]
    assert spec.response.expr == "y"  # rows are selected with the mean's response
    assert str(f) == "y ~ x + (1 | g); sigma ~ x + (1 | g)"


@pytest.mark.parametrize("args, message", [
    (("~ x",), "needs a response"),
    (("y ~ x", "log(s) ~ x"), "must name a family parameter"),
    (("y ~ x", "~ x"), "has no left side"),
    (("y ~ x", "y ~ w"), "repeats the response 'y'"),
    (("y ~ x", "mu ~ w"), "'mu' is modelled by the first formula"),
    (("y ~ x", "sigma ~ x", "sigma ~ w"), "has two formulas"),
    (("y ~ x", "sigma"), "needs exactly one '~'"),
])
def test_formula_errors_name_the_problem(args, message):
    with pytest.raises(bm.FormulaError, match=message):
        bm.Formula(*args)


def test_a_parameter_the_family_lacks_is_a_family_error_listing_its_parameters(hetero):
    with pytest.raises(bm.FamilyError, match=r"no parameter 'phi'.*parameters are: sigma"):
        bm.Model(bm.Formula("y ~ x", "phi ~ x"), hetero)
    counts = hetero.assign(y=np.arange(len(hetero)) % 5)
    with pytest.raises(bm.FamilyError, match="'poisson' has no parameter 'sigma'"):
        bm.Model(bm.Formula("y ~ x", "sigma ~ x"), counts, family="poisson")


def test_nonlinear_names_parameters_and_covariates():
    nl = orange_nl()
    assert nl.param_names == ("Asym", "xmid", "scal")
    assert nl.expr.covariates == ("age",)
    assert nl.lines[1] == "Asym ~ 1 + (1 | Tree)"
    assert bm.NonLinear("y ~ a * x^2", a="1").expr.evaluate({"a": 2.0, "x": 3.0}) == 18.0


@pytest.mark.parametrize("expr, fragment", [
    ("a if x > 0 else b", "an if-expression"),
    ("a * (x > 0) + b", "a comparison"),
    ("a * x.mean() + b", "the function 'x.mean'"),
    ("__import__('os') + a + b", "the function '__import__'"),
    ("a * x[0] + b", "indexing"),
    ("a * np.exp(x) + b", "the function 'np.exp'"),
    ("a * x % 3 + b", "the operator Mod"),
    ("a * 'x' + b", "the constant 'x'"),
    ("a * exp + b", "the function name 'exp' without a call"),
])
def test_nonlinear_expressions_outside_the_whitelist_are_refused(expr, fragment):
    with pytest.raises(bm.FormulaError, match="not allowed in a nonlinear expression") as err:
        bm.NonLinear(f"y ~ {expr}", a="1", b="1")
    assert fragment in str(err.value)


def test_nonlinear_syntax_errors():
    with pytest.raises(bm.FormulaError, match="takes 2 arguments, got 1"):
        bm.NonLinear("y ~ power(a)", a="1")
    with pytest.raises(bm.FormulaError, match=r"\(s\) 'b' have a formula but do not appear"):
        bm.NonLinear("y ~ a * x", a="1", b="1")
    with pytest.raises(bm.FormulaError, match="has a left side.*Asym='1 \\+ \\(1 \\| Tree\\)'"):
        bm.NonLinear(LOGISTIC, Asym="circumference ~ 1 + (1 | Tree)", xmid="1", scal="1")
    with pytest.raises(bm.FormulaError, match="cannot parse"):
        bm.NonLinear("y ~ a * (x", a="1")
    with pytest.raises(bm.FormulaError, match="needs a response"):
        bm.NonLinear("~ a * x", a="1")
    with pytest.raises(bm.FormulaError, match="give each nonlinear parameter a formula"):
        bm.NonLinear("y ~ a * x")


def test_unknown_name_in_the_expression_suggests_close_names(orange):
    with pytest.raises(bm.FormulaError, match=r"\(s\) 'xmid' have a formula but do not appear"):
        bm.NonLinear("circumference ~ Asym / (1 + exp(-(age - xmdi) / scal))",
                     Asym="1", xmid="1", scal="1")
    nl = bm.NonLinear("circumference ~ Asym / (1 + exp(-(agee - xmid) / scal))",
                      Asym="1", xmid="1", scal="1")
    with pytest.raises(bm.FormulaError, match=r"'agee'.*neither a nonlinear parameter.*"
                                              r"Did you mean 'age'"):
        bm.Model(nl, orange, priors=NL_PRIORS)


def test_a_parameter_named_like_a_column_is_refused(orange):
    nl = bm.NonLinear("circumference ~ age * Tree", age="1", Tree="1")
    with pytest.raises(bm.DataError, match="'age' is also a column"):
        bm.Model(nl, orange)


def test_numpy_and_pytensor_evaluate_the_same_tree():
    text = ("exp(a) + log(b) * sqrt(b) - power(b, 1.5) + inv_logit(a) * logit(c) "
            "+ abs(a) / log1p(b) + expm1(c) - -a ^ 2")
    expr = NonlinearExpr.parse(text, ("a", "b", "c"))
    assert set(FUNCTIONS) <= set(pytensor_functions())
    values = {"a": np.array([-1.2, 0.3]), "b": np.array([0.7, 2.5]), "c": np.array([0.2, 0.9])}
    symbols = {k: pt.dvector(k) for k in values}
    fn = pytensor.function(list(symbols.values()), expr.evaluate(symbols, pytensor_functions()))
    a, b, c = values["a"], values["b"], values["c"]
    by_hand = (np.exp(a) + np.log(b) * np.sqrt(b) - b ** 1.5 + special.expit(a) * special.logit(c)
               + np.abs(a) / np.log1p(b) + np.expm1(c) - (-(a ** 2)))
    np.testing.assert_allclose(expr.evaluate(values), by_hand)
    np.testing.assert_allclose(fn(*values.values()), by_hand)


# -- designs on common rows ------------------------------------------------------------------------
def test_rows_missing_in_any_formula_are_dropped_from_every_predictor(hetero):
    df = hetero.copy()
    df.loc[[3, 10], "w"] = np.nan  # only the sigma formula uses w
    df.loc[5, "x"] = np.nan
    before = df.copy()
    with pytest.warns(bm.MissingDataWarning, match="dropped 3 of 120 rows") as record:
        m = bm.Model(bm.Formula("y ~ x + (1 | g)", "sigma ~ w + (1 | g)"), df)
    assert len(record) == 1
    pd.testing.assert_frame_equal(df, before)  # the user's data are not modified
    sigma = m.predictors[0]
    assert m.design.n == sigma.design.n == 117
    assert list(m.design.rows) == list(sigma.design.rows)
    assert sorted(m.design.dropped) == sorted(sigma.design.dropped) == [3, 5, 10]
    np.testing.assert_array_equal(sigma.design.X[:, 1], df["w"].drop([3, 5, 10]).to_numpy())
    assert [b.name for b in m.all_blocks] == ["g", "sigma_g"]
    assert sigma.design.blocks[0].group == "g"


def test_nonlinear_rows_include_the_expression_columns(orange):
    df = orange.copy()
    df.loc[4, "age"] = np.nan
    with pytest.warns(bm.MissingDataWarning, match="dropped 1 of 35"):
        m = bm.Model(orange_nl(), df, priors=NL_PRIORS)
    assert m.design.n == 34 and list(m.design.dropped) == [4]
    np.testing.assert_array_equal(m.setup.covariates["age"], df["age"].drop(4).to_numpy(float))
    assert all(lp.design.n == 34 for lp in m.predictors)


# -- priors ---------------------------------------------------------------------------------------
def test_distributional_default_priors_are_on_the_log_scale(hetero):
    m = bm.Model(bm.Formula("y ~ x + (1 | g)", "sigma ~ x + (1 | g)"), hetero)
    p = {s.key: s for s in m.prior_specs}
    assert "sigma" not in p  # no scalar sigma when it has a formula
    assert p["sigma:(Intercept)"].prior.kwargs == pytest.approx(
        {"mu": np.log(np.std(hetero["y"])), "sigma": 1.0})
    assert p["sigma:x"].prior.kwargs == pytest.approx({"mu": 0, "sigma": 1 / np.std(hetero["x"])})
    assert p["sigma:1|g"].prior.kwargs == {"sigma": 1.0} and p["sigma:1|g"].block == "sigma_g"
    assert p["x"].prior.kwargs["sigma"] == pytest.approx(
        2.5 * np.std(hetero["y"]) / np.std(hetero["x"]))  # the mean's defaults are unchanged


def test_distributional_prior_keys_and_classes(hetero):
    f = bm.Formula("y ~ x + (1 | g)", "sigma ~ x + (1 | g)")
    m = bm.Model(f, hetero, priors={"sigma:x": bm.Prior("Normal", mu=0, sigma=0.1),
                                    "sigma:Intercept": bm.Prior("Normal", mu=0, sigma=2),
                                    "sigma:sd": bm.Prior("HalfNormal", sigma=0.3),
                                    "sd": bm.Prior("HalfNormal", sigma=7)})
    p = {s.key: s for s in m.prior_specs}
    assert repr(p["sigma:x"].prior) == "Normal(mu=0, sigma=0.1)"
    assert repr(p["sigma:(Intercept)"].prior) == "Normal(mu=0, sigma=2)"
    assert repr(p["sigma:1|g"].prior) == "HalfNormal(sigma=0.3)"
    assert repr(p["1|g"].prior) == "HalfNormal(sigma=7)"  # "sd" is the mean's class only
    with pytest.raises(bm.PriorError, match=r"'sigma' is modelled by its formula.*"
                                            r"'sigma:\(Intercept\)', 'sigma:x'"):
        bm.Model(f, hetero, priors={"sigma": bm.Prior("Exponential", lam=1)})
    with pytest.raises(bm.PriorError, match="'sigma:b', 'sigma:cor', 'sigma:sd'"):
        bm.Model(f, hetero, priors={"sigma:w": bm.Prior("Normal", mu=0, sigma=1)})


def test_nonlinear_priors_are_required_and_scale_the_sd_defaults(orange):
    with pytest.raises(bm.PriorError) as err:
        bm.Model(orange_nl(), orange, priors={"Asym": NL_PRIORS["Asym"]})
    text = str(err.value)
    assert "'xmid:(Intercept)', 'scal:(Intercept)'" in text and "bm.Prior('Normal'" in text
    m = bm.Model(orange_nl(), orange, priors=NL_PRIORS)
    p = {s.key: s for s in m.prior_specs}
    assert repr(p["Asym:(Intercept)"].prior) == "Normal(mu=200, sigma=50)"
    assert repr(p["Asym:1|Tree"].prior) == "HalfNormal(sigma=50)"  # the Asym prior's scale
    m = bm.Model(orange_nl(), orange, priors={**NL_PRIORS, "Asym:sd": bm.Prior(
        "HalfStudentT", nu=3, sigma=20)})
    assert repr({s.key: s for s in m.prior_specs}["Asym:1|Tree"].prior) == \
        "HalfStudentT(nu=3, sigma=20)"
    with pytest.raises(bm.PriorError, match=r"group SD\(s\) 'Asym:1\|Tree'"):
        bm.Model(orange_nl(), orange, priors={**NL_PRIORS, "Asym": bm.Prior(
            "Gamma", alpha=20, beta=0.1)})
    nl = bm.NonLinear(LOGISTIC, Asym="1 + age", xmid="1", scal="1")
    with pytest.raises(bm.PriorError, match=r"'Asym' has several coefficients.*'Asym:age'"):
        bm.Model(nl, orange, priors=NL_PRIORS)


# -- centring -------------------------------------------------------------------------------------
def test_centring_of_predictor_blocks(hetero):
    f = bm.Formula("y ~ x + (1 | g)", "sigma ~ x + (1 | g)")
    m = bm.Model(f, hetero)
    assert m.predictors[0].centered == (False,)  # non-centred unless asked
    m = bm.Model(f, hetero, centered={"g": True})
    assert m.centered == (True,) and m.predictors[0].centered == (True,)
    m = bm.Model(f, hetero, centered={"sigma_g": True, "g": False})
    assert m.centered == (False,) and m.predictors[0].centered == (True,)
    with pytest.raises(bm.DataError, match="'h'.*names no grouping factor"):
        bm.Model(f, hetero, centered={"h": True})


# -- log density ----------------------------------------------------------------------------------
def _random_point(model, seed):
    point = model.pymc_model.initial_point()
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=np.shape(v)) * 0.3 + v for k, v in point.items()}


def test_distributional_log_density_matches_scipy_with_per_row_sigma(hetero):
    f = bm.Formula("y ~ x + (1 | g)", "sigma ~ x + (1 | g)")
    model = bm.Model(f, hetero, centered={"g": False})
    point = _random_point(model, 0)
    logp = model.pymc_model.compile_logp(jacobian=False)(point)
    pri = {s.key: s.prior.kwargs for s in model.prior_specs}
    x, y = hetero["x"].to_numpy(), hetero["y"].to_numpy()
    idx = model.design.blocks[0].index
    ic, b = float(point["_intercept_c"]), float(point["_beta"][0])
    ics, bs = float(point["_intercept_c_sigma"]), float(point["_beta_sigma"][0])
    sd, sds = np.exp(point["sd_g_log__"][0]), np.exp(point["sd_sigma_g_log__"][0])
    z, zs = point["_z_g"][:, 0], point["_z_sigma_g"][:, 0]
    mu = ic + b * (x - x.mean()) + sd * z[idx]
    sigma = np.exp(ics + bs * (x - x.mean()) + sds * zs[idx])
    assert np.ptp(sigma) > 0.5  # really per row
    expected = (
        stats.norm.logpdf(ic, pri["(Intercept)"]["mu"], pri["(Intercept)"]["sigma"])
        + stats.norm.logpdf(b, 0, pri["x"]["sigma"])
        + stats.halfnorm.logpdf(sd, scale=pri["1|g"]["sigma"]) + stats.norm.logpdf(z).sum()
        + stats.norm.logpdf(ics, pri["sigma:(Intercept)"]["mu"], 1.0)
        + stats.norm.logpdf(bs, 0, pri["sigma:x"]["sigma"])
        + stats.halfnorm.logpdf(sds, scale=1.0) + stats.norm.logpdf(zs).sum()
        + stats.norm.logpdf(y, mu, sigma).sum())
    assert logp == pytest.approx(expected, rel=1e-9)


def test_nonlinear_log_density_matches_scipy(orange):
    model = bm.Model(orange_nl(), orange, priors=NL_PRIORS)
    assert model.centered == () and model.predictors[0].centered == (False,)
    point = _random_point(model, 1)
    point["fixef_Asym"] = np.array([190.0])
    point["fixef_xmid"] = np.array([720.0])
    point["fixef_scal"] = np.array([340.0])
    logp = model.pymc_model.compile_logp(jacobian=False)(point)
    age, y = orange["age"].to_numpy(float), orange["circumference"].to_numpy(float)
    idx = model.predictors[0].design.blocks[0].index
    sd, z = np.exp(point["sd_Asym_Tree_log__"][0]), point["_z_Asym_Tree"][:, 0]
    sigma = np.exp(point["sigma_log__"])
    asym = 190.0 + sd * z[idx]
    mu = asym / (1 + np.exp(-(age - 720.0) / 340.0))
    expected = (stats.norm.logpdf([190, 720, 340], [200, 700, 350], [50, 200, 100]).sum()
                + stats.halfnorm.logpdf(sd, scale=50) + stats.norm.logpdf(z).sum()
                + stats.expon.logpdf(sigma, scale=np.std(y))
                + stats.norm.logpdf(y, mu, sigma).sum())
    assert logp == pytest.approx(expected, rel=1e-9)


def test_plain_formula_object_builds_the_same_model_as_a_string(hetero):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = bm.Model(bm.Formula("y ~ x + (1 | g)"), hetero)
    b = bm.Model("y ~ x + (1 | g)", hetero)
    point = b.pymc_model.initial_point()
    assert a.pymc_model.compile_logp()(point) == pytest.approx(b.pymc_model.compile_logp()(point))
    assert list(a.priors.index) == list(b.priors.index)


def test_nonlinear_model_with_a_sigma_formula(orange):
    nl = bm.NonLinear(LOGISTIC, "sigma ~ age", Asym="1 + (1 | Tree)", xmid="1", scal="1")
    model = bm.Model(nl, orange, priors={**NL_PRIORS, "sigma:age": bm.Prior(
        "Normal", mu=0, sigma=0.002)})
    keys = list(model.priors.index)
    assert "sigma" not in keys and {"sigma:(Intercept)", "sigma:age"} <= set(keys)
    assert [(lp.name, lp.role, lp.link) for lp in model.predictors] == [
        ("Asym", "nlpar", "identity"), ("xmid", "nlpar", "identity"),
        ("scal", "nlpar", "identity"), ("sigma", "dpar", "log")]
    point = _random_point(model, 2)
    point.update(fixef_Asym=np.array([190.0]), fixef_xmid=np.array([720.0]),
                 fixef_scal=np.array([340.0]))
    age, y = orange["age"].to_numpy(float), orange["circumference"].to_numpy(float)
    idx = model.predictors[0].design.blocks[0].index
    asym = 190.0 + np.exp(point["sd_Asym_Tree_log__"][0]) * point["_z_Asym_Tree"][idx, 0]
    mu = asym / (1 + np.exp(-(age - 720.0) / 340.0))
    ics, bs = float(point["_intercept_c_sigma"]), float(point["_beta_sigma"][0])
    sigma = np.exp(ics + bs * (age - age.mean()))
    logp_y = model.pymc_model.compile_fn(
        model.pymc_model.logp(vars=[model.pymc_model["circumference"]], sum=True),
        on_unused_input="ignore")(point)
    assert logp_y == pytest.approx(stats.norm.logpdf(y, mu, sigma).sum(), rel=1e-9)


def test_level_effects_of_centred_predictor_blocks(hetero, orange):
    import xarray as xr

    from bayesmix.model.level_effects import derive_level_effects

    rng = np.random.default_rng(4)
    gamma = rng.normal(1.0, 0.5, size=(1, 3, 8, 1))
    intercept = rng.normal(1.0, 0.1, size=(1, 3))
    dims = ("chain", "draw", "g", "sigma_g__term")
    draws = xr.Dataset({"_gamma_sigma_g": (dims, gamma.copy()),
                        "_intercept_c_sigma": (("chain", "draw"), intercept)})
    sigma = bm.Model(bm.Formula("y ~ x", "sigma ~ x + (1 | g)"), hetero,
                     centered={"g": True}).predictors[0]
    r = derive_level_effects(draws, sigma.design, sigma.centered, lp="sigma",
                             center=sigma.center)["r_sigma_g"].values
    np.testing.assert_allclose(r[..., 0], gamma[..., 0] - intercept[..., None])  # absorbed
    # nonlinear coefficients are not centred: a centred block is r itself
    asym = bm.Model(orange_nl(), orange, priors=NL_PRIORS, centered={"Tree": True}).predictors[0]
    tree = rng.normal(0, 30, size=(1, 3, 5, 1))
    draws = xr.Dataset({"_gamma_Asym_Tree": (("chain", "draw", "Tree", "Asym_Tree__term"), tree)})
    r = derive_level_effects(draws, asym.design, asym.centered, lp="Asym", center=asym.center)
    np.testing.assert_allclose(r["r_Asym_Tree"].values, tree)


def test_hypothesis_names_nonlinear_and_distributional_coefficients(orange, hetero):
    """hypothesis() reaches a nonlinear parameter (``Asym``, ``Asym:(Intercept)``), its group
    SD and a distributional coefficient (``sigma:x``), here on prior draws as the posterior."""
    import xarray as xr

    from bayesmix.api.fit import FitResult
    from bayesmix.posterior.hypothesis import parameter_draws

    model = bm.Model(orange_nl(), orange, priors=NL_PRIORS)
    prior = model.prior_predictive(draws=400, random_seed=3)["prior"].to_dataset()
    fit = FitResult(model=model, settings=None, idata=xr.DataTree.from_dict({"posterior": prior}))
    values = parameter_draws(prior, fit.model)
    assert {"Asym", "Asym:(Intercept)", "xmid", "scal", "sd_Asym_Tree"} <= set(values)
    np.testing.assert_allclose(values["Asym"], prior["fixef_Asym"].values[..., 0])
    table = fit.hypothesis("Asym - xmid / 4 > 0", prior_draws=0)
    diff = values["Asym"] - values["xmid"] / 4
    assert table["estimate"].iloc[0] == pytest.approx(diff.mean())
    assert table["post_prob"].iloc[0] == pytest.approx((diff > 0).mean())
    dist = bm.Model(bm.Formula("y ~ x + (1 | g)", "sigma ~ x"), hetero)
    prior = dist.prior_predictive(draws=50, random_seed=1)["prior"].to_dataset()
    values = parameter_draws(prior, dist)
    np.testing.assert_allclose(values["sigma:x"],
                               prior["fixef_sigma"].sel(coef_sigma="x").values)
