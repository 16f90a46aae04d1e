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
           "check_support", "check_class_prior"]

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

    def __init__(self, dist: str, *args: Any, **params: float) -> None:
        if args:
            raise PriorError(f"give the parameters of {dist!r} by name, e.g. "
                             "Prior('Normal', mu=0, sigma=1), not by position")
        if not isinstance(dist, str):
            raise PriorError(f"the distribution must be a name such as 'Normal', not "
                             f"{type(dist).__name__} {dist!r}")
        if dist not in KNOWN_DISTRIBUTIONS:
            raise PriorError(f"unknown prior distribution {dist!r}; use one of "
                             f"{', '.join(KNOWN_DISTRIBUTIONS)}")
        values = _checked_params(dist, params)
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", tuple(values.items()))

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def positive(self) -> bool:
        return KNOWN_DISTRIBUTIONS[self.dist][1]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:.4g}" for k, v in self.params)
        return f"{self.dist}({args})"


# Parameters that may be any real number (locations and bounds); every other one is a scale,
# shape, rate or concentration and must be positive.
_REAL_PARAMS = {"mu", "lower", "upper"}
_REAL_BY_DIST = {("Cauchy", "alpha")}  # Cauchy's alpha is its location


def _checked_params(dist: str, params: dict[str, Any]) -> dict[str, float]:
    """Each parameter known, given, a finite real number, positive where it must be, and
    a Uniform's bounds ordered; the PriorError names the parameter."""
    allowed = KNOWN_DISTRIBUTIONS[dist][0]
    values: dict[str, float] = {}
    for key, value in params.items():
        if key not in allowed:
            raise PriorError(f"{dist} has no parameter {key!r}; its parameters are "
                             f"{', '.join(allowed) or 'none'}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise PriorError(f"{dist} parameter {key}={value!r} must be a number, not "
                             f"{type(value).__name__}")
        number = float(value)
        if not np.isfinite(number):
            raise PriorError(f"{dist} parameter {key}={value!r} must be a finite number")
        if key not in _REAL_PARAMS and (dist, key) not in _REAL_BY_DIST and number <= 0:
            raise PriorError(f"{dist} parameter {key}={value!r} must be positive (it is a "
                             "scale, shape or rate)")
        values[key] = number
    missing = [key for key in allowed if key not in values]
    if missing:
        example = ", ".join(f"{k}=..." for k in allowed)
        raise PriorError(f"{dist} needs the parameter(s) {', '.join(missing)}: write "
                         f"Prior({dist!r}, {example})")
    if dist == "Uniform" and values["lower"] >= values["upper"]:
        raise PriorError(f"Uniform needs lower < upper; got lower={values['lower']:g}, "
                         f"upper={values['upper']:g}")
    return values


# The class keys of user priors and what their members' priors must be: coefficients live on
# the real line, standard deviations are positive, correlation matrices take LKJ.
def check_class_prior(key: str, prior: Prior) -> None:
    """Refuse a class-key prior (``"b"``, ``"sd"``, ``"cor"``, ``"sigma:b"``...) that does
    not fit the class.

    Examples
    --------
    >>> try:
    ...     check_class_prior("b", Prior("HalfNormal", sigma=1))
    ... except PriorError as err:
    ...     print(str(err)[:39])
    the class 'b' (all coefficients but the
    """
    cls = key.rsplit(":", 1)[-1]
    if cls == "b" and (prior.positive or prior.dist == "LKJ"):
        raise PriorError(f"the class {key!r} (all coefficients but the intercept) takes a "
                         f"prior on the real line, such as Prior('Normal', mu=0, sigma=1), "
                         f"not {prior!r}; a positive prior would force every coefficient's sign")
    if cls == "sd" and not prior.positive:
        raise PriorError(f"the class {key!r} (all group SDs) takes a positive prior, such as "
                         f"Prior('HalfNormal', sigma=1), not {prior!r}")
    if cls == "cor" and prior.dist != "LKJ":
        raise PriorError(f"the class {key!r} (all correlations) takes an LKJ prior, e.g. "
                         f"Prior('LKJ', eta=2), not {prior!r}")


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
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict) and all(
            isinstance(k, str) for k in value[1]):
        return Prior(value[0], **value[1])
    raise PriorError(f"cannot read {value!r} as a prior; write Prior('Normal', mu=0, sigma=1)")
