"""A fitted nonlinear mixed model: R's Orange trees, logistic growth with a random asymptote.

nlme's fit (Pinheiro & Bates 2000, sec. 8.2; lme4's nlmer agrees to ~1 %):
Asym 191.05, xmid 722.56, scal 344.16, SD of Asym over trees 31.65, residual SD 7.85.
With weak priors, 5 trees and 35 rows the posterior is wide (posterior SD of Asym ~ 19, of
the tree SD ~ 15, right-skewed), so agreement is checked within 2 posterior SDs.
One fit (2 chains x 1000 draws) is shared by the module.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _post_fits import ORANGE_PRIORS

import bayesmix as bm
from bayesmix.posterior import draws as predict

NLME = {"Asym:(Intercept)": 191.05, "xmid:(Intercept)": 722.56, "scal:(Intercept)": 344.16}
NLME_SD_TREE, NLME_RESIDUAL = 31.65, 7.85
PRIORS = ORANGE_PRIORS


@pytest.fixture(scope="module")
def orange():
    return bm.datasets.load("orange")


@pytest.fixture(scope="module")
def fit(orange):
    nl = bm.NonLinear("circumference ~ Asym / (1 + exp(-(age - xmid) / scal))",
                      Asym="1 + (1 | Tree)", xmid="1", scal="1")
    model = bm.Model(nl, orange, priors=PRIORS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        return model.fit(draws=1000, tune=1000, chains=2, random_seed=1, target_accept=0.9,
                         progressbar=False)


def test_estimates_agree_with_nlme(fit):
    fe = fit.fixef()
    assert list(fe.index) == list(NLME)
    for term, value in NLME.items():
        assert abs(fe.loc[term, "mean"] - value) < 2 * fe.loc[term, "sd"], term
    vc = fit.varcorr().set_index("group")
    assert list(vc.index) == ["Asym_Tree", "Residual"]
    for group, value in (("Asym_Tree", NLME_SD_TREE), ("Residual", NLME_RESIDUAL)):
        assert abs(vc.loc[group, "mean"] - value) < 2 * vc.loc[group, "sd"], group
    assert vc.loc["Residual", "sd"] < 1.5  # the residual SD is well determined
    report = fit.sampling_report()
    assert report.divergences <= 0.01 * report.n_draws and report.max_rhat < 1.05


def test_tables_and_names(fit):
    post = fit.posterior
    assert {"fixef_Asym", "fixef_xmid", "fixef_scal", "sd_Asym_Tree", "r_Asym_Tree",
            "sigma"} <= set(post.data_vars)
    assert post["r_Asym_Tree"].dims == ("chain", "draw", "Tree", "Asym_Tree__term")
    assert list(fit.fixef(dpar="Asym").index) == ["(Intercept)"]
    # each tree's asymptote: the trees' order by Asym is their order by final size
    asym = fit.coef()["Asym_Tree"]["(Intercept)"]
    final = bm.datasets.load("orange").groupby("Tree", observed=True)["circumference"].max()
    assert np.corrcoef(asym.loc[final.index], final)[0, 1] > 0.95
    text = str(fit.summary())
    assert text.startswith("Nonlinear mixed model fit by NUTS")
    assert "Asym ~ 1 + (1 | Tree)" in text and "Asym:(Intercept)" in text
    assert "Asym_Tree" in text and "Residual" in text


def test_predictions_evaluate_the_expression(fit, orange):
    post = fit.posterior
    asym, xmid, scal = (post[f"fixef_{p}"].values[..., 0] for p in ("Asym", "xmid", "scal"))
    r = post["r_Asym_Tree"].values[..., 0]
    idx = fit.model.predictors[0].design.blocks[0].index
    age = orange["age"].to_numpy(float)
    by_hand = (asym[..., None] + r[..., idx]) / (
        1 + np.exp(-(age - xmid[..., None]) / scal[..., None]))
    np.testing.assert_allclose(predict.linear_predictor(fit.idata, fit.model), by_hand, rtol=1e-10)
    np.testing.assert_allclose(predict.linear_predictor(fit.idata, fit.model, dpar="Asym"),
                               asym[..., None] + r[..., idx], rtol=1e-12)
    new = pd.DataFrame({"age": [100.0, 700.0, 1500.0], "Tree": ["1", "1", "9"]})
    typical = predict.expected_response(fit.idata, fit.model, newdata=new, re="exclude")
    np.testing.assert_allclose(typical, asym[..., None] / (
        1 + np.exp(-(new["age"].to_numpy() - xmid[..., None]) / scal[..., None])))
    with pytest.raises(bm.DataError, match="levels not seen in fitting"):
        predict.linear_predictor(fit.idata, fit.model, newdata=new)
    with pytest.raises(bm.DataError, match="lacks the column\\(s\\) 'age'"):
        predict.linear_predictor(fit.idata, fit.model, newdata=new[["Tree"]], re="exclude")
    sims = predict.simulate_response(fit.idata, fit.model, newdata=new, re="sample_new", random_seed=3)
    # A new tree at age 1500 varies by the tree SD and the residual around the population
    # curve: Var = E[(sd_tree^2 f^2 + sigma^2)] + Var(Asym f), f = the logistic factor.
    f = 1 / (1 + np.exp(-(1500 - xmid) / scal))
    sd_tree, sigma = post["sd_Asym_Tree"].values[..., 0], post["sigma"].values
    expected = np.sqrt(np.mean(sd_tree ** 2 * f ** 2 + sigma ** 2) + np.var(asym * f))
    # 2000 draws of a heavy-tailed mixture: the sample SD is within ~5 % of its expectation
    assert sims[..., 2].std() == pytest.approx(expected, rel=0.12)
    ll = predict.pointwise_loglik(fit.idata, fit.model, draws=50)
    assert ll.shape == (2, 50, 35) and np.isfinite(ll).all()
