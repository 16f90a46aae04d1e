"""Link functions, each written once for numpy and for PyTensor.

A :class:`Link` states its three functions (the link ``g``, its inverse and the derivative
``d mu / d eta``) against a small namespace of elementary functions, :class:`Math`. This
module supplies the numpy one, :data:`NUMPY`; the model layer supplies the PyTensor one
(:data:`bayesmix.model.build.PYTENSOR`), so the sampler's graph and every numpy computation
after sampling (predictions, log-likelihoods, moment estimates, the Laplace fit) apply the same
formula, and this package needs no PyTensor.

Examples
--------
>>> import numpy as np
>>> LINKS["logit"].inverse(np.array([0.0, 2.0])).round(3).tolist()
[0.5, 0.881]
>>> float(LINKS["log"].mu_eta(np.array(0.0)))
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

__all__ = ["Math", "NUMPY", "Link", "LINKS", "get_link"]

_SQRT_2PI = np.sqrt(2 * np.pi)


@dataclass(frozen=True)
class Math:
    """The elementary functions a link, a likelihood or a latent variance is written in.

    ``ndtr`` is the standard normal CDF and ``ndtri`` its inverse; ``clip(x, lo, hi)``;
    ``gammaln`` the log of the gamma function."""

    exp: Callable[[Any], Any]
    log: Callable[[Any], Any]
    expm1: Callable[[Any], Any]
    log1p: Callable[[Any], Any]
    expit: Callable[[Any], Any]
    logit: Callable[[Any], Any]
    ndtr: Callable[[Any], Any]
    ndtri: Callable[[Any], Any]
    clip: Callable[[Any, float, float], Any]
    gammaln: Callable[[Any], Any]


NUMPY = Math(exp=np.exp, log=np.log, expm1=np.expm1, log1p=np.log1p, expit=special.expit,
             logit=special.logit, ndtr=special.ndtr, ndtri=special.ndtri, clip=np.clip,
             gammaln=special.gammaln)
"""The numpy (scipy.special) implementation of :class:`Math`."""


@dataclass(frozen=True)
class Link:
    """A link function ``eta = g(mu)``.

    ``g``, ``g_inverse`` and ``dmu_deta`` take ``(x, math)``; the methods :meth:`link`,
    :meth:`inverse` and :meth:`mu_eta` apply them with numpy unless another :class:`Math`
    (PyTensor's, in the model layer) is given. ``probability`` links map to (0, 1),
    ``positive`` ones to (0, inf).
    """

    name: str
    g: Callable[[Any, Math], Any]
    g_inverse: Callable[[Any, Math], Any]
    dmu_deta: Callable[[Any, Math], Any]
    probability: bool = False
    positive: bool = False

    def link(self, mu: Any, math: Math = NUMPY) -> Any:
        """``eta = g(mu)``."""
        return self.g(mu, math)

    def inverse(self, eta: Any, math: Math = NUMPY) -> Any:
        """``mu = g^-1(eta)``."""
        return self.g_inverse(eta, math)

    def mu_eta(self, eta: Any, math: Math = NUMPY) -> Any:
        """``d mu / d eta`` at ``eta`` (IRLS weights, the Laplace fit)."""
        return self.dmu_deta(eta, math)


LINKS: dict[str, Link] = {link.name: link for link in (
    Link("identity", lambda mu, m: mu, lambda eta, m: eta, lambda eta, m: eta * 0.0 + 1.0),
    Link("log", lambda mu, m: m.log(mu), lambda eta, m: m.exp(eta), lambda eta, m: m.exp(eta),
         positive=True),
    Link("logit", lambda mu, m: m.logit(mu), lambda eta, m: m.expit(eta),
         lambda eta, m: m.expit(eta) * m.expit(-eta), probability=True),
    Link("probit", lambda mu, m: m.ndtri(mu), lambda eta, m: m.ndtr(eta),
         lambda eta, m: m.exp(-0.5 * eta ** 2) / _SQRT_2PI, probability=True),
    Link("cloglog", lambda mu, m: m.log(-m.log1p(-mu)), lambda eta, m: -m.expm1(-m.exp(eta)),
         lambda eta, m: m.exp(eta - m.exp(eta)), probability=True),
    Link("inverse", lambda mu, m: 1.0 / mu, lambda eta, m: 1.0 / eta,
         lambda eta, m: -1.0 / eta ** 2, positive=True),
)}


def get_link(name: str) -> Link:
    """The :class:`Link` of that name (links are checked when a model is specified).

    Examples
    --------
    >>> get_link("cloglog").probability
    True
    """
    return LINKS[name]
