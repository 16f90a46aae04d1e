"""Numpy log-likelihoods, random draws and means of every family (see :mod:`bayesmix.families`).

Signatures (``eta`` of any shape, ``params[name]`` broadcastable against it; the cutpoints
of ``cumulative`` have one extra trailing dimension, the K - 1 thresholds)::

    <family>_loglik(y, eta, link, params, trials) -> log p(y | ...)
    <family>_simulate(rng, eta, link, params, trials) -> one response draw
    <family>_mean(eta, link, params, trials) -> E[y | ...]

They mirror the PyMC likelihoods in :mod:`bayesmix.model.build` exactly (same parametrisation,
same clipping of probabilities), so that pointwise log-likelihoods computed after sampling are
those the sampler used.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from bayesmix.families.links import LINKS

Params = dict[str, np.ndarray]
_EPS = 1e-12  # probabilities are kept in [eps, 1 - eps], as in the PyMC model

def _mu(eta: np.ndarray, link: str) -> np.ndarray:
    return LINKS[link].inverse(np.asarray(eta, dtype=float))


def _prob(eta: np.ndarray, link: str) -> np.ndarray:
    return np.clip(_mu(eta, link), _EPS, 1 - _EPS)


def _shape(eta: np.ndarray, *arrays: np.ndarray) -> tuple[int, ...]:
    return np.broadcast_shapes(np.shape(eta), *(np.shape(a) for a in arrays))


def link_mean(eta, link, params: Params, trials=None):
    """E[y] = g^-1(eta) (times the trials for binomial-type families)."""
    mu = _mu(eta, link)
    return mu if trials is None else mu * trials


# -- continuous ---------------------------------------------------------------------------------

def gaussian_loglik(y, eta, link, params: Params, trials=None):
    return stats.norm.logpdf(y, _mu(eta, link), params["sigma"])


def gaussian_simulate(rng, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    return rng.normal(mu, np.broadcast_to(params["sigma"], mu.shape))


def student_t_loglik(y, eta, link, params: Params, trials=None):
    return stats.t.logpdf(y, params["nu"], _mu(eta, link), params["sigma"])


def student_t_simulate(rng, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    shape = _shape(mu, params["sigma"], params["nu"])
    return mu + params["sigma"] * rng.standard_t(np.broadcast_to(params["nu"], shape))


def lognormal_loglik(y, eta, link, params: Params, trials=None):
    log_y = np.log(y)
    return stats.norm.logpdf(log_y, _mu(eta, link), params["sigma"]) - log_y


def lognormal_simulate(rng, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    return np.exp(rng.normal(mu, np.broadcast_to(params["sigma"], mu.shape)))


def lognormal_mean(eta, link, params: Params, trials=None):
    return np.exp(_mu(eta, link) + 0.5 * np.asarray(params["sigma"]) ** 2)


def gamma_loglik(y, eta, link, params: Params, trials=None):
    shape = params["shape"]
    return stats.gamma.logpdf(y, shape, scale=_mu(eta, link) / shape)


def gamma_simulate(rng, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    shape = np.broadcast_to(params["shape"], mu.shape)
    return rng.gamma(shape, mu / shape)


def beta_loglik(y, eta, link, params: Params, trials=None):
    mu, phi = _prob(eta, link), params["phi"]
    return stats.beta.logpdf(y, mu * phi, (1 - mu) * phi)


def beta_simulate(rng, eta, link, params: Params, trials=None):
    mu = _prob(eta, link)
    phi = np.broadcast_to(params["phi"], mu.shape)
    return rng.beta(mu * phi, (1 - mu) * phi)


# -- binary and binomial ----------------------------------------------------------------------

def bernoulli_loglik(y, eta, link, params: Params, trials=None):
    if link == "logit":  # stable in the tails
        return -np.logaddexp(0.0, np.where(y > 0.5, -eta, eta))
    p = _prob(eta, link)
    return np.where(y > 0.5, np.log(p), np.log1p(-p))


def bernoulli_simulate(rng, eta, link, params: Params, trials=None):
    return (rng.random(np.shape(eta)) < _mu(eta, link)).astype(float)


def binomial_loglik(y, eta, link, params: Params, trials=None):
    return stats.binom.logpmf(y, trials, _prob(eta, link))


def binomial_simulate(rng, eta, link, params: Params, trials=None):
    p = _mu(eta, link)
    return rng.binomial(np.broadcast_to(trials, p.shape).astype(np.int64), p).astype(float)


def beta_binomial_loglik(y, eta, link, params: Params, trials=None):
    mu, phi = _prob(eta, link), params["phi"]
    return stats.betabinom.logpmf(y, trials, mu * phi, (1 - mu) * phi)


def beta_binomial_simulate(rng, eta, link, params: Params, trials=None):
    mu = _prob(eta, link)
    phi = np.broadcast_to(params["phi"], mu.shape)
    p = rng.beta(mu * phi, (1 - mu) * phi)
    return rng.binomial(np.broadcast_to(trials, p.shape).astype(np.int64), p).astype(float)


# -- counts -----------------------------------------------------------------------------------

def poisson_loglik(y, eta, link, params: Params, trials=None):
    return stats.poisson.logpmf(y, _mu(eta, link))


def poisson_simulate(rng, eta, link, params: Params, trials=None):
    return rng.poisson(_mu(eta, link)).astype(float)


def _nb_p(mu, theta):
    return theta / (theta + mu)


def negbin_loglik(y, eta, link, params: Params, trials=None):
    mu, theta = _mu(eta, link), params["theta"]
    return stats.nbinom.logpmf(y, theta, _nb_p(mu, theta))


def negbin_simulate(rng, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    theta = np.broadcast_to(params["theta"], mu.shape)
    return rng.poisson(rng.gamma(theta, mu / theta)).astype(float)  # gamma-Poisson mixture


def _zero_inflated(count_logpmf: np.ndarray, count_log0: np.ndarray, y, zi) -> np.ndarray:
    zero = np.logaddexp(np.log(zi), np.log1p(-zi) + count_log0)
    return np.where(y == 0, zero, np.log1p(-zi) + count_logpmf)


def zip_loglik(y, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    return _zero_inflated(stats.poisson.logpmf(y, mu), -mu, y, params["zi"])


def zinb_loglik(y, eta, link, params: Params, trials=None):
    mu, theta = _mu(eta, link), params["theta"]
    p = _nb_p(mu, theta)
    return _zero_inflated(stats.nbinom.logpmf(y, theta, p), theta * np.log(p), y, params["zi"])


def zip_simulate(rng, eta, link, params: Params, trials=None):
    counts = poisson_simulate(rng, eta, link, params)
    return np.where(rng.random(counts.shape) < params["zi"], 0.0, counts)


def zinb_simulate(rng, eta, link, params: Params, trials=None):
    counts = negbin_simulate(rng, eta, link, params)
    return np.where(rng.random(counts.shape) < params["zi"], 0.0, counts)


def zero_inflated_mean(eta, link, params: Params, trials=None):
    return (1 - params["zi"]) * _mu(eta, link)


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x <= 0, accurate near 0 and for very negative x."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(x > -np.log(2), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _hurdle(count_logpmf: np.ndarray, count_log0: np.ndarray, y, hu) -> np.ndarray:
    return np.where(y == 0, np.log(hu), np.log1p(-hu) + count_logpmf - _log1mexp(count_log0))


def hurdle_poisson_loglik(y, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    safe_y = np.where(y == 0, 1, y)  # the zero branch is not evaluated for the count part
    return _hurdle(stats.poisson.logpmf(safe_y, mu), -mu, y, params["hu"])


def hurdle_negbin_loglik(y, eta, link, params: Params, trials=None):
    mu, theta = _mu(eta, link), params["theta"]
    p = _nb_p(mu, theta)
    safe_y = np.where(y == 0, 1, y)
    return _hurdle(stats.nbinom.logpmf(safe_y, theta, p), theta * np.log(p), y, params["hu"])


def _truncated_draw(rng, dist, p0: np.ndarray, *args) -> np.ndarray:
    """A draw from ``dist`` conditioned on y >= 1, by inverting its upper tail."""
    tail = (1 - p0) * (1 - rng.random(p0.shape))  # uniform on (0, P(y >= 1)]
    return np.maximum(dist.isf(tail, *args), 1.0)


def hurdle_poisson_simulate(rng, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    mu = np.broadcast_to(mu, _shape(mu, params["hu"]))
    positive = _truncated_draw(rng, stats.poisson, np.exp(-mu), mu)
    return np.where(rng.random(mu.shape) < params["hu"], 0.0, positive)


def hurdle_negbin_simulate(rng, eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    shape = _shape(mu, params["hu"], params["theta"])
    mu, theta = np.broadcast_to(mu, shape), np.broadcast_to(params["theta"], shape)
    p = _nb_p(mu, theta)
    positive = _truncated_draw(rng, stats.nbinom, p ** theta, theta, p)
    return np.where(rng.random(shape) < params["hu"], 0.0, positive)


def hurdle_poisson_mean(eta, link, params: Params, trials=None):
    mu = _mu(eta, link)
    return (1 - params["hu"]) * mu / -np.expm1(-mu)


def hurdle_negbin_mean(eta, link, params: Params, trials=None):
    mu, theta = _mu(eta, link), params["theta"]
    return (1 - params["hu"]) * mu / -np.expm1(theta * np.log(_nb_p(mu, theta)))


# -- ordinal ------------------------------------------------------------------------------------

_LOG_CDF = {"logit": special.log_expit, "probit": special.log_ndtr}
_CDF = {"logit": special.expit, "probit": special.ndtr}


def _thresholds(eta, cutpoints) -> np.ndarray:
    """c_k - eta for every threshold: shape ``eta.shape + (K - 1,)``."""
    return np.asarray(cutpoints) - np.asarray(eta, dtype=float)[..., None]


def cumulative_probs(eta, link: str, cutpoints) -> np.ndarray:
    """P(y = k), k = 1..K, shape ``eta.shape + (K,)``; ``cutpoints`` has the K - 1 thresholds
    on its last axis (broadcastable against ``eta[..., None]``).

    Examples
    --------
    >>> cumulative_probs(np.zeros(1), "logit", np.array([-1.0, 1.0])).round(3)
    array([[0.269, 0.462, 0.269]])
    """
    cum = _CDF[link](_thresholds(eta, cutpoints))
    pad = np.zeros(cum.shape[:-1] + (1,))
    return np.diff(np.concatenate([pad, cum, pad + 1.0], axis=-1), axis=-1)


def cumulative_loglik(y, eta, link, params: Params, trials=None):
    """log(F(c_k - eta) - F(c_{k-1} - eta)) for y = k, computed in the tail where it is
    small (F is symmetric), so that extreme categories keep their precision."""
    z = _thresholds(eta, params["cutpoints"])
    k = np.broadcast_to(np.asarray(y, dtype=np.int64), z.shape[:-1])
    inf = np.full(z.shape[:-1] + (1,), np.inf)
    padded = np.concatenate([-inf, z, inf], axis=-1)
    upper = np.take_along_axis(padded, k[..., None], axis=-1)[..., 0]
    lower = np.take_along_axis(padded, k[..., None] - 1, axis=-1)[..., 0]
    flip = lower + upper > 0  # mostly upper tail: use F(b) - F(a) = F(-a) - F(-b)
    a = np.where(flip, -upper, lower)
    b = np.where(flip, -lower, upper)
    log_cdf = _LOG_CDF[link]
    log_b = log_cdf(b)
    with np.errstate(invalid="ignore"):
        return log_b + _log1mexp(np.minimum(log_cdf(a) - log_b, 0.0))


def cumulative_simulate(rng, eta, link, params: Params, trials=None):
    cum = _CDF[link](_thresholds(eta, params["cutpoints"]))
    u = rng.random(cum.shape[:-1])
    return 1.0 + np.sum(u[..., None] > cum, axis=-1)


def cumulative_mean(eta, link, params: Params, trials=None):
    """Expected category index in 1..K: 1 + sum_k P(y > k)."""
    cum = _CDF[link](_thresholds(eta, params["cutpoints"]))
    return 1.0 + np.sum(1.0 - cum, axis=-1)
