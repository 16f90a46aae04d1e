"""Default priors scaled to the data, and user overrides (pure numpy, no PyMC model code).

Defaults (``s_y`` = sd(y) for the gaussian family with identity link, 1 on a logit, probit or
log scale):

=====================  ========================================================================
parameter              default
=====================  ========================================================================
``(Intercept)``        Normal(g(mean y) - mean offset, 2.5 s_y), for the intercept at the
                       means of the predictors (predictors are centred internally, as in brms)
coefficient ``x``      Normal(0, 2.5 s_y / sd(x))
group SD of term ``z``  HalfNormal(s_y / sd(z)); sd(z) := 1 for intercepts and constant columns
correlations           LKJ(eta=1) on each block's correlation matrix
``sigma``              Exponential(lam = 1 / sd(y))
=====================  ========================================================================

Override with ``priors={key: Prior(...)}``; keys are a coefficient name (``"Days"``,
``"(Intercept)"``), ``"term|group"`` for one SD (``"1|Subject"``, ``"Days|Subject"``),
``"cor|group"``, a family parameter (``"sigma"``), or a class: ``"b"`` (all coefficients
but the intercept), ``"sd"`` (all SDs), ``"cor"`` (all correlations).

Distributional and nonlinear parameters (:mod:`bayesmix.linpred`) prefix the same keys with
their name: ``"sigma:x"``, ``"sigma:(Intercept)"``, ``"sigma:1|g"``, ``"sigma:cor|g"`` and
the classes ``"sigma:b"``, ``"sigma:sd"``, ``"sigma:cor"``; the class keys without a prefix
apply to the mean's formula only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.design import Design
from bayesmix.errors import PriorError
from bayesmix.families import LINKS, Family

__all__ = ["Prior", "PriorSpec", "default_priors", "resolve_priors", "KNOWN_DISTRIBUTIONS"]

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
    "HalfFlat": ((), True),
    "LKJ": (("eta",), False),
}


@dataclass(frozen=True, init=False)
class Prior:
    """A prior distribution, named as in PyMC, with its parameters.

    Example
    -------
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


def _sd(values: np.ndarray) -> float:
    sd = float(np.std(values)) if len(values) > 1 else 0.0
    return sd if sd > 1e-12 else 1.0


def _scale_y(family: Family, link: str, y: np.ndarray) -> float:
    """The natural unit of the linear predictor: sd(y) on the identity scale, else 1."""
    return _sd(y) if family.name == "gaussian" and link == "identity" else 1.0


def default_priors(design: Design, family: Family, link: str, y: np.ndarray,
                   trials: np.ndarray | None) -> list[PriorSpec]:
    """The default prior of every parameter (see the module docstring for the formulas)."""
    s_y = _scale_y(family, link, y)
    specs: list[PriorSpec] = []
    for j, name in enumerate(design.coef_names):
        if name == "(Intercept)":
            prior = Prior("Normal", mu=_intercept_location(design, family, link, y, trials),
                          sigma=2.5 * s_y)
        else:
            prior = Prior("Normal", mu=0.0, sigma=2.5 * s_y / _sd(design.X[:, j]))
        specs.append(PriorSpec(name, "fixed", prior, "default"))
    for block in design.blocks:
        for j, term in enumerate(block.coef_names):
            z = block.Z[:, j]
            scale = s_y / (_sd(z) if not np.allclose(z, z[0]) else 1.0)
            specs.append(PriorSpec(f"{_short(term)}|{block.name}", "sd",
                                   Prior("HalfNormal", sigma=scale), "default", block.name, term))
        if block.correlated:
            specs.append(PriorSpec(f"cor|{block.name}", "cor", Prior("LKJ", eta=1.0), "default",
                                   block.name))
    if "sigma" in family.params:
        specs.append(PriorSpec("sigma", "family", Prior("Exponential", lam=1.0 / _sd(y)),
                               "default"))
    return specs


def _short(term: str) -> str:
    return "1" if term == "(Intercept)" else term


def _intercept_location(design: Design, family: Family, link: str, y: np.ndarray,
                        trials: np.ndarray | None) -> float:
    mean = float(np.mean(y / trials)) if trials is not None else float(np.mean(y))
    if link in ("logit", "probit", "cloglog"):
        mean = min(max(mean, 0.01), 0.99)
    elif link in ("log", "inverse"):
        mean = max(mean, 0.01)
    return float(LINKS[link](np.asarray(mean))) - float(np.mean(design.offset))


def resolve_priors(defaults: list[PriorSpec], overrides: dict[str, Prior] | None) -> list[PriorSpec]:
    """Apply user overrides to the defaults; unknown keys raise a PriorError listing the keys.

    Specific keys win over class keys (``"b"``, ``"sd"``, ``"cor"``).
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise PriorError("priors must be a dict such as {'Days': Prior('Normal', mu=0, sigma=5)}")
    overrides = {key: as_prior(value) for key, value in (overrides or {}).items()}
    aliases = {"Intercept": "(Intercept)", "Residual": "sigma"}
    wanted = {re.sub(r"(^|:)Intercept$", r"\1(Intercept)", aliases.get(k, k)).replace(
        "(Intercept)|", "1|"): v for k, v in overrides.items()}
    keys = {s.key for s in defaults}
    # class keys, per linear predictor: "b", "sd", "cor" (the mean), "sigma:b", ...
    classes = {f"{p}{c}" for p in {f"{s.lpar}:" if s.lpar else "" for s in defaults}
               for c in ("b", "sd", "cor")}
    unknown = [k for k in wanted if k not in keys and k not in classes]
    if unknown:
        raise PriorError(f"no parameter named {unknown[0]!r}; priors can be set for "
                         f"{', '.join(sorted(keys))} or the classes "
                         f"{', '.join(map(repr, sorted(classes)))}")
    out = []
    for spec in defaults:
        prefix = f"{spec.lpar}:" if spec.lpar else ""
        cls = {"fixed": "b" if spec.key != f"{prefix}(Intercept)" else None, "sd": "sd",
               "cor": "cor"}.get(spec.kind)
        prior = wanted.get(spec.key, wanted.get(prefix + cls) if cls else None)
        if prior is None:
            out.append(spec)
            continue
        _check_support(spec, prior)
        out.append(replace(spec, prior=prior, source="user"))
    return out


def _check_support(spec: PriorSpec, prior: Prior) -> None:
    if spec.kind == "cor" and prior.dist != "LKJ":
        raise PriorError(f"the correlations {spec.key!r} take an LKJ prior, e.g. "
                         "Prior('LKJ', eta=2)")
    if spec.kind != "cor" and prior.dist == "LKJ":
        raise PriorError(f"LKJ is a prior for correlations, not for {spec.key!r}")
    if spec.kind in ("sd", "family") and not prior.positive:
        raise PriorError(f"{spec.key!r} is a standard deviation: give it a positive "
                         f"distribution (HalfNormal, HalfStudentT, Exponential...), not {prior.dist}")


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
