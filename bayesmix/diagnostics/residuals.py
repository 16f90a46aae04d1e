"""Residuals, simulation-based (DHARMa-style) quantile residuals and their tests, overdispersion.

Simulated quantile residuals work for every family: for row ``i`` with observed ``y_i`` and
simulated responses ``y_i^(s)``,

    u_i = P(y^(s) < y_i) + U_i * P(y^(s) = y_i),   U_i ~ Uniform(0, 1)

(Dunn & Smyth 1996; the jitter handles ties of discrete responses). On these, as DHARMa
(Hartig 2022):

* uniformity: Kolmogorov-Smirnov test against Uniform(0, 1);
* dispersion: variance of ``y - mean(sims)`` against the same variance of each simulated data
  set (two-sided simulation p-value); the ``ratio`` is observed / mean simulated;
* zero inflation: observed number of zeros against the simulated numbers;
* outliers: rows outside the whole simulation envelope, against their binomial expectation
  ``2 / (n_sims + 1)`` per row.

**Which simulations.** All ``n_sims`` data sets are simulated from *one* posterior draw
``theta*`` (its fixed effects, level effects and family parameters), picked at random with
``random_seed``: the *sampled posterior p-value* of Gosselin (2011, PLoS ONE 6: e14770).
When the data come from the model, ``theta*`` and ``y`` are jointly distributed as a
parameter and the data it generates, so ``y`` given ``theta*`` is a draw from the model and
every test above has uniform p-values (exactly when the parameters come from the prior,
asymptotically for fixed parameters); ``docs/validation.md`` measures their false-positive
rates by simulation. Simulating from *all* posterior draws instead (the posterior predictive
p-value, DHARMa's conditional simulation) double-uses the data: the level effects are fitted
to ``y``, so ``y`` sits closer to the simulations' mean than a new data set does. The
dispersion ratio is then biased *low* (0.1-0.6 for correct Poisson GLMMs with one effect per
few rows) and the test misses overdispersion and calls correct models underdispersed. One
draw makes the residuals of a single call noisier; the p-values are calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from bayesmix.errors import BayesmixError
from bayesmix.families import get_family
from bayesmix.posterior.draws import expected_response, simulate_response
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["SimulatedResiduals", "ResidualTest", "OverdispersionResult", "simulated_residuals",
           "reference_draw",
           "residuals", "fitted", "uniformity_test", "dispersion_test", "zero_inflation_test",
           "outlier_test", "overdispersion", "RESIDUAL_TYPES", "ALPHA"]

RESIDUAL_TYPES = ("auto", "response", "pearson", "quantile")
ALPHA = 0.05


@dataclass(frozen=True)
class ResidualTest:
    """One residual test: its statistic (a ratio observed / expected, or KS D), p-value and a
    one-line verdict."""

    name: str
    statistic: float
    p_value: float
    verdict: str


@dataclass(frozen=True, eq=False)
class SimulatedResiduals:
    """Simulated quantile residuals of every row (uniform scale) and what they came from."""

    residuals: np.ndarray
    observed: np.ndarray
    simulated: np.ndarray  # (n_sims, n)
    predicted: np.ndarray  # posterior mean of E[y] per row
    rows: pd.Index
    response: str
    family: str

    @property
    def n_sims(self) -> int:
        return int(self.simulated.shape[0])

    def normal(self) -> np.ndarray:
        """The residuals on the normal scale (N(0, 1) when the model is right); rows outside
        the simulation envelope are set to the quantile of 1 / (2 n_sims) instead of +-inf."""
        edge = 0.5 / self.n_sims
        return special.ndtri(np.clip(self.residuals, edge, 1 - edge))

    def tests(self) -> pd.DataFrame:
        """Uniformity, dispersion, zero-inflation (counts) and outlier tests, one row each.

        Examples
        --------
        >>> fit.simulated_residuals().tests()  # doctest: +SKIP
        """
        # the dispersion test runs for every family (DHARMa's testDispersion does); whether
        # overdispersion is a question for the family is overdispersion()'s to say
        results = [uniformity_test(self), dispersion_test(self)]
        if "zeros" in get_family(self.family).diagnostics:
            results.append(zero_inflation_test(self))
        results.append(outlier_test(self))
        return pd.DataFrame([r.__dict__ for r in results]).set_index("name")

    def text(self) -> str:
        return "\n".join(f"{name}: {row.verdict}" for name, row in self.tests().iterrows())

    def __repr__(self) -> str:
        return (f"<SimulatedResiduals: {len(self.residuals)} rows, {self.n_sims} simulations>\n"
                + self.text())


def _n_per_chain(idata: xr.DataTree, model: "ModelSpec", n_sims: int) -> int:
    if n_sims < 10:
        raise BayesmixError(f"n_sims must be at least 10, not {n_sims!r}")
    return int(np.ceil(n_sims / posterior_of(idata).sizes["chain"]))


def reference_draw(idata: xr.DataTree, n_sims: int, rng: np.random.Generator) -> xr.DataTree:
    """The fit with one randomly chosen posterior draw repeated ``n_sims`` times (one chain).

    Examples
    --------
    >>> one = reference_draw(fit.idata, 100, np.random.default_rng(0))  # doctest: +SKIP
    >>> one["posterior"].sizes["draw"]  # doctest: +SKIP
    100
    """
    post = posterior_of(idata)
    chain = int(rng.integers(post.sizes["chain"]))
    draw = int(rng.integers(post.sizes["draw"]))
    one = post.isel(chain=[chain], draw=np.full(n_sims, draw))
    one = one.assign_coords(chain=[0], draw=np.arange(n_sims))
    out = idata.copy()
    out["posterior"] = xr.DataTree(one)
    return out


def simulated_residuals(idata: xr.DataTree, model: "ModelSpec", n_sims: int = 1000,
                        random_seed: int | None = 0) -> SimulatedResiduals:
    """Randomized quantile residuals from ``n_sims`` simulations of one posterior draw.

    The draw is picked with ``random_seed``; with it the tests have uniform p-values when the
    model is right (sampled posterior p-values, see the module docstring).

    Examples
    --------
    >>> res = bm.residuals.simulated_residuals(fit.idata, fit.model, n_sims=500)  # doctest: +SKIP
    >>> res.tests().loc["dispersion", ["statistic", "p_value"]]  # doctest: +SKIP
    """
    if n_sims < 10:
        raise BayesmixError(f"n_sims must be at least 10, not {n_sims!r}")
    rng = np.random.default_rng(random_seed)
    one = reference_draw(idata, n_sims, rng)
    sims = simulate_response(one, model, random_seed=rng)
    sims = sims.reshape(-1, sims.shape[-1])
    y = np.asarray(model.y, dtype=float)
    less = np.mean(sims < y, axis=0)
    equal = np.mean(sims == y, axis=0)
    u = less + rng.uniform(size=y.shape) * equal
    per_chain = _n_per_chain(idata, model, n_sims)
    mean = expected_response(idata, model, draws=per_chain).reshape(-1, y.size).mean(axis=0)
    return SimulatedResiduals(u, y, sims, mean, model.design.rows,
                              model.spec.response.name, model.family.name)


def _two_sided(simulated: np.ndarray, observed: float) -> float:
    """Two-sided simulation p-value, with the +1 correction so it is never exactly 0."""
    n = simulated.size
    upper = (np.sum(simulated >= observed) + 1) / (n + 1)
    lower = (np.sum(simulated <= observed) + 1) / (n + 1)
    return float(min(1.0, 2 * min(upper, lower)))


def uniformity_test(res: SimulatedResiduals) -> ResidualTest:
    """Kolmogorov-Smirnov test of the residuals against Uniform(0, 1).

    Examples
    --------
    >>> uniformity_test(fit.simulated_residuals()).p_value  # doctest: +SKIP
    """
    ks = stats.kstest(res.residuals, "uniform")
    verdict = (f"KS D = {ks.statistic:.3f}, p = {ks.pvalue:.3g}: "
               + ("the residuals are not uniform; the response distribution does not fit"
                  if ks.pvalue < ALPHA else "consistent with a well-specified model"))
    return ResidualTest("uniformity", float(ks.statistic), float(ks.pvalue), verdict)


def dispersion_test(res: SimulatedResiduals) -> ResidualTest:
    """DHARMa's simulation test: var(y - mean sims) against var(sim - mean sims).

    Examples
    --------
    >>> dispersion_test(fit.simulated_residuals()).statistic  # the ratio  # doctest: +SKIP
    """
    centre = res.simulated.mean(axis=0)
    observed = float(np.var(res.observed - centre))
    simulated = np.var(res.simulated - centre, axis=1)
    ratio = observed / float(np.mean(simulated)) if np.mean(simulated) > 0 else np.nan
    p = _two_sided(simulated, observed)
    if p < ALPHA and ratio > 1:
        word = "overdispersed: more variation than the model predicts"
    elif p < ALPHA:
        word = "underdispersed: less variation than the model predicts"
    else:
        word = "no evidence of over- or underdispersion"
    return ResidualTest("dispersion", ratio, p,
                      f"ratio {ratio:.2f} (observed / simulated variance), p = {p:.3g}: {word}")


def zero_inflation_test(res: SimulatedResiduals) -> ResidualTest:
    """Observed number of zeros against the simulated numbers of zeros.

    Examples
    --------
    >>> zero_inflation_test(fit.simulated_residuals()).verdict  # doctest: +SKIP
    """
    observed = float(np.sum(res.observed == 0))
    simulated = np.sum(res.simulated == 0, axis=1).astype(float)
    expected = float(np.mean(simulated))
    ratio = observed / expected if expected > 0 else (1.0 if observed == 0 else np.inf)
    p = _two_sided(simulated, observed)
    if p < ALPHA and ratio > 1:
        word = "more zeros than the model predicts (zero inflation)"
    elif p < ALPHA:
        word = "fewer zeros than the model predicts"
    else:
        word = "the number of zeros fits"
    return ResidualTest("zero_inflation", ratio, p,
                      f"{observed:.0f} zeros observed, {expected:.1f} expected "
                      f"(ratio {ratio:.2f}), p = {p:.3g}: {word}")


def outlier_test(res: SimulatedResiduals) -> ResidualTest:
    """Rows outside the simulation envelope against the binomial expectation 2/(n_sims+1).

    A row is outside when its randomized quantile residual is below 1/(n_sims+1) or above
    n_sims/(n_sims+1): for a continuous response, below or above all simulations; for
    counts and 0/1 data, ties with the smallest or largest simulated value are randomized,
    so that the rate under the model is exactly 2/(n_sims+1). (Counting only values strictly
    outside made the test never fire on discrete data: 0 of 800 null simulations, see
    docs/validation.md.)

    Examples
    --------
    >>> outlier_test(fit.simulated_residuals()).p_value  # doctest: +SKIP
    """
    u = np.asarray(res.residuals)
    outside = (u < 1.0 / (res.n_sims + 1)) | (u > res.n_sims / (res.n_sims + 1))
    k, n = int(outside.sum()), outside.size
    p0 = 2.0 / (res.n_sims + 1)
    p = float(stats.binomtest(k, n, p0).pvalue)
    ratio = (k / n) / p0
    word = ("more rows outside all simulations than expected: check them"
            if p < ALPHA and ratio > 1 else "no excess of outliers")
    return ResidualTest("outliers", ratio, p,
                      f"{k} of {n} rows outside all {res.n_sims} simulations "
                      f"({n * p0:.1f} expected), p = {p:.3g}: {word}")


def fitted(idata: xr.DataTree, model: "ModelSpec", draws: int | None = None) -> pd.Series:
    """Posterior mean of E[y] per training row (binomial: expected successes).

    Examples
    --------
    >>> bm.residuals.fitted(fit.idata, fit.model).head()  # doctest: +SKIP
    """
    mean = expected_response(idata, model, draws=draws)
    return pd.Series(mean.reshape(-1, mean.shape[-1]).mean(axis=0), index=model.design.rows,
                     name="fitted")


def residuals(idata: xr.DataTree, model: "ModelSpec", type: str = "auto", n_sims: int = 1000,
              random_seed: int | None = 0) -> pd.Series:
    """Residuals per training row.

    ``"response"``: y - E[y] (posterior mean); ``"pearson"``: that divided by the SD of y
    given the parameters (sigma for gaussian models, averaged over the posterior); ``"quantile"``:
    simulated quantile residuals on the normal scale
    (N(0, 1) under the model, any family); ``"auto"``: pearson for gaussian models, quantile
    otherwise.

    Examples
    --------
    >>> fit.residuals("pearson").abs().max()  # doctest: +SKIP
    """
    if type not in RESIDUAL_TYPES:
        raise BayesmixError(f"type must be one of {', '.join(map(repr, RESIDUAL_TYPES))}, "
                            f"not {type!r}")
    if type == "auto":
        type = "pearson" if model.family.normal else "quantile"
    rows = model.design.rows
    if type == "quantile":
        values = simulated_residuals(idata, model, n_sims, random_seed).normal()
        return pd.Series(values, index=rows, name="quantile residual")
    y = np.asarray(model.y, dtype=float)
    per_chain = _n_per_chain(idata, model, n_sims)
    mu = expected_response(idata, model, draws=per_chain).reshape(-1, y.size)
    mean = mu.mean(axis=0)
    if type == "response":
        return pd.Series(y - mean, index=rows, name="response residual")
    if "sigma" in posterior_of(idata) and model.family.normal:
        variance = np.full(y.size, float((posterior_of(idata)["sigma"] ** 2).mean()))  # as lme4
    else:  # E[Var(y | theta)] = Var(y_rep) - Var(E[y | theta]) (law of total variance)
        sims = simulate_response(idata, model, draws=per_chain, random_seed=random_seed)
        variance = np.maximum(sims.reshape(-1, y.size).var(axis=0) - mu.var(axis=0), 1e-12)
    return pd.Series((y - mean) / np.sqrt(variance), index=rows, name="pearson residual")


@dataclass(frozen=True)
class OverdispersionResult:
    """:meth:`FitResult.overdispersion`: ``ratio`` (observed / simulated residual variance),
    ``p_value`` (two-sided), ``overdispersed`` and a ``verdict`` with what to do."""

    ratio: float
    p_value: float
    overdispersed: bool
    verdict: str
    family: str
    n_sims: int

    def __str__(self) -> str:
        return self.verdict

    def __repr__(self) -> str:
        return f"<OverdispersionResult ratio={self.ratio:.2f}, p={self.p_value:.3g}>\n" \
            f"{self.verdict}"


def overdispersion(idata: xr.DataTree, model: "ModelSpec", n_sims: int = 1000,
                   random_seed: int | None = 0) -> OverdispersionResult:
    """Is there more variation than a count or binomial model allows? (DHARMa's test)

    Examples
    --------
    >>> od = fit.overdispersion()  # doctest: +SKIP
    >>> od.ratio, od.p_value  # doctest: +SKIP
    """
    family = model.family.name
    trials = model.trials
    binary = model.family.response == "binary" or (trials is not None and np.all(trials == 1))
    if binary or "dispersion" not in model.family.diagnostics:
        what = "a 0/1 response cannot be overdispersed" if binary else (
            f"its variance has its own parameter ({', '.join(model.family.params)}), which "
            "absorbs it")
        raise BayesmixError(f"overdispersion is a check for count and binomial models; for "
                            f"family {family!r} {what}")
    res = simulated_residuals(idata, model, n_sims, random_seed)
    test = dispersion_test(res)
    ratio, p = test.statistic, test.p_value
    over = bool(p < ALPHA and ratio > 1)
    name = res.response
    if over:
        wider = model.family.overdispersed
        fix = (f"switch to family='{wider}'" if wider else
               "use a family with its own dispersion parameter")
        verdict = (f"Overdispersed: the residuals vary {ratio:.2f} times as much as the "
                   f"{family} model predicts (p = {p:.3g}). Intervals and p-values of the fixed "
                   f"effects are then too narrow. Fix: {fix}, or add an observation-level "
                   f"random effect: df['obs'] = range(len(df)) and '{name} ~ ... + (1 | obs)'.")
    elif p < ALPHA:
        verdict = (f"Underdispersed: the residuals vary {ratio:.2f} times as much as the "
                   f"{family} model predicts (p = {p:.3g}): the model is conservative; no "
                   "action is needed unless the intervals matter at their edges.")
    else:
        verdict = (f"No evidence of overdispersion: ratio {ratio:.2f} of observed to "
                   f"simulated residual variance (p = {p:.3g}); the {family} variance fits.")
    return OverdispersionResult(ratio, p, over, verdict, family, res.n_sims)
