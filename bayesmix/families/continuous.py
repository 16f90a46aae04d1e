"""Continuous responses: gaussian, student_t, lognormal, gamma."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesmix.families import densities as d
from bayesmix.families.checks import check_positive, check_real
from bayesmix.families.family import Family, Moments
from bayesmix.families.links import Link, Math

__all__ = ["FAMILIES"]


def _gaussian(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "Normal", {"mu": link.inverse(eta, m), "sigma": params["sigma"]}


def _student_t(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "StudentT", {"nu": params["nu"], "mu": link.inverse(eta, m), "sigma": params["sigma"]}


def _lognormal(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    return "LogNormal", {"mu": eta, "sigma": params["sigma"]}


def _gamma(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    shape = params["shape"]
    return "Gamma", {"alpha": shape, "beta": shape / link.inverse(eta, m)}


def _residual_sd(link: str, params: Any, eta_fixed: np.ndarray, total_random: np.ndarray):
    # sigma may vary by row (sigma ~ x): the mean of sigma^2 over the rows
    return (params()["sigma"] ** 2).mean(axis=-1) if link == "identity" else None


_GAUSSIAN_MOMENTS = Moments(gaussian=True, free_dispersion=True)

FAMILIES = (
    Family("gaussian", ("identity", "log"), check_real("gaussian"), _gaussian,
           d.gaussian_loglik, d.gaussian_simulate, d.link_mean, "real", params=("sigma",),
           description="y ~ Normal(mu, sigma)", moments=_GAUSSIAN_MOMENTS, normal=True,
           ml="lmm", latent_variance=_residual_sd, latent_label=lambda link: "sigma^2",
           kind="Linear mixed model"),
    Family("student_t", ("identity", "log"), check_real("student_t"), _student_t,
           d.student_t_loglik, d.student_t_simulate, d.link_mean, "real",
           params=("sigma", "nu"), description="y ~ StudentT(nu, mu, sigma)",
           center=np.median, moments=_GAUSSIAN_MOMENTS),
    Family("lognormal", ("identity",), check_positive("lognormal"), _lognormal,
           d.lognormal_loglik, d.lognormal_simulate, d.lognormal_mean, "positive",
           params=("sigma",), description="log y ~ Normal(eta, sigma); E[y] = exp(eta + sigma^2 / 2)",
           transform=np.log, moments=_GAUSSIAN_MOMENTS),
    Family("gamma", ("log", "inverse", "identity"), check_positive("gamma"), _gamma,
           d.gamma_loglik, d.gamma_simulate, d.link_mean, "positive", params=("shape",),
           description="y ~ Gamma(shape, rate = shape / mu)",
           moments=Moments(variance=lambda mu, n: mu ** 2, free_dispersion=True,
                           floor=lambda y: 0.01 * float(np.mean(y)))),
)
