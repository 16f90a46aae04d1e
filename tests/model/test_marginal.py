"""Level effects integrated out (bayesmix.model.integrated): the likelihood, the exact draws of the
level effects afterwards, and when a model is marginal."""

import warnings

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import stats

import bayesmix as bm
from bayesmix.model.integrated import (
    draw_level_effects,
    marginal_loglik,
    marginal_obstacle,
    sufficient_stats,
)


def _data(seed: int = 0, n: int = 60, levels: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, levels, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.8, levels)[g] + rng.normal(0, 0.4, levels)[g] * x \
        + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"L{i}" for i in g],
                         "t": rng.uniform(0.5, 2.0, n)})


def _dense_covariance(design, G: np.ndarray, sigma: float) -> np.ndarray:
    """V = sigma^2 I + Z_full G_full Z_full' with a dense n x (levels * q) Z."""
    Z = np.hstack([b.Z for b in design.blocks])
    idx, J = design.blocks[0].index, design.blocks[0].n_levels
    q = Z.shape[1]
    Zfull = np.zeros((design.n, J * q))
    for a in range(q):
        Zfull[np.arange(design.n), idx * q + a] = Z[:, a]
    return sigma ** 2 * np.eye(design.n) + Zfull @ np.kron(np.eye(J), G) @ Zfull.T


CASES = [("y ~ x + (x | g)", [[0.8, 0.0], [0.1, 0.3]]),
         ("y ~ x + z + (1 | g) + (0 + x | g)", [[0.7, 0.0], [0.0, 0.4]]),
         ("y ~ 0 + (1 | g)", [[0.9]]),
         ("y ~ x + offset(t) + (x + z | g)", [[0.8, 0.0, 0.0], [0.2, 0.3, 0.0], [-0.1, 0.1, 0.5]])]


def _factor_lists(L: np.ndarray) -> list:
    return [[pt.constant(L[a, b]) if b <= a else None for b in range(len(L))]
            for a in range(len(L))]


@pytest.mark.parametrize("formula, L", CASES)
def test_marginal_loglik_is_the_dense_multivariate_normal(formula, L):
    model = bm.Model(formula, _data())
    design, L = model.design, np.array(L)
    rng = np.random.default_rng(1)
    beta = rng.normal(size=len(design.coef_names))
    sigma = 0.9
    s = sufficient_stats(design, model.y)
    data = {k: pt.constant(v) for k, v in s.arrays().items()}
    value = marginal_loglik(data, pt.constant(beta) if len(beta) else None, _factor_lists(L),
                            pt.constant(sigma)).eval()
    offset = design.offset if design.has_offset else 0.0
    V = _dense_covariance(design, L @ L.T, sigma)
    expected = stats.multivariate_normal(design.X @ beta + offset, V).logpdf(model.y)
    assert value == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("formula, L", CASES[:2] + CASES[3:])
def test_fixed_effects_integrated_out_too(formula, L):
    """With normal priors on the coefficients (the defaults), the likelihood of the SDs and
    sigma alone: y ~ N(X T m, V + X T S T' X'), where the intercept's prior is on the mean
    response at the predictors' means (T maps those coordinates to lme4's)."""
    model = bm.Model(formula, _data(), priors={"x": bm.Prior("Normal", mu=0.3, sigma=2.0)})
    design, L, sigma = model.design, np.array(L), 0.9
    s = sufficient_stats(design, model.y, model.prior_dict)
    fixed = s.fixed
    assert fixed is not None and fixed.mean[list(design.coef_names).index("x")] == 0.3
    data = {k: pt.constant(v) for k, v in s.arrays().items()}
    value = marginal_loglik(data, None, _factor_lists(L), pt.constant(sigma), fixed.sd).eval()
    XT = design.X @ fixed.T
    offset = design.offset if design.has_offset else 0.0
    V = _dense_covariance(design, L @ L.T, sigma) + XT @ np.diag(fixed.sd ** 2) @ XT.T
    expected = stats.multivariate_normal(XT @ fixed.mean + offset, V).logpdf(model.y)
    assert value == pytest.approx(expected, rel=1e-10)
    # a prior that is not normal keeps the coefficients in the sampler
    t_prior = {"x": bm.Prior("StudentT", nu=3, mu=0, sigma=2)}
    assert sufficient_stats(design, model.y, {**model.prior_dict, **t_prior}).fixed is None


def test_level_effects_are_drawn_from_their_exact_conditional_posterior():
    model = bm.Model("y ~ x + (x | g)", _data(2))
    design = model.design
    s = sufficient_stats(design, model.y)
    beta, sd, rho, sigma = np.array([1.0, 0.4]), np.array([0.8, 0.3]), 0.3, 0.9
    cor = np.array([[1.0, rho], [rho, 1.0]])
    S = 4000  # one parameter point, repeated: the draws of r given it
    draws = xr.Dataset({
        "fixef": (("chain", "draw", "coef"), np.broadcast_to(beta, (1, S, 2))),
        "sd_g": (("chain", "draw", "g__term"), np.broadcast_to(sd, (1, S, 2))),
        "cor_g": (("chain", "draw", "g__term", "g__term2"), np.broadcast_to(cor, (1, S, 2, 2))),
        "sigma": (("chain", "draw"), np.full((1, S), sigma))})
    r = draw_level_effects(draws, design, s, np.random.default_rng(3))["r_g"]
    assert r.dims == ("chain", "draw", "g", "g__term")
    assert list(r["g"].values) == list(design.blocks[0].levels)
    # dense conditional posterior: precision Z'Z / s^2 + G^-1, mean P^-1 Z'(y - X b) / s^2
    G = np.outer(sd, sd) * cor
    block = design.blocks[0]
    resid = model.y - design.X @ beta
    for j in range(block.n_levels):
        rows = block.index == j
        Zj = block.Z[rows]
        P = Zj.T @ Zj / sigma ** 2 + np.linalg.inv(G)
        cov = np.linalg.inv(P)
        mean = cov @ Zj.T @ resid[rows] / sigma ** 2
        got = r.values[0, :, j, :]
        se = np.sqrt(np.diag(cov) / S)
        assert np.all(np.abs(got.mean(axis=0) - mean) < 4 * se)  # 4 MC SEs
        np.testing.assert_allclose(np.cov(got.T), cov, rtol=0.1, atol=0.1 * cov.max())


def test_which_models_are_marginal():
    df = _data()
    assert bm.Model("y ~ x + (x | g)", df).marginal
    assert bm.Model("y ~ x + (1 | g) + (0 + x | g)", df).marginal
    assert not bm.Model("y ~ x + (x | g)", df, centered={"g": False}).marginal
    assert not bm.Model("y ~ x + (x | g)", df, marginalize=False).marginal
    df2 = df.assign(h=np.arange(len(df)) % 4)
    assert not bm.Model("y ~ x + (1 | g) + (1 | h)", df2).marginal  # crossed
    assert not bm.Model("y ~ x + (1 | g)", df2.assign(y=(df.y > 1).astype(int)),
                        family="bernoulli").marginal
    # fixed effects integrated out too where the levels are well measured (sleepstudy,
    # information ratio 2.7), sampled where they are not (mathachieve, 0.25)
    sleep = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    assert sleep.marginal_stats.fixed is not None
    math = bm.Model("MathAch ~ SES + (SES | School)", bm.datasets.load("mathachieve"))
    assert math.marginal and math.marginal_stats.fixed is None
    assert "fixef" in math.pymc_model.named_vars and "fixef" not in sleep.pymc_model.named_vars
    # rebuilt models keep the choice
    m = bm.Model("y ~ x + (x | g)", df)
    assert bm.Model(**m.constructor_args()).marginal


def test_marginalize_true_where_impossible_says_why():
    df = _data().assign(h=np.arange(60) % 4)
    with pytest.raises(bm.FamilyError, match="more than one grouping factor"):
        bm.Model("y ~ x + (1 | g) + (1 | h)", df, marginalize=True)
    with pytest.raises(ValueError, match="not gaussian with identity link"):
        bm.Model("y ~ x + (1 | g)", df.assign(y=df.y.abs()), family="gamma", marginalize=True)
    design = bm.Model("y ~ x + (1 | g)", df).design
    assert marginal_obstacle(design, bm.get_family("gaussian"), "identity", weights=np.ones(60)) == \
        "the model has observation weights"


def test_marginal_fit_matches_the_conditional_fit():
    """Same posterior either way: means agree within Monte-Carlo error (2 x 1000 draws)."""
    df = bm.datasets.load("sleepstudy")
    fits = {}
    for marginal in (True, False):
        model = bm.Model("Reaction ~ Days + (Days | Subject)", df, marginalize=marginal)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bm.ConvergenceWarning)
            fits[marginal] = model.fit(draws=1000, tune=1000, chains=2, random_seed=5,
                                       progressbar=False)
    post = {k: f.posterior for k, f in fits.items()}
    assert "r_Subject" in post[True] and set(post[True].data_vars) == set(post[False].data_vars)
    for var in ("fixef", "sd_Subject", "sigma", "r_Subject"):
        a, b = post[True][var], post[False][var]
        # MCSE of each mean <= sd / sqrt(300) (min ESS ~400 here): 5 joint MCSEs
        tol = 5 * np.sqrt(2.0) * b.std(("chain", "draw")) / np.sqrt(300)
        diff = abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw")))
        assert bool((diff < tol).all()), var
    # the level effects' spread given the data, not only their means
    np.testing.assert_allclose(post[True]["r_Subject"].std(("chain", "draw")),
                               post[False]["r_Subject"].std(("chain", "draw")), rtol=0.15)
    # lme4's REML estimates (reference): SD of Days 5.92, correlation 0.066
    vc = fits[True].varcorr().set_index(["term", "kind"])
    assert vc.loc[("Days", "sd"), "mean"] == pytest.approx(6.5, abs=0.6)  # posterior > REML
    pp = bm.Model("Reaction ~ Days + (Days | Subject)", df).prior_predictive(20, random_seed=1)
    assert pp["prior"]["r_Subject"].shape == (1, 20, 18, 2)


def test_fixed_effects_are_drawn_from_their_exact_conditional_posterior():
    """Integrated out, fixef is drawn given the SDs and sigma: N(m + H^-1 b, H^-1) in the
    sampler's coordinates, the GLS posterior under the normal prior."""
    model = bm.Model("y ~ x + z + (x | g)", _data(4))
    design = model.design
    s = sufficient_stats(design, model.y, model.prior_dict)
    sd, rho, sigma, S = np.array([0.8, 0.3]), 0.3, 0.9, 4000
    cor = np.array([[1.0, rho], [rho, 1.0]])
    draws = xr.Dataset({
        "sd_g": (("chain", "draw", "g__term"), np.broadcast_to(sd, (1, S, 2))),
        "cor_g": (("chain", "draw", "g__term", "g__term2"), np.broadcast_to(cor, (1, S, 2, 2))),
        "sigma": (("chain", "draw"), np.full((1, S), sigma))})
    out = draw_level_effects(draws, design, s, np.random.default_rng(6))
    beta = out["fixef"].values[0]
    assert list(out["fixef"]["coef"].values) == ["(Intercept)", "x", "z"]
    XT = design.X @ s.fixed.T
    Vinv = np.linalg.inv(_dense_covariance(design, np.outer(sd, sd) * cor, sigma))
    H = np.diag(s.fixed.sd ** -2.0) + XT.T @ Vinv @ XT
    g_mean = np.linalg.solve(H, np.diag(s.fixed.sd ** -2.0) @ s.fixed.mean
                             + XT.T @ Vinv @ model.y)
    mean, cov = s.fixed.T @ g_mean, s.fixed.T @ np.linalg.inv(H) @ s.fixed.T.T
    assert np.all(np.abs(beta.mean(axis=0) - mean) < 4 * np.sqrt(np.diag(cov) / S))
    np.testing.assert_allclose(np.cov(beta.T), cov, rtol=0.1, atol=0.05 * np.diag(cov).max())


def _nested_data(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(6), 12)
    b = np.repeat(np.arange(18), 4)  # three b levels per a level, four rows each
    x = rng.normal(size=72)
    y = 2 + 0.5 * x + rng.normal(0, 1.0, 6)[a] + rng.normal(0, 0.7, 18)[b] + rng.normal(size=72)
    df = pd.DataFrame({"y": y, "x": x, "a": [f"A{i}" for i in a], "b": [f"b{i % 3}" for i in b]})
    return df.iloc[:-3]  # unbalanced: the last b level keeps one row


def test_nested_intercepts_loglik_is_the_dense_multivariate_normal():
    from bayesmix.model.integrated import nested_loglik, nested_stats

    model = bm.Model("y ~ x + (1 | a/b)", _nested_data())
    assert model.marginal and type(model.marginal_stats).__name__ == "NestedStats"
    design = model.design
    s = nested_stats(design, model.y)
    beta, ta, tb, sigma = np.array([1.5, 0.4]), 0.9, 0.6, 1.1
    data = {k: pt.constant(v) for k, v in s.arrays().items()}
    value = nested_loglik(data, pt.constant(beta), pt.constant(ta), pt.constant(tb),
                          pt.constant(sigma), s.n_outer).eval()
    outer, inner = (design.blocks[i] for i in s.pair)
    Za = np.eye(outer.n_levels)[outer.index]
    Zb = np.eye(inner.n_levels)[inner.index]
    V = sigma ** 2 * np.eye(design.n) + ta ** 2 * Za @ Za.T + tb ** 2 * Zb @ Zb.T
    expected = stats.multivariate_normal(design.X @ beta, V).logpdf(model.y)
    assert value == pytest.approx(expected, rel=1e-10)


def test_nested_effects_are_drawn_from_their_exact_conditional_posterior():
    from bayesmix.model.integrated import draw_nested_effects, nested_stats

    model = bm.Model("y ~ x + (1 | a/b)", _nested_data())
    design = model.design
    s = nested_stats(design, model.y)
    outer, inner = (design.blocks[i] for i in s.pair)
    beta, ta, tb, sigma, S = np.array([1.5, 0.4]), 0.9, 0.6, 1.1, 4000
    draws = xr.Dataset({
        "fixef": (("chain", "draw", "coef"), np.broadcast_to(beta, (1, S, 2))),
        f"sd_{outer.name}": (("chain", "draw", "t1"), np.full((1, S, 1), ta)),
        f"sd_{inner.name}": (("chain", "draw", "t2"), np.full((1, S, 1), tb)),
        "sigma": (("chain", "draw"), np.full((1, S), sigma))})
    out = draw_nested_effects(draws, design, s, np.random.default_rng(8))
    got = np.concatenate([out[f"r_{outer.name}"].values[0, :, :, 0],
                          out[f"r_{inner.name}"].values[0, :, :, 0]], axis=1)
    # dense: u = (a, b) ~ N(0, diag(ta^2, tb^2)), y - X beta = Z u + e
    Z = np.hstack([np.eye(outer.n_levels)[outer.index], np.eye(inner.n_levels)[inner.index]])
    prior_prec = np.diag([ta ** -2] * outer.n_levels + [tb ** -2] * inner.n_levels)
    P = prior_prec + Z.T @ Z / sigma ** 2
    cov = np.linalg.inv(P)
    mean = cov @ Z.T @ (model.y - design.X @ beta) / sigma ** 2
    assert np.all(np.abs(got.mean(axis=0) - mean) < 4 * np.sqrt(np.diag(cov) / S))
    np.testing.assert_allclose(np.cov(got.T), cov, atol=0.1 * np.diag(cov).max())
    assert out[f"r_{inner.name}"].dims[2] == "a:b"


def test_nested_marginal_fit_matches_lme4_on_pastes():
    """pastes, strength ~ 1 + (1 | batch/cask): lme4 REML SDs 1.29 (batch) and 2.90 (cask
    within batch), residual 0.82; the posterior SD of batch is wide (10 batches)."""
    model = bm.Model("strength ~ 1 + (1 | batch/cask)", bm.datasets.load("pastes"))
    assert model.marginal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(draws=1000, tune=1000, chains=2, random_seed=2, progressbar=False)
    report = fit.sampling_report()
    assert report.divergences <= 2 and report.max_rhat < 1.02
    vc = fit.varcorr().set_index(["group", "kind"])["mean"]
    assert vc[("batch:cask", "sd")] == pytest.approx(2.9, abs=0.5)
    assert vc[("Residual", "sd")] == pytest.approx(0.82, abs=0.15)
    assert 0.3 < vc[("batch", "sd")] < 3.0
    assert fit.posterior["r_batch:cask"].shape == (2, 1000, 30, 1)
