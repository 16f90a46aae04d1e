"""A nested pair of random intercepts integrated out given the other, sampled, random terms
(bayesmix.model.integrated_pair): which pair, the likelihood against the dense normal, the exact draws
afterwards, and a fit against the conditional model."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import bayesmix as bm
from bayesmix.model.integrated import crossed_nested_pair
from bayesmix.model.integrated_pair import PartialStats, draw_partial_effects

FORMULA = "y ~ x + (1 | student) + (1 | lecturer) + (1 | dept)"


def _ratings(seed: int = 0, n: int = 240) -> pd.DataFrame:
    """Students rate lecturers; each lecturer belongs to one department (crossed with the
    students, nested in the departments), unbalanced."""
    rng = np.random.default_rng(seed)
    students, lecturers, depts = 30, 16, 4
    dept_of = np.arange(lecturers) % depts
    s, lec = rng.integers(0, students, n), rng.integers(0, lecturers, n)
    x = rng.normal(size=n)
    y = (3.0 + 0.4 * x + rng.normal(0, 0.5, students)[s] + rng.normal(0, 0.7, lecturers)[lec]
         + rng.normal(0, 0.6, depts)[dept_of[lec]] + rng.normal(0, 1.0, n))
    return pd.DataFrame({"y": y, "x": x, "t": rng.uniform(0.5, 2.0, n), "student": [f"s{i:02d}" for i in s],
                         "lecturer": [f"l{i:02d}" for i in lec],
                         "dept": pd.Categorical([f"d{i}" for i in dept_of[lec]])})


def _index(design, name):
    return [b.name for b in design.blocks].index(name)


def test_which_pair_is_integrated_out():
    df = _ratings()
    model = bm.Model(FORMULA, df)
    d = model.design
    assert model.marginal and isinstance(model.marginal_stats, PartialStats)
    assert crossed_nested_pair(d) == (_index(d, "dept"), _index(d, "lecturer"))
    assert model.integrated_blocks == tuple(sorted((_index(d, "dept"), _index(d, "lecturer"))))
    # the sampler sees the students' effects, the fixed effects and the SDs only
    free = {rv.name for rv in model.pymc_model.free_RVs}
    assert "_z_student" in free or "_gamma_student" in free
    assert not any("lecturer" in v or "dept" in v for v in free if not v.startswith("sd_"))
    # not: two factors only (the whole model is marginal then), a slope on a factor of the
    # pair, crossed factors without nesting, another family, or asked not to
    assert crossed_nested_pair(bm.Model("y ~ x + (1 | lecturer) + (1 | dept)", df).design) \
        is None
    assert crossed_nested_pair(bm.Model(
        "y ~ x + (1 | student) + (x | lecturer) + (1 | dept)", df).design) is None
    assert crossed_nested_pair(bm.Model("y ~ x + (1 | student) + (1 | lecturer)",
                                        df).design) is None
    assert not bm.Model(FORMULA, df.assign(y=(df.y > 3).astype(int)),
                        family="bernoulli").marginal
    assert bm.Model(FORMULA, df, marginalize=False).integrated_blocks == ()
    # the sampled blocks are non-centred unless the user says otherwise
    assert model.centered == (False, False, False)
    centred = bm.Model(FORMULA, df, centered={"student": True})  # check()'s advice, say
    assert centred.marginal and centred.centered[_index(d, "student")]
    assert not bm.Model(FORMULA, df, centered={"dept": True}).marginal  # the pair itself


@pytest.mark.parametrize("formula", [
    FORMULA, "y ~ 0 + x + offset(t) + (1 | student) + (1 | lecturer) + (1 | dept)"])
def test_partial_loglik_is_the_dense_multivariate_normal(formula):
    """At a random point, the model's integrated likelihood equals log N(y; X b + offset +
    r_student, s^2 I + t_d^2 Z_d Z_d' + t_l^2 Z_l Z_l')."""
    model = bm.Model(formula, _ratings(1), marginalize=True)
    pmodel = model.pymc_model
    rng = np.random.default_rng(2)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in pmodel.initial_point().items()}
    names = ["fixef", "_marginal_loglik", "sigma"] + [f"sd_{b.name}" for b in
                                                       model.design.blocks]
    values = dict(zip(names, pmodel.compile_fn(
        pmodel.replace_rvs_by_values([pmodel[n] for n in names]),
        inputs=pmodel.value_vars, on_unused_input="ignore")(point)))
    d = model.design
    student = d.blocks[_index(d, "student")]
    z = point.get("_z_student")
    r_student = (z * values["sd_student"][0] if z is not None else point["_gamma_student"])[:, 0]
    mean = d.X @ values["fixef"] + r_student[student.index] + (d.offset if d.has_offset else 0)
    V = values["sigma"] ** 2 * np.eye(d.n)
    for name in ("dept", "lecturer"):
        b = d.blocks[_index(d, name)]
        Zb = np.eye(b.n_levels)[b.index]
        V += values[f"sd_{name}"][0] ** 2 * Zb @ Zb.T
    expected = stats.multivariate_normal(mean, V).logpdf(model.y)
    assert float(values["_marginal_loglik"]) == pytest.approx(expected, rel=1e-10)


def test_pair_effects_are_drawn_from_their_exact_conditional_posterior():
    model = bm.Model(FORMULA, _ratings(3), marginalize=True)
    d, st = model.design, model.marginal_stats
    student = d.blocks[_index(d, "student")]
    rng = np.random.default_rng(4)
    z = rng.normal(size=student.n_levels)
    beta, sds, sigma, S = np.array([3.0, 0.4]), {"student": 0.5, "lecturer": 0.7,
                                                  "dept": 0.6}, 1.0, 4000
    key = "_gamma_student" if st.centered[_index(d, "student")] else "_z_student"
    draws = xr.Dataset({
        "fixef": (("chain", "draw", "coef"), np.broadcast_to(beta, (1, S, 2))),
        key: (("chain", "draw", "student", "student__term"),
              np.broadcast_to(z[:, None], (1, S, len(z), 1)).copy()),
        **{f"sd_{k}": (("chain", "draw", f"{k}__term"), np.full((1, S, 1), v))
           for k, v in sds.items()},
        "sigma": (("chain", "draw"), np.full((1, S), sigma))})
    out = draw_partial_effects(draws, d, st, np.random.default_rng(5))
    r_student = z * (sds["student"] if key == "_z_student" else 1.0)
    np.testing.assert_allclose(out["r_student"].values[0, 0, :, 0], r_student)
    got = np.concatenate([out["r_dept"].values[0, :, :, 0],
                          out["r_lecturer"].values[0, :, :, 0]], axis=1)
    # dense: u = (dept, lecturer) ~ N(0, diag), y - X b - r_student = Z u + e
    dept, lec = d.blocks[_index(d, "dept")], d.blocks[_index(d, "lecturer")]
    Z = np.hstack([np.eye(dept.n_levels)[dept.index], np.eye(lec.n_levels)[lec.index]])
    prior = np.diag([sds["dept"] ** -2] * dept.n_levels + [sds["lecturer"] ** -2] * lec.n_levels)
    cov = np.linalg.inv(prior + Z.T @ Z / sigma ** 2)
    resid = model.y - d.X @ beta - r_student[student.index]
    mean = cov @ Z.T @ resid / sigma ** 2
    assert np.all(np.abs(got.mean(axis=0) - mean) < 4 * np.sqrt(np.diag(cov) / S))  # 4 MC SEs
    np.testing.assert_allclose(np.cov(got.T), cov, atol=0.1 * np.diag(cov).max())
    assert list(out["r_lecturer"]["lecturer"].values) == list(lec.levels)


def test_partial_fit_matches_the_conditional_fit():
    """Same posterior either way: means within 5 joint Monte-Carlo SEs (ArviZ's MCSE of each
    fit). The conditional model mixes far worse here (divergences, ESS ~50 for the department
    SD at 2 x 1000 draws), so it runs longer and with smaller steps."""
    import arviz as az

    df = _ratings(6, n=400)
    runs = {True: {"draws": 1000, "tune": 1000},
            False: {"draws": 3000, "tune": 2000, "target_accept": 0.95}}
    fits = {}
    for marginal, kwargs in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[marginal] = bm.Model(FORMULA, df, marginalize=marginal).fit(
                chains=2, random_seed=7, progressbar=False, **kwargs)
    post = {k: f.posterior for k, f in fits.items()}
    assert set(post[True].data_vars) == set(post[False].data_vars)
    for var in ("fixef", "sd_student", "sd_lecturer", "sd_dept", "sigma", "r_lecturer",
                "r_dept", "r_student"):
        a, b = post[True][var], post[False][var]
        tol = 5 * np.sqrt(az.mcse(a) ** 2 + az.mcse(b) ** 2)
        assert bool((abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) < tol).all()), var
    report = fits[True].sampling_report()
    assert report.divergences <= 2 and report.min_ess_bulk > 300
    # k-fold refits integrate the pair out on their training rows and draw the held-out
    # levels' effects; paired with LOO on the same data they differ by much less than an SE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)  # a refit's short-run note
        loo, kf = fits[True].loo(), fits[True].kfold(5, random_seed=2)
    assert loo.n_data_points == kf.n_data_points == len(df)
    assert abs(kf.elpd - loo.elpd) < kf.se


def test_docstring_examples_run():
    import doctest

    import bayesmix.inference.convergence
    import bayesmix.model.integrated_pair

    for module in (bayesmix.model.integrated_pair, bayesmix.inference.convergence):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
