"""Recovery of structured random effects from simulated data (one fit per model, slow).

* an animal model on a simulated half-sib/full-sib pedigree: heritability h^2 = 0.4;
* AR(1) residuals (rho = 0.6) with a random intercept, compared with the exact maximum
  likelihood estimate of the same data (scipy, multivariate normal per subject).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import bayesmix as bm
from bayesmix.data.structured import ar1_covariance, relationship_matrix
from bayesmix.posterior.draws import linear_predictor, pointwise_loglik, simulate_response

pytestmark = pytest.mark.slow

H2 = 0.4
RHO, SD_INT, SIGMA = 0.6, 1.0, 1.0


def pedigree_data(seed: int = 1, sires: int = 25, dams_per_sire: int = 3, offspring: int = 4,
                  repeats: int = 20):
    """300 offspring with one record each (20 with two), their 100 parents without records;
    phenotype = 10 + breeding value (variance h^2) + noise (variance 1 - h^2)."""
    rng = np.random.default_rng(seed)
    rows = [(f"o{s}_{d}_{k}", f"s{s}", f"d{s}_{d}") for s in range(sires)
            for d in range(dams_per_sire) for k in range(offspring)]
    ped = pd.DataFrame(rows, columns=["id", "sire", "dam"])
    A = relationship_matrix(ped)
    a = pd.Series(np.sqrt(H2) * np.linalg.cholesky(A.to_numpy()) @ rng.standard_normal(len(A)),
                  index=A.index)
    animals = list(ped["id"]) + list(rng.choice(ped["id"], repeats, replace=False))
    y = 10 + a[animals].to_numpy() + np.sqrt(1 - H2) * rng.standard_normal(len(animals))
    return pd.DataFrame({"animal": animals, "y": y}), A, a


def ar1_data(seed: int = 4, subjects: int = 30, times: int = 10) -> pd.DataFrame:
    """Random intercept (SD 1) plus AR(1) residuals (marginal SD 1, rho 0.6); rows shuffled."""
    rng = np.random.default_rng(seed)
    t = np.arange(times)
    chol = np.linalg.cholesky(ar1_covariance(SIGMA, RHO, t))
    frames = [pd.DataFrame({"subject": f"S{s:02d}", "time": t,
                            "y": 2 + 0.3 * t + SD_INT * rng.standard_normal()
                            + chol @ rng.standard_normal(times)}) for s in range(subjects)]
    df = pd.concat(frames, ignore_index=True)
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def _fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        return model.fit(draws=500, tune=500, chains=2, random_seed=3, progressbar=False)


@pytest.fixture(scope="module")
def animal():
    df, A, a = pedigree_data()
    fit = _fit(bm.Model("y ~ 1 + (1 | gr(animal, cov=A))", df, data2={"A": A}))
    return fit, df, A, a


@pytest.fixture(scope="module")
def ar1():
    df = ar1_data()
    fit = _fit(bm.Model("y ~ time + (1 | subject)", df,
                        autocor=bm.AR1(time="time", group="subject")))
    return fit, df


def test_heritability_is_recovered(animal):
    fit, *_ = animal
    va = fit.posterior["sd_animal"].sel(animal__term="(Intercept)") ** 2
    h2 = (va / (va + fit.posterior["sigma"] ** 2)).values.ravel()
    lo, hi = np.quantile(h2, [0.025, 0.975])
    # Measured: 0.39 (sd 0.10). The posterior SD is the estimation error; the Monte-Carlo
    # error of the mean (ESS ~ 100) is about 0.01.
    assert lo < H2 < hi
    assert abs(h2.mean() - H2) < 2 * h2.std()


def _reml_h2(df: pd.DataFrame, A: pd.DataFrame) -> float:
    """REML heritability of y = mu + a[animal] + e (scipy; V = s_a^2 Z A Z' + s_e^2 I)."""
    Z = (df["animal"].to_numpy()[:, None] == np.asarray(A.index)[None, :]).astype(float)
    K, y, X = Z @ A.to_numpy() @ Z.T, df["y"].to_numpy(), np.ones((len(df), 1))

    def neg_reml(p):
        V = np.exp(p[0]) * K + np.exp(p[1]) * np.eye(len(y))
        Vi = np.linalg.inv(V)
        XtViX = X.T @ Vi @ X
        e = y - X @ np.linalg.solve(XtViX, X.T @ Vi @ y)
        return 0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + e @ Vi @ e)

    va, ve = np.exp(optimize.minimize(neg_reml, [np.log(0.4), np.log(0.6)],
                                      method="Nelder-Mead").x)
    return float(va / (va + ve))


def test_heritability_agrees_with_reml(animal):
    fit, df, A, _ = animal
    va = fit.posterior["sd_animal"].sel(animal__term="(Intercept)") ** 2
    h2 = (va / (va + fit.posterior["sigma"] ** 2)).values.ravel()
    # Measured: posterior mean 0.393, REML 0.386 (the same data's frequentist estimate).
    assert h2.mean() == pytest.approx(_reml_h2(df, A), abs=0.05)


def test_breeding_values_cover_relatives_without_records(animal):
    fit, df, A, a = animal
    ranef = fit.ranef()["animal"]["(Intercept)"]
    assert list(ranef.index) == list(A.index)  # 100 parents without records included
    offspring = df["animal"].unique()
    parents = [i for i in A.index if i not in set(offspring)]
    # Predicted breeding values track the true ones, for offspring and for parents (known
    # only through their progeny). Measured 0.64 and 0.56; the textbook accuracies are about
    # 0.65 (own record + sibs), 0.55 for a dam (4 progeny) and 0.76 for a sire (12).
    assert np.corrcoef(ranef[offspring], a[offspring])[0, 1] > 0.5
    assert np.corrcoef(ranef[parents], a[parents])[0, 1] > 0.4
    # A sire's value is pulled to the mean of its progeny's values, by the relationship.
    sire_means = ranef[offspring].groupby(lambda i: "s" + i[1:].split("_")[0]).mean()
    sires = sire_means.index
    assert np.corrcoef(ranef[sires], sire_means)[0, 1] > 0.95


def test_new_animals_get_independent_effects_with_the_fitted_sd(animal):
    fit, *_ = animal
    new = pd.DataFrame({"animal": ["newcomer"] * 2})
    eta = linear_predictor(fit.idata, fit.model, new, re="sample_new", random_seed=1)
    base = fit.posterior["fixef"].sel(coef="(Intercept)").values
    effect = eta[..., 0] - base
    np.testing.assert_allclose(eta[..., 0], eta[..., 1])  # one effect per new level
    sd = fit.posterior["sd_animal"].values[..., 0]
    # effect / sd ~ N(0, 1) over 1000 draws: its SD is within 0.1 of 1 (about 4.5 SE).
    assert np.std(effect / sd) == pytest.approx(1.0, abs=0.1)


def _mle(df: pd.DataFrame) -> dict[str, float]:
    """Exact ML fit of intercept + slope + random intercept + AR(1) residuals (scipy)."""
    wide = df.sort_values(["subject", "time"])
    Y = wide["y"].to_numpy().reshape(-1, 10)
    t = np.arange(10)

    def nll(p):
        b0, b1, log_sd, log_sigma, atanh_rho = p
        V = np.exp(2 * log_sd) + ar1_covariance(np.exp(log_sigma), np.tanh(atanh_rho), t)
        return -stats.multivariate_normal(b0 + b1 * t, V).logpdf(Y).sum()

    p = optimize.minimize(nll, [2, 0.3, 0, 0, 0.5], method="Nelder-Mead",
                          options={"maxiter": 5000, "xatol": 1e-6, "fatol": 1e-8}).x
    return {"rho": float(np.tanh(p[4])), "sd": float(np.exp(p[2])),
            "sigma": float(np.exp(p[3]))}


def test_ar1_correlation_is_recovered_and_matches_maximum_likelihood(ar1):
    fit, df = ar1
    vc = fit.varcorr().set_index(["group", "term"])
    rho = vc.loc[("Residual", "AR(1) rho")]
    assert rho["kind"] == "ar"
    assert rho["eti95_lb"] < RHO < rho["eti95_ub"]
    mle = _mle(df)  # measured: rho 0.581, sd 0.944, sigma 0.994
    # Posterior SD of rho is about 0.06; mean and ML estimate differ by far less.
    assert rho["mean"] == pytest.approx(mle["rho"], abs=0.05)
    sd = vc.loc[("subject", "(Intercept)")]
    sigma = vc.loc[("Residual", "")]
    assert sd["eti95_lb"] < SD_INT < sd["eti95_ub"]
    assert sigma["eti95_lb"] < SIGMA < sigma["eti95_ub"]
    assert sigma["mean"] == pytest.approx(mle["sigma"], abs=0.1)


def test_ar1_pointwise_loglik_sums_to_the_joint_density(ar1):
    fit, df = ar1
    ll = pointwise_loglik(fit.idata, fit.model, draws=20)
    assert ll.shape == (2, 20, len(df))
    eta = linear_predictor(fit.idata, fit.model, draws=20)
    c, d = 1, 7
    keep = slice(None, None, 25)
    sigma = float(fit.posterior["sigma"].isel(draw=keep).values[c, d])
    rho = float(fit.posterior["ar"].isel(draw=keep).values[c, d])
    joint = 0.0
    for rows in df.groupby("subject").indices.values():
        cov = ar1_covariance(sigma, rho, df["time"].to_numpy()[rows])
        joint += stats.multivariate_normal(eta[c, d, rows], cov).logpdf(df["y"].to_numpy()[rows])
    assert ll[c, d].sum() == pytest.approx(joint, rel=1e-10)


def test_ar1_posterior_predictive_residuals_are_autocorrelated(ar1):
    fit, df = ar1
    ysim = simulate_response(fit.idata, fit.model, draws=100, random_seed=2)
    eta = linear_predictor(fit.idata, fit.model, draws=100)
    e = (ysim - eta).reshape(-1, len(df))
    order = np.lexsort((df["time"], df["subject"]))
    later = order[1:][df["subject"].to_numpy()[order][1:] == df["subject"].to_numpy()[order][:-1]]
    prev = order[:-1][df["subject"].to_numpy()[order][1:] == df["subject"].to_numpy()[order][:-1]]
    lag1 = np.corrcoef(e[:, later].ravel(), e[:, prev].ravel())[0, 1]
    # 200 x 270 residual pairs: the lag-1 correlation is the posterior mean of rho +- 0.03.
    assert lag1 == pytest.approx(float(fit.posterior["ar"].mean()), abs=0.03)


def test_ar1_appears_in_summary_and_diagnostics(ar1):
    fit, _ = ar1
    text = str(fit.summary())
    assert "Residual AR(1) in time within subject: rho = 0.5" in text
    from bayesmix.inference.convergence import parameter_label, population_vars

    assert "ar" in population_vars(fit.posterior, fit.model.design.blocks)
    assert parameter_label("ar", fit.posterior["ar"], 0) == "the residual AR(1) correlation (ar)"
