"""Fits shared by the prediction, interpretation, comparison and persistence tests.

Cached per process, so running these test files together compiles each model once. Short
runs (2 chains x 500 draws) check the API and numbers whose tolerances allow for their
Monte-Carlo error; the ConvergenceWarning bayesmix's production thresholds may raise for such
runs is silenced here only.
"""

from __future__ import annotations

import functools
import warnings

import bayesmix as bm

# Priors of the orange logistic-growth NLMM (test_formulas, test_nonlinear): required,
# bayesmix has no default priors for nonlinear parameters.
ORANGE_PRIORS = {"Asym": bm.Prior("Normal", mu=200, sigma=50),
                 "xmid": bm.Prior("Normal", mu=700, sigma=200),
                 "scal": bm.Prior("Normal", mu=350, sigma=100)}

SLEEP_RI = "Reaction ~ Days + (1 | Subject)"
SLEEP_NULL = "Reaction ~ 1 + (1 | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _fit(model: bm.Model, seed: int) -> bm.FitResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        return model.fit(draws=500, tune=500, chains=2, random_seed=seed, progressbar=False)


@functools.cache
def sleep_fit() -> bm.FitResult:
    """Random intercepts for sleepstudy (lme4 REML: Subject SD 37.12, residual SD 30.99)."""
    return _fit(bm.Model(SLEEP_RI, bm.datasets.load("sleepstudy")), 1)


@functools.cache
def sleep_null_fit() -> bm.FitResult:
    return _fit(bm.Model(SLEEP_NULL, bm.datasets.load("sleepstudy")), 2)


@functools.cache
def cbpp_fit() -> bm.FitResult:
    return _fit(bm.Model(CBPP, bm.datasets.load("cbpp"), family="binomial"), 3)
