"""Boundary estimates: the Bayesian analogue of lme4's singular fit (``isSingular``).

lme4 calls a fit singular when a variance component is estimated as exactly zero or a
correlation as exactly +-1: the data cannot tell the term from a simpler model. A posterior
never sits exactly on the boundary, so bayesmix flags a component whose posterior *piles up*
against it more than its prior does:

* an SD when its posterior mass below a small value ``eps`` is at least
  :data:`SD_MASS_MIN` and at least the prior mass below ``eps``. ``eps`` is 10% of the
  residual SD (gaussian, identity link) or 0.1 on the link scale (other families), divided by
  the SD of the term's covariate for slopes. The data then move the SD *toward* zero, not away;
* a correlation when its posterior mass at ``|cor| > 0.9`` is at least :data:`COR_MASS_MIN` and
  twice its LKJ prior mass there.

On dyestuff2 (lme4: Batch SD exactly 0) the Batch SD is flagged; on dyestuff (Batch SD 43,
residual 50) it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from scipy import stats

from bayesmix import varnames
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["BoundaryFlag", "boundary_flags", "prior_cdf", "SD_FRACTION", "SD_MASS_MIN",
           "COR_MASS_MIN", "COR_LIMIT"]

SD_FRACTION = 0.1
SD_MASS_MIN = 0.05
COR_LIMIT = 0.9
COR_MASS_MIN = 0.3


@dataclass(frozen=True)
class BoundaryFlag:
    """One variance component (``kind="sd"``) or correlation (``"cor"``) at its boundary."""

    kind: str
    block: str
    formula_term: str
    term: str
    term2: str
    posterior_mass: float
    prior_mass: float
    threshold: float
    message: str
    advice: str

    @property
    def short(self) -> str:
        what = (f"SD of {self.term}" if self.kind == "sd"
                else f"correlation of {self.term} and {self.term2}")
        return f"{what} in {self.formula_term}"


def prior_cdf(prior: Any, x: float) -> float:
    """Prior probability that a positive parameter is below ``x`` (0 for HalfFlat).

    Examples
    --------
    >>> from bayesmix import Prior
    >>> round(prior_cdf(Prior("HalfNormal", sigma=1.0), 1.0), 3)
    0.683
    """
    p = prior.kwargs
    dist = {
        "HalfNormal": lambda: stats.halfnorm(scale=p.get("sigma", 1.0)),
        "HalfCauchy": lambda: stats.halfcauchy(scale=p.get("beta", 1.0)),
        "Exponential": lambda: stats.expon(scale=1.0 / p.get("lam", 1.0)),
        "Gamma": lambda: stats.gamma(a=p["alpha"], scale=1.0 / p["beta"]),
        "InverseGamma": lambda: stats.invgamma(a=p["alpha"], scale=p["beta"]),
        "LogNormal": lambda: stats.lognorm(s=p["sigma"], scale=np.exp(p["mu"])),
        "Weibull": lambda: stats.weibull_min(c=p["alpha"], scale=p["beta"]),
    }
    if prior.dist == "HalfStudentT":
        return float(2 * stats.t.cdf(x / p.get("sigma", 1.0), p.get("nu", 3.0)) - 1)
    if prior.dist in dist:
        return float(dist[prior.dist]().cdf(x))
    return 0.0


def _unit(idata: xr.DataTree, model: "ModelSpec") -> tuple[float, str]:
    """The natural scale of the linear predictor and how to say it."""
    if model.family.normal and model.link == "identity" and "sigma" in posterior_of(idata):
        sigma = float(posterior_of(idata)["sigma"].median())
        return sigma, f"{SD_FRACTION:g} x the residual SD {sigma:.3g}"
    return 1.0, f"{SD_FRACTION:g} on the {model.link} scale"


def _sd_flags(idata: xr.DataTree, model: "ModelSpec", block: Any, unit: float, unit_text: str) -> list[BoundaryFlag]:
    specs = {s.key: s.prior for s in model.prior_specs}
    sd = posterior_of(idata)[varnames.sd(block)].transpose("chain", "draw", varnames.term_dim(block)).values
    out = []
    for k, term in enumerate(block.coef_names):
        z = block.Z[:, k]
        z_sd = 1.0 if np.allclose(z, z[0]) else float(np.std(z))
        eps = SD_FRACTION * unit / z_sd
        key = f"{'1' if term == '(Intercept)' else term}|{block.name}"
        post = float(np.mean(sd[..., k] < eps))
        prior = prior_cdf(specs[key], eps) if key in specs else 0.0
        if post < SD_MASS_MIN or post < prior:
            continue
        median = float(np.median(sd[..., k]))
        per = f" per unit of {term}" if z_sd != 1.0 else ""
        message = (
            f"the SD of {term} in {block.term} piles up against zero: P(SD < {eps:.3g}) = "
            f"{post:.2f} in the posterior against {prior:.2f} in its prior "
            f"({specs.get(key)!r}, key {key!r}); posterior median {median:.3g} "
            f"(threshold {unit_text}{per}). The data cannot tell this variance component from "
            f"zero: the {block.group} levels barely differ beyond the noise, as when lme4 "
            "reports a singular fit")
        if block.n_terms > 1 and term != "(Intercept)":
            simpler = f"drop the slope {term} ((1 | {block.group}) instead of {block.term})"
        elif block.n_terms > 1:
            slopes = " + ".join(t for t in block.coef_names if t != "(Intercept)")
            simpler = f"drop the intercept variation ((0 + {slopes} | {block.group}))"
        else:
            simpler = f"drop {block.term}"
        advice = (f"The estimates remain valid under the prior, but its SD is driven by the "
                  f"prior {specs.get(key)!r}. Consider the simpler model ({simpler}) and "
                  "compare the two with LOO, or keep the term if the design requires it.")
        out.append(BoundaryFlag("sd", block.name, str(block.term), term, "", post, prior, eps, message, advice))
    return out


def _lkj_tail(eta: float, k: int, limit: float) -> float:
    """Prior P(|r| > limit) of one correlation under LKJ(eta) in dimension k."""
    a = eta - 1.0 + k / 2.0
    return float(2.0 * stats.beta.sf((1.0 + limit) / 2.0, a, a))


def _cor_flags(idata: xr.DataTree, model: "ModelSpec", block: Any) -> list[BoundaryFlag]:
    specs = {s.key: s.prior for s in model.prior_specs}
    eta = specs.get(f"cor|{block.name}").kwargs.get("eta", 1.0) \
        if f"cor|{block.name}" in specs else 1.0
    prior = _lkj_tail(eta, block.n_terms, COR_LIMIT)
    cor = posterior_of(idata)[varnames.cor(block)].transpose("chain", "draw", ...).values
    out = []
    names = block.coef_names
    for i in range(block.n_terms):
        for j in range(i + 1, block.n_terms):
            r = cor[..., i, j]
            post = float(np.mean(np.abs(r) > COR_LIMIT))
            if post < COR_MASS_MIN or post < 2 * prior:
                continue
            sign = "+1" if np.median(r) > 0 else "-1"
            message = (
                f"the correlation of {names[i]} and {names[j]} in {block.term} piles up at "
                f"{sign}: P(|cor| > {COR_LIMIT}) = {post:.2f} in the posterior against "
                f"{prior:.2f} under its LKJ(eta={eta:g}) prior; posterior median "
                f"{float(np.median(r)):.2f}. The data cannot separate these two effects per "
                f"{block.group} (lme4 would report a singular fit)")
            advice = (f"Consider dropping the correlation, ({block.term.expr} || "
                      f"{block.group}), or one of the two terms; or give it a prior that "
                      f"favours smaller correlations: priors={{'cor|{block.name}': "
                      "bm.Prior('LKJ', eta=4)}.")
            out.append(BoundaryFlag("cor", block.name, str(block.term), names[i], names[j], post, prior,
                                    COR_LIMIT, message, advice))
    return out


def boundary_flags(idata: xr.DataTree, model: "ModelSpec") -> list[BoundaryFlag]:
    """Every SD and correlation whose posterior piles up at its boundary (module docstring).

    Examples
    --------
    >>> [f.short for f in boundary_flags(fit.idata, fit.model)]  # doctest: +SKIP
    ['SD of (Intercept) in (1 | Batch)']
    """
    unit, unit_text = _unit(idata, model)
    out: list[BoundaryFlag] = []
    for block in model.design.blocks:
        if varnames.sd(block) not in posterior_of(idata):
            continue
        out += _sd_flags(idata, model, block, unit, unit_text)
        if block.correlated and varnames.cor(block) in posterior_of(idata):
            out += _cor_flags(idata, model, block)
    return out
