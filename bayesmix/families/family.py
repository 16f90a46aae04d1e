"""The :class:`Family` object: everything bayesmix knows about one response distribution.

The rest of the package asks a family what it needs (its likelihood, a link, whether a
check applies) and never tests a family's name; a new family is one file in this package
(see ``docs/design_notes.md``, "Adding a family").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesmix.errors import FamilyError
from bayesmix.families.links import LINKS, Link, Math

__all__ = ["Family", "Moments", "PARAM_LINKS", "PARAM_PRIORS", "RESPONSE_KINDS", "DIAGNOSTICS"]

# Each family parameter's natural link (its support: log -> positive, logit -> (0, 1),
# identity -> real), for priors and for modelling the parameter itself ("sigma ~ x").
PARAM_LINKS: dict[str, str] = {"sigma": "log", "nu": "log", "shape": "log", "phi": "log",
                               "theta": "log", "zi": "logit", "hu": "logit",
                               "cutpoints": "identity"}

# Default priors of the parameters that do not scale with the data, as (distribution,
# parameters); the priors layer turns them into bm.Prior objects. (sigma's default is
# Exponential(1 / sd of the response on the linear predictor's scale), computed there.)
PARAM_PRIORS: dict[str, tuple[str, dict[str, float]]] = {
    "nu": ("Gamma", {"alpha": 2.0, "beta": 0.1}),
    "shape": ("Exponential", {"lam": 0.01}),
    "phi": ("Exponential", {"lam": 0.01}),
    "theta": ("Exponential", {"lam": 0.01}),
    "zi": ("Beta", {"alpha": 1.0, "beta": 1.0}),
    "hu": ("Beta", {"alpha": 1.0, "beta": 1.0}),
    "cutpoints": ("Normal", {"mu": 0.0, "sigma": 5.0}),
}

RESPONSE_KINDS = ("real", "positive", "unit", "binary", "successes", "count", "ordinal")
DIAGNOSTICS = ("dispersion", "zeros")

# (math, eta, link, params, trials) -> (PyMC distribution name, its keyword arguments)
Likelihood = Callable[[Math, Any, Link, dict[str, Any], Any], tuple[str, dict[str, Any]]]


def _unit_variance(mu: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.ones_like(mu)


def _floor(y: np.ndarray) -> float:
    return 0.1


@dataclass(frozen=True)
class Moments:
    """How :mod:`bayesmix.model.parametrization` estimates the family's moments before sampling
    (a few IRLS steps of a GLM that stands in for the family).

    ``variance(mu, n)``: the variance function of ``y`` (of ``y / n`` for ``proportion``), up
    to the dispersion; ``gaussian``: the moments are a gaussian's (an identity link is fitted by
    least squares); ``free_dispersion``: the dispersion is estimated from the residuals (else it
    is at least the nominal 1, quasi-likelihood style); ``floor(y)``: the working mean's lower
    bound; ``zeros_inform``: False where zeros say nothing about the linear predictor (hurdle
    models)."""

    variance: Callable[[np.ndarray, np.ndarray], np.ndarray] = _unit_variance
    gaussian: bool = False
    free_dispersion: bool = False
    proportion: bool = False
    floor: Callable[[np.ndarray], float] = _floor
    zeros_inform: bool = True


@dataclass(frozen=True)
class Family:
    """A response distribution and everything that depends on it.

    Parameters
    ----------
    name, links, check
        The family's name, its links (the first is the default) and the response check
        ``check(y, trials, column) -> (y, trials)`` (floats; raises ``ResponseError``).
    params
        Extra parameters (``sigma``, ``theta``...), with natural links ``param_links``.
    likelihood
        ``likelihood(math, eta, link, params, trials) -> (distribution, kwargs)``: the PyMC
        distribution of the response, written against :class:`~bayesmix.families.links.Math`.
    loglik, simulate, mean
        The numpy log density, random draw and expected response (signatures in
        :mod:`bayesmix.families.densities`); they mirror ``likelihood`` exactly.
    response
        What the response is, one of :data:`RESPONSE_KINDS`; ``discrete`` responses are
        integers (PPC plots, simulated residuals).
    transform, center
        The response on the linear predictor's scale (lognormal: ``log``), and its typical
        value (student_t: the median), for default priors.
    moments
        :class:`Moments`, for the centring decision.
    diagnostics
        The residual checks that apply (:data:`DIAGNOSTICS`): ``"zeros"``, the zero-inflation
        test of the simulated residuals; ``"dispersion"``, :func:`overdispersion
        <bayesmix.diagnostics.residuals.overdispersion>` (families whose variance has no
        parameter of its own to absorb it, and the negative binomials and beta-binomial,
        whose dispersion parameter may still be too small).
    normal
        ``y ~ Normal(mu, sigma)``: residual SD in the variance components, pearson residuals,
        AR(1) residuals, integrated-out level effects, REML.
    ml
        How ``fit_ml`` fits it: ``"lmm"`` (REML/ML), ``"laplace_binomial"`` or
        ``"laplace_poisson"`` (glmer's Laplace approximation); None where it cannot.
    latent_variance, latent_label
        The residual variance on the latent scale (for ICC and R^2):
        ``latent_variance(link, params, lam)`` with ``params()`` the per-row parameter draws
        and ``lam`` the mean at the fixed effects; None where it is not defined.
    kind
        The model's name in the summary's first line.
    param_priors
        Default priors of parameters where the family needs its own (else :data:`PARAM_PRIORS`).
    overdispersed
        The family to advise when the residuals vary more than this one allows (poisson:
        negativebinomial), or None.

    Examples
    --------
    >>> from bayesmix.families import get_family
    >>> fam = get_family("negativebinomial")
    >>> fam.params, fam.param_links, sorted(fam.diagnostics)
    (('theta',), {'theta': 'log'}, ['dispersion', 'zeros'])
    """

    name: str
    links: tuple[str, ...]
    check: Callable[[Any, np.ndarray | None, str], tuple[np.ndarray, np.ndarray | None]]
    likelihood: Likelihood
    loglik: Callable[..., np.ndarray]
    simulate: Callable[..., np.ndarray]
    mean: Callable[..., np.ndarray]
    response: str
    params: tuple[str, ...] = ()
    needs_trials: bool = False
    description: str = ""
    ordinal: bool = False
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    center: Callable[[np.ndarray], Any] = np.mean
    moments: Moments = Moments()
    diagnostics: frozenset[str] = frozenset()
    normal: bool = False
    ml: str | None = None
    latent_variance: Callable[[str, Callable[[], dict[str, np.ndarray]], np.ndarray],
                              np.ndarray | None] | None = None
    latent_label: Callable[[str], str] | None = None
    kind: str = "Generalized linear mixed model"
    overdispersed: str | None = None
    param_priors: dict[str, tuple[str, dict[str, float]]] = field(default_factory=dict, hash=False,
                                                                  compare=False)
    param_links: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not self.param_links:
            object.__setattr__(self, "param_links", {p: PARAM_LINKS[p] for p in self.params})
        if self.response not in RESPONSE_KINDS:
            raise ValueError(f"family {self.name!r}: response must be one of {RESPONSE_KINDS}")
        if not set(self.diagnostics) <= set(DIAGNOSTICS):
            raise ValueError(f"family {self.name!r}: diagnostics must be among {DIAGNOSTICS}")
        unknown = [link for link in self.links if link not in LINKS]
        if unknown:
            raise ValueError(f"family {self.name!r}: unknown links {unknown}")

    @property
    def default_link(self) -> str:
        return self.links[0]

    @property
    def discrete(self) -> bool:
        """Integer responses (counts, 0/1, successes, ordinal categories)."""
        return self.response in ("binary", "successes", "count", "ordinal")

    def resolve_link(self, link: str | None) -> str:
        if link is None:
            return self.default_link
        if link not in self.links:
            raise FamilyError(f"family {self.name!r} does not support link {link!r}; "
                              f"choose one of {', '.join(self.links)}")
        return link

    def param_prior(self, name: str) -> tuple[str, dict[str, float]]:
        """The default prior of one of the family's parameters, as (distribution, parameters)."""
        return self.param_priors.get(name) or PARAM_PRIORS[name]

    def linear_scale(self, y: np.ndarray) -> np.ndarray:
        """The response on the scale of the linear predictor's identity link (log y for
        lognormal), for default priors."""
        return self.transform(y) if self.transform is not None else y
