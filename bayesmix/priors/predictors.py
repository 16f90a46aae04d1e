"""Priors of the further linear predictors of a :class:`~bayesmix.Formula` or
:class:`~bayesmix.NonLinear` model (defaults in :mod:`bayesmix.data.linpred`'s docstring)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bayesmix.data.linpred import LinearPredictor
from bayesmix.errors import PriorError
from bayesmix.families import get_link
from bayesmix.priors.defaults import data_scale
from bayesmix.priors.prior import Prior, PriorSpec

__all__ = ["extend_priors", "finish_priors", "local_priors"]


def _short(term: str) -> str:
    return "1" if term == "(Intercept)" else term


def _lp_defaults(lp: LinearPredictor, y: np.ndarray) -> list[PriorSpec]:
    design, name = lp.design, lp.name
    nl = lp.role == "nlpar"
    s = 1.5 if lp.link == "logit" else 1.0
    typical = {"log": data_scale(y) if name == "sigma" else 1.0, "logit": 0.5}.get(lp.link, 0.0)
    specs = []
    for j, coef in enumerate(design.coef_names):
        if nl:
            prior, source = Prior("Flat"), "required"
        elif coef == "(Intercept)":
            loc = float(get_link(lp.link).link(np.asarray(typical))) - float(np.mean(design.offset))
            prior, source = Prior("Normal", mu=loc, sigma=s), "default"
        else:
            prior, source = Prior("Normal", mu=0.0, sigma=s / data_scale(design.X[:, j])), "default"
        specs.append(PriorSpec(f"{name}:{coef}", "fixed", prior, source, lpar=name))
    for block in design.blocks:
        short_block = block.name[len(name) + 1:]
        for j, term in enumerate(block.coef_names):
            z = block.Z[:, j]
            scale = s / (data_scale(z) if not np.allclose(z, z[0]) else 1.0)
            specs.append(PriorSpec(f"{name}:{_short(term)}|{short_block}", "sd",
                                   Prior("HalfNormal", sigma=scale),
                                   "pending" if nl else "default", block.name, term, name))
        if block.correlated:
            specs.append(PriorSpec(f"{name}:cor|{short_block}", "cor", Prior("LKJ", eta=1.0),
                                   "default", block.name, lpar=name))
    return specs


def extend_priors(defaults: list[PriorSpec], predictors: tuple[LinearPredictor, ...],
                  y: np.ndarray, overrides: dict[str, Any] | None
                  ) -> tuple[list[PriorSpec], dict[str, Any] | None]:
    """Add the predictors' default priors to the mean's, drop the scalar prior of each
    parameter that has a formula, and read the predictors' key shorthands in ``overrides``
    (``"Asym"`` for ``"Asym:(Intercept)"`` when Asym's formula is ``"1"``)."""
    if not predictors:
        return defaults, overrides
    modelled = {lp.name: lp for lp in predictors}
    specs = [s for s in defaults if not (s.kind == "family" and s.key in modelled)]
    for lp in predictors:
        specs.extend(_lp_defaults(lp, y))
    if overrides is None or not isinstance(overrides, dict):
        return specs, overrides
    out = {}
    for key, value in overrides.items():
        key = "sigma" if key == "Residual" and "sigma" in modelled else key
        lp = modelled.get(key)
        if lp is not None:
            coefs = lp.design.coef_names
            if lp.role == "nlpar" and coefs == ("(Intercept)",):
                key = f"{key}:(Intercept)"
            else:
                listing = ", ".join(f"'{key}:{c}'" for c in coefs)
                what = "is modelled by its formula" if lp.role == "dpar" else \
                    "has several coefficients"
                raise PriorError(f"{key!r} {what} ('{key} ~ {lp.formula}'); set priors on its "
                                 f"coefficients ({listing}), on the {lp.link} scale")
        out[key] = value
    return specs, out


def _prior_scale(prior: Prior) -> float | None:
    kw = prior.kwargs
    if prior.dist in ("Gamma", "InverseGamma", "Weibull"):
        return None
    for name in ("sigma", "s", "b", "beta"):
        if name in kw:
            return kw[name]
    if prior.dist == "Uniform":
        return (kw["upper"] - kw["lower"]) / np.sqrt(12.0)
    return None


def finish_priors(specs: list[PriorSpec], predictors: tuple[LinearPredictor, ...]
                  ) -> list[PriorSpec]:
    """After user overrides: require the nonlinear fixed-effect priors, and scale the
    nonlinear SD defaults to them (see the module docstring)."""
    missing = [s.key for s in specs if s.source == "required"]
    if missing:
        nl = [lp.name for lp in predictors if lp.role == "nlpar"]
        raise PriorError(
            "nonlinear parameters have no default priors (their scale is the model's): set "
            f"{', '.join(map(repr, missing))}, e.g. priors={{{missing[0]!r}: "
            f"bm.Prior('Normal', mu=..., sigma=...)}} for the parameter(s) {', '.join(nl)}")
    fixed = {s.key: s.prior for s in specs if s.kind == "fixed"}
    out, unscaled = [], []
    for spec in specs:
        if spec.source == "pending":
            scale = None
            coef = fixed.get(f"{spec.lpar}:{spec.term}")
            if coef is not None:
                scale = _prior_scale(coef)
            if scale is None:
                unscaled.append(spec.key)
                continue
            spec = dataclasses.replace(spec, prior=Prior("HalfNormal", sigma=scale),
                                       source="default")
        out.append(spec)
    if unscaled:
        raise PriorError(
            f"set the prior of the group SD(s) {', '.join(map(repr, unscaled))}: their default "
            "is HalfNormal(scale of the same term's coefficient prior), and that prior has no "
            f"scale; e.g. priors={{{unscaled[0]!r}: bm.Prior('HalfNormal', sigma=...)}}")
    return out


def local_priors(specs: tuple[PriorSpec, ...] | list[PriorSpec], lpar: str = ""
                 ) -> dict[str, Prior]:
    """One linear predictor's priors under the keys the model builder looks up: its
    coefficient names, ``"<term>|<block name>"`` and ``"cor|<block name>"`` (the mean's
    keys unchanged, family parameters included)."""
    out = {}
    for s in specs:
        if s.lpar != lpar:
            continue
        if s.kind == "sd":
            out[f"{_short(s.term)}|{s.block}"] = s.prior
        elif s.kind == "cor":
            out[f"cor|{s.block}"] = s.prior
        else:
            out[s.key[len(lpar) + 1:] if lpar else s.key] = s.prior
    return out
