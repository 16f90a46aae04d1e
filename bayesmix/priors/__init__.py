"""Default priors scaled to the data, and user overrides (pure numpy, no PyMC model code).

Defaults. ``g`` is the link and ``s`` the natural unit of the linear predictor: ``s = sd(y)``
on the identity scale of gaussian, student_t and gamma, ``sd(log y)`` for lognormal,
``sd(y) / mean(y)^2`` for gamma's inverse link, and 1 on a logit, probit, cloglog or log
scale (which are unit-free):

=====================  ========================================================================
parameter              default
=====================  ========================================================================
``(Intercept)``        Normal(g(mean y) - mean offset, 2.5 s), for the intercept at the means of
                       the predictors (predictors are centred internally, as in brms);
                       lognormal: mean(log y); student_t: the median instead of the mean;
                       binomial types: g(mean of y / n). Ordinal families have no intercept.
coefficient ``x``      Normal(0, 2.5 s / sd(x))
group SD of term ``z``  HalfNormal(s / sd(z)); sd(z) := 1 for intercepts and constant columns
correlations           LKJ(eta=1) on each block's correlation matrix
``sigma``              Exponential(lam = 1 / sd(y)); lognormal: 1 / sd(log y)
``nu`` (student_t)     Gamma(alpha=2, beta=0.1), as brms (mean 20; heavy tails stay possible)
``shape`` (gamma),     Exponential(lam=0.01). These are precisions (large = less noise): the
``phi`` (beta, beta_   prior is flat near 0 (brms's Gamma(0.01, 0.01) piles its mass at 0, so
binomial), ``theta``   its prior predictive draws are degenerate) and decays beyond a few
(negative binomials)   hundred, so that data close to the limiting model (Poisson, binomial)
                       keep NUTS in a bounded region instead of a flat ridge to infinity.
``zi``, ``hu``         Beta(1, 1): uniform on the probability of a structural/hurdle zero
``cutpoints``          Normal(0, 5) on each cutpoint, restricted to increasing order (the
                       cutpoints of the centred predictors, as for the intercept)
=====================  ========================================================================

Override with ``priors={key: Prior(...)}``; keys are a coefficient name (``"Days"``,
``"(Intercept)"``), ``"term|group"`` for one SD (``"1|Subject"``, ``"Days|Subject"``),
``"cor|group"``, a family parameter (``"sigma"``, ``"nu"``, ``"shape"``, ``"phi"``,
``"theta"``, ``"zi"``, ``"hu"``, ``"cutpoints"``), or a class: ``"b"`` (all coefficients
but the intercept), ``"sd"`` (all SDs), ``"cor"`` (all correlations). A family parameter's
prior must live on its support: positive for ``sigma``..``theta``, (0, 1) for ``zi``/``hu``
(Beta or Uniform), the real line for ``cutpoints``.

Distributional and nonlinear parameters (:mod:`bayesmix.data.linpred`) prefix the same keys with
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

from bayesmix.data.design import Design
from bayesmix.errors import PriorError
from bayesmix.families import LINKS, PARAM_LINKS, Family

__all__ = ["Prior", "PriorSpec", "default_priors", "resolve_priors", "KNOWN_DISTRIBUTIONS",
           "cutpoint_labels"]

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


def _sd(values: np.ndarray) -> float:
    sd = float(np.std(values)) if len(values) > 1 else 0.0
    return sd if sd > 1e-12 else 1.0


def _link_unit(family: Family, link: str, y: np.ndarray) -> float:
    """The natural unit of the linear predictor (see the module docstring)."""
    if family.name == "lognormal":
        return _sd(np.log(y))
    if link == "identity" and family.name in ("gaussian", "student_t", "gamma"):
        return _sd(y)
    if link == "inverse":
        return _sd(y) / max(float(np.mean(y)), 1e-12) ** 2  # delta method: |d(1/mu)/dmu|
    return 1.0


_FIXED_FAMILY_PRIORS = {
    "nu": Prior("Gamma", alpha=2.0, beta=0.1),
    "shape": Prior("Exponential", lam=0.01),
    "phi": Prior("Exponential", lam=0.01),
    "theta": Prior("Exponential", lam=0.01),
    "zi": Prior("Beta", alpha=1.0, beta=1.0),
    "hu": Prior("Beta", alpha=1.0, beta=1.0),
    "cutpoints": Prior("Normal", mu=0.0, sigma=5.0),
}


def _family_prior(name: str, family: Family, y: np.ndarray) -> Prior:
    if name == "sigma":
        return Prior("Exponential", lam=1.0 / _sd(np.log(y) if family.name == "lognormal" else y))
    return _FIXED_FAMILY_PRIORS[name]


def cutpoint_labels(categories: tuple) -> list[str]:
    """Names of the cutpoints between adjacent categories, as R's ``ordinal::clm``.

    Examples
    --------
    >>> cutpoint_labels(("low", "mid", "high"))
    ['low|mid', 'mid|high']
    """
    return [f"{a}|{b}" for a, b in zip(categories[:-1], categories[1:])]


def default_priors(design: Design, family: Family, link: str, y: np.ndarray,
                   trials: np.ndarray | None) -> list[PriorSpec]:
    """The default prior of every parameter (see the module docstring for the formulas)."""
    s_y = _link_unit(family, link, y)
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
    for name in family.params:
        specs.append(PriorSpec(name, "family", _family_prior(name, family, y), "default"))
    return specs


def _short(term: str) -> str:
    return "1" if term == "(Intercept)" else term


def _intercept_location(design: Design, family: Family, link: str, y: np.ndarray,
                        trials: np.ndarray | None) -> float:
    if family.name == "lognormal":
        return float(np.mean(np.log(y))) - float(np.mean(design.offset))
    if trials is not None:
        mean = float(np.mean(y / trials))
    else:
        mean = float(np.median(y) if family.name == "student_t" else np.mean(y))
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


_REAL_LINE = ("Normal", "StudentT", "Cauchy", "Laplace", "Logistic")


def _check_support(spec: PriorSpec, prior: Prior) -> None:
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
