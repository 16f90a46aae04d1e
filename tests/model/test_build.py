"""The PyMC model: its log density against a hand computation, data shapes, level effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import bayesmix as bm
from bayesmix.model.build import stored_names
from bayesmix.model.level_effects import derive_level_effects
from bayesmix.model.parametrization import level_covariates


@pytest.fixture(scope="module")
def sleep():
    return bm.datasets.load("sleepstudy")


def test_log_density_matches_scipy_for_a_random_intercept_model(sleep):
    model = bm.Model("Reaction ~ Days + (1 | Subject)", sleep, centered={"Subject": False})
    pm_model = model.pymc_model
    point = pm_model.initial_point()
    rng = np.random.default_rng(0)
    point = {k: rng.normal(size=np.shape(v)) * 0.3 + v for k, v in point.items()}
    logp = pm_model.compile_logp(jacobian=False)(point)

    priors = {k: v.kwargs for k, v in ((s.key, s.prior) for s in model.prior_specs)}
    days = sleep["Days"].to_numpy(float)
    intercept_c, beta = float(point["_intercept_c"]), float(point["_beta"][0])
    sd = float(np.exp(point["sd_Subject_log__"][0]))
    sigma = float(np.exp(point["sigma_log__"]))
    z = point["_z_Subject"][:, 0]
    r = z * sd
    mu = intercept_c + beta * (days - days.mean()) + r[model.design.blocks[0].index]
    expected = (
        stats.norm.logpdf(intercept_c, priors["(Intercept)"]["mu"], priors["(Intercept)"]["sigma"])
        + stats.norm.logpdf(beta, 0, priors["Days"]["sigma"])
        + stats.halfnorm.logpdf(sd, scale=priors["1|Subject"]["sigma"])
        + stats.norm.logpdf(z).sum()
        + stats.expon.logpdf(sigma, scale=1 / priors["sigma"]["lam"])
        + stats.norm.logpdf(sleep["Reaction"], mu, sigma).sum())
    assert logp == pytest.approx(expected, rel=1e-9)


def test_data_enter_as_small_arrays_never_a_dense_z():
    rng = np.random.default_rng(1)
    n, levels = 20_000, 2_000
    df = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                       "g": rng.integers(0, levels, n)})
    model = bm.Model("y ~ x + (x | g)", df, marginalize=False)
    shapes = {v.name: v.get_value().shape for v in model.pymc_model.data_vars}
    assert shapes["_data_Z_g"] == (n, 2)
    assert shapes["_data_index_g"] == (n,)
    assert max(np.prod(s) for s in shapes.values()) == 2 * n
    # Integrated out, the level effects leave per-level cross-products only: no row data.
    marginal = bm.Model("y ~ x + (x | g)", df)
    shapes = {v.name: v.get_value().shape for v in marginal.pymc_model.data_vars}
    J = marginal.design.blocks[0].n_levels  # ~levels: a few of the 2 000 draw no row
    assert marginal.marginal and shapes["_data_marginal_ZtZ"] == (J, 2, 2)
    assert max(np.prod(s) for s in shapes.values()) == J * 2 * 2


def _draws(**arrays):
    return xr.Dataset({k: (dims, v) for k, (dims, v) in arrays.items()})


def test_non_centred_correlated_level_effects_are_z_times_cholesky(sleep):
    model = bm.Model("Reaction ~ Days + (Days | Subject)", sleep, centered={"Subject": False})
    rng = np.random.default_rng(2)
    z = rng.normal(size=(2, 3, 18, 2))
    sd = np.abs(rng.normal(size=(2, 3, 2))) + 0.5
    rho = rng.uniform(-0.9, 0.9, size=(2, 3))
    cor = np.stack([np.stack([np.ones_like(rho), rho], -1), np.stack([rho, np.ones_like(rho)], -1)],
                   -2)
    dims = ("chain", "draw", "Subject", "Subject__term")
    draws = _draws(_z_Subject=(dims, z), sd_Subject=(("chain", "draw", "Subject__term"), sd),
                   cor_Subject=(("chain", "draw", "Subject__term", "Subject__term2"), cor))
    r = derive_level_effects(draws, model.design, (False,))["r_Subject"].values
    c, d, j = 1, 2, 5
    L = np.diag(sd[c, d]) @ np.linalg.cholesky(cor[c, d])
    np.testing.assert_allclose(r[c, d, j], L @ z[c, d, j])
    # the implied covariance of r is diag(sd) cor diag(sd)
    cov = L @ L.T
    assert cov[0, 1] == pytest.approx(sd[c, d, 0] * sd[c, d, 1] * rho[c, d])


def test_centred_block_absorbing_the_intercept_gives_back_deviations(sleep):
    model = bm.Model("Reaction ~ Days + (1 | Subject)", sleep, centered={"Subject": True})
    rng = np.random.default_rng(3)
    gamma = rng.normal(250, 20, size=(1, 4, 18, 1))
    intercept = rng.normal(250, 1, size=(1, 4))
    expected = gamma[..., 0] - intercept[..., None]
    draws = _draws(_gamma_Subject=(("chain", "draw", "Subject", "Subject__term"), gamma),
                   _intercept_c=(("chain", "draw"), intercept))
    r = derive_level_effects(draws, model.design, (True,))["r_Subject"].values
    np.testing.assert_allclose(r[..., 0], expected)
    np.testing.assert_allclose(draws["_gamma_Subject"].values[..., 0],  # not modified ...
                               expected + intercept[..., None])
    derive_level_effects(draws, model.design, (True,), inplace=True)  # ... unless asked
    np.testing.assert_allclose(draws["_gamma_Subject"].values[..., 0], expected)


def test_absorbed_fixed_effects_give_the_same_likelihood(sleep):
    """Hierarchical centring: with (Days | Subject) and (1 | Days) both centred, the block
    with fewer levels (10 days against 18 subjects) absorbs the intercept and the subjects
    absorb the Days slope: each fixed effect goes to one block.
    At a random point, the likelihood PyMC evaluates equals X fixef + sum Z r computed from
    the derived level effects, so the reparametrisation is exact."""
    model = bm.Model("Reaction ~ Days + (Days | Subject) + (1 | Days)", sleep,
                     centered={"Subject": True, "Days": True})
    from bayesmix.model.parametrization import absorption

    assert absorption(model.design, model.centered) == {1: {0: 0}, 0: {1: 1}}
    pmodel = model.pymc_model
    rng = np.random.default_rng(11)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in pmodel.initial_point().items()}
    point["_intercept_c"] = np.array(290.0)
    point["_gamma_Subject"] = np.column_stack([rng.normal(250, 30, 18), rng.normal(10, 5, 18)])
    fixef, sigma = pmodel.compile_fn(
        pmodel.replace_rvs_by_values([pmodel["fixef"], pmodel["sigma"]]),
        inputs=pmodel.value_vars, on_unused_input="ignore")(point)
    draws = _draws(
        _gamma_Subject=(("chain", "draw", "Subject", "Subject__term"),
                        point["_gamma_Subject"][None, None]),
        _gamma_Days=(("chain", "draw", "Days", "Days__term"), point["_gamma_Days"][None, None]),
        _intercept_c=(("chain", "draw"), point["_intercept_c"][None, None]),
        fixef=(("chain", "draw", "coef"), fixef[None, None]))
    r = derive_level_effects(draws, model.design, model.centered)
    eta = model.design.X @ fixef
    for block in model.design.blocks:
        eta = eta + (block.Z * r[f"r_{block.name}"].values[0, 0][block.index]).sum(axis=1)
    logp = pmodel.compile_fn(pmodel.logp(vars=[pmodel["Reaction"]], sum=True),
                             inputs=pmodel.value_vars, on_unused_input="ignore")(point)
    assert logp == pytest.approx(stats.norm.logpdf(model.y, eta, sigma).sum(), rel=1e-10)
    # the subjects' slope deviations are their slopes minus the fixed slope; their intercept
    # deviations are sampled as such
    r_subject = r["r_Subject"].values[0, 0]
    np.testing.assert_allclose(r_subject[:, 1], point["_gamma_Subject"][:, 1] - fixef[1])
    np.testing.assert_allclose(r_subject[:, 0], point["_gamma_Subject"][:, 0])


def test_level_covariates_move_into_the_levels_mean_exactly():
    """epilepsy: every predictor is constant within a patient, so a centred (1 | patient)
    samples each patient's whole intercept with prior mean intercept + x_j beta. At a random
    point PyMC's likelihood equals X fixef + r[patient] from the derived level effects."""
    df = bm.datasets.load("epilepsy")
    formula = "count ~ zAge + zBase * Trt + (1 | patient)"
    model = bm.Model(formula, df, family="poisson")
    assert model.centered == (True,)  # ratio 1.9: a lone block with level covariates
    assert model.level_covariates == {0: (1, 2, 3, 4)}
    assert bm.Model(formula, df, family="poisson", centered={"patient": False}).centered == \
        (False,)
    assert level_covariates(model.design, (False,)) == {}
    pmodel = model.pymc_model
    rng = np.random.default_rng(3)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in pmodel.initial_point().items()}
    point["_gamma_patient"] = rng.normal(1.5, 0.5, (59, 1))
    fixef = pmodel.compile_fn(pmodel.replace_rvs_by_values([pmodel["fixef"]]),
                              inputs=pmodel.value_vars, on_unused_input="ignore")(point)[0]
    draws = _draws(
        _gamma_patient=(("chain", "draw", "patient", "patient__term"),
                        point["_gamma_patient"][None, None]),
        _intercept_c=(("chain", "draw"), point["_intercept_c"][None, None]),
        fixef=(("chain", "draw", "coef"), fixef[None, None]))
    r = derive_level_effects(draws, model.design, model.centered,
                             level_cols=model.level_covariates)["r_patient"].values[0, 0, :, 0]
    eta = model.design.X @ fixef + r[model.design.blocks[0].index]
    logp = pmodel.compile_fn(pmodel.logp(vars=[pmodel["count"]], sum=True),
                             inputs=pmodel.value_vars, on_unused_input="ignore")(point)
    assert logp == pytest.approx(stats.poisson.logpmf(model.y, np.exp(eta)).sum(), rel=1e-10)
    # ... and the patients' prior: r ~ N(0, sd) around the covariates' prediction
    x_level = np.zeros((59, 4))
    x_level[model.design.blocks[0].index] = model.design.X[:, 1:]
    np.testing.assert_allclose(r, point["_gamma_patient"][:, 0] - fixef[0] - x_level @ fixef[1:])
    # a predictor that varies within levels is not a level covariate
    sleep = bm.Model("Reaction ~ Days + (1 | Subject)", bm.datasets.load("sleepstudy"),
                     marginalize=False)
    assert level_covariates(sleep.design, (True,)) == {}


def test_only_population_deterministics_are_stored(sleep):
    model = bm.Model("Reaction ~ Days + (Days | Subject) + (1 | Days)", sleep)
    assert stored_names(model.design) == ["fixef", "sd_Subject", "cor_Subject", "sd_Days"]
