"""fit(sampler="numpyro" | "blackjax"): the JAX path, on CPU.

Default suite (skipped without jax): one sleepstudy fit per sampler, checked against the lme4
reference like tests/test_recovery.py, and for what the rest of bayesmix reads from it (derived
level effects, sample stats, checks, summary); the errors that name what to install.

Slow suite (``make test-jax`` runs both): recovery on three reference models (a gaussian model
whose level effects are integrated out, a binomial GLMM, a crossed gaussian model), each fitted
with nutpie, numpyro and blackjax from the same seed. The JAX posterior means must agree with
nutpie's within Monte-Carlo error: ``|a - b| <= 4 sqrt(mcse_a^2 + mcse_b^2) + 0.05 sd`` (the
difference of two independent estimates has standard error ``sqrt(mcse_a^2 + mcse_b^2)``;
4 of them is a 1-in-15 000 event per parameter; the floor, 5 % of a posterior SD, absorbs the
MCSE's own error at a few hundred effective draws). Each JAX fit spends ~10 s of its ~15 s on
2 cores compiling (XLA), hence the split.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.errors import SamplerError
from bayesmix.inference import jax_samplers

SEED = 20240
JAX = ("numpyro", "blackjax")
RUN = dict(draws=500, tune=500, chains=2)
# penicillin's plate SD mixes slowly (tests/test_recovery.py's LONGER_RUN)
RUNS = {"penicillin_crossed": dict(draws=1000, tune=1000, chains=2)}
MC_SLACK = 2.0   # as tests/test_recovery.py: reference tolerances plus 2 MCSE
SD_RTOL = 0.20
COR_ATOL = 0.25
AGREE_MCSE = 4.0
AGREE_FLOOR_SD = 0.05
KEYS = ("sleepstudy_slopes", "cbpp_binomial", "penicillin_crossed")


def need(sampler: str) -> None:
    """Skip without JAX and the sampler's library (the ``jax`` extra)."""
    pytest.importorskip("jax")
    pytest.importorskip(sampler)


def reference(key: str) -> dict:
    """The lme4 reference of ``key``: fixef, fixef_se, sds {(group, term)}, cors {(group, t1, t2)}."""
    raw = bm.datasets.reference_estimates()[key]
    sds, cors = {}, {}
    for name, value in raw["varcorr"].items():
        parts = name.split(":")
        if parts[-1] == "sd":
            sds[("Residual", "") if parts[0] == "Residual" else (parts[0], parts[1])] = value
        else:
            cors[(parts[0], parts[1], parts[2])] = value
    return {**raw, "sds": sds, "cors": cors}


def fit_key(key: str, sampler: str) -> bm.FitResult:
    ref = reference(key)
    model = bm.Model(ref["formula"], bm.datasets.load(ref["dataset"]), family=ref["family"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)  # short runs: checked below
        return model.fit(**RUNS.get(key, RUN), sampler=sampler, random_seed=SEED,
                         progressbar=False)


def assert_recovers_reference(key: str, fit: bm.FitResult) -> None:
    """Fixed effects within one reference SE, SDs within 20 %, correlations within 0.25, each
    plus 2 MCSE (tests/test_recovery.py's criteria)."""
    ref = reference(key)
    fixef = fit.fixef()
    for name, value in ref["fixef"].items():
        row = fixef.loc[name]
        tol = ref["fixef_se"][name] + MC_SLACK * row["mcse_mean"]
        assert abs(row["mean"] - value) <= tol, (key, name, row["mean"], value, tol)
    vc = fit.varcorr()
    for (group, term), value in ref["sds"].items():
        row = vc[(vc["group"] == group) & (vc["term"] == term) & (vc["kind"] == "sd")].iloc[0]
        tol = SD_RTOL * value + MC_SLACK * row["mcse_mean"]
        assert abs(row["mean"] - value) <= tol, (key, group, term, row["mean"], value, tol)
    for (group, t1, t2), value in ref["cors"].items():
        row = vc[(vc["group"] == group) & (vc["term"] == t1) & (vc["term2"] == t2)].iloc[0]
        assert abs(row["mean"] - value) <= COR_ATOL + MC_SLACK * row["mcse_mean"], (key, group)


def population_table(fit: bm.FitResult):
    """Fixed effects, SDs and correlations: mean, sd and MCSE, indexed by a readable name."""
    fe = fit.fixef()[["mean", "sd", "mcse_mean"]]
    vc = fit.varcorr()
    vc.index = [f"{k}({g}: {t}{'~' + t2 if t2 else ''})" for g, t, t2, k in
                zip(vc["group"], vc["term"], vc["term2"], vc["kind"])]
    return pd.concat([fe, vc[["mean", "sd", "mcse_mean"]]])


# -- the errors ----------------------------------------------------------------------------------
def test_missing_jax_is_a_sampler_error_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(jax_samplers.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("jax", "numpyro") else real(name, *a))
    model = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
    with pytest.raises(SamplerError, match=r"needs jax and numpyro.*pip install 'bayesmix\[jax\]'"):
        model.fit(sampler="numpyro", draws=10, tune=10, chains=1, progressbar=False)


def test_blackjax_from_16_is_refused_with_the_pin(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(jax_samplers.importlib.util, "find_spec",
                        lambda name, *a: object() if name in ("jax", "blackjax") else real(name, *a))
    monkeypatch.setattr(jax_samplers.importlib.metadata, "version", lambda name: "1.7.1")
    with pytest.raises(SamplerError, match=r"blackjax 1.7.1 is installed: pip install 'blackjax>=1.5,<1.6'"):
        jax_samplers.check_jax_sampler("blackjax")


def test_blackjax_refuses_another_max_treedepth():
    need("blackjax")
    model = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
    with pytest.raises(SamplerError, match="maximum tree depth of 10"):
        model.fit(sampler="blackjax", max_treedepth=12, draws=10, tune=10, chains=1,
                  progressbar=False)


# -- one fit per sampler in the default suite ------------------------------------------------------
@pytest.mark.parametrize("sampler", JAX)
def test_sleepstudy_fit_with_jax_sampler(sampler):
    need(sampler)
    fit = fit_key("sleepstudy_slopes", sampler)
    assert fit.model.marginal  # level effects integrated out, drawn after sampling
    post = fit.posterior
    assert {"fixef", "sd_Subject", "cor_Subject", "sigma", "r_Subject"} <= set(post.data_vars)
    assert not [v for v in post.data_vars if str(v).startswith("_")]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 500
    assert post["r_Subject"].shape[:2] == (2, 500) and np.isfinite(post["r_Subject"]).all()
    stats = fit.idata["sample_stats"]
    assert stats["diverging"].dtype == bool and stats["reached_max_treedepth"].dtype == bool
    report = fit.sampling_report()
    assert report.divergences == 0 and report.max_rhat < 1.05, report.text()
    assert report.min_ess_bulk > 200, report.text()
    assert_recovers_reference("sleepstudy_slopes", fit)
    assert fit.timing["compile"] > 0 and fit.timing["sampling"] > 0
    assert f"NUTS ({sampler})" in str(fit.summary())
    fit.check()  # the checks read the same groups as for nutpie


# -- slow: nutpie vs numpyro vs blackjax on three reference models --------------------------------
@pytest.fixture(scope="module")
def fits():
    cache: dict[tuple[str, str], bm.FitResult] = {}

    def get(key: str, sampler: str) -> bm.FitResult:
        if (key, sampler) not in cache:
            cache[(key, sampler)] = fit_key(key, sampler)
        return cache[(key, sampler)]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("sampler", JAX)
@pytest.mark.parametrize("key", KEYS)
def test_jax_sampler_agrees_with_nutpie(fits, key, sampler):
    need(sampler)
    a, b = population_table(fits(key, "nutpie")), population_table(fits(key, sampler))
    assert list(a.index) == list(b.index)
    tol = AGREE_MCSE * np.hypot(a["mcse_mean"], b["mcse_mean"]) + AGREE_FLOOR_SD * a["sd"]
    diff = (a["mean"] - b["mean"]).abs()
    bad = diff > tol
    assert not bad.any(), f"{key}: {sampler} vs nutpie\n{a.join(b, rsuffix='_' + sampler)[bad]}"
    report = fits(key, sampler).sampling_report()
    assert report.divergences <= 0.01 * report.n_draws and report.max_rhat < 1.05, report.text()


@pytest.mark.slow
@pytest.mark.parametrize("sampler", JAX)
@pytest.mark.parametrize("key", ["cbpp_binomial", "penicillin_crossed"])
def test_jax_sampler_recovers_reference(fits, key, sampler):
    need(sampler)
    assert_recovers_reference(key, fits(key, sampler))


@pytest.mark.slow
@pytest.mark.parametrize("sampler", JAX)
def test_same_seed_same_draws(sampler):
    need(sampler)
    data = bm.datasets.load("dyestuff")
    draws = []
    for seed in (1, 1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bm.ConvergenceWarning)
            fit = bm.Model("Yield ~ 1 + (1 | Batch)", data).fit(
                draws=50, tune=50, chains=2, sampler=sampler, random_seed=seed,
                progressbar=False)
        draws.append(fit.posterior["fixef"].values)
    assert np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])
