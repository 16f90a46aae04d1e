"""The prior objects: :class:`Prior` (a distribution with its parameters) and
:class:`PriorSpec` (which parameter it is for, and where it came from)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import PriorError
from bayesmix.families import PARAM_LINKS

__all__ = ["Prior", "PriorSpec", "KNOWN_DISTRIBUTIONS", "prior_table", "as_prior",
           "check_support"]

# Distribution name -> (its parameters, positive support?)
KNOWN_DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "Normal": (("mu", "sigma"), False),
    "StudentT": (("nu", "mu", "sigma"), False),
    "Cauchy": (("alpha", "beta"), False),
    "Laplace": (("mu", "b"), False),
    "Logistic": (("mu", "s"), False),
    "Uniform": (("lower", "upper"), False),
    "Flat": ((), False),
    "HalfNormal": (("sigma",), True),
    "HalfStudentT": (("nu", "sigma"), True),
    "HalfCauchy": (("beta",), True),
    "Exponential": (("lam",), True),
    "Gamma": (("alpha", "beta"), True),
    "InverseGamma": (("alpha", "beta"), True),
    "LogNormal": (("mu", "sigma"), True),
    "Weibull": (("alpha", "beta"), True),
    "Beta": (("alpha", "beta"), True),
    "HalfFlat": ((), True),
    "LKJ": (("eta",), False),
}


@dataclass(frozen=True, init=False)
class Prior:
    """A prior distribution, named as in PyMC, with its parameters.

    Examples
    --------
    >>> Prior("Normal", mu=0, sigma=5)
    Normal(mu=0, sigma=5)
    """

    dist: str
    params: tuple[tuple[str, float], ...]

    def __init__(self, dist: str, **params: float) -> None:
        if dist not in KNOWN_DISTRIBUTIONS:
            raise PriorError(f"unknown prior distribution {dist!r}; use one of "
                             f"{', '.join(KNOWN_DISTRIBUTIONS)}")
        allowed = KNOWN_DISTRIBUTIONS[dist][0]
        for key, value in params.items():
            if key not in allowed:
                raise PriorError(f"{dist} has no parameter {key!r}; its parameters are "
                                 f"{', '.join(allowed) or 'none'}")
            if not np.isfinite(float(value)):
                raise PriorError(f"{dist} parameter {key}={value!r} must be a finite number")
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", tuple((k, float(v)) for k, v in params.items()))

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def positive(self) -> bool:
        return KNOWN_DISTRIBUTIONS[self.dist][1]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:.4g}" for k, v in self.params)
        return f"{self.dist}({args})"


@dataclass(frozen=True)
class PriorSpec:
    """One model parameter's prior: ``kind`` is fixed | sd | cor | family.

    ``lpar`` names the linear predictor of a distributional or nonlinear parameter
    (``"sigma"``, ``"Asym"``; empty for the mean): its keys read ``"sigma:x"``,
    ``"sigma:1|g"``, and ``block`` is then the block's model name (``"sigma_g"``).
    """

    key: str
    kind: str
    prior: Prior
    source: str
    block: str = ""
    term: str = ""
    lpar: str = ""


_REAL_LINE = ("Normal", "StudentT", "Cauchy", "Laplace", "Logistic")


def check_support(spec: PriorSpec, prior: Prior) -> None:
    if spec.kind == "cor" and prior.dist != "LKJ":
        raise PriorError(f"the correlations {spec.key!r} take an LKJ prior, e.g. "
                         "Prior('LKJ', eta=2)")
    if spec.kind != "cor" and prior.dist == "LKJ":
        raise PriorError(f"LKJ is a prior for correlations, not for {spec.key!r}")
    support = PARAM_LINKS.get(spec.key, "log") if spec.kind == "family" else "log"
    if spec.kind in ("sd", "family") and support == "log" and not prior.positive:
        what = "a standard deviation" if spec.kind == "sd" else "a positive parameter"
        raise PriorError(f"{spec.key!r} is {what}: give it a positive distribution "
                         f"(HalfNormal, HalfStudentT, Exponential, Gamma...), not {prior.dist}")
    if spec.kind == "family" and support == "logit":
        bounds = prior.kwargs
        if not (prior.dist == "Beta" or (prior.dist == "Uniform" and bounds.get("lower", 0) >= 0
                                         and bounds.get("upper", 1) <= 1)):
            raise PriorError(f"{spec.key!r} is a probability: give it a prior on (0, 1) such as "
                             f"Prior('Beta', alpha=1, beta=1), not {prior!r}")
    if spec.kind == "family" and support == "identity" and prior.dist not in _REAL_LINE:
        raise PriorError(f"{spec.key!r} are ordered real numbers: give them a prior on the "
                         f"real line ({', '.join(_REAL_LINE)}), not {prior.dist}")


def prior_table(specs: list[PriorSpec]) -> pd.DataFrame:
    """The priors as a DataFrame: one row per parameter."""
    return pd.DataFrame({
        "parameter": [s.key for s in specs],
        "kind": [s.kind for s in specs],
        "group": [s.block for s in specs],
        "prior": [repr(s.prior) for s in specs],
        "source": [s.source for s in specs],
    }).set_index("parameter")


def as_prior(value: Any) -> Prior:
    """Accept a Prior, or a ``(dist, {params})`` tuple."""
    if isinstance(value, Prior):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        return Prior(value[0], **value[1])
    raise PriorError(f"cannot read {value!r} as a prior; write Prior('Normal', mu=0, sigma=1)")
