"""Default priors scaled to the data, and user overrides (see :mod:`bayesmix.priors`)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np

from bayesmix.data.design import Design
from bayesmix.data.structured import AR_PRIOR_KEY, AR1Structure
from bayesmix.errors import PriorError
from bayesmix.families import Family, get_link
from bayesmix.priors.prior import Prior, PriorSpec, as_prior, check_class_prior, check_support

__all__ = ["default_priors", "resolve_priors", "cutpoint_labels", "ar_prior_specs",
           "check_ar_prior", "data_scale"]


def data_scale(values: np.ndarray) -> float:
    sd = float(np.std(values)) if len(values) > 1 else 0.0
    return sd if sd > 1e-12 else 1.0


def _link_unit(family: Family, link: str, y: np.ndarray) -> float:
    """The natural unit of the linear predictor (see the module docstring)."""
    if link == "identity":  # the response's own unit (lognormal: that of log y)
        return data_scale(family.linear_scale(y))
    if link == "inverse":
        return data_scale(y) / max(float(np.mean(y)), 1e-12) ** 2  # delta method: |d(1/mu)/dmu|
    return 1.0


def _family_prior(name: str, family: Family, y: np.ndarray) -> Prior:
    if name == "sigma":  # on the response's scale (lognormal: of log y)
        return Prior("Exponential", lam=1.0 / data_scale(family.linear_scale(y)))
    dist, params = family.param_prior(name)
    return Prior(dist, **params)


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
            prior = Prior("Normal", mu=0.0, sigma=2.5 * s_y / data_scale(design.X[:, j]))
        specs.append(PriorSpec(name, "fixed", prior, "default"))
    for block in design.blocks:
        for j, term in enumerate(block.coef_names):
            z = block.Z[:, j]
            scale = s_y / (data_scale(z) if not np.allclose(z, z[0]) else 1.0)
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
    if trials is not None:
        mean = float(np.mean(y / trials))
    else:  # the typical response on the linear predictor's scale (lognormal: mean of log y)
        mean = float(family.center(family.linear_scale(y)))
    g = get_link(link)
    if g.probability:
        mean = min(max(mean, 0.01), 0.99)
    elif g.positive:
        mean = max(mean, 0.01)
    return float(g.link(np.asarray(mean))) - float(np.mean(design.offset))


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
    for key in wanted.keys() & classes:
        check_class_prior(key, wanted[key])
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
        check_support(spec, prior)
        out.append(replace(spec, prior=prior, source="user"))
    return out


def ar_prior_specs(structure: AR1Structure | None) -> list[Any]:
    """The default prior of ``ar``: Uniform over its admissible interval (none without AR1)."""
    if structure is None:
        return []
    lo, hi = structure.bounds
    return [PriorSpec(AR_PRIOR_KEY, "ar", Prior("Uniform", lower=lo, upper=hi), "default")]


def check_ar_prior(prior: Any, structure: AR1Structure) -> None:
    """The prior of ``ar`` must be a Uniform inside the admissible interval."""
    lo, hi = structure.bounds
    lower, upper = prior.kwargs.get("lower", -np.inf), prior.kwargs.get("upper", np.inf)
    if prior.dist != "Uniform" or not lo <= lower < upper <= hi:
        what = "(-1, 1)" if structure.integer_gaps else "(0, 1) (fractional time gaps: CAR1)"
        raise PriorError(f"the AR(1) correlation 'ar' takes a Uniform prior inside {what}, "
                         f"e.g. Prior('Uniform', lower={lo:g}, upper={hi:g}); got {prior!r}")
