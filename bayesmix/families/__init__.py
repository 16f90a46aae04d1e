"""Response families: links, response checks, extra parameters, and their numpy likelihoods.

Adding a family is one :class:`Family` entry in :data:`FAMILIES` (its links, response check,
extra parameters, and numpy ``loglik``/``simulate``/``mean`` from :mod:`bayesmix.families.densities`)
plus its PyMC likelihood in :mod:`bayesmix.model.build`. The numpy functions serve everything after
sampling (pointwise log-likelihood for LOO/WAIC, posterior predictive draws, predictions) and
must agree with the PyMC likelihood; ``tests/test_families.py`` checks both against scipy.stats.

Their common signature works on the linear predictor ``eta`` (any shape, typically
``(chain, draw, n)``), the link name, the family's parameters (``params[name]`` broadcastable
against ``eta``; the cutpoints of ``cumulative`` carry one extra trailing dimension) and the
binomial trials (``None`` otherwise)::

    loglik(y, eta, link, params, trials) -> log p(y | ...), shape of eta
    simulate(rng, eta, link, params, trials) -> a response draw, shape of eta
    mean(eta, link, params, trials) -> E[y | ...] (binomial: expected successes, as brms)

Parametrisations (``mu = g^-1(eta)``; the parameter names are those of the posterior):

=================================  ================================================================
family                             distribution of y
=================================  ================================================================
gaussian                           Normal(mu, sigma)
student_t                          StudentT(nu, mu, sigma)
lognormal                          log y ~ Normal(eta, sigma): eta is the mean of log y
gamma                              Gamma(shape, rate = shape / mu): variance mu^2 / shape
bernoulli, binomial                Bernoulli(mu), Binomial(n, mu)
beta_binomial                      Binomial(n, p), p ~ Beta(mu phi, (1 - mu) phi)
beta                               Beta(mu phi, (1 - mu) phi): variance mu(1-mu)/(1+phi)
poisson                            Poisson(mu)
negativebinomial                   NB2: mean mu, variance mu + mu^2 / theta
zero_inflated_poisson / _negbin.   0 with probability zi, else Poisson(mu) / NB2(mu, theta)
hurdle_poisson / _negativebinomial 0 with probability hu, else zero-truncated Poisson / NB2
cumulative                         P(y <= k) = F(c_k - eta), F logistic or normal, c = cutpoints
=================================  ================================================================

``theta`` is glmmTMB's ``nbinom2`` dispersion (``sigma(fit)``), brms's ``shape`` and PyMC's
``NegativeBinomial(alpha=theta)``; larger means closer to Poisson.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from bayesmix.errors import FamilyError, ResponseError
from bayesmix.families import densities as d

__all__ = ["Family", "FAMILIES", "get_family", "INVERSE_LINKS", "LINKS", "PARAM_LINKS",
           "ordinal_levels"]

# Link functions g and inverse links g^-1, on numpy arrays.
LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda mu: mu,
    "log": np.log,
    "logit": special.logit,
    "probit": special.ndtri,
    "cloglog": lambda mu: np.log(-np.log1p(-mu)),
    "inverse": lambda mu: 1.0 / mu,
}
INVERSE_LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = d.INVERSE_LINKS

# Each family parameter's natural link (its support: log -> positive, logit -> (0, 1),
# identity -> real), for priors and for modelling the parameter itself later ("sigma ~ x").
PARAM_LINKS: dict[str, str] = {"sigma": "log", "nu": "log", "shape": "log", "phi": "log",
                               "theta": "log", "zi": "logit", "hu": "logit",
                               "cutpoints": "identity"}


@dataclass(frozen=True)
class Family:
    """A response distribution.

    ``check`` validates the raw response (and trials) and returns it as floats;
    ``params`` are the family's extra parameters (e.g. ``sigma``), ``param_links`` their
    natural links; ``loglik``/``simulate``/``mean`` are the numpy likelihood, random draw and
    expected response (signatures in the module docstring). ``ordinal`` families have
    cutpoints in place of an intercept.

    Examples
    --------
    >>> fam = get_family("negativebinomial")
    >>> fam.params, fam.param_links
    (('theta',), {'theta': 'log'})
    """

    name: str
    links: tuple[str, ...]
    check: Callable[[Any, np.ndarray | None, str], tuple[np.ndarray, np.ndarray | None]]
    params: tuple[str, ...] = ()
    needs_trials: bool = False
    description: str = ""
    loglik: Callable[..., np.ndarray] | None = None
    simulate: Callable[..., np.ndarray] | None = None
    mean: Callable[..., np.ndarray] | None = None
    ordinal: bool = False
    param_links: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not self.param_links:
            object.__setattr__(self, "param_links", {p: PARAM_LINKS[p] for p in self.params})

    @property
    def default_link(self) -> str:
        return self.links[0]

    def resolve_link(self, link: str | None) -> str:
        if link is None:
            return self.default_link
        if link not in self.links:
            raise FamilyError(f"family {self.name!r} does not support link {link!r}; "
                              f"choose one of {', '.join(self.links)}")
        return link


# -- response checks --------------------------------------------------------------------------

def _numeric(y: np.ndarray, name: str, family: str) -> np.ndarray:
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ResponseError(f"the response {name!r} must be numeric for family {family!r}; "
                            f"it has values like {np.asarray(y)[0]!r}") from None
    if not np.all(np.isfinite(values)):
        raise ResponseError(f"the response {name!r} has infinite values")
    return values


def _counts(values: np.ndarray, what: str, family: str) -> None:
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        example = values[bad][0]
        raise ResponseError(f"{what} must be non-negative integers for family {family!r}; "
                            f"found {example:g} ({int(bad.sum())} such rows). "
                            "For continuous outcomes use family='gaussian' (or 'gamma', "
                            "'lognormal' for positive ones)")


def _no_trials(trials: np.ndarray | None, name: str, family: str) -> None:
    if trials is not None:
        raise ResponseError(f"the response {name!r} has cbind()/trials(), which needs "
                            f"family='binomial' or 'beta_binomial', not {family!r}")


def _check_real(family: str):
    def check(y, trials, name):
        _no_trials(trials, name, family)
        return _numeric(y, name, family), None
    return check


def _check_positive(family: str):
    def check(y, trials, name):
        _no_trials(trials, name, family)
        values = _numeric(y, name, family)
        bad = values <= 0
        if bad.any():
            raise ResponseError(
                f"the response {name!r} must be positive for family {family!r}; found "
                f"{values[bad][0]:g} in {int(bad.sum())} rows. Zeros and negative values "
                f"cannot come from a {family} distribution: check the column, model the "
                "zeros separately, or use family='gaussian'")
        return values, None
    return check


def _check_count(family: str):
    def check(y, trials, name):
        _no_trials(trials, name, family)
        values = _numeric(y, name, family)
        _counts(values, f"the response {name!r}", family)
        return values, None
    return check


def _check_unit(y: np.ndarray, trials: np.ndarray | None, name: str):
    _no_trials(trials, name, "beta")
    values = _numeric(y, name, "beta")
    outside = (values < 0) | (values > 1)
    if outside.any():
        raise ResponseError(f"the response {name!r} must be a proportion strictly between 0 "
                            f"and 1 for family 'beta'; found {values[outside][0]:g} "
                            f"({int(outside.sum())} rows). Rescale it to (0, 1) first")
    edge = (values == 0) | (values == 1)
    if edge.any():
        n = len(values)
        raise ResponseError(
            f"the response {name!r} has {int(edge.sum())} values of exactly 0 or 1 (first: "
            f"{values[edge][0]:g}); family 'beta' needs 0 < y < 1. Squeeze them inward, e.g. "
            f"(y * (n - 1) + 0.5) / n with n = {n} (Smithson & Verkuilen 2006), or use a "
            "zero-one-inflated beta model")
    return values, None


def _check_bernoulli(y: np.ndarray, trials: np.ndarray | None, name: str):
    if trials is not None:
        raise ResponseError(f"family 'bernoulli' takes a 0/1 response; for {name!r} with "
                            "trials use family='binomial'")
    if y.dtype == object:  # labels: the second (last) level is the success, as in R's glm
        levels = sorted(set(y.tolist()), key=str)
        if len(levels) != 2:
            raise ResponseError(f"the response {name!r} must have two values for family "
                                f"'bernoulli'; it has {len(levels)}: {levels[:5]}")
        return (y == levels[1]).astype(float), None
    values = _numeric(y, name, "bernoulli")
    if not np.isin(values, (0.0, 1.0)).all():
        bad = values[~np.isin(values, (0.0, 1.0))][0]
        raise ResponseError(f"the response {name!r} must be 0 or 1 for family 'bernoulli'; "
                            f"found {bad:g}. For counts out of n use "
                            f"'{name} | trials(n)' with family='binomial'")
    return values, None


def _check_binomial(y: np.ndarray, trials: np.ndarray | None, name: str, family: str = "binomial"):
    if trials is None:
        values, _ = _check_bernoulli(y, None, name)
        return values, np.ones_like(values)
    values = _numeric(y, name, family)
    n = _numeric(trials, "trials", family)
    _counts(values, f"the successes {name!r}", family)
    _counts(n, "the number of trials", family)
    over = values > n
    if over.any():
        i = int(np.argmax(over))
        raise ResponseError(f"successes exceed trials in {int(over.sum())} rows (first: "
                            f"{values[i]:g} successes of {n[i]:g} trials); check the response "
                            f"'{name}' and its trials (cbind(successes, failures) or "
                            "successes | trials(n))")
    if (n == 0).any():
        raise ResponseError(f"{int((n == 0).sum())} rows have zero trials; drop them")
    return values, n


def _check_beta_binomial(y: np.ndarray, trials: np.ndarray | None, name: str):
    if trials is None or np.all(np.asarray(trials) == 1):
        raise ResponseError(
            f"family 'beta_binomial' needs counts out of n trials, e.g. '{name} | trials(n) ~ "
            "...' or cbind(successes, failures); with one trial per row its overdispersion "
            "phi cannot be estimated (use family='bernoulli')")
    return _check_binomial(y, trials, name, "beta_binomial")


def ordinal_levels(y: Any, name: str) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Category index 1..K of each row and the K category labels of an ordinal response.

    Accepts an ordered pandas Categorical (its category order; unobserved categories are
    dropped) or integers (the sorted observed values). Unordered labels are refused, since
    their order would be a guess.

    Examples
    --------
    >>> codes, labels = ordinal_levels(pd.Categorical(["lo", "hi", "mid"],
    ...                                ["lo", "mid", "hi"], ordered=True), "rating")
    >>> codes.tolist(), labels
    ([1.0, 3.0, 2.0], ('lo', 'mid', 'hi'))
    """
    if isinstance(y, pd.Series):
        y = y.array
    if isinstance(y, pd.Categorical):
        if not y.ordered:
            raise ResponseError(
                f"the ordinal response {name!r} is an unordered categorical (categories "
                f"{list(y.categories)[:6]}); its order would be a guess. Pass an ordered "
                f"one: df[{name!r}] = pd.Categorical(df[{name!r}], categories=[lowest, ..., "
                "highest], ordered=True)")
        y = y.remove_unused_categories()
        return y.codes.astype(float) + 1.0, tuple(y.categories)
    values = np.asarray(y)
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        raise ResponseError(
            f"the ordinal response {name!r} has text labels (e.g. {values[0]!r}) whose order "
            f"is unknown; pass an ordered Categorical: df[{name!r}] = pd.Categorical("
            f"df[{name!r}], categories=[lowest, ..., highest], ordered=True), or integers")
    values = _numeric(values, name, "cumulative")
    if np.any(values != np.round(values)):
        raise ResponseError(f"the ordinal response {name!r} must hold integer ratings or an "
                            f"ordered Categorical; found {values[values != np.round(values)][0]:g}")
    labels, codes = np.unique(values, return_inverse=True)
    return codes.astype(float) + 1.0, tuple(int(v) for v in labels)


def _check_cumulative(y: Any, trials: np.ndarray | None, name: str):
    _no_trials(trials, name, "cumulative")
    codes, labels = ordinal_levels(y, name)
    if len(labels) < 2:
        raise ResponseError(f"the ordinal response {name!r} has a single observed category "
                            f"({labels[0]!r}); an ordinal model needs at least two")
    return codes, None


# -- the table ----------------------------------------------------------------------------------

FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        Family("gaussian", ("identity", "log"), _check_real("gaussian"), params=("sigma",),
               description="y ~ Normal(mu, sigma)", loglik=d.gaussian_loglik,
               simulate=d.gaussian_simulate, mean=d.link_mean),
        Family("student_t", ("identity", "log"), _check_real("student_t"),
               params=("sigma", "nu"), description="y ~ StudentT(nu, mu, sigma)",
               loglik=d.student_t_loglik, simulate=d.student_t_simulate, mean=d.link_mean),
        Family("lognormal", ("identity",), _check_positive("lognormal"), params=("sigma",),
               description="log y ~ Normal(eta, sigma); E[y] = exp(eta + sigma^2 / 2)",
               loglik=d.lognormal_loglik, simulate=d.lognormal_simulate, mean=d.lognormal_mean),
        Family("gamma", ("log", "inverse", "identity"), _check_positive("gamma"),
               params=("shape",), description="y ~ Gamma(shape, rate = shape / mu)",
               loglik=d.gamma_loglik, simulate=d.gamma_simulate, mean=d.link_mean),
        Family("bernoulli", ("logit", "probit", "cloglog"), _check_bernoulli,
               description="y ~ Bernoulli(p), y in {0, 1}", loglik=d.bernoulli_loglik,
               simulate=d.bernoulli_simulate, mean=d.link_mean),
        Family("binomial", ("logit", "probit", "cloglog"), _check_binomial, needs_trials=True,
               description="y ~ Binomial(n, p)", loglik=d.binomial_loglik,
               simulate=d.binomial_simulate, mean=d.link_mean),
        Family("beta_binomial", ("logit", "probit", "cloglog"), _check_beta_binomial,
               params=("phi",), needs_trials=True,
               description="y ~ BetaBinomial(n, mu phi, (1 - mu) phi)",
               loglik=d.beta_binomial_loglik, simulate=d.beta_binomial_simulate,
               mean=d.link_mean),
        Family("beta", ("logit", "probit", "cloglog"), _check_unit, params=("phi",),
               description="y ~ Beta(mu phi, (1 - mu) phi), 0 < y < 1",
               loglik=d.beta_loglik, simulate=d.beta_simulate, mean=d.link_mean),
        Family("poisson", ("log",), _check_count("poisson"), description="y ~ Poisson(lambda)",
               loglik=d.poisson_loglik, simulate=d.poisson_simulate, mean=d.link_mean),
        Family("negativebinomial", ("log",), _check_count("negativebinomial"),
               params=("theta",), description="y ~ NB2(mu, theta): var = mu + mu^2 / theta",
               loglik=d.negbin_loglik, simulate=d.negbin_simulate, mean=d.link_mean),
        Family("zero_inflated_poisson", ("log",), _check_count("zero_inflated_poisson"),
               params=("zi",), description="y = 0 with probability zi, else Poisson(mu)",
               loglik=d.zip_loglik, simulate=d.zip_simulate, mean=d.zero_inflated_mean),
        Family("zero_inflated_negativebinomial", ("log",),
               _check_count("zero_inflated_negativebinomial"), params=("theta", "zi"),
               description="y = 0 with probability zi, else NB2(mu, theta)",
               loglik=d.zinb_loglik, simulate=d.zinb_simulate, mean=d.zero_inflated_mean),
        Family("hurdle_poisson", ("log",), _check_count("hurdle_poisson"), params=("hu",),
               description="y = 0 with probability hu, else zero-truncated Poisson(mu)",
               loglik=d.hurdle_poisson_loglik, simulate=d.hurdle_poisson_simulate,
               mean=d.hurdle_poisson_mean),
        Family("hurdle_negativebinomial", ("log",), _check_count("hurdle_negativebinomial"),
               params=("theta", "hu"),
               description="y = 0 with probability hu, else zero-truncated NB2(mu, theta)",
               loglik=d.hurdle_negbin_loglik, simulate=d.hurdle_negbin_simulate,
               mean=d.hurdle_negbin_mean),
        Family("cumulative", ("logit", "probit"), _check_cumulative, params=("cutpoints",),
               description="P(y <= k) = F(cutpoint_k - eta), categories 1..K",
               loglik=d.cumulative_loglik, simulate=d.cumulative_simulate,
               mean=d.cumulative_mean, ordinal=True),
    )
}
_ALIASES = {"normal": "gaussian", "logistic": "bernoulli", "binary": "bernoulli",
            "student": "student_t", "studentt": "student_t", "t": "student_t",
            "negbinomial": "negativebinomial", "negative_binomial": "negativebinomial",
            "nbinom2": "negativebinomial", "betabinomial": "beta_binomial",
            "zip": "zero_inflated_poisson", "zinb": "zero_inflated_negativebinomial",
            "zero_inflated_negbinomial": "zero_inflated_negativebinomial",
            "hurdle_negbinomial": "hurdle_negativebinomial", "ordinal": "cumulative",
            "ordered": "cumulative"}


def get_family(name: str | Family) -> Family:
    """Look up a family by name (case-insensitive; brms/glmmTMB spellings are aliases).

    Examples
    --------
    >>> get_family("poisson").default_link
    'log'
    >>> get_family("nbinom2").name
    'negativebinomial'
    """
    if isinstance(name, Family):
        return name
    if not isinstance(name, str):
        raise FamilyError(f"family must be a name such as 'gaussian', not {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in FAMILIES:
        raise FamilyError(f"unknown family {name!r}; available: {', '.join(FAMILIES)}")
    return FAMILIES[key]
