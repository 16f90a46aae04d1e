"""Tests of bayesmix.inference.ml: REML/ML and Laplace fits against lme4's published estimates.

Every reference number comes from ``bayesmix.datasets.reference_estimates()`` (lme4 1.1 fits,
see ``bayesmix/datasets/PROVENANCE.md``). Tolerances:

* LMMs (REML/ML): estimates, SDs and correlations to 1e-3 relative (three significant digits;
  they agree to ~1e-4), logLik to 1e-3 absolute, standard errors to 1e-3 relative.
* GLMMs (Laplace): fixed effects within 1 % of their standard error, SDs to 2e-3 relative,
  logLik to 1e-3. Standard errors to 1.5 %: glmer takes them from a finite-difference Hessian
  of a deviance computed by PIRLS to a loose tolerance; ours is stable to 6 digits across step
  sizes, and cbpp's lme4 values differ from it by up to 1.3 % (the others by < 0.3 %).

Fits are cached per reference key, so each model is fitted once.
"""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import bayesmix as bm
from bayesmix.inference import laplace
from bayesmix.inference.ml import LRTResult, MLResult, fit_ml, lrt

LMM_KEYS = ["sleepstudy_slopes", "sleepstudy_uncorrelated", "penicillin_crossed",
            "pastes_nested", "dyestuff", "dyestuff2_singular", "orthodont_slopes",
            "mathachieve_slopes", "radon_intercepts"]
GLMM_KEYS = ["cbpp_binomial", "grouseticks_poisson", "epilepsy_poisson", "mortality_hospitals",
             "bball1970_players"]
SLEEP0 = "Reaction ~ Days + (1 | Subject)"
SLEEP1 = "Reaction ~ Days + (Days | Subject)"


@functools.cache
def data(name: str) -> pd.DataFrame:
    return bm.datasets.load(name)


@functools.cache
def reference_fit(key: str) -> tuple[dict, MLResult]:
    ref = bm.datasets.reference_estimates(key)
    model = bm.Model(ref["formula"], data(ref["dataset"]), family=ref["family"])
    return ref, model.fit_ml(reml=ref["method"] == "REML")


@functools.cache
def sleep_fit(formula: str, reml: bool) -> MLResult:
    return bm.Model(formula, data("sleepstudy")).fit_ml(reml=reml)


def _normalise(group: str) -> frozenset[str]:
    """lme4 writes nested groups as 'cask:batch' and a second term of a factor as 'g.1'."""
    return frozenset(re.sub(r"\.\d+$", "", group).split(":"))


def reference_varcorr(ref: dict) -> dict[tuple, float]:
    """Reference keys 'group:term:sd' / 'group:term1:term2:cor' -> comparable row keys."""
    out = {}
    for key, value in ref["varcorr"].items():
        parts = key.split(":")
        if parts[-1] == "sd":
            group, term, term2 = parts[:-2], parts[-2], ""
        else:
            group, term, term2 = parts[:-3], parts[-3], parts[-2]
        out[(_normalise(":".join(group)), term, term2, parts[-1])] = value
    return out


def our_varcorr(fit: MLResult) -> dict[tuple, float]:
    return {(_normalise(r.group), r.term, r.term2, r.kind): r.estimate
            for r in fit.varcorr().itertuples()}


# -- LMMs against lme4 ----------------------------------------------------------------------------
@pytest.mark.parametrize("key", LMM_KEYS)
def test_lmm_matches_lme4(key):
    ref, fit = reference_fit(key)
    assert fit.method == ref["method"] == "REML"
    assert fit.converged
    assert fit.nobs == ref["nobs"]
    fe = fit.fixef()
    assert list(fe.index) == list(ref["fixef"])
    for name, value in ref["fixef"].items():
        assert fe.loc[name, "estimate"] == pytest.approx(value, rel=1e-3)
        assert fe.loc[name, "std_error"] == pytest.approx(ref["fixef_se"][name], rel=1e-3)
    ours, theirs = our_varcorr(fit), reference_varcorr(ref)
    assert set(ours) == set(theirs)
    scale = ref["varcorr"]["Residual::sd"]
    for row, value in theirs.items():
        # abs: dyestuff2's SD is exactly 0 in lme4 (a boundary fit)
        assert ours[row] == pytest.approx(value, rel=1e-3, abs=1e-6 * scale), row
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-3)


def test_t_values_are_estimate_over_se():
    _, fit = reference_fit("sleepstudy_slopes")
    fe = fit.fixef()
    assert list(fe.columns) == ["estimate", "std_error", "t_value"]
    np.testing.assert_allclose(fe["t_value"], fe["estimate"] / fe["std_error"])


def test_singular_fit_is_on_the_boundary():
    _, fit = reference_fit("dyestuff2_singular")
    assert fit.singular
    assert fit.varcorr().loc[0, "estimate"] == 0.0
    assert "boundary (singular) fit" in str(fit.summary())
    assert not reference_fit("dyestuff")[1].singular


def test_ml_without_random_effects_is_least_squares():
    df = data("sleepstudy")
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    y = df["Reaction"].to_numpy(float)
    beta, rss = np.linalg.lstsq(X, y, rcond=None)[:2]
    n, p = X.shape
    for reml, dof in ((False, n), (True, n - p)):
        fit = bm.Model("Reaction ~ Days", df).fit_ml(reml=reml)
        sigma2 = rss[0] / dof
        np.testing.assert_allclose(fit.beta, beta, rtol=1e-10)
        assert fit.sigma == pytest.approx(np.sqrt(sigma2), rel=1e-10)
        np.testing.assert_allclose(fit.beta_cov, sigma2 * np.linalg.inv(X.T @ X), rtol=1e-8)
        loglik = -0.5 * dof * (1 + np.log(2 * np.pi * sigma2))
        if reml:
            loglik -= 0.5 * np.linalg.slogdet(X.T @ X)[1]
        assert fit.loglik == pytest.approx(loglik, abs=1e-8)


def test_ml_fit_of_sleepstudy():
    """lme4's ML fit (as shown by anova(fm1, fm2)): logLik -875.97, AIC 1763.9, BIC 1783.1."""
    fit = sleep_fit(SLEEP1, False)
    assert fit.method == "ML" and not fit.reml
    assert fit.loglik == pytest.approx(-875.97, abs=0.005)
    assert fit.aic == pytest.approx(1763.9, abs=0.05)
    assert fit.bic == pytest.approx(1783.1, abs=0.05)
    # ML shrinks the variances relative to REML (divides by n, not n - p)
    assert fit.sigma < reference_fit("sleepstudy_slopes")[1].sigma


def test_ranef_are_the_blups():
    """One-way model: b_j = s_b^2 / (s_b^2 + s^2 / n_j) * (mean_j - beta)."""
    _, fit = reference_fit("dyestuff")
    df = data("dyestuff")
    re = fit.ranef()["Batch"]
    assert list(re.columns) == ["(Intercept)"]
    assert list(re.index) == list(df["Batch"].cat.categories)
    sb2, s2 = fit.varcorr()["estimate"] ** 2
    groups = df.groupby("Batch", observed=True)["Yield"]
    shrink = sb2 / (sb2 + s2 / groups.size())
    expected = shrink * (groups.mean() - fit.beta[0])
    np.testing.assert_allclose(re["(Intercept)"], expected.to_numpy(), rtol=1e-8)


def test_ranef_per_group_for_slopes_and_nesting():
    _, fit = reference_fit("sleepstudy_uncorrelated")
    assert fit.ranef()["Subject"].shape == (18, 2)
    _, nested = reference_fit("pastes_nested")
    assert {k: v.shape for k, v in nested.ranef().items()} == {"batch": (10, 1),
                                                              "batch:cask": (30, 1)}


# -- GLMMs against glmer --------------------------------------------------------------------------
@pytest.mark.parametrize("key", GLMM_KEYS)
def test_glmm_matches_glmer(key):
    ref, fit = reference_fit(key)
    assert ref["method"] == "Laplace ML" and fit.method == "Laplace"
    assert fit.converged and fit.sigma is None
    fe = fit.fixef()
    assert list(fe.columns) == ["estimate", "std_error", "z_value", "p_value"]
    for name, value in ref["fixef"].items():
        se = ref["fixef_se"][name]
        assert fe.loc[name, "estimate"] == pytest.approx(value, abs=0.01 * se)
        assert fe.loc[name, "std_error"] == pytest.approx(se, rel=0.015)
    ours, theirs = our_varcorr(fit), reference_varcorr(ref)
    assert set(ours) == set(theirs)
    for row, value in theirs.items():
        assert ours[row] == pytest.approx(value, rel=2e-3), row
    assert fit.loglik == pytest.approx(ref["loglik"], abs=1e-3)
    np.testing.assert_allclose(fe["p_value"], 2 * stats.norm.sf(np.abs(fe["z_value"])))


def test_glmm_without_random_effects_is_the_glm():
    df = data("cbpp")
    fit = bm.Model("incidence | trials(size) ~ period", df, family="binomial").fit_ml(reml=False)
    X = np.column_stack([np.ones(len(df))] + [(df["period"] == p).to_numpy(float)
                                              for p in ["2", "3", "4"]])
    y, n = df["incidence"].to_numpy(float), df["size"].to_numpy(float)

    def negloglik(beta):
        return -stats.binom.logpmf(y, n, special.expit(X @ beta)).sum()

    best = optimize.minimize(negloglik, np.zeros(4), method="BFGS", options={"gtol": 1e-8})
    np.testing.assert_allclose(fit.beta, best.x, atol=1e-5)
    assert fit.loglik == pytest.approx(-best.fun, abs=1e-8)
    assert fit.df == 4


def test_offsets_shift_the_intercept():
    _, fit = reference_fit("mortality_hospitals")
    df = data("mortality").assign(off=0.5)
    shifted = bm.Model("deaths | trials(patients) ~ 1 + offset(off) + (1|hospital)", df,
                       family="binomial").fit_ml(reml=False)
    assert shifted.beta[0] == pytest.approx(fit.beta[0] - 0.5, abs=1e-4)
    assert shifted.loglik == pytest.approx(fit.loglik, abs=1e-6)
    gauss = bm.Model("Reaction ~ Days + offset(Days) + (Days | Subject)", data("sleepstudy"))
    ref = reference_fit("sleepstudy_slopes")[1]
    assert gauss.fit_ml().beta[1] == pytest.approx(ref.beta[1] - 1.0, abs=1e-6)


def test_sparse_solver_gives_the_same_fits(monkeypatch):
    """Force the sparse-LU path (used for large q) on small models."""
    dense_lmm = reference_fit("penicillin_crossed")[1]
    dense_glmm = reference_fit("cbpp_binomial")[1]
    monkeypatch.setattr(laplace, "_SMALL", 0)
    monkeypatch.setattr(laplace, "DENSE_LIMIT", 0)
    lmm = bm.Model("diameter ~ 1 + (1|plate) + (1|sample)", data("penicillin")).fit_ml()
    glmm = bm.Model("incidence | trials(size) ~ period + (1|herd)", data("cbpp"),
                    family="binomial").fit_ml(reml=False)
    for sparse, dense in ((lmm, dense_lmm), (glmm, dense_glmm)):
        assert sparse.loglik == pytest.approx(dense.loglik, abs=1e-7)
        np.testing.assert_allclose(sparse.theta, dense.theta, rtol=1e-4)
        np.testing.assert_allclose(sparse.beta, dense.beta, rtol=1e-4)


def test_z_lambda_products_match_explicit_matrices():
    """The bincount products equal scipy.sparse products with Z and Lambda (slopes, crossed)."""
    rng = np.random.default_rng(1)
    for formula, name in ((SLEEP1, "sleepstudy"),
                          ("diameter ~ 1 + (1|plate) + (1|sample)", "penicillin")):
        model = bm.Model(formula, data(name))
        s = laplace.random_structure(model.design.blocks, model.design.n)
        zlam = laplace.ZLambda(s)
        theta = rng.uniform(0.2, 1.5, len(s.theta0))
        ZL = (s.Z @ s.lam(theta)).toarray()
        zl = zlam.values(theta)
        n = s.Z.shape[0]
        u, v, w = rng.normal(size=s.q), rng.normal(size=n), rng.uniform(size=n)
        np.testing.assert_allclose(zlam.mul(zl, u), ZL @ u, atol=1e-12)
        np.testing.assert_allclose(zlam.tmul(zl, v), ZL.T @ v, atol=1e-12)
        np.testing.assert_allclose(s.lam_mul(theta, u), s.lam(theta) @ u, atol=1e-12)
        M = ZL.T @ (w[:, None] * ZL) + np.eye(s.q)
        solver = zlam.gram(zl, w)
        assert solver.logdet == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-12)
        np.testing.assert_allclose(solver.solve(u), np.linalg.solve(M, u), atol=1e-10)


def test_optimizer_leaves_a_saddle_on_the_bound():
    """An even function of a bounded parameter has zero slope at the bound; restart there."""
    from bayesmix.inference.ml import _optimize

    def f(x):
        return float((x[0] ** 2 - 0.25) ** 2)  # saddle-like stationary point at 0, min at 0.5

    res = _optimize(f, np.array([0.0]), np.array([0.0]))
    assert res.x[0] == pytest.approx(0.5, abs=1e-4)
    # a true boundary minimum stays put
    assert _optimize(lambda x: float((x[0] + 1) ** 2), np.array([1.0]),
                     np.array([0.0])).x[0] == 0.0


# -- result object --------------------------------------------------------------------------------
def test_information_criteria():
    for key in ("sleepstudy_slopes", "cbpp_binomial"):
        _, fit = reference_fit(key)
        assert fit.aic == pytest.approx(-2 * fit.loglik + 2 * fit.df)
        assert fit.bic == pytest.approx(-2 * fit.loglik + np.log(fit.nobs) * fit.df)
        assert fit.deviance == pytest.approx(-2 * fit.loglik)
    # beta, theta and sigma: lme4's npar
    assert reference_fit("sleepstudy_slopes")[1].df == 2 + 3 + 1
    assert reference_fit("sleepstudy_uncorrelated")[1].df == 2 + 2 + 1
    assert reference_fit("cbpp_binomial")[1].df == 4 + 1
    # lme4: AIC 194.05, BIC 204.19 for the cbpp fit
    assert reference_fit("cbpp_binomial")[1].aic == pytest.approx(194.05, abs=0.01)


def test_tables_have_the_bayesian_layout():
    _, fit = reference_fit("sleepstudy_slopes")
    vc = fit.varcorr()
    assert list(vc.columns) == ["group", "term", "term2", "kind", "estimate"]
    assert vc[["group", "term", "term2", "kind"]].values.tolist() == [
        ["Subject", "(Intercept)", "", "sd"], ["Subject", "Days", "", "sd"],
        ["Subject", "(Intercept)", "Days", "cor"], ["Residual", "", "", "sd"]]
    assert fit.fixef().index.name == "term"
    assert list(fit.vcov().index) == ["(Intercept)", "Days"]
    glmm = reference_fit("grouseticks_poisson")[1].varcorr()
    assert list(glmm["group"]) == ["BROOD", "LOCATION"]  # no residual row for GLMMs


def test_start_values():
    _, fit = reference_fit("sleepstudy_slopes")
    start = fit.start_values()
    assert set(start) == {"fixef", "sd_Subject", "cor_Subject", "sigma"}
    np.testing.assert_allclose(start["fixef"], fit.beta)
    np.testing.assert_allclose(start["sd_Subject"], [24.7407, 5.9221], rtol=1e-3)
    assert start["cor_Subject"][0, 1] == pytest.approx(0.0656, abs=1e-3)
    assert np.all(np.diag(start["cor_Subject"]) == 1.0)
    assert start["sigma"] == pytest.approx(25.5918, rel=1e-4)
    assert set(reference_fit("cbpp_binomial")[1].start_values()) == {"fixef", "sd_herd"}


def test_summary_text():
    _, fit = reference_fit("sleepstudy_slopes")
    text = str(fit.summary())
    assert "Linear mixed model fit by REML" in text
    assert "REML criterion at convergence: 1743.6" in text  # lme4 prints 1743.6
    assert "Number of obs: 180, groups:  Subject, 18" in text
    assert "Corr((Intercept), Days | Subject) = 0.066" in text
    glmm = str(reference_fit("cbpp_binomial")[1].summary())
    assert "Laplace Approximation" in glmm and "Pr(>|z|)" in glmm and "194.1" in glmm
    assert "MLResult" in repr(fit)


def test_fitting_does_not_mutate_inputs():
    df = data("sleepstudy").copy()
    before = df.copy()
    model = bm.Model(SLEEP1, df)
    y = model.y.copy()
    fit_ml(model)
    pd.testing.assert_frame_equal(df, before)
    np.testing.assert_array_equal(model.y, y)


def test_results_are_read_only():
    _, fit = reference_fit("dyestuff")
    with pytest.raises(ValueError, match="read-only"):
        fit.beta[0] = 0.0
    start = fit.start_values()
    start["fixef"][0] = 0.0  # copies: changing them leaves the fit alone
    assert fit.beta[0] == pytest.approx(1527.5)


def test_exports():
    assert bm.MLResult is MLResult and bm.lrt is lrt
    assert {"MLResult", "lrt"} <= set(bm.__all__)
    assert isinstance(bm.Model(SLEEP0, data("sleepstudy")).fit_ml(), bm.MLResult)


# -- likelihood-ratio tests -----------------------------------------------------------------------
def test_lrt_matches_anova():
    """lme4's anova(fm1, fm2) on sleepstudy: Chisq 42.139 on 2 df, p 7.07e-10."""
    m0, m1 = sleep_fit(SLEEP0, False), sleep_fit(SLEEP1, False)
    test = lrt(m0, m1)
    assert isinstance(test, LRTResult) and not test.refitted
    assert test.statistic == pytest.approx(2 * (m1.loglik - m0.loglik))
    assert test.statistic == pytest.approx(42.139, abs=1e-3)
    assert test.df == 2
    assert test.p_value == pytest.approx(stats.chi2.sf(test.statistic, 2))
    assert test.p_value == pytest.approx(7.072e-10, rel=1e-3)
    # one added random slope (with its correlation): 50:50 mixture of chi2(1) and chi2(2)
    assert test.p_value_boundary == pytest.approx(
        0.5 * stats.chi2.sf(test.statistic, 1) + 0.5 * stats.chi2.sf(test.statistic, 2))
    table = test.table
    assert list(table.index) == ["m0", "m1"]
    assert list(table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df",
                                   "Pr(>Chisq)"]
    assert table.loc["m0", "AIC"] == pytest.approx(1802.1, abs=0.05)  # lme4's anova
    assert table.loc["m1", "Chisq"] == test.statistic and np.isnan(table.loc["m0", "Chisq"])
    assert "boundary" in repr(test)
    assert lrt(m1, m0).statistic == test.statistic  # order does not matter


def test_lrt_halves_the_p_value_for_one_variance():
    df = data("dyestuff")
    m0 = bm.Model("Yield ~ 1", df).fit_ml(reml=False)
    m1 = bm.Model("Yield ~ 1 + (1 | Batch)", df).fit_ml(reml=False)
    test = lrt(m0, m1)
    assert test.df == 1
    assert test.p_value == pytest.approx(stats.chi2.sf(test.statistic, 1))
    assert test.p_value_boundary == pytest.approx(test.p_value / 2)


def test_lrt_fixed_effects_have_no_boundary_correction():
    df = data("sleepstudy")
    m0 = bm.Model("Reaction ~ 1 + (Days | Subject)", df).fit_ml(reml=False)
    test = lrt(m0, sleep_fit(SLEEP1, False))
    assert test.df == 1 and test.p_value_boundary is None
    assert test.p_value == pytest.approx(stats.chi2.sf(test.statistic, 1))


def test_lrt_refits_reml_fits_with_ml():
    with pytest.warns(UserWarning, match="refitting REML fit"):
        test = lrt(sleep_fit(SLEEP0, True), sleep_fit(SLEEP1, True))
    assert test.refitted and "refitted with ML" in test.note
    assert test.statistic == pytest.approx(lrt(sleep_fit(SLEEP0, False),
                                               sleep_fit(SLEEP1, False)).statistic, abs=1e-6)


def test_lrt_without_refit():
    r0, r1 = sleep_fit(SLEEP0, True), sleep_fit(SLEEP1, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = lrt(r0, r1, refit=False)  # same fixed effects: REML likelihoods comparable
    assert test.statistic == pytest.approx(2 * (r1.loglik - r0.loglik))
    other = bm.Model("Reaction ~ 1 + (Days | Subject)", data("sleepstudy")).fit_ml()
    with pytest.raises(bm.BayesmixError, match="same fixed effects"):
        lrt(other, r1, refit=False)


def test_lrt_refuses_non_nested_or_foreign_inputs():
    m1 = sleep_fit(SLEEP1, False)
    same_size = bm.Model("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
                         data("sleepstudy")).fit_ml(reml=False)
    with pytest.raises(bm.BayesmixError, match="nested"):
        lrt(same_size, bm.Model("Reaction ~ Days + (Days || Subject)",
                                data("sleepstudy")).fit_ml(reml=False))
    with pytest.raises(bm.DataError, match="different data"):
        lrt(m1, reference_fit("dyestuff")[1])
    with pytest.raises(bm.BayesmixError, match="MLResult"):
        lrt(m1, "fit")


# -- errors ---------------------------------------------------------------------------------------
def test_reml_refused_for_glmms():
    model = bm.Model("TICKS ~ YEAR + (1|BROOD)", data("grouseticks"), family="poisson")
    with pytest.raises(bm.FamilyError, match=r"REML is defined for gaussian models; "
                                             r"use reml=False \(Laplace\)"):
        model.fit_ml()
    assert issubclass(bm.FamilyError, bm.BayesmixError)


def test_fit_ml_needs_a_model():
    with pytest.raises(bm.BayesmixError, match="needs a bayesmix.Model, not DataFrame"):
        fit_ml(data("dyestuff"))


def test_gaussian_needs_identity_link():
    model = bm.Model("Reaction ~ Days + (1 | Subject)", data("sleepstudy"), link="log")
    with pytest.raises(bm.FamilyError, match="identity link, not 'log'"):
        model.fit_ml()


def test_fit_ml_refuses_several_formulas():
    import bayesmix as bm

    df = bm.datasets.load("sleepstudy")
    model = bm.Model(bm.Formula("Reaction ~ Days + (1 | Subject)", "sigma ~ Days"), df)
    with pytest.raises(bm.BayesmixError, match="one linear formula"):
        model.fit_ml()


def test_fit_ml_refuses_known_covariance_terms():
    import bayesmix as bm

    levels = [f"a{i}" for i in range(6)]
    A = pd.DataFrame(np.eye(6), index=levels, columns=levels)
    df = pd.DataFrame({"animal": levels * 2, "y": np.arange(12.0)})
    model = bm.Model("y ~ 1 + (1 | gr(animal, cov=A))", df, data2={"A": A})
    with pytest.raises(bm.BayesmixError, match="gr\\(g, cov=A\\)"):
        model.fit_ml()
