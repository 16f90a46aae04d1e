"""Calibration of bayesmix's flags and tests by simulation: ``python -m bayesmix.cli.calibration``.

Every check that returns a p-value or raises a flag is run on data simulated from a stated
model, many times: on data from the fitted model itself its rejection rate is the
false-positive rate (target: the nominal 5 %, within 2 points), on data from a stated
alternative it is the power. The same fits give the frequentist coverage of the 95 %
equal-tailed intervals of the fixed effects and SDs (target 93-97 %).

Studies (:data:`STUDIES`; each names its data-generating model, the fitted model and what it
measures):

``poisson_null``
    ``y ~ x + (1 | g)``, Poisson, 30 levels x 5 rows, intercept 1, slope 0.4, SD 0.3; fitted
    with the same model. False positives of the residual tests (uniformity, dispersion, zero
    inflation, outliers), of the Pareto-k flag (any row above ArviZ's threshold ``good_k``,
    0.7 or less with few draws: the rows ``fit.loo()`` warns about) and of the boundary flag.
``poisson_overdispersed``
    The same with negative-binomial counts (size 2), fitted as Poisson: power of the
    dispersion and uniformity tests.
``poisson_zero_inflated``
    The same with 20 % structural zeros, fitted as Poisson: power of the zero-inflation test.
``gaussian_null``
    ``y ~ x + (1 | g)``, gaussian, 20 levels x 10 rows, sigma 1, SD 0.5: false positives of
    the residual tests and of the boundary flag (SD / sigma = 0.5 with 20 levels); coverage.
``gaussian_null_10``
    As ``gaussian_null`` with 10 levels x 10 rows (the boundary target's smallest design).
``gaussian_sd0`` / ``gaussian_sd0_10``
    As above with SD 0: power of the boundary flag.
``correlation_null``
    ``y ~ x + (x | g)``, gaussian, 30 levels x 10 rows, SDs 0.6 and 0.4, correlation 0:
    false positives of the correlation flag; coverage.
``bernoulli_null``
    ``y ~ x + (1 | g)``, bernoulli, 40 levels x 10 rows, intercept -0.5, slope 0.8, SD 0.8:
    coverage of the logistic GLMM, false positives of the checks.

Each simulation fits with default priors (2 chains x 500 + 500 draws) and records p-values,
flags and interval bounds in ``<out>/<study>.csv``; :func:`summarize` gives the rates with
their Monte-Carlo standard errors. Simulations run in worker processes. Each row also holds
the boundary statistics (pooling factor, SD quantile ratio, the F statistic of the levels:
:func:`level_f`), so :func:`boundary_rule_rates` compares candidate rules on the same fits,
and, with ``--exact-loo N``, exact leave-one-out refits of the N rows of highest Pareto k
(:func:`exact_loo`).

Examples
--------
.. code-block:: console

    python -m bayesmix.cli.calibration --studies poisson_null gaussian_null --n-sims 400
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.diagnostics.boundary import POOLING_MIN

__all__ = ["Study", "STUDIES", "BOUNDARY_RULES", "simulate", "level_f", "run_one", "run_study",
           "summarize", "boundary_rule_rates", "exact_loo", "exact_loo_summary", "main"]


@dataclass(frozen=True)
class Study:
    """A data-generating model and the model fitted to its data."""

    name: str
    formula: str
    fit_family: str
    make: Callable[[np.random.Generator], tuple[pd.DataFrame, dict[str, float]]]
    measures: str


def _groups(rng: np.random.Generator, J: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(np.arange(J), n), rng.normal(size=J * n)


def _frame(y: np.ndarray, x: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]})


def _poisson(kind: str) -> Callable[[np.random.Generator], tuple[pd.DataFrame, dict]]:
    def make(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
        g, x = _groups(rng, 30, 5)
        mu = np.exp(1.0 + 0.4 * x + rng.normal(0.0, 0.3, 30)[g])
        if kind == "overdispersed":
            y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
        else:
            y = rng.poisson(mu)
            if kind == "zero_inflated":
                y = np.where(rng.uniform(size=y.size) < 0.2, 0, y)
        return _frame(y, x, g), {"fixef[(Intercept)]": 1.0, "fixef[x]": 0.4,
                                 "sd_g[(Intercept)]": 0.3}
    return make


def _gaussian(J: int, sd: float) -> Callable[[np.random.Generator], tuple[pd.DataFrame, dict]]:
    def make(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
        g, x = _groups(rng, J, 10)
        y = 2.0 + 0.5 * x + rng.normal(0.0, sd, J)[g] + rng.normal(size=g.size)
        return _frame(y, x, g), {"fixef[(Intercept)]": 2.0, "fixef[x]": 0.5,
                                 "sd_g[(Intercept)]": sd, "sigma": 1.0}
    return make


def _correlated(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    g, x = _groups(rng, 30, 10)
    a, b = rng.normal(0.0, 0.6, 30), rng.normal(0.0, 0.4, 30)
    y = 1.0 + 0.3 * x + a[g] + b[g] * x + rng.normal(size=g.size)
    return _frame(y, x, g), {"fixef[(Intercept)]": 1.0, "fixef[x]": 0.3,
                             "sd_g[(Intercept)]": 0.6, "sd_g[x]": 0.4,
                             "cor_g[(Intercept),x]": 0.0, "sigma": 1.0}


def _bernoulli(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    g, x = _groups(rng, 40, 10)
    eta = -0.5 + 0.8 * x + rng.normal(0.0, 0.8, 40)[g]
    y = (rng.uniform(size=g.size) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return _frame(y, x, g), {"fixef[(Intercept)]": -0.5, "fixef[x]": 0.8,
                             "sd_g[(Intercept)]": 0.8}


STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("poisson_null", "y ~ x + (1 | g)", "poisson", _poisson("null"),
          "false positives: residual tests, Pareto k, boundary; coverage"),
    Study("poisson_overdispersed", "y ~ x + (1 | g)", "poisson", _poisson("overdispersed"),
          "power: dispersion test (negative binomial, size 2)"),
    Study("poisson_zero_inflated", "y ~ x + (1 | g)", "poisson", _poisson("zero_inflated"),
          "power: zero-inflation test (20 % structural zeros)"),
    Study("gaussian_null", "y ~ x + (1 | g)", "gaussian", _gaussian(20, 0.5),
          "false positives: residual tests, boundary (SD/sigma 0.5, 20 levels); coverage"),
    Study("gaussian_null_10", "y ~ x + (1 | g)", "gaussian", _gaussian(10, 0.5),
          "false positives: boundary (SD/sigma 0.5, 10 levels of 10 rows)"),
    Study("gaussian_sd0", "y ~ x + (1 | g)", "gaussian", _gaussian(20, 0.0),
          "power: boundary flag (SD 0, 20 levels)"),
    Study("gaussian_sd0_10", "y ~ x + (1 | g)", "gaussian", _gaussian(10, 0.0),
          "power: boundary flag (SD 0, 10 levels)"),
    Study("correlation_null", "y ~ x + (x | g)", "gaussian", _correlated,
          "false positives: correlation flag (true correlation 0); coverage"),
    Study("bernoulli_null", "y ~ x + (1 | g)", "bernoulli", _bernoulli,
          "coverage of the logistic GLMM; false positives of its checks"),
)}


def simulate(study: Study, sim: int, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """The data of simulation ``sim`` and the true parameters.

    Examples
    --------
    >>> df, truth = simulate(STUDIES["gaussian_null"], 0, 1)
    >>> df.shape, truth["sigma"]
    ((200, 3), 1.0)
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, sim]))
    return study.make(rng)


def level_f(df: pd.DataFrame) -> float:
    """The F statistic of the levels of ``g`` after ``x`` (least squares, ``y ~ x`` against
    ``y ~ x + g``): the classical test whose power bounds any boundary rule's in a balanced
    gaussian design (``docs/validation.md``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g, x = _groups(rng, 10, 10)
    >>> df = _frame(rng.normal(size=100) + 3.0 * (g % 2), x, g)
    >>> level_f(df) > 10
    True
    """
    y, x = df["y"].to_numpy(float), df["x"].to_numpy(float)
    levels = pd.get_dummies(df["g"]).to_numpy(float)
    small = np.column_stack([np.ones_like(x), x])
    big = np.column_stack([levels, x])

    def rss(X: np.ndarray) -> float:
        return float(np.sum((y - X @ np.linalg.lstsq(X, y, rcond=None)[0]) ** 2))

    df_levels, df_resid = levels.shape[1] - 1, y.size - levels.shape[1] - 1
    return ((rss(small) - rss(big)) / df_levels) / (rss(big) / df_resid)


# Boundary rules compared on the same fits (the threshold pilot of docs/validation.md):
# name -> (column, flags when). The first is the flag's own threshold.
BOUNDARY_RULES: dict[str, tuple[str, Callable[[pd.Series], pd.Series]]] = {
    f"pooling factor >= {POOLING_MIN}": ("pooling_g[(Intercept)]", lambda v: v >= POOLING_MIN),
    "pooling factor >= 0.80": ("pooling_g[(Intercept)]", lambda v: v >= 0.80),
    "F < 1.2": ("f_level_means", lambda v: v < 1.2),
    "former rule (q10 / median <= 0.3)": ("ratio_g[(Intercept)]", lambda v: v <= 0.3),
}


def boundary_rule_rates(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """How often each rule of :data:`BOUNDARY_RULES` flags the level SD, on the same fits.

    Examples
    --------
    >>> t = pd.DataFrame({"pooling_g[(Intercept)]": [0.9, 0.5], "f_level_means": [1.0, 3.0],
    ...                   "ratio_g[(Intercept)]": [0.1, 0.6]})
    >>> boundary_rule_rates(t)["rule: F < 1.2"]["rate"]
    0.5
    """
    return {f"rule: {name}": _rate(rule(table[column].astype(float)))
            for name, (column, rule) in BOUNDARY_RULES.items() if column in table}


def _intervals(fit: Any) -> dict[str, tuple[float, float, float]]:
    """95 % equal-tailed intervals of every scalar parameter (fixed effects, SDs, correlations,
    family parameters), with the posterior mean."""
    from bayesmix.validation.sbc import scalar_draws

    return {k: (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975)), float(v.mean()))
            for k, v in scalar_draws(fit.idata["posterior"].to_dataset()).items()}


def exact_loo(fit: Any, df: pd.DataFrame, result: Any, n_rows: int,
              sim: int) -> dict[str, float]:
    """Exact leave-one-out for the ``n_rows`` rows of highest plain Pareto k: the model refitted
    without the row (2 chains x 1000 draws), ``log mean_s p(y_i | theta_s)``, beside the
    plain PSIS and the integrated estimates (columns ``exact{r}_*``, r = 0, 1, ...)."""
    from scipy.special import logsumexp

    import bayesmix as bm
    from bayesmix.posterior.draws import family_param_draws, linear_predictor
    from bayesmix.validation.compare import loo

    plain = loo(fit.idata, fit.model, integrate=False)
    k = np.asarray(plain.pareto_k.values, float)
    k_int = np.asarray(result.pareto_k.values, float)
    out: dict[str, float] = {}
    for r, i in enumerate(np.argsort(-k)[:n_rows]):
        rest = df.drop(index=df.index[i])
        refit = bm.Model(fit.model.spec.formula, rest, family=fit.model.family.name).fit(
            draws=1000, tune=1000, chains=2, random_seed=sim + 7, progressbar=False)
        new = df.iloc[[i]]
        eta = linear_predictor(refit.idata, refit.model, new)
        params = family_param_draws(refit.idata, refit.model, newdata=new)
        trials = None if fit.model.trials is None else fit.model.trials[[i]]
        ll = refit.model.family.loglik(fit.model.y[[i]], eta, refit.model.link, params, trials)
        out.update({f"exact{r}_k_plain": float(k[i]), f"exact{r}_k_integrated": float(k_int[i]),
                    f"exact{r}_elpd": float(logsumexp(ll.ravel()) - np.log(ll.size)),
                    f"exact{r}_psis": float(plain.elpd_i.values[i]),
                    f"exact{r}_integrated": float(result.elpd_i.values[i])})
    return out


def run_one(study: Study, sim: int, seed: int, draws: int = 500,
            exact_rows: int = 0) -> dict[str, Any]:
    """Fit one simulated data set; p-values, flags and interval coverage (and, with
    ``exact_rows``, exact leave-one-out of the rows of highest Pareto k: :func:`exact_loo`)."""
    import bayesmix as bm
    from bayesmix.diagnostics import residuals as R
    from bayesmix.diagnostics.boundary import boundary_flags, sd_statistics
    from bayesmix.validation.compare import loo

    df, truth = simulate(study, sim, seed)
    row: dict[str, Any] = {"study": study.name, "sim": sim}
    t0 = time.perf_counter()
    try:
        model = bm.Model(study.formula, df, family=study.fit_family)
        fit = model.fit(draws=draws, tune=draws, chains=2, random_seed=sim + 1,
                        progressbar=False)
        res = R.simulated_residuals(fit.idata, fit.model, n_sims=250, random_seed=sim)
        for test in (R.uniformity_test, R.dispersion_test, R.zero_inflation_test,
                     R.outlier_test):
            result = test(res)
            row[f"p_{result.name}"] = result.p_value
            row[f"stat_{result.name}"] = result.statistic
        result = loo(fit.idata, fit.model)
        k = np.asarray(result.pareto_k.values, float)
        plain = k if result.influence_pareto_k is None else \
            np.asarray(result.influence_pareto_k.values, float)
        row["pareto_k_max"] = float(k.max())
        row["pareto_k_flag"] = bool(np.any(k > result.good_k))  # LooWarning's threshold
        row["pareto_k_plain_flag"] = bool(np.any(plain > result.good_k))  # plain PSIS
        row["loo_good_k"] = float(result.good_k)
        if exact_rows:
            row.update(exact_loo(fit, df, result, exact_rows, sim))
        for block in fit.model.design.blocks:  # the boundary statistics, per term
            for term, pooling, (_, q10, median, _) in sd_statistics(fit.idata, block):
                row[f"pooling_{block.name}[{term}]"] = pooling
                row[f"ratio_{block.name}[{term}]"] = float(q10 / median)
        row["f_level_means"] = level_f(df)
        flags = boundary_flags(fit.idata, fit.model)
        row["boundary_sd_flag"] = any(f.kind == "sd" for f in flags)
        row["boundary_cor_flag"] = any(f.kind == "cor" for f in flags)
        row["divergences"] = int(fit.idata["sample_stats"]["diverging"].values.sum())
        for name, (lo, hi, mean) in _intervals(fit).items():
            if name in truth:
                row[f"cover_{name}"] = bool(lo <= truth[name] <= hi)
                row[f"below_{name}"] = bool(truth[name] < lo)  # misses, by side
                row[f"error_{name}"] = mean - truth[name]
        row["centred"] = bool(model.centered[0]) if model.centered else False
        row["marginal"] = bool(model.marginal)
    except Exception as error:  # noqa: BLE001  (recorded; the summary counts them)
        row["error"] = f"{type(error).__name__}: {error}"[:200]
    row["seconds"] = time.perf_counter() - t0
    return row


def _job(args: tuple[str, list[int], int, int, int]) -> list[dict[str, Any]]:
    name, sims, seed, draws, exact_rows = args
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    return [run_one(STUDIES[name], sim, seed, draws, exact_rows) for sim in sims]


def run_study(name: str, n_sims: int, out: Path, seed: int = 2026, processes: int = 2,
              draws: int = 500, exact_rows: int = 0) -> pd.DataFrame:
    """Run ``n_sims`` simulations of one study into ``out/<name>.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, list(range(k, n_sims, processes)), seed, draws, exact_rows)
            for k in range(processes)]
    if processes > 1:
        with get_context("spawn").Pool(processes) as pool:
            parts = pool.map(_job, jobs, chunksize=1)
    else:
        parts = [_job(job) for job in jobs]
    table = pd.DataFrame([row for part in parts for row in part]).sort_values("sim")
    table.to_csv(out / f"{name}.csv", index=False)
    return table


def _rate(x: pd.Series) -> dict[str, float]:
    x = x.dropna().astype(float)
    n = len(x)
    p = float(x.mean()) if n else float("nan")
    return {"rate": p, "n": n, "mc_se": float(np.sqrt(p * (1 - p) / n)) if n else float("nan")}


def summarize(table: pd.DataFrame, alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """Rejection rates of each test at ``alpha``, flag rates and coverage, with MC SEs.

    Examples
    --------
    >>> t = pd.DataFrame({"p_dispersion": np.linspace(0.001, 1, 100), "pareto_k_flag": False})
    >>> s = summarize(t)
    >>> round(s["dispersion p < 0.05"]["rate"], 2), s["pareto_k_flag"]["rate"]
    (0.05, 0.0)
    """
    ok = table[table["error"].isna()] if "error" in table else table
    out: dict[str, dict[str, float]] = {}
    for col in ok.columns:
        if col.startswith("p_"):
            out[f"{col[2:]} p < {alpha}"] = _rate(ok[col] < alpha)
        elif col.endswith("_flag") or col.startswith(("cover_", "below_")):
            out[col] = _rate(ok[col])
        elif col.startswith("error_"):  # the posterior mean's bias, with its MC SE
            e = ok[col].dropna().astype(float)
            out[col] = {"rate": float(e.mean()), "n": len(e),
                        "mc_se": float(e.std() / np.sqrt(len(e))) if len(e) > 1 else 0.0}
    out["failed fits"] = {"rate": float(len(table) - len(ok)), "n": len(table), "mc_se": 0.0}
    out.update(boundary_rule_rates(ok))
    out.update(exact_loo_summary(ok))
    return out


def exact_loo_summary(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean absolute error of the plain PSIS and the integrated ``elpd_loo_i`` against exact
    leave-one-out (the ``exact{r}_*`` columns), for rows whose plain k is above the fit's
    ``good_k`` (column ``loo_good_k``; 0.7 if absent) and for the others; ``rate`` holds the
    mean error, ``mc_se`` its standard error.

    Examples
    --------
    >>> t = pd.DataFrame({"exact0_k_plain": [0.9, 0.2], "exact0_k_integrated": [0.3, 0.2],
    ...                   "exact0_elpd": [-2.0, -1.0], "exact0_psis": [-1.5, -1.0],
    ...                   "exact0_integrated": [-2.1, -1.0]})
    >>> s = exact_loo_summary(t)
    >>> round(s["exact LOO |error| psis, k > good_k"]["rate"], 3), s["exact LOO rows, k > good_k"]["n"]
    (0.5, 1)
    """
    good_k = table["loo_good_k"] if "loo_good_k" in table else pd.Series(0.7, table.index)
    parts = [table[[c for c in table if c.startswith(f"exact{r}_")]].set_axis(
        [c.split("_", 1)[1] for c in table if c.startswith(f"exact{r}_")], axis=1)
        .assign(good_k=good_k) for r in range(100) if f"exact{r}_elpd" in table]
    if not parts:
        return {}
    rows = pd.concat(parts).dropna(subset=["elpd"])
    high = rows["k_plain"] > rows["good_k"]
    out: dict[str, dict[str, float]] = {}
    for label, sel in (("k > good_k", high), ("k <= good_k", ~high)):
        part = rows[sel]
        out[f"exact LOO rows, {label}"] = {"rate": float(len(part)), "n": len(part), "mc_se": 0.0}
        for kind in ("psis", "integrated"):
            e = (part[kind] - part["elpd"]).abs()
            out[f"exact LOO |error| {kind}, {label}"] = {
                "rate": float(e.mean()) if len(e) else float("nan"), "n": len(e),
                "mc_se": float(e.std() / np.sqrt(len(e))) if len(e) > 1 else 0.0}
        out[f"exact LOO integrated k > good_k, {label}"] = _rate(
            part["k_integrated"] > part["good_k"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bayesmix.cli.calibration",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--n-sims", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("calibration_results"))
    parser.add_argument("--exact-loo", type=int, default=0, metavar="N",
                        help="refit without each of the N rows of highest Pareto k per "
                             "simulation (exact leave-one-out against PSIS and integrated)")
    args = parser.parse_args(argv)
    summary = {}
    for name in args.studies:
        t0 = time.perf_counter()
        table = run_study(name, args.n_sims, args.out, args.seed, args.processes, args.draws,
                          args.exact_loo)
        summary[name] = {"formula": STUDIES[name].formula, "family": STUDIES[name].fit_family,
                         "measures": STUDIES[name].measures,
                         "wall_seconds": time.perf_counter() - t0, **summarize(table)}
        print(name, json.dumps(summary[name], default=float)[:2000], flush=True)
        (args.out / "calibration_summary.json").write_text(json.dumps(summary, indent=1,
                                                                      default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
