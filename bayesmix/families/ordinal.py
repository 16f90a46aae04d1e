"""Ordinal responses: the cumulative (proportional odds) family."""

from __future__ import annotations

from typing import Any

from bayesmix.families import densities as d
from bayesmix.families.checks import check_cumulative
from bayesmix.families.family import Family, Moments
from bayesmix.families.links import Link, Math

__all__ = ["FAMILIES"]


def _cumulative(m: Math, eta: Any, link: Link, params: dict[str, Any], trials: Any):
    # PyMC: P(y <= k) = F(c_k - eta), categories 0..K-1 (the model shifts y down by one).
    dist = "OrderedLogistic" if link.name == "logit" else "OrderedProbit"
    return dist, {"eta": eta, "cutpoints": params["cutpoints"], "compute_p": False}


FAMILIES = (
    Family("cumulative", ("logit", "probit"), check_cumulative, _cumulative, d.cumulative_loglik,
           d.cumulative_simulate, d.cumulative_mean, "ordinal", params=("cutpoints",),
           description="P(y <= k) = F(cutpoint_k - eta), categories 1..K", ordinal=True,
           # moments of a gaussian on the category index (a latent-scale proxy)
           moments=Moments(gaussian=True, free_dispersion=True),
           kind="Cumulative link mixed model"),
)
