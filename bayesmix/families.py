"""Response families: links, response checks, extra parameters, and their numpy likelihoods.

Adding a family is one :class:`Family` entry in :data:`FAMILIES` (its links, response check,
extra scalar parameters, and numpy ``loglik``/``simulate``/``mean``) plus its PyMC likelihood
in :mod:`bayesmix.build`. The numpy functions serve everything after sampling (pointwise
log-likelihood for LOO/WAIC, posterior predictive draws, predictions) and must agree with the
PyMC likelihood; ``tests/test_families.py`` checks both against scipy.stats.

Their common signature works on the linear predictor ``eta`` (any shape, typically
``(chain, draw, n)``), the link name, the family's parameters (``params[name]`` broadcastable
against ``eta``) and the binomial trials (``None`` otherwise)::

    loglik(y, eta, link, params, trials) -> log p(y | ...), shape of eta
    simulate(rng, eta, link, params, trials) -> a response draw, shape of eta
    mean(eta, link, params, trials) -> E[y | ...] (binomial: expected successes, as brms)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from scipy import stats

from bayesmix.errors import FamilyError, ResponseError

__all__ = ["Family", "FAMILIES", "get_family", "INVERSE_LINKS", "LINKS"]

# Link functions g and inverse links g^-1, on numpy arrays.
LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda mu: mu,
    "log": np.log,
    "logit": special.logit,
    "probit": special.ndtri,
    "cloglog": lambda mu: np.log(-np.log1p(-mu)),
    "inverse": lambda mu: 1.0 / mu,
}
INVERSE_LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda eta: eta,
    "log": np.exp,
    "logit": special.expit,
    "probit": special.ndtr,
    "cloglog": lambda eta: -np.expm1(-np.exp(eta)),
    "inverse": lambda eta: 1.0 / eta,
}


@dataclass(frozen=True)
class Family:
    """A response distribution.

    ``check`` validates the raw response (and trials) and returns it as floats;
    ``params`` are the family's extra scalar parameters (e.g. ``sigma``) and
    ``param_links`` their links when a parameter gets its own formula (``{"sigma": "log"}``);
    ``loglik``/``simulate``/``mean`` are the numpy likelihood, random draw and expected
    response (signatures in the module docstring).
    """

    name: str
    links: tuple[str, ...]
    check: Callable[[np.ndarray, np.ndarray | None, str], tuple[np.ndarray, np.ndarray | None]]
    params: tuple[str, ...] = ()
    needs_trials: bool = False
    description: str = ""
    loglik: Callable[..., np.ndarray] | None = None
    simulate: Callable[..., np.ndarray] | None = None
    mean: Callable[..., np.ndarray] | None = None
    param_links: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

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


def _numeric(y: np.ndarray, name: str, family: str) -> np.ndarray:
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ResponseError(f"the response {name!r} must be numeric for family {family!r}; "
                            f"it has values like {y[0]!r}") from None
    if not np.all(np.isfinite(values)):
        raise ResponseError(f"the response {name!r} has infinite values")
    return values


def _counts(values: np.ndarray, what: str, family: str) -> None:
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        example = values[bad][0]
        raise ResponseError(f"{what} must be non-negative integers for family {family!r}; "
                            f"found {example:g} ({int(bad.sum())} such rows). "
                            "For continuous outcomes use family='gaussian'")


def _check_gaussian(y: np.ndarray, trials: np.ndarray | None, name: str):
    _no_trials(trials, name, "gaussian")
    return _numeric(y, name, "gaussian"), None


def _check_poisson(y: np.ndarray, trials: np.ndarray | None, name: str):
    _no_trials(trials, name, "poisson")
    values = _numeric(y, name, "poisson")
    _counts(values, f"the response {name!r}", "poisson")
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


def _check_binomial(y: np.ndarray, trials: np.ndarray | None, name: str):
    if trials is None:
        values, _ = _check_bernoulli(y, None, name)
        return values, np.ones_like(values)
    values = _numeric(y, name, "binomial")
    n = _numeric(trials, "trials", "binomial")
    _counts(values, f"the successes {name!r}", "binomial")
    _counts(n, "the number of trials", "binomial")
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


def _no_trials(trials: np.ndarray | None, name: str, family: str) -> None:
    if trials is not None:
        raise ResponseError(f"cbind()/trials() responses need family='binomial', not {family!r}")


Params = dict[str, np.ndarray]


def _mean_of(eta: np.ndarray, link: str, params: Params, trials: np.ndarray | None):
    mu = INVERSE_LINKS[link](eta)
    return mu if trials is None else mu * trials


def _gaussian_loglik(y, eta, link, params: Params, trials=None):
    return stats.norm.logpdf(y, INVERSE_LINKS[link](eta), params["sigma"])


def _gaussian_simulate(rng, eta, link, params: Params, trials=None):
    mu = INVERSE_LINKS[link](eta)
    return rng.normal(mu, np.broadcast_to(params["sigma"], mu.shape))


def _bernoulli_loglik(y, eta, link, params: Params, trials=None):
    if link == "logit":  # stable in the tails
        return -np.logaddexp(0.0, np.where(y > 0.5, -eta, eta))
    p = np.clip(INVERSE_LINKS[link](eta), 1e-12, 1 - 1e-12)
    return np.where(y > 0.5, np.log(p), np.log1p(-p))


def _bernoulli_simulate(rng, eta, link, params: Params, trials=None):
    return (rng.random(np.shape(eta)) < INVERSE_LINKS[link](eta)).astype(float)


def _binomial_loglik(y, eta, link, params: Params, trials=None):
    p = np.clip(INVERSE_LINKS[link](eta), 1e-12, 1 - 1e-12)
    return stats.binom.logpmf(y, trials, p)


def _binomial_simulate(rng, eta, link, params: Params, trials=None):
    p = INVERSE_LINKS[link](eta)
    return rng.binomial(np.broadcast_to(trials, p.shape).astype(np.int64), p).astype(float)


def _poisson_loglik(y, eta, link, params: Params, trials=None):
    return stats.poisson.logpmf(y, INVERSE_LINKS[link](eta))


def _poisson_simulate(rng, eta, link, params: Params, trials=None):
    return rng.poisson(INVERSE_LINKS[link](eta)).astype(float)


FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        Family("gaussian", ("identity", "log"), _check_gaussian, params=("sigma",),
               description="y ~ Normal(mu, sigma)", loglik=_gaussian_loglik,
               simulate=_gaussian_simulate, mean=_mean_of, param_links={"sigma": "log"}),
        Family("bernoulli", ("logit", "probit", "cloglog"), _check_bernoulli,
               description="y ~ Bernoulli(p), y in {0, 1}", loglik=_bernoulli_loglik,
               simulate=_bernoulli_simulate, mean=_mean_of),
        Family("binomial", ("logit", "probit", "cloglog"), _check_binomial, needs_trials=True,
               description="y ~ Binomial(n, p)", loglik=_binomial_loglik,
               simulate=_binomial_simulate, mean=_mean_of),
        Family("poisson", ("log",), _check_poisson, description="y ~ Poisson(lambda)",
               loglik=_poisson_loglik, simulate=_poisson_simulate, mean=_mean_of),
    )
}
_ALIASES = {"normal": "gaussian", "logistic": "bernoulli", "binary": "bernoulli"}


def get_family(name: str | Family) -> Family:
    """Look up a family by name (case-insensitive).

    >>> get_family("poisson").default_link
    'log'
    """
    if isinstance(name, Family):
        return name
    if not isinstance(name, str):
        raise FamilyError(f"family must be a name such as 'gaussian', not {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in FAMILIES:
        raise FamilyError(f"unknown family {name!r}; available: {', '.join(FAMILIES)}")
    return FAMILIES[key]
