"""Frequentist fits next to the Bayesian ones: lme4's REML/ML and glmer's Laplace approximation.

:func:`fit_ml` fits a :class:`~bayesmix.Model` by maximum likelihood, without PyMC:

* gaussian models (identity link): lme4's profiled REML or ML deviance, optimised over the
  relative covariance factor ``theta`` (Bates et al. 2015, section 3);
* bernoulli, binomial and Poisson models: the Laplace approximation (glmer's default
  ``nAGQ=1``), optimised first over ``theta`` with beta found jointly with the conditional
  modes (``nAGQ=0``), then over ``theta`` and beta together.

The result, :class:`MLResult`, answers ``fixef()``, ``varcorr()`` and ``ranef()`` with the rows
of :class:`~bayesmix.FitResult`, so point estimates and posteriors can be set side by side;
:func:`lrt` compares two nested fits like R's ``anova()``. The numerical core is in
:mod:`bayesmix.inference.laplace`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bayesmix import varnames
from bayesmix.errors import BayesmixError, DataError, FamilyError, warn
from bayesmix.families import FAMILIES
from bayesmix.inference.laplace import GlmmProblem, LmmProblem, RandomStructure, random_structure
from bayesmix.text import Summary

if TYPE_CHECKING:
    from bayesmix.model.model import ModelSpec as Model

__all__ = ["MLResult", "LRTResult", "fit_ml", "lrt"]

# L-BFGS-B settings: the deviance is flat near its optimum, so tight tolerances and central
# differences are needed for estimates good to 4+ significant digits.
_OPTIONS = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 2000, "maxls": 50}
# A starting point only needs to be close (glmer's nAGQ=0 stage).
_ROUGH = {"ftol": 1e-9, "gtol": 1e-5, "maxiter": 500, "maxls": 50}
# Trial values for a variance parameter found on its bound (see _optimize).
_EDGE_TRIALS = (1e-3, 1e-2, 1e-1)


@dataclass(frozen=True, eq=False)
class MLResult:
    """A maximum-likelihood (or REML) fit of a :class:`~bayesmix.Model`.

    ``theta`` is lme4's relative covariance factor, ``b`` the conditional modes of the random
    effects (block by block, level by level), ``sigma`` the residual SD (``None`` for GLMMs).
    ``loglik`` is the REML criterion's log-likelihood for REML fits, as lme4 reports it.

    Examples
    --------
    >>> import bayesmix as bm
    >>> ml = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff")).fit_ml()
    >>> round(ml.loglik, 2), round(float(ml.fixef().loc["(Intercept)", "estimate"]), 1)
    (-159.83, 1527.5)
    """

    model: "Model"
    method: str
    beta: np.ndarray
    beta_cov: np.ndarray
    theta: np.ndarray
    sigma: float | None
    b: np.ndarray
    loglik: float
    converged: bool
    structure: RandomStructure = field(repr=False)
    message: str = ""

    def __post_init__(self) -> None:
        for array in (self.beta, self.beta_cov, self.theta, self.b):
            array.setflags(write=False)  # a frozen result: its arrays are read-only too

    # -- scalars --------------------------------------------------------------------------------
    @property
    def reml(self) -> bool:
        return self.method == "REML"

    @property
    def nobs(self) -> int:
        return int(self.model.design.n)

    @property
    def df(self) -> int:
        """Number of parameters: fixed effects, theta, and sigma for gaussian models."""
        return len(self.beta) + len(self.theta) + (self.sigma is not None)

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.df

    @property
    def deviance(self) -> float:
        """``-2 logLik`` (the REML criterion for REML fits, like lme4's ``REMLcrit``)."""
        return -2.0 * self.loglik

    @property
    def singular(self) -> bool:
        """True when a variance parameter is on its bound (lme4's ``isSingular``)."""
        on_bound = (self.structure.lower == 0) & (np.abs(self.theta) < 1e-4)
        return bool(on_bound.any())

    # -- tables ---------------------------------------------------------------------------------
    def fixef(self) -> pd.DataFrame:
        """Estimates, standard errors and t (gaussian) or z values with p values (GLMMs).

        Examples
        --------
        >>> ml.fixef().loc["(Intercept)", ["estimate", "std_error"]]  # doctest: +SKIP
        """
        se = np.sqrt(np.diag(self.beta_cov))
        table = pd.DataFrame({"estimate": self.beta, "std_error": se},
                             index=pd.Index(self.model.design.coef_names, name="term"))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = self.beta / se
        if self.sigma is not None:
            table["t_value"] = ratio
        else:
            table["z_value"] = ratio
            table["p_value"] = 2.0 * stats.norm.sf(np.abs(ratio))
        return table

    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates."""
        names = list(self.model.design.coef_names)
        return pd.DataFrame(self.beta_cov, index=names, columns=names)

    def covariances(self) -> dict[str, np.ndarray]:
        """Each random-effects block's ``k x k`` covariance matrix, keyed by block name."""
        scale = 1.0 if self.sigma is None else self.sigma ** 2
        out = {}
        for i, block in enumerate(self.model.design.blocks):
            T = self.structure.template(self.theta, i)
            out[block.name] = scale * T @ T.T
        return out

    def varcorr(self) -> pd.DataFrame:
        """Group SDs, correlations and the residual SD, in :meth:`FitResult.varcorr`'s rows.

        Columns: group, term, term2, kind ("sd" | "cor"), estimate.
        """
        rows = []
        for block, cov in zip(self.model.design.blocks, self.covariances().values()):
            sd = np.sqrt(np.diag(cov))
            for term, value in zip(block.coef_names, sd):
                rows.append({"group": block.name, "term": term, "term2": "", "kind": "sd",
                             "estimate": float(value)})
            if block.correlated:
                names = block.coef_names
                for i in range(len(names)):
                    for j in range(i + 1, len(names)):
                        denom = sd[i] * sd[j]
                        value = cov[i, j] / denom if denom > 0 else np.nan
                        rows.append({"group": block.name, "term": names[i], "term2": names[j],
                                     "kind": "cor", "estimate": float(value)})
        if self.sigma is not None:
            rows.append({"group": "Residual", "term": "", "term2": "", "kind": "sd",
                         "estimate": self.sigma})
        return pd.DataFrame(rows, columns=["group", "term", "term2", "kind", "estimate"])

    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects: grouping factor -> levels x terms.

        Examples
        --------
        >>> ml.ranef()["Batch"].head()  # doctest: +SKIP
        """
        out: dict[str, list[pd.DataFrame]] = {}
        for block, start in zip(self.model.design.blocks, self.structure.offsets):
            size = block.n_levels * block.n_terms
            values = self.b[start:start + size].reshape(block.n_levels, block.n_terms)
            out.setdefault(block.group, []).append(pd.DataFrame(
                values, index=pd.Index(block.levels, name=block.group),
                columns=list(block.coef_names)))
        return {g: pd.concat(parts, axis=1) for g, parts in out.items()}

    def start_values(self) -> dict[str, Any]:
        """Point estimates under the names of the Bayesian model's variables.

        ``fixef`` (vector), ``sd_<block>`` (vector), ``cor_<block>`` (matrix, correlated blocks)
        and ``sigma`` (gaussian): e.g. to start or check a sampler.

        Examples
        --------
        >>> ml.start_values()["sd_Batch"]  # doctest: +SKIP
        """
        values: dict[str, Any] = {"fixef": self.beta.copy()}
        for block, cov in zip(self.model.design.blocks, self.covariances().values()):
            sd = np.sqrt(np.diag(cov))
            values[varnames.sd(block)] = sd
            if block.correlated:
                with np.errstate(divide="ignore", invalid="ignore"):
                    cor = cov / np.outer(sd, sd)
                cor = np.where(np.isfinite(cor), cor, 0.0)
                np.fill_diagonal(cor, 1.0)  # exactly, whatever the rounding of cov / sd sd
                values[varnames.cor(block)] = cor
        if self.sigma is not None:
            values["sigma"] = self.sigma
        return values

    # -- text -----------------------------------------------------------------------------------
    def summary(self) -> Summary:
        """lme4-style summary text."""
        model, design = self.model, self.model.design
        kind = "Linear mixed model" if self.sigma is not None \
            else "Generalized linear mixed model"
        how = {"REML": "REML", "ML": "maximum likelihood",
               "Laplace": "maximum likelihood (Laplace Approximation)"}[self.method]
        lines = [f"{kind} fit by {how}"]
        if self.sigma is None:
            lines.append(f" Family: {model.family.name}  ( {model.link} )")
        lines += [f"Formula: {model.spec.formula}", ""]
        if self.reml:
            lines.append(f"REML criterion at convergence: {self.deviance:.1f}")
        else:
            values = (self.aic, self.bic, self.loglik, self.deviance)
            lines += ["     AIC      BIC   logLik deviance df.resid",
                      " ".join(f"{v:8.1f}" for v in values) + f" {self.nobs - self.df:8d}"]
        if self.singular:
            lines.append("boundary (singular) fit: a variance parameter is estimated as 0")
        if not self.converged:
            lines.append(f"WARNING: the optimizer did not converge ({self.message})")
        vc = self.varcorr()
        lines += ["", "Random effects:", *_sd_lines(vc[vc["kind"] == "sd"])]
        for _, row in vc[vc["kind"] == "cor"].iterrows():
            lines.append(f" Corr({row['term']}, {row['term2']} | {row['group']}) = "
                         f"{row['estimate']:.3f}")
        groups = ";  ".join(f"{b.group}, {b.n_levels}" for b in
                            {b.group: b for b in design.blocks}.values())
        lines.append(f"Number of obs: {self.nobs}" + (f", groups:  {groups}" if groups else ""))
        table = self.fixef().rename(columns={
            "estimate": "Estimate", "std_error": "Std. Error", "t_value": "t value",
            "z_value": "z value", "p_value": "Pr(>|z|)"})
        table.index.name = None
        lines += ["", "Fixed effects:", _table(table)]
        return Summary("\n".join(lines))

    def __repr__(self) -> str:
        return (f"<MLResult {self.model.spec.formula!r} ({self.method}), "
                f"logLik {self.loglik:.3f}, df {self.df}>")


def _table(table: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """Plain text, numbers to 4 significant digits (R's default print), NA left blank."""
    formatters = {c: (lambda v, f=f: format(v, f)) for c, f in (formats or {}).items()}
    return table.to_string(na_rep="", float_format=lambda v: f"{v:.4g}", formatters=formatters)


def _sd_lines(sds: pd.DataFrame) -> list[str]:
    """lme4's random-effects table: group, term, variance, SD (labels left-aligned)."""
    if sds.empty:
        return [" none"]
    names = list(sds["group"])
    groups = [g if g != prev else "" for g, prev in zip(names, [None, *names[:-1]])]
    wg = max(6, *(len(g) for g in groups))
    wt = max(4, *(len(t) for t in sds["term"]))
    lines = [f" {'Groups':<{wg}} {'Name':<{wt}} {'Variance':>10} {'Std.Dev.':>10}"]
    for g, t, sd in zip(groups, sds["term"], sds["estimate"]):
        lines.append(f" {g:<{wg}} {t:<{wt}} {sd ** 2:>10.4g} {sd:>10.4g}")
    return lines


# -- fitting ------------------------------------------------------------------------------------

def fit_ml(model: "Model", reml: bool = True) -> MLResult:
    """Fit ``model`` by REML/ML (gaussian) or the Laplace approximation (GLMMs).

    Parameters
    ----------
    model : bayesmix.Model
    reml : bool
        REML (lme4's default) or ML for gaussian models. GLMMs need ``reml=False``.

    Examples
    --------
    >>> import bayesmix as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> ml = fit_ml(m)
    >>> round(float(ml.varcorr().iloc[0]["estimate"]), 2)
    24.74
    """
    if not all(hasattr(model, a) for a in ("design", "family", "link", "y")):
        raise BayesmixError(f"fit_ml needs a bayesmix.Model, not {type(model).__name__}")
    if any(getattr(b, "cov_chol", None) is not None for b in model.design.blocks):
        raise BayesmixError("fit_ml does not support gr(g, cov=A) terms yet (it would ignore "
                            "A); use the Bayesian fit, model.fit()")
    if getattr(model, "predictors", ()):
        raise BayesmixError("fit_ml fits one linear formula; models with bm.Formula parameter "
                            "formulas or bm.NonLinear need the Bayesian fit (model.fit())")
    family, link, kind = model.family.name, model.link, model.family.ml
    if kind == "lmm" and link != "identity":
        raise FamilyError(f"ML fits of {family} models need the identity link, not {link!r}; "
                          "model log(y) with the identity link instead")
    if kind is None:
        supported = ", ".join(f.name for f in FAMILIES.values() if f.ml is not None)
        raise FamilyError(f"fit_ml does not support family {family!r} (it fits {supported}); "
                          "use the Bayesian fit, model.fit()")
    if kind != "lmm" and reml:
        raise FamilyError(f"REML is defined for gaussian models; use reml=False (Laplace) "
                          f"for the {family} model")
    with _single_threaded_blas():
        return _fit_lmm(model, bool(reml)) if kind == "lmm" else _fit_glmm(model)


def _single_threaded_blas() -> Any:
    """Limit BLAS to one thread while fitting.

    The fits make thousands of small matrix products and factorisations; BLAS threads only
    add synchronisation to those, and on a busy machine they slow a fit down many times.
    threadpoolctl ships with PyMC; without it nothing is limited.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _fit_lmm(model: "Model", reml: bool) -> MLResult:
    design = model.design
    structure = random_structure(design.blocks, design.n)
    # An offset shifts the response: the gaussian likelihood is unchanged otherwise.
    problem = LmmProblem(design.X, model.y - design.offset, structure, reml)
    opt = _optimize(problem.deviance, structure.theta0, structure.lower)
    sol = problem.solve(opt.x)
    return MLResult(model, "REML" if reml else "ML", sol.beta, sol.beta_cov, opt.x, sol.sigma,
                    sol.b, -0.5 * sol.deviance, bool(opt.success), structure, str(opt.message))


def _fit_glmm(model: "Model") -> MLResult:
    design = model.design
    structure = random_structure(design.blocks, design.n)
    trials = None if model.family.ml == "laplace_poisson" else (
        model.trials if model.trials is not None else np.ones_like(model.y))
    problem = GlmmProblem(design.X, model.y, trials, design.offset, structure, model.link)
    n_theta = len(structure.theta0)
    # Stage 1 (glmer's nAGQ=0): theta only, beta found with the conditional modes.
    stage1 = _optimize(problem.profiled_deviance, structure.theta0, structure.lower,
                       rough=True)
    start = np.concatenate([stage1.x, problem.solve(stage1.x).beta])
    # Stage 2 (nAGQ=1): theta and beta together on the Laplace deviance.
    lower = np.concatenate([structure.lower, np.full(len(start) - n_theta, -np.inf)])
    opt = _optimize(problem.deviance, start, lower)
    theta, beta = opt.x[:n_theta], opt.x[n_theta:]
    sol = problem.solve(theta, beta)
    cov, note = _hessian_cov(problem.deviance, opt.x, n_theta, sol.beta_cov)
    message = str(opt.message) + (f"; {note}" if note else "")
    return MLResult(model, "Laplace", beta, cov, theta, None, sol.b, -0.5 * sol.deviance,
                    bool(opt.success), structure, message)


def _optimize(fun: Any, x0: np.ndarray, lower: np.ndarray,
              rough: bool = False) -> optimize.OptimizeResult:
    """L-BFGS-B with lme4's bounds, restarted off a bound when the bound is a saddle.

    The deviance is an even function of a diagonal theta element whose column has no other
    entries, so its gradient there is 0 even when the bound is not a minimum; L-BFGS-B then
    stops on the bound. As lme4's ``restart_edge``, probe the interior and restart from
    there if the deviance is lower.
    """
    if len(x0) == 0:  # nothing to optimise (no random effects in an LMM)
        return optimize.OptimizeResult(x=np.zeros(0), fun=fun(np.zeros(0)), success=True,
                                       message="no parameters to optimise", nfev=1)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    jac, options = ("2-point", _ROUGH) if rough else ("3-point", _OPTIONS)

    def run(x: np.ndarray) -> optimize.OptimizeResult:
        return optimize.minimize(fun, x, method="L-BFGS-B", bounds=bounds, jac=jac,
                                 options=options)

    res = run(np.asarray(x0, dtype=float))
    for i in np.flatnonzero(np.isfinite(lower) & (res.x - lower < 1e-6)):
        trials = []
        for step in _EDGE_TRIALS:
            x = res.x.copy()
            x[i] = lower[i] + step
            trials.append((fun(x), x))
        value, x = min(trials, key=lambda t: t[0])
        if value < res.fun:
            again = run(x)
            if again.fun < res.fun:
                again.nfev += res.nfev
                res = again
    return res


def _hessian_cov(fun: Any, x: np.ndarray, n_theta: int,
                 fallback: np.ndarray) -> tuple[np.ndarray, str]:
    """Fixed-effect covariance from the Hessian of the deviance in (theta, beta), as glmer.

    ``2 H^-1`` restricted to beta accounts for the uncertainty in theta; when ``H`` is not
    positive definite (e.g. theta on its bound) the covariance given theta is returned.
    """
    k = len(x)
    h = 1e-4 * np.maximum(1.0, np.abs(x))
    f0 = fun(x)
    H = np.zeros((k, k))
    shifted = {}

    def at(*moves: tuple[int, float]) -> float:
        key = tuple(sorted(moves))
        if key not in shifted:
            y = x.copy()
            for i, sign in moves:
                y[i] += sign * h[i]
            shifted[key] = fun(y)
        return shifted[key]

    for i in range(k):
        H[i, i] = (at((i, 1.0)) - 2 * f0 + at((i, -1.0))) / h[i] ** 2
        for j in range(i):
            H[i, j] = H[j, i] = (at((i, 1.0), (j, 1.0)) - at((i, 1.0), (j, -1.0))
                                 - at((i, -1.0), (j, 1.0)) + at((i, -1.0), (j, -1.0))) \
                / (4 * h[i] * h[j])
    try:
        np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return fallback, "Hessian not positive definite: standard errors given theta"
    return 2.0 * np.linalg.inv(H)[n_theta:, n_theta:], ""


# -- likelihood-ratio test ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LRTResult:
    """A likelihood-ratio test of two nested fits (R's ``anova(m0, m1)``).

    ``table`` has rows ``m0`` (fewer parameters) and ``m1``; ``p_value_boundary`` is set when
    the models differ only in variance components (see :func:`lrt`).
    """

    table: pd.DataFrame
    statistic: float
    df: int
    p_value: float
    p_value_boundary: float | None
    refitted: bool
    formulas: tuple[str, str]
    note: str = ""

    def __repr__(self) -> str:
        fixed = {c: ".1f" for c in ("AIC", "BIC", "logLik", "deviance")}
        lines = [f"m0: {self.formulas[0]}", f"m1: {self.formulas[1]}",
                 _table(self.table, fixed)]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def lrt(m0: MLResult, m1: MLResult, refit: bool = True) -> LRTResult:
    """Likelihood-ratio test of two nested models fitted to the same data.

    REML fits are refitted by ML first (as lme4's ``anova``), with a warning; with
    ``refit=False`` REML fits are compared only when their fixed effects are identical.
    When the larger model adds only variance components, the chi-square p value is
    conservative (the null value lies on the boundary); ``p_value_boundary`` is the mixture
    ``0.5 chi2(df - 1) + 0.5 chi2(df)`` (Stram & Lee 1994), for one added variance the
    halved p value.

    Examples
    --------
    >>> import bayesmix as bm
    >>> df = bm.datasets.load("sleepstudy")
    >>> a = bm.Model("Reaction ~ Days + (1 | Subject)", df).fit_ml(reml=False)
    >>> b = bm.Model("Reaction ~ Days + (Days | Subject)", df).fit_ml(reml=False)
    >>> test = lrt(a, b)
    >>> test.df, round(test.statistic, 1)
    (2, 42.1)
    """
    for m in (m0, m1):
        if not isinstance(m, MLResult):
            raise BayesmixError(f"lrt compares two MLResult fits (from Model.fit_ml), not "
                                f"{type(m).__name__}")
    _check_same_data(m0, m1)
    same_fixed = _same_fixed(m0, m1)
    refitted = False
    if m0.reml or m1.reml:
        if refit:
            warn("refitting REML fit(s) with ML for the likelihood-ratio test, as lme4's "
                 "anova does (refit=False compares REML fits with identical fixed effects)",
                 UserWarning)
            m0, m1 = (fit_ml(m.model, reml=False) if m.reml else m for m in (m0, m1))
            refitted = True
        elif not (m0.reml and m1.reml and same_fixed):
            raise BayesmixError("REML likelihoods can be compared only between models with the "
                                "same fixed effects, both fitted by REML; use refit=True or "
                                "fit_ml(reml=False)")
    if m0.df > m1.df:
        m0, m1 = m1, m0
    ddf = m1.df - m0.df
    if ddf == 0:
        raise BayesmixError("both models have the same number of parameters; a "
                            "likelihood-ratio test needs nested models")
    stat = max(2.0 * (m1.loglik - m0.loglik), 0.0)  # rounding can make it slightly negative
    p = float(stats.chi2.sf(stat, ddf))
    boundary, note = None, ""
    if same_fixed:
        below = float(stats.chi2.sf(stat, ddf - 1)) if ddf > 1 else 0.0
        boundary = 0.5 * below + 0.5 * p
        note = ("The models differ only in variance components: under the null a variance is "
                "on its boundary (0), so the chi-square p value is conservative; "
                f"p_value_boundary = {boundary:.4g} uses the 50:50 mixture of chi2({ddf - 1}) "
                f"and chi2({ddf}).")
    if refitted:
        note = ("Models refitted with ML (REML -> ML). " + note).strip()
    table = pd.DataFrame({
        "npar": [m0.df, m1.df], "AIC": [m0.aic, m1.aic], "BIC": [m0.bic, m1.bic],
        "logLik": [m0.loglik, m1.loglik], "deviance": [m0.deviance, m1.deviance],
        "Chisq": [np.nan, stat], "Df": [np.nan, float(ddf)], "Pr(>Chisq)": [np.nan, p]},
        index=["m0", "m1"])
    return LRTResult(table, stat, ddf, p, boundary, refitted,
                     (m0.model.spec.formula, m1.model.spec.formula), note)


def _check_same_data(m0: MLResult, m1: MLResult) -> None:
    y0, y1 = m0.model.y, m1.model.y
    if m0.nobs != m1.nobs or not np.array_equal(y0, y1):
        raise DataError(f"the models were fitted to different data ({m0.nobs} and {m1.nobs} "
                        "observations, or different responses); a likelihood-ratio test needs "
                        "the same rows")
    if m0.model.family.name != m1.model.family.name:
        raise FamilyError(f"the models have different families ({m0.model.family.name!r} and "
                          f"{m1.model.family.name!r}); they are not nested")


def _same_fixed(m0: MLResult, m1: MLResult) -> bool:
    d0, d1 = m0.model.design, m1.model.design
    return d0.coef_names == d1.coef_names and np.allclose(d0.X, d1.X)
