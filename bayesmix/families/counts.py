"""Counts: poisson, negativebinomial (NB2), zero-inflated and hurdle versions of both.

PyMC's zero-inflated and hurdle distributions take ``psi`` = P(count process) = 1 - zi
(1 - hu); bayesmix reports ``zi``/``hu``, the probability of a structural/hurdle zero, as
brms and glmmTMB do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmix.families import densities as d
from bayesmix.families.checks import check_count
from bayesmix.families.family import Family, Moments
from bayesmix.families.links import Link, Math

__all__ = ["FAMILIES"]


def _poisson(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "Poisson", {"mu": link.inverse(eta, m)}


def _negbin(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "NegativeBinomial", {"mu": link.inverse(eta, m), "alpha": params["theta"]}


def _zip(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "ZeroInflatedPoisson", {"psi": 1 - params["zi"], "mu": link.inverse(eta, m)}


def _zinb(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "ZeroInflatedNegativeBinomial", {"psi": 1 - params["zi"], "mu": link.inverse(eta, m),
                                            "alpha": params["theta"]}


def _hurdle_poisson(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "HurdlePoisson", {"psi": 1 - params["hu"], "mu": link.inverse(eta, m)}


def _hurdle_negbin(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "HurdleNegativeBinomial", {"psi": 1 - params["hu"], "mu": link.inverse(eta, m),
                                      "alpha": params["theta"]}


def _latent(extra: str | None):
    """Log-normal approximation (Nakagawa et al. 2017): log(1 + 1/lambda [+ 1/theta])."""
    def variance(link: str, params: Any, eta_fixed: np.ndarray, total_random: np.ndarray):
        if link != "log":
            return None
        lam = np.exp(eta_fixed + total_random[..., None] / 2).mean(axis=-1)
        more = 0.0 if extra is None else 1.0 / params()[extra].mean(axis=-1)
        return np.log1p(1.0 / lam + more)
    return variance


def _latent_label(link: str) -> str:
    return "log(1 + 1/lambda) (log-normal approximation)"


_COUNTS = Moments(variance=lambda mu, n: mu)
_HURDLE = Moments(variance=lambda mu, n: mu, zeros_inform=False)
_CHECKS = frozenset({"dispersion", "zeros"})


def _count(name: str, likelihood: Any, loglik: Any, simulate: Any, mean: Any, params: tuple,
           description: str, moments: Moments = _COUNTS, **kwargs: Any) -> Family:
    return Family(name, ("log",), check_count(name), likelihood, loglik, simulate, mean, "count",
                  params=params, description=description, moments=moments, diagnostics=_CHECKS,
                  **kwargs)


FAMILIES = (
    _count("poisson", _poisson, d.poisson_loglik, d.poisson_simulate, d.link_mean, (),
           "y ~ Poisson(lambda)", ml="laplace_poisson", overdispersed="negativebinomial", latent_variance=_latent(None),
           latent_label=_latent_label),
    _count("negativebinomial", _negbin, d.negbin_loglik, d.negbin_simulate, d.link_mean,
           ("theta",), "y ~ NB2(mu, theta): var = mu + mu^2 / theta",
           latent_variance=_latent("theta"), latent_label=_latent_label),
    _count("zero_inflated_poisson", _zip, d.zip_loglik, d.zip_simulate, d.zero_inflated_mean,
           ("zi",), "y = 0 with probability zi, else Poisson(mu)",
           overdispersed="zero_inflated_negativebinomial"),
    _count("zero_inflated_negativebinomial", _zinb, d.zinb_loglik, d.zinb_simulate,
           d.zero_inflated_mean, ("theta", "zi"), "y = 0 with probability zi, else NB2(mu, theta)"),
    _count("hurdle_poisson", _hurdle_poisson, d.hurdle_poisson_loglik, d.hurdle_poisson_simulate,
           d.hurdle_poisson_mean, ("hu",),
           "y = 0 with probability hu, else zero-truncated Poisson(mu)", moments=_HURDLE,
           overdispersed="hurdle_negativebinomial"),
    _count("hurdle_negativebinomial", _hurdle_negbin, d.hurdle_negbin_loglik,
           d.hurdle_negbin_simulate, d.hurdle_negbin_mean, ("theta", "hu"),
           "y = 0 with probability hu, else zero-truncated NB2(mu, theta)", moments=_HURDLE),
)
