"""Response families: one :class:`~bayesmix.families.family.Family` object per family owns its
links, response check, PyMC likelihood, numpy densities, extra parameters and their priors,
moments, latent variance and which residual checks apply.

The package: :mod:`~bayesmix.families.links` (each link once, for numpy and PyTensor),
:mod:`~bayesmix.families.checks` (response checks), :mod:`~bayesmix.families.densities` (numpy
log densities, draws and means), :mod:`~bayesmix.families.family` (the object), and one module
per kind of response that defines the families: :mod:`~bayesmix.families.continuous`,
:mod:`~bayesmix.families.proportions`, :mod:`~bayesmix.families.counts`,
:mod:`~bayesmix.families.ordinal`. Adding a family is one such module (or one entry in one),
named in :data:`FAMILIES` below; no other module of bayesmix tests a family's name. The numpy
functions serve everything after sampling (pointwise log-likelihood for LOO/WAIC, posterior
predictive draws, predictions) and must agree with the PyMC likelihood;
``tests/families/test_families.py`` checks both against scipy.stats and each other.

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

from bayesmix.errors import FamilyError
from bayesmix.families import continuous, counts, ordinal, proportions, weibull
from bayesmix.families.checks import ordinal_levels
from bayesmix.families.family import PARAM_LINKS, PARAM_PRIORS, Family, Moments
from bayesmix.families.links import LINKS, NUMPY, Link, Math, get_link

__all__ = ["Family", "Moments", "FAMILIES", "get_family", "LINKS", "Link", "Math", "NUMPY",
           "get_link", "PARAM_LINKS", "PARAM_PRIORS", "ordinal_levels"]

FAMILIES: dict[str, Family] = {
    f.name: f for f in (*continuous.FAMILIES, *weibull.FAMILIES, *proportions.FAMILIES,
                        *counts.FAMILIES, *ordinal.FAMILIES)
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
