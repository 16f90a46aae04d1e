"""The Weibull family, parametrised by its mean (as gamlss's ``WEI3``): the worked example of
adding a family in ``docs/design_notes.md``.

``y ~ Weibull(shape k, scale lambda)`` with ``lambda = mu / Gamma(1 + 1/k)``, so that
``E[y] = mu = g^-1(eta)``; ``Var(y) = mu^2 (Gamma(1 + 2/k) / Gamma(1 + 1/k)^2 - 1)``: for a
fixed shape the variance grows as mu^2, like the gamma family's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from bayesmix.families import densities as d
from bayesmix.families.checks import check_positive
from bayesmix.families.family import Family, Moments
from bayesmix.families.links import LINKS, NUMPY, Link, Math

__all__ = ["FAMILIES"]


def _scale(mu: Any, shape: Any, m: Math) -> Any:
    return mu / m.exp(m.gammaln(1.0 + 1.0 / shape))


def _likelihood(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    shape = params["shape"]
    return "Weibull", {"alpha": shape, "beta": _scale(link.inverse(eta, m), shape, m)}


def _numpy_scale(eta: Any, link: str, params: dict[str, np.ndarray]) -> np.ndarray:
    return _scale(LINKS[link].inverse(np.asarray(eta, dtype=float)), params["shape"], NUMPY)


def loglik(y, eta, link, params, trials=None):
    return stats.weibull_min.logpdf(y, params["shape"], scale=_numpy_scale(eta, link, params))


def simulate(rng, eta, link, params, trials=None):
    scale = _numpy_scale(eta, link, params)
    return scale * rng.weibull(np.broadcast_to(params["shape"], np.shape(scale)))


FAMILIES = (
    Family("weibull", ("log", "identity"), check_positive("weibull"), _likelihood, loglik,
           simulate, d.link_mean, "positive", params=("shape",),
           description="y ~ Weibull(shape, scale = mu / Gamma(1 + 1/shape)); E[y] = mu",
           moments=Moments(variance=lambda mu, n: mu ** 2, free_dispersion=True,
                           floor=lambda y: 0.01 * float(np.mean(y))),
           # Gamma(2, 0.5): mean 4, 95% in about (0.5, 11), from decreasing hazards to peaked
           # ones. gamma's vague Exponential(0.01) starts NUTS near shape 100, where the
           # Weibull density is too sharp to leave (measured: R-hat 3.6, 2 chains x 500).
           param_priors={"shape": ("Gamma", {"alpha": 2.0, "beta": 0.5})}),
)
