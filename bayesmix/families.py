"""Response families: links, response checks and extra parameters (pure numpy).

Adding a family is one :class:`Family` entry in :data:`FAMILIES` (its links, response check and
extra scalar parameters) plus its likelihood in :mod:`bayesmix.build`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

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
    ``params`` are the family's extra scalar parameters (e.g. ``sigma``);
    ``latent_scale`` says whether the linear predictor is on a link scale whose natural unit
    is 1 (logit, log: priors are not scaled by sd(y)).
    """

    name: str
    links: tuple[str, ...]
    check: Callable[[np.ndarray, np.ndarray | None, str], tuple[np.ndarray, np.ndarray | None]]
    params: tuple[str, ...] = ()
    needs_trials: bool = False
    description: str = ""

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


FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        Family("gaussian", ("identity", "log"), _check_gaussian, params=("sigma",),
               description="y ~ Normal(mu, sigma)"),
        Family("bernoulli", ("logit", "probit", "cloglog"), _check_bernoulli,
               description="y ~ Bernoulli(p), y in {0, 1}"),
        Family("binomial", ("logit", "probit", "cloglog"), _check_binomial, needs_trials=True,
               description="y ~ Binomial(n, p)"),
        Family("poisson", ("log",), _check_poisson, description="y ~ Poisson(lambda)"),
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
