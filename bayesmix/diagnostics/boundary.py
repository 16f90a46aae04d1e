"""Boundary estimates: the Bayesian analogue of lme4's singular fit (``isSingular``).

lme4 calls a fit singular when a variance component is estimated as exactly zero or a
correlation as exactly +-1: the data cannot tell the term from a simpler model. A posterior
never sits exactly on the boundary, so bayesmix flags a component the data do not inform:

* an SD when the data neither tell its levels apart nor its posterior away from zero:

  - the levels' effects of its term are pooled at least :data:`POOLING_MIN` (78 %) of the way
    to their mean: Gelman and Pardoe's (2006, *Technometrics* 48: 241-251) pooling factor
    ``1 - var_j(E[r_j]) / E[var_j(r_j)]`` of the level effects ``r_j`` (variances over the
    levels; expectations over the posterior) is at least 0.78. It has no scale (it does not
    depend on the residual SD, the link or the units of a slope's covariate): with no
    information on the levels it is 1 (complete pooling), with levels that differ clearly
    beyond their noise it is near 0. In a balanced gaussian one-way layout it is close to
    ``1 / F`` (F: the ratio of the level means' mean square to the residual one), so 0.78
    flags about when ``F < 1.28``, the F test's 5 % critical value against SD / sigma = 0.5
    with 10 levels of 10 rows (the F test is the most powerful invariant test there; this
    rule is about as efficient);
  - and the SD's posterior reaches down to zero: its 10 % quantile is at most
    :data:`SD_RATIO_MAX` (0.5) times its median. With many levels each measured poorly, the
    levels are pooled but their SD can still be well determined by their number; then it is
    not flagged. In the calibration designs every data set with pooling >= 0.78 also met
    this condition, so it costs no power there.

  ``docs/validation.md`` gives the rule's false-positive rate (data with SD / sigma = 0.5)
  and power (SD = 0) by simulation;
* a correlation when its posterior mass at ``|cor| > 0.9`` is at least :data:`COR_MASS_MIN` and
  twice its LKJ prior mass there.

A flag says the data cannot tell the SD from zero; it is not advice to drop the term.
The flag's advice says what dropping it would cost (for a slope: anti-conservative intervals
for its fixed effect if the slope does vary, Barr et al. 2013; for an intercept: complete
pooling of the levels).

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

__all__ = ["BoundaryFlag", "boundary_flags", "pooling_factor", "sd_statistics", "POOLING_MIN",
           "SD_RATIO_MAX", "COR_MASS_MIN", "COR_LIMIT"]

POOLING_MIN = 0.78
SD_RATIO_MAX = 0.5
COR_LIMIT = 0.9
COR_MASS_MIN = 0.3


@dataclass(frozen=True)
class BoundaryFlag:
    """One variance component (``kind="sd"``) or correlation (``"cor"``) at its boundary.

    ``statistic``: the pooling factor of the term's level effects (an SD) or the posterior
    mass at ``|cor| > 0.9`` (a correlation), flagged at ``threshold`` or above;
    ``prior_mass``: a correlation's LKJ prior mass at ``|cor| > 0.9`` (NaN for an SD).
    """

    kind: str
    block: str
    formula_term: str
    term: str
    term2: str
    statistic: float
    prior_mass: float
    threshold: float
    message: str
    advice: str

    @property
    def short(self) -> str:
        what = (f"SD of {self.term}" if self.kind == "sd"
                else f"correlation of {self.term} and {self.term2}")
        return f"{what} in {self.formula_term}"


def pooling_factor(effects: np.ndarray) -> float:
    """Gelman and Pardoe's pooling factor of level effects (draws x levels).

    ``1 - var_j(E[r_j]) / E[var_j(r_j)]``: 0 when the posterior means vary as much as the
    draws (no pooling), 1 when they all sit at the mean (complete pooling).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> spread = rng.normal(0, 1, 8)  # levels that differ, known to +-0.1
    >>> round(pooling_factor(spread + rng.normal(0, 0.1, (2000, 8))), 2)
    0.03
    >>> round(pooling_factor(rng.normal(0, 1, (2000, 8))), 2)  # levels the data do not inform
    1.0
    """
    within = float(np.mean(np.var(effects, axis=1)))
    if within <= 0.0:
        return 1.0
    return float(1.0 - np.var(effects.mean(axis=0)) / within)


def sd_statistics(idata: xr.DataTree, block: Any) -> list[tuple[str, float, np.ndarray]]:
    """Per term of ``block``: (term, pooling factor of its level effects, the 5/10/50/95 %
    quantiles of its SD's posterior); empty when the level effects were not kept.

    Examples
    --------
    >>> [(t, round(p, 2)) for t, p, _ in sd_statistics(fit.idata, block)]  # doctest: +SKIP
    [('(Intercept)', 0.88)]
    """
    post = posterior_of(idata)
    if varnames.ranef(block) not in post:  # nothing to read the pooling from
        return []
    dims = ("chain", "draw", varnames.level_dim(block), varnames.term_dim(block))
    effects = post[varnames.ranef(block)].transpose(*dims).values
    effects = effects.reshape(-1, *effects.shape[2:])
    sd = post[varnames.sd(block)].transpose("chain", "draw", varnames.term_dim(block)).values
    return [(term, pooling_factor(effects[..., k]),
             np.quantile(sd[..., k].ravel(), [0.05, 0.1, 0.5, 0.95]))
            for k, term in enumerate(block.coef_names)]


def _sd_flags(idata: xr.DataTree, block: Any) -> list[BoundaryFlag]:
    out = []
    for term, pooling, (lo, q10, median, hi) in sd_statistics(idata, block):
        if pooling < POOLING_MIN or q10 > SD_RATIO_MAX * median:
            continue
        what = "intercepts" if term == "(Intercept)" else f"{term} effects"
        message = (
            f"the {block.group} levels' {what} in {block.term} are pooled {pooling:.0%} of the "
            f"way to their mean (Gelman-Pardoe pooling factor {pooling:.2f}; flagged at >= "
            f"{POOLING_MIN:g}): the data barely tell the levels apart beyond the noise, as "
            f"when lme4 reports a singular fit. The SD's posterior reaches down to zero: "
            f"median {median:.3g}, 10% quantile {q10:.3g} ({q10 / median:.2f} x the median; "
            f"flagged at <= {SD_RATIO_MAX:g}), 90% interval {lo:.3g} to {hi:.3g}. The SD is "
            "not known to be zero, only not informed by these data")
        out.append(BoundaryFlag("sd", block.name, str(block.term), term, "", pooling,
                                float("nan"), POOLING_MIN, message, _sd_advice(block, term)))
    return out


def _sd_advice(block: Any, term: str) -> str:
    """What keeping and dropping a flagged SD cost, in the term's own words."""
    keep = ("Keeping the term leaves the other estimates valid (they average over SDs near "
            "zero); its cost, if the SD is truly zero, is some power (Matuschek et al. 2017).")
    if term != "(Intercept)":
        drop = (f"Dropping the slope ((1 | {block.group}) instead of {block.term}) assumes the "
                f"effect of {term} is the same for every {block.group}: if it does vary, the "
                f"interval of the fixed effect {term} becomes too narrow (anti-conservative; "
                "Barr et al. 2013, 'keep it maximal'). Keep it when the design varies "
                f"{term} within {block.group}; drop it only with a reason beyond this flag, "
                "e.g. LOO (bm.compare) favouring the simpler model.")
    elif block.n_terms > 1:
        slopes = " + ".join(t for t in block.coef_names if t != "(Intercept)")
        drop = (f"Dropping the intercept variation ((0 + {slopes} | {block.group})) assumes "
                f"every {block.group} has the same mean: if they differ, intervals of effects "
                f"that vary between {block.group}s become too narrow.")
    else:
        drop = (f"Dropping {block.term} treats the rows of one {block.group} as independent "
                f"and pools the levels completely: if the levels do differ, intervals of "
                f"effects that vary between {block.group}s become too narrow. When the "
                f"{block.group} levels are a sampled part of the design (subjects, sites, "
                "players), keep it; compare the two with LOO (bm.compare) if in doubt.")
    return f"{keep} {drop}"


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
    out: list[BoundaryFlag] = []
    for block in model.design.blocks:
        if varnames.sd(block) not in posterior_of(idata):
            continue
        out += _sd_flags(idata, block)
        if block.correlated and varnames.cor(block) in posterior_of(idata):
            out += _cor_flags(idata, model, block)
    return out
