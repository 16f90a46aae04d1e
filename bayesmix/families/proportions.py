"""Proportions and binary responses: bernoulli, binomial, beta_binomial, beta."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmix.families import densities as d
from bayesmix.families.checks import check_bernoulli, check_beta_binomial, check_binomial, check_unit
from bayesmix.families.family import Family, Moments
from bayesmix.families.links import Link, Math

__all__ = ["FAMILIES", "LATENT_RESIDUAL"]

_EPS = 1e-12  # probabilities are kept in [eps, 1 - eps] (as the numpy densities)

# Latent-scale residual variance of a binary/binomial model, by link (Nakagawa et al. 2017).
LATENT_RESIDUAL = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}
_LATENT_TEXT = {"logit": "pi^2/3", "probit": "1", "cloglog": "pi^2/6"}


def _p(m: Math, eta: Any, link: Link) -> Any:
    return m.clip(link.inverse(eta, m), _EPS, 1 - _EPS)


def _bernoulli(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    if link.name == "logit":
        return "Bernoulli", {"logit_p": eta}
    return "Bernoulli", {"p": _p(m, eta, link)}


def _binomial(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    if link.name == "logit":
        return "Binomial", {"n": trials, "logit_p": eta}
    return "Binomial", {"n": trials, "p": _p(m, eta, link)}


def _beta_binomial(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    mu, phi = _p(m, eta, link), params["phi"]
    return "BetaBinomial", {"n": trials, "alpha": mu * phi, "beta": (1 - mu) * phi}


def _beta(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    mu, phi = _p(m, eta, link), params["phi"]
    return "Beta", {"alpha": mu * phi, "beta": (1 - mu) * phi}


def _latent(link: str, params: Any, eta_fixed: np.ndarray, total_random: np.ndarray):
    return np.full(eta_fixed.shape[:2], LATENT_RESIDUAL[link]) if link in LATENT_RESIDUAL else None


def _latent_label(link: str) -> str:
    return f"{_LATENT_TEXT[link]} (latent {link} scale)" if link in _LATENT_TEXT else ""


_LINKS = ("logit", "probit", "cloglog")
_PROPORTION = Moments(variance=lambda mu, n: mu * (1 - mu) / n, proportion=True)

FAMILIES = (
    Family("bernoulli", _LINKS, check_bernoulli, _bernoulli, d.bernoulli_loglik,
           d.bernoulli_simulate, d.link_mean, "binary",
           description="y ~ Bernoulli(p), y in {0, 1}", moments=_PROPORTION, ml="laplace_binomial",
           latent_variance=_latent, latent_label=_latent_label),
    Family("binomial", _LINKS, check_binomial, _binomial, d.binomial_loglik, d.binomial_simulate,
           d.link_mean, "successes", needs_trials=True, description="y ~ Binomial(n, p)",
           moments=_PROPORTION, diagnostics=frozenset({"dispersion", "zeros"}), ml="laplace_binomial",
           overdispersed="beta_binomial",
           latent_variance=_latent, latent_label=_latent_label),
    Family("beta_binomial", _LINKS, check_beta_binomial, _beta_binomial, d.beta_binomial_loglik,
           d.beta_binomial_simulate, d.link_mean, "successes", params=("phi",), needs_trials=True,
           description="y ~ BetaBinomial(n, mu phi, (1 - mu) phi)", moments=_PROPORTION,
           diagnostics=frozenset({"dispersion", "zeros"})),
    Family("beta", _LINKS, check_unit, _beta, d.beta_loglik, d.beta_simulate, d.link_mean, "unit",
           params=("phi",), description="y ~ Beta(mu phi, (1 - mu) phi), 0 < y < 1",
           moments=Moments(variance=lambda mu, n: mu * (1 - mu) / n, proportion=True,
                           free_dispersion=True)),
)
