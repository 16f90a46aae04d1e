"""Families without sampling: PyMC and numpy likelihoods against scipy.stats, random draws
against the distributions' moments, response checks, default priors and observation weights.

The likelihood checks build each family's PyMC model on a small data set, set every free
parameter to a chosen value and compare the observed variable's pointwise log density with an
independent scipy computation for the same parameters (and the numpy ``family.loglik`` with
both). Model fits are in ``tests/families/test_families_recovery.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import special, stats

import bayesmix as bm
from bayesmix.families import FAMILIES, LINKS, get_family

RNG = np.random.default_rng(20251)
N = 24
X = RNG.normal(size=N)

# True parameter values for the likelihood checks.
PARAMS = {"sigma": 0.7, "nu": 4.5, "shape": 2.5, "phi": 6.0, "theta": 1.8, "zi": 0.3,
          "hu": 0.35}
CUTPOINTS = np.array([-0.8, 0.4, 1.9])
INTERCEPT = {"identity": 1.4, "log": 0.6, "inverse": 0.8, "logit": -0.3, "probit": -0.2,
             "cloglog": -0.4}
SLOPE = 0.5


def _response(family: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A response of the right kind (with zeros for the zero-inflated and hurdle families)."""
    rng = np.random.default_rng(7)
    if family in ("gaussian", "student_t"):
        return rng.normal(1.5, 1.0, N), None
    if family in ("lognormal", "gamma", "weibull"):
        return rng.gamma(2.0, 0.8, N), None
    if family == "beta":
        return rng.beta(2.0, 3.0, N), None
    if family == "bernoulli":
        return rng.integers(0, 2, N).astype(float), None
    if family in ("binomial", "beta_binomial"):
        n = rng.integers(1, 12, N).astype(float)
        return np.floor(n * rng.random(N)), n
    if family == "cumulative":
        return np.tile([1.0, 2.0, 3.0, 4.0], N // 4), None
    y = rng.negative_binomial(2, 0.4, N).astype(float)
    y[:4] = 0.0
    return y, None


def _frame(family: str) -> pd.DataFrame:
    y, n = _response(family)
    df = pd.DataFrame({"y": y, "x": X})
    if n is not None:
        df["n"] = n
    return df


def _formula(family: str) -> str:
    return "y | trials(n) ~ x" if family in ("binomial", "beta_binomial") else "y ~ x"


def _eta(family: str, link: str) -> np.ndarray:
    """The linear predictor at the chosen point (predictors are centred inside the model)."""
    xc = X - X.mean()
    if family == "cumulative":  # no intercept: the cutpoints are those of the centred x
        return SLOPE * xc
    return INTERCEPT[link] + SLOPE * xc


def _point(model: bm.Model, family: str, link: str) -> dict[str, np.ndarray]:
    """Transformed values of the free variables that set every parameter to its chosen value."""
    pm_model = model.pymc_model
    values = {"_intercept_c": INTERCEPT[link], "_beta": np.array([SLOPE]), "fixef":
              np.array([SLOPE]), "_cutpoints_c": CUTPOINTS, **PARAMS}
    point = {}
    for rv in pm_model.free_RVs:
        value = np.asarray(values[rv.name], dtype=float)
        transform = pm_model.rvs_to_transforms[rv]
        if transform is not None:
            value = transform.forward(value, *rv.owner.inputs).eval()
        point[pm_model.rvs_to_values[rv].name] = value
    return point


def _scipy_loglik(family: str, link: str, y: np.ndarray, n: np.ndarray | None,
                  eta: np.ndarray) -> np.ndarray:
    """Independent reference: scipy.stats densities with the documented parametrisation."""
    mu = LINKS[link].inverse(eta)
    p = PARAMS
    if family == "gaussian":
        return stats.norm.logpdf(y, mu, p["sigma"])
    if family == "student_t":
        return stats.t.logpdf(y, p["nu"], mu, p["sigma"])
    if family == "lognormal":
        return stats.lognorm.logpdf(y, s=p["sigma"], scale=np.exp(eta))
    if family == "gamma":
        return stats.gamma.logpdf(y, a=p["shape"], scale=mu / p["shape"])
    if family == "weibull":  # mean mu: scale = mu / Gamma(1 + 1/shape)
        return stats.weibull_min.logpdf(y, p["shape"],
                                        scale=mu / special.gamma(1 + 1 / p["shape"]))
    if family == "beta":
        return stats.beta.logpdf(y, mu * p["phi"], (1 - mu) * p["phi"])
    if family == "bernoulli":
        return stats.bernoulli.logpmf(y, mu)
    if family == "binomial":
        return stats.binom.logpmf(y, n, mu)
    if family == "beta_binomial":
        return stats.betabinom.logpmf(y, n, mu * p["phi"], (1 - mu) * p["phi"])
    if family == "cumulative":
        cdf = stats.logistic.cdf if link == "logit" else stats.norm.cdf
        k = y.astype(int)
        upper = np.append(CUTPOINTS, np.inf)[k - 1]
        lower = np.append(-np.inf, CUTPOINTS)[k - 1]
        return np.log(cdf(upper - eta) - cdf(lower - eta))
    pois, nb = stats.poisson(mu), stats.nbinom(p["theta"], p["theta"] / (p["theta"] + mu))
    count = nb if "negativebinomial" in family else pois
    pmf = count.pmf(y)
    if family in ("poisson", "negativebinomial"):
        return np.log(pmf)
    if family.startswith("zero_inflated"):
        zi = p["zi"]
        return np.log(np.where(y == 0, zi + (1 - zi) * count.pmf(0), (1 - zi) * pmf))
    hu = p["hu"]  # hurdle
    return np.log(np.where(y == 0, hu, (1 - hu) * pmf / (1 - count.pmf(0))))


FAMILY_LINKS = [(f.name, link) for f in FAMILIES.values() for link in f.links]


def test_every_family_and_link_is_checked():
    assert len(FAMILY_LINKS) == 30
    assert set(FAMILIES) == {
        "gaussian", "student_t", "lognormal", "gamma", "weibull", "bernoulli", "binomial",
        "beta_binomial", "beta", "poisson", "negativebinomial", "zero_inflated_poisson",
        "zero_inflated_negativebinomial", "hurdle_poisson", "hurdle_negativebinomial",
        "cumulative"}


@pytest.mark.parametrize(("family", "link"), FAMILY_LINKS)
def test_pymc_and_numpy_logliks_match_scipy(family, link):
    df = _frame(family)
    model = bm.Model(_formula(family), df, family=family, link=link)
    pm_model = model.pymc_model
    observed = pm_model.observed_RVs[0]
    pointwise = pm_model.compile_fn(pm_model.logp(vars=[observed], sum=False)[0],
                                    on_unused_input="ignore")
    pymc_values = pointwise(_point(model, family, link))

    y, n = model.y, model.trials
    eta = _eta(family, link)
    expected = _scipy_loglik(family, link, y, n, eta)
    assert np.all(np.isfinite(expected))
    # One value per row: a term counted once per trial, or a missing normalising constant,
    # would show up here.
    assert pymc_values.shape == (N,)
    np.testing.assert_allclose(pymc_values, expected, rtol=1e-7, atol=1e-9)

    params = {name: np.asarray(value) for name, value in PARAMS.items()}
    params["cutpoints"] = CUTPOINTS
    numpy_values = get_family(family).loglik(y, eta, link, params, n)
    np.testing.assert_allclose(numpy_values, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("family", "link"), [("gaussian", "identity"), ("beta", "logit"),
                                              ("cumulative", "probit")])
def test_the_whole_model_density_is_priors_plus_pointwise_loglik(family, link):
    """No likelihood term is added twice or left out of the model's joint density."""
    model = bm.Model(_formula(family), _frame(family), family=family, link=link)
    pm_model = model.pymc_model
    point = _point(model, family, link)
    total = pm_model.compile_logp(jacobian=False)(point)
    observed = pm_model.observed_RVs[0]
    priors = pm_model.compile_logp(vars=pm_model.free_RVs, jacobian=False)(point)
    expected = _scipy_loglik(family, link, model.y, model.trials, _eta(family, link)).sum()
    assert total - priors == pytest.approx(expected, rel=1e-7)  # PyMC: log_diff_normal_cdf
    assert observed.name == "y"


def test_extreme_ordinal_categories_keep_their_precision():
    """log P(y = K) far in the tail: the numpy loglik stays finite and exact."""
    params = {"cutpoints": np.array([-1.0, 0.0, 1.0])}
    eta = np.array([-40.0, 40.0])
    y = np.array([4.0, 1.0])  # both extremely unlikely
    values = FAMILIES["cumulative"].loglik(y, eta, "logit", params, None)
    # P(y=4) = 1 - F(1 + 40) = F(-41) and P(y=1) = F(-1 - 40) = F(-41)
    np.testing.assert_allclose(values, special.log_expit(-41.0), rtol=1e-12)
    probit = FAMILIES["cumulative"].loglik(y, eta, "probit", params, None)
    np.testing.assert_allclose(probit, special.log_ndtr(-41.0), rtol=1e-12)


# -- random draws --------------------------------------------------------------------------------
DRAWS = 400_000
BATCHES = 40


def _batch_check(draws: np.ndarray, statistic, expected: float, what: str) -> None:
    """The statistic over DRAWS draws is within 5 Monte-Carlo SEs (batch means) of theory."""
    values = np.array([statistic(b) for b in np.split(draws, BATCHES)])
    se = values.std(ddof=1) / np.sqrt(BATCHES)
    assert abs(values.mean() - expected) < 5 * se + 1e-12, (
        f"{what}: {values.mean():.5g} vs {expected:.5g} (MC SE {se:.3g})")


def _moments(family: str, mu: float, n: float) -> tuple[float, float]:
    """Theoretical mean and variance of y for the PARAMS values."""
    p = PARAMS
    if family == "gaussian":
        return mu, p["sigma"] ** 2
    if family == "student_t":
        return mu, p["sigma"] ** 2 * p["nu"] / (p["nu"] - 2)
    if family == "lognormal":  # identity link: mu is the mean of log y
        s2 = p["sigma"] ** 2
        return np.exp(mu + s2 / 2), (np.exp(s2) - 1) * np.exp(2 * mu + s2)
    if family == "gamma":
        return mu, mu ** 2 / p["shape"]
    if family == "weibull":
        g1, g2 = special.gamma(1 + 1 / p["shape"]), special.gamma(1 + 2 / p["shape"])
        return mu, mu ** 2 * (g2 / g1 ** 2 - 1)
    if family == "beta":
        return mu, mu * (1 - mu) / (1 + p["phi"])
    if family == "bernoulli":
        return mu, mu * (1 - mu)
    if family == "binomial":
        return n * mu, n * mu * (1 - mu)
    if family == "beta_binomial":
        return n * mu, n * mu * (1 - mu) * (p["phi"] + n) / (p["phi"] + 1)
    if family == "poisson":
        return mu, mu
    if family == "negativebinomial":
        return mu, mu + mu ** 2 / p["theta"]
    if family == "zero_inflated_poisson":
        zi = p["zi"]
        return (1 - zi) * mu, (1 - zi) * mu * (1 + zi * mu)
    if family == "zero_inflated_negativebinomial":
        zi, var = p["zi"], mu + mu ** 2 / p["theta"]
        return (1 - zi) * mu, (1 - zi) * (var + mu ** 2) - ((1 - zi) * mu) ** 2
    # hurdle: moments of the zero-truncated count, from its pmf
    count = stats.poisson(mu) if family == "hurdle_poisson" else \
        stats.nbinom(p["theta"], p["theta"] / (p["theta"] + mu))
    k = np.arange(1, 2000)
    w = count.pmf(k) / count.sf(0)
    m1, m2 = (1 - p["hu"]) * np.sum(k * w), (1 - p["hu"]) * np.sum(k ** 2 * w)
    return m1, m2 - m1 ** 2


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "cumulative"])
def test_simulate_matches_the_distributions_mean_and_variance(family):
    fam = get_family(family)
    link = fam.default_link
    eta = np.full(DRAWS, INTERCEPT[link])
    n = 7.0 if fam.needs_trials else None
    params = {k: np.asarray(v) for k, v in PARAMS.items()}
    draws = fam.simulate(np.random.default_rng(3), eta, link, params, n)
    mean, var = _moments(family, float(LINKS[link].inverse(INTERCEPT[link])), n or 1.0)
    assert fam.mean(eta[:1], link, params, n)[0] == pytest.approx(mean, rel=1e-10)
    _batch_check(draws, np.mean, mean, f"{family} mean")
    _batch_check(draws, lambda b: b.var(ddof=1), var, f"{family} variance")


@pytest.mark.parametrize("family", ["poisson", "negativebinomial", "zero_inflated_poisson",
                                    "zero_inflated_negativebinomial", "hurdle_poisson",
                                    "hurdle_negativebinomial", "beta_binomial", "cumulative"])
def test_simulated_frequencies_match_exp_loglik(family):
    """Discrete families: P(y = k) estimated from draws against exp(loglik(k))."""
    fam = get_family(family)
    link = fam.default_link
    eta = np.full(DRAWS, 0.3)
    params = {k: np.asarray(v) for k, v in PARAMS.items()}
    params["cutpoints"] = CUTPOINTS
    n = 5.0 if fam.needs_trials else None
    draws = fam.simulate(np.random.default_rng(4), eta, link, params, n)
    support = np.arange(1, 5) if family == "cumulative" else np.arange(0, 6)
    probs = np.exp(fam.loglik(support.astype(float), np.full(len(support), 0.3), link, params, n))
    if family == "cumulative":
        assert probs.sum() == pytest.approx(1.0, rel=1e-12)
        assert fam.mean(eta[:1], link, params, None)[0] == pytest.approx(
            np.sum(support * probs), rel=1e-12)
    freq = np.array([np.mean(draws == k) for k in support])
    se = np.sqrt(probs * (1 - probs) / DRAWS)
    np.testing.assert_array_less(np.abs(freq - probs), 5 * se + 1e-9)


# -- response checks -----------------------------------------------------------------------------
def _raises(family: str, y, match: str, formula: str = "count ~ x", **columns):
    df = pd.DataFrame({"count": y, "x": np.arange(len(y), dtype=float), **columns})
    with pytest.raises(bm.ResponseError, match=match):
        bm.Model(formula, df, family=family)


@pytest.mark.parametrize("family", ["poisson", "negativebinomial", "zero_inflated_poisson",
                                    "zero_inflated_negativebinomial", "hurdle_poisson",
                                    "hurdle_negativebinomial"])
def test_counts_must_be_non_negative_integers(family):
    _raises(family, [1.0, -2.0, 3.0, 0.0], r"'count' must be non-negative integers.*found -2")
    _raises(family, [1.0, 2.5, 3.0, 0.0], r"'count' must be non-negative integers.*found 2.5")


def test_beta_response_must_be_strictly_inside_zero_one():
    _raises("beta", [0.2, 0.0, 0.5, 1.0], r"'count' has 2 values of exactly 0 or 1.*"
            r"\(y \* \(n - 1\) \+ 0.5\) / n with n = 4.*Smithson.*zero-one-inflated")
    _raises("beta", [0.2, 1.7, 0.5, 0.4], r"'count' must be a proportion.*found 1.7")


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_positive_families_refuse_zero_and_negative_values(family):
    _raises(family, [1.0, 0.0, 2.0, 3.0], rf"'count' must be positive for family '{family}'.*"
            "found 0 in 1 rows")
    _raises(family, [1.0, -1.0, -2.0, 3.0], "found -1 in 2 rows")


def test_ordinal_response_needs_an_order():
    _raises("cumulative", ["low", "high", "mid", "low"], r"'count' has text labels.*"
            r"pass an ordered Categorical")
    unordered = pd.Categorical(["low", "high", "mid", "low"])
    _raises("cumulative", unordered, r"'count' is an unordered categorical.*'high', 'low', 'mid'"
            r".*ordered=True")
    _raises("cumulative", [1.0, 2.5, 3.0, 1.0], "integer ratings.*found 2.5")
    _raises("cumulative", [2, 2, 2, 2], "single observed category")


def test_beta_binomial_needs_trials():
    _raises("beta_binomial", [0.0, 1.0, 1.0, 0.0], r"'beta_binomial' needs counts out of n "
            r"trials, e.g. 'count \| trials\(n\)")
    _raises("beta_binomial", [3.0, 1.0], r"successes exceed trials", "count | trials(n) ~ x",
            n=[2.0, 2.0])
    _raises("poisson", [3.0, 1.0], r"cbind\(\)/trials\(\), which needs family='binomial' or "
            "'beta_binomial', not 'poisson'", "count | trials(n) ~ x", n=[4.0, 2.0])


# -- ordinal models: categories, cutpoints, no intercept -------------------------------------------
def test_ordered_categorical_gives_labelled_cutpoints_and_no_intercept():
    levels = ["never", "rarely", "often", "always"]
    df = pd.DataFrame({"freq": pd.Categorical(np.tile(["rarely", "never", "always", "often"], 5),
                                              categories=levels + ["unused"], ordered=True),
                       "x": np.linspace(0, 1, 20), "g": np.repeat(list("abcde"), 4)})
    model = bm.Model("freq ~ x + (1 | g)", df, family="cumulative")
    assert model.categories == tuple(levels)  # unused categories are dropped
    assert model.y[:4].tolist() == [2.0, 1.0, 4.0, 3.0]
    assert model.design.coef_names == ("x",)
    assert "(Intercept)" not in model.priors.index
    assert model.priors.loc["cutpoints", "prior"] == "Normal(mu=0, sigma=5)"
    pm_model = model.pymc_model
    assert list(pm_model.coords["cutpoint"]) == ["never|rarely", "rarely|often", "often|always"]
    assert "fixef" in {v.name for v in pm_model.free_RVs}
    # initial cutpoints at the marginal logit thresholds: 5 rows per category of 20
    init = pm_model.initial_point()["_cutpoints_c_ordered__"]
    start = np.concatenate([[init[0]], init[0] + np.cumsum(np.exp(init[1:]))])
    np.testing.assert_allclose(start, special.logit((np.array([5, 10, 15]) + 0.5) / 21))
    # replaying new data keeps the intercept out too
    assert model.design.replay(df.iloc[:3]).X.shape == (3, 1)


def test_integer_ratings_use_their_sorted_values_as_categories():
    df = pd.DataFrame({"rating": [3, 1, 5, 3, 5, 1], "x": np.arange(6.0)})
    model = bm.Model("rating ~ x", df, family="cumulative", link="probit")
    assert model.categories == (1, 3, 5)
    assert model.y.tolist() == [2.0, 1.0, 3.0, 2.0, 3.0, 1.0]
    assert list(model.pymc_model.coords["cutpoint"]) == ["1|3", "3|5"]


def test_ordinal_model_refuses_a_full_dummy_coding():
    df = pd.DataFrame({"rating": [1, 2, 3, 1, 2, 3], "f": list("ababab")})
    with pytest.raises(bm.FormulaError, match="cutpoints of an ordinal model already provide"):
        bm.Model("rating ~ 0 + f", df, family="cumulative")
    assert bm.Model("rating ~ f", df, family="cumulative").design.coef_names == ("fb",)


# -- default priors ------------------------------------------------------------------------------
def test_default_priors_of_the_family_parameters():
    df = _frame("zero_inflated_negativebinomial")
    table = bm.Model("y ~ x", df, family="zero_inflated_negativebinomial").priors
    assert table.loc["theta", "prior"] == "Exponential(lam=0.01)"
    assert table.loc["zi", "prior"] == "Beta(alpha=1, beta=1)"
    assert table.loc["(Intercept)", "prior"] == \
        f"Normal(mu={np.log(df['y'].mean()):.4g}, sigma=2.5)"
    t = bm.Model("y ~ x", _frame("student_t"), family="student_t").priors
    assert t.loc["nu", "prior"] == "Gamma(alpha=2, beta=0.1)"
    assert t.loc["sigma", "kind"] == "family"


def test_intercept_priors_are_centred_on_the_link_scale_of_the_data():
    pos = _frame("lognormal")
    lognormal = bm.Model("y ~ x", pos, family="lognormal").priors.loc["(Intercept)", "prior"]
    log_y = np.log(pos["y"])
    assert lognormal == f"Normal(mu={log_y.mean():.4g}, sigma={2.5 * log_y.std(ddof=0):.4g})"
    inverse = bm.Model("y ~ x", pos, family="gamma", link="inverse").priors
    mean, sd = pos["y"].mean(), pos["y"].std(ddof=0)
    assert inverse.loc["(Intercept)", "prior"] == \
        f"Normal(mu={1 / mean:.4g}, sigma={2.5 * sd / mean ** 2:.4g})"
    unit = _frame("beta")
    beta = bm.Model("y ~ x", unit, family="beta").priors.loc["(Intercept)", "prior"]
    assert beta == f"Normal(mu={special.logit(unit['y'].mean()):.4g}, sigma=2.5)"


def test_family_parameter_priors_must_respect_their_support():
    df = _frame("zero_inflated_poisson")
    with pytest.raises(bm.PriorError, match="'zi' is a probability"):
        bm.Model("y ~ x", df, family="zero_inflated_poisson",
                 priors={"zi": bm.Prior("HalfNormal", sigma=1)})
    with pytest.raises(bm.PriorError, match="'theta' is a positive parameter"):
        bm.Model("y ~ x", df, family="negativebinomial",
                 priors={"theta": bm.Prior("Normal", mu=0, sigma=1)})
    with pytest.raises(bm.PriorError, match="'cutpoints' are ordered real numbers"):
        bm.Model("y ~ x", _frame("cumulative"), family="cumulative",
                 priors={"cutpoints": bm.Prior("HalfNormal", sigma=1)})
    ok = bm.Model("y ~ x", df, family="zero_inflated_poisson",
                  priors={"zi": bm.Prior("Beta", alpha=1, beta=9)})
    assert ok.priors.loc["zi", "source"] == "user"


def test_family_aliases_and_parameter_links():
    assert get_family("nbinom2").name == "negativebinomial"
    assert get_family("zinb").params == ("theta", "zi")
    assert get_family("hurdle_poisson").param_links == {"hu": "logit"}
    assert get_family("student_t").param_links == {"sigma": "log", "nu": "log"}
    assert get_family("cumulative").links == ("logit", "probit")
    with pytest.raises(bm.FamilyError, match="does not support link 'log'"):
        bm.Model("y ~ x", _frame("beta"), family="beta", link="log")


# -- observation weights -------------------------------------------------------------------------
def _grouped(family: str, rows: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    y, _ = _response(family)
    return pd.DataFrame({"y": np.resize(y, rows), "x": rng.normal(size=rows),
                         "g": np.repeat(np.arange(rows // 5), 5)})


def _logp_at(model: bm.Model, point: dict) -> float:
    return float(model.pymc_model.compile_logp()(point))


@pytest.mark.parametrize("family", ["gaussian", "negativebinomial", "cumulative", "beta"])
def test_weight_two_equals_duplicated_rows(family):
    df = _grouped(family)
    df["w"] = 2.0
    weighted = bm.Model("y ~ x + (1 | g)", df, family=family, weights="w",
                        centered={"g": False})
    doubled = bm.Model("y ~ x + (1 | g)", pd.concat([df, df], ignore_index=True),
                       family=family, centered={"g": False})
    plain = bm.Model("y ~ x + (1 | g)", df, family=family, centered={"g": False})
    point = weighted.pymc_model.initial_point()
    rng = np.random.default_rng(5)
    point = {k: v + 0.2 * rng.normal(size=np.shape(v)) for k, v in point.items()}
    a, b, c = _logp_at(weighted, point), _logp_at(doubled, point), _logp_at(plain, point)
    assert a == pytest.approx(b, rel=1e-10)
    # weights 2 add the log-likelihood once more: the difference to the plain model is it
    observed = plain.pymc_model.observed_RVs[0]
    loglik = plain.pymc_model.compile_fn(plain.pymc_model.logp(vars=[observed]),
                                         on_unused_input="ignore")(point)
    assert a - c == pytest.approx(float(loglik), rel=1e-10)


def test_unequal_weights_multiply_each_rows_loglik():
    df = _grouped("poisson")
    df["w"] = np.linspace(0.5, 3.0, len(df))
    weighted = bm.Model("y ~ x + (1 | g)", df, family="poisson", weights="w",
                        centered={"g": False})
    plain = bm.Model("y ~ x + (1 | g)", df, family="poisson", centered={"g": False})
    point = plain.pymc_model.initial_point()
    observed = plain.pymc_model.observed_RVs[0]
    rows = plain.pymc_model.compile_fn(plain.pymc_model.logp(vars=[observed], sum=False)[0],
                                       on_unused_input="ignore")(point)
    gap = _logp_at(weighted, point) - _logp_at(plain, point)
    assert gap == pytest.approx(float(np.sum((df["w"] - 1) * rows)), rel=1e-10)
    np.testing.assert_array_equal(weighted.weights, df["w"].to_numpy())
    assert plain.weights is None


def test_weights_with_missing_values_drop_their_rows_like_other_columns():
    df = _grouped("gaussian")
    df["w"] = 1.0
    df.loc[[3, 7], "w"] = np.nan
    df.loc[9, "x"] = np.nan
    before = df.copy()
    with pytest.warns(bm.MissingDataWarning, match=r"dropped 3 of 30 rows.*'x' \(1\), 'w' \(2\)"):
        model = bm.Model("y ~ x + (1 | g)", df, weights="w")
    assert model.design.n == 27 and len(model.weights) == 27
    assert list(model.design.rows[:4]) == [0, 1, 2, 4]
    pd.testing.assert_frame_equal(df, before)  # the user's frame is untouched
    with pytest.raises(bm.DataError, match=r"missing values in 'x' \(1\), 'w' \(2\)"):
        bm.Model("y ~ x + (1 | g)", df, weights="w", na_action="raise")


@pytest.mark.parametrize(("values", "match"), [
    ([1.0, 0.0, 2.0], r"weights column 'w' must hold positive finite numbers; found 0 in 1 rows"),
    ([1.0, -1.0, -2.0], "found -1 in 2 rows"),
    ([1.0, np.inf, 2.0], "found inf"),
    (["a", "b", "c"], "'w' must be numeric"),
])
def test_bad_weights_are_refused_naming_the_column(values, match):
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [0.0, 1.0, 2.0], "w": values})
    with pytest.raises(bm.DataError, match=match):
        bm.Model("y ~ x", df, weights="w")


def test_weights_argument_must_name_a_column():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [0.0, 1.0, 2.0], "wt": 1.0})
    with pytest.raises(bm.DataError, match="weights column 'w' is not in the data"):
        bm.Model("y ~ x", df, weights="w")
    with pytest.raises(bm.DataError, match="weights must be the name of a column"):
        bm.Model("y ~ x", df, weights=[1.0, 1.0, 1.0])


def test_prior_predictive_of_a_weighted_model_draws_from_the_family():
    df = _grouped("poisson")
    df["w"] = 3.0
    model = bm.Model("y ~ x + (1 | g)", df, family="poisson", weights="w")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about the weights potential
        pp = model.prior_predictive(draws=40, random_seed=2)
    y = pp["prior_predictive"]["y"].values
    assert y.shape == (1, 40, 30)
    assert np.all(y >= 0) and np.all(y == np.round(y))


def test_model_arrays_and_logp_are_unchanged_without_weights():
    """Weights are opt-in: no potential, no weights data, when the argument is absent."""
    model = bm.Model("y ~ x", _frame("gaussian"))
    assert model.pymc_model.potentials == []
    assert "_data_weights" not in {v.name for v in model.pymc_model.data_vars}
    assert pm.Model is type(model.pymc_model)


def test_ordinal_prior_draws_have_ordered_cutpoints():
    """Prior (predictive) draws of an ordinal model draw the cutpoints from the model's prior,
    which is ordered: PyMC's ordered transform alone leaves forward draws unordered, which
    SBC found (the simulated categories then do not come from the fitted model)."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"y": np.arange(60) % 4 + 1, "x": rng.normal(size=60),
                       "g": np.repeat(np.arange(12), 5).astype(str)})
    model = bm.Model("y ~ x + (1 | g)", df, family="cumulative",
                     priors={"cutpoints": bm.Prior("Normal", mu=0, sigma=1)})
    prior = model.prior_predictive(draws=300, random_seed=1)["prior"]
    cut = prior["cutpoints"].values.reshape(-1, 3)
    assert np.all(np.diff(cut, axis=1) > 0)
    # sorted N(0, 1) triples: the first cutpoint is the minimum of three, mean -0.846
    assert abs(cut[:, 0].mean() + 0.846) < 0.15  # 4 MC SEs (sd 0.75 / sqrt(300))
