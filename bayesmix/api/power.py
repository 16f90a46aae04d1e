"""``bm.power``: simulation-based power of a mixed-model design (what R users do with simr).

For every design point (effect size, number of groups, observations per group, variance
components), ``nsim`` data sets are simulated from the model, each is fitted with NUTS on
the batch runner (:mod:`bayesmix.runner`: a Dask cluster, or ``scheduler="serial"``), and a
*decision* is taken on each posterior. The power is the fraction of data sets where the
decision says "effect found", with its Monte-Carlo standard error
``sqrt(p (1 - p) / nsim)`` and a 95% Wilson interval.

The built-in simulator is a two-arm design with random intercepts (and optionally random
slopes): ``y = intercept + effect_size * treat + u_group (+ v_group * treat) + e`` with
``u ~ N(0, sd_group)``, ``v ~ N(0, sd_slope)``, ``e ~ N(0, sigma)``. With
``assignment="between"`` the groups are randomised (a cluster-randomised trial: groups
alternate between arms, so ``n_groups // 2`` are treated); with ``"within"`` every group has
both arms, observations alternating. Any other design: pass ``simulate(rng, **design)``
returning a DataFrame, and the ``formula`` to fit.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayesmix.api.batch import _shared_priors, task_seed
from bayesmix.errors import BatchError
from bayesmix.runner import RunReport, run_tasks

__all__ = ["power", "PowerResult", "simulate_two_arm", "closed_form_power"]

DECISIONS = ("interval", "positive")
_GRID = ("effect_size", "n_groups", "n_per_group", "sd_group", "sigma", "sd_slope")


def simulate_two_arm(rng: np.random.Generator, effect_size: float, n_groups: int,
                     n_per_group: int, sd_group: float = 1.0, sigma: float = 1.0,
                     sd_slope: float = 0.0, assignment: str = "between",
                     intercept: float = 0.0) -> pd.DataFrame:
    """One data set of the built-in two-arm design (columns ``y``, ``treat``, ``group``).

    Examples
    --------
    >>> import numpy as np
    >>> d = simulate_two_arm(np.random.default_rng(1), 0.5, n_groups=4, n_per_group=3)
    >>> d.groupby("group")["treat"].mean().tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    n_groups, n_per_group = int(n_groups), int(n_per_group)
    group = np.repeat(np.arange(n_groups), n_per_group)
    if assignment == "between":
        treat = (group % 2).astype(float)
    elif assignment == "within":
        treat = (np.tile(np.arange(n_per_group), n_groups) % 2).astype(float)
    else:
        raise BatchError(f"assignment must be 'between' or 'within', not {assignment!r}")
    u = rng.normal(0.0, sd_group, n_groups)
    v = rng.normal(0.0, sd_slope, n_groups) if sd_slope > 0 else np.zeros(n_groups)
    y = intercept + effect_size * treat + u[group] + v[group] * treat + \
        rng.normal(0.0, sigma, group.size)
    return pd.DataFrame({"y": y, "treat": treat, "group": pd.Categorical(
        [f"g{g:03d}" for g in group])})


def closed_form_power(effect_size: float, n_groups: int, n_per_group: int,
                      sd_group: float = 1.0, sigma: float = 1.0, sd_slope: float = 0.0,
                      assignment: str = "between", prob: float = 0.95,
                      two_sided: bool = True) -> dict[str, float]:
    """Power of the two-sided frequentist test of the built-in design, in closed form.

    ``"z"``: ``Phi(|delta| / SE - z_{(1+prob)/2})`` with the design-effect standard error;
    ``"t"``: the same test with the t distribution (non-central t; the exact power of the
    t-test on group means for ``"between"``), which small numbers of groups need. ``"se"``:
    the standard error. ``two_sided=False``: the one-sided test of ``effect > 0`` at level
    ``1 - prob`` (power ``Phi(delta / SE - z_prob)``). Between groups (``n_groups`` even, half treated):
    ``SE^2 = 4 (sd_group^2 + sigma^2 / n_per_group) / n_groups``, df ``n_groups - 2``; within
    groups (both arms in every group, ``n_per_group`` even):
    ``SE^2 = (sd_slope^2 + 4 sigma^2 / n_per_group) / n_groups``, df ``n_groups - 1`` (with
    ``sd_slope = 0``: df ``n_groups (n_per_group - 1) - 1``).

    Examples
    --------
    >>> round(closed_form_power(0.6, 20, 5, sd_group=0.5, sigma=1.0)["z"], 3)
    0.516
    """
    m, j = float(n_per_group), float(n_groups)
    if assignment == "between":
        se = math.sqrt(4 * (sd_group ** 2 + sigma ** 2 / m) / j)
        df = j - 2
    else:
        se = math.sqrt((sd_slope ** 2 + 4 * sigma ** 2 / m) / j)
        df = j - 1 if sd_slope > 0 else j * (m - 1) - 1
    if not two_sided:
        ncp = effect_size / se
        return {"z": float(stats.norm.cdf(ncp - stats.norm.ppf(prob))),
                "t": float(stats.nct.sf(stats.t.ppf(prob, df), df, ncp)), "se": se, "df": df}
    q = (1 + prob) / 2
    ncp = abs(effect_size) / se
    z = stats.norm.cdf(ncp - stats.norm.ppf(q)) + stats.norm.cdf(-ncp - stats.norm.ppf(q))
    tc = stats.t.ppf(q, df)
    t = stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp)
    return {"z": float(z), "t": float(t), "se": se, "df": df}


def power_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Simulate one data set, fit it, take the decision (runs in a worker)."""
    from bayesmix.api.model import Model

    rng = np.random.default_rng(payload["seed"])
    data = payload["simulate"](rng, **payload["design"])
    model = Model(payload["formula"], data, **payload["model_args"])
    fit = model.fit(**payload["fit_args"], random_seed=payload["seed"], progressbar=False)
    effect, prob = payload["effect"], payload["prob"]
    table = fit.fixef(prob=prob)
    if effect not in table.index:
        raise BatchError(f"the effect {effect!r} is not a fixed effect of the model; its "
                         f"coefficients: {', '.join(map(str, table.index))}")
    row = table.loc[effect]
    draws = np.asarray(fit.posterior["fixef"].sel(coef=effect)).ravel()
    lower, upper = float(row.iloc[2]), float(row.iloc[3])
    decision = payload["decision"]
    if decision == "interval":
        reject = lower > 0 or upper < 0
    elif decision == "positive":
        reject = float(np.mean(draws > 0)) >= prob
    else:
        reject = bool(decision(draws))
    report = fit.sampling_report()
    truth = payload["design"].get("effect_size")
    return {"estimate": float(row["mean"]), "sd": float(row["sd"]), "lower": lower,
            "upper": upper, "p_positive": float(np.mean(draws > 0)), "reject": bool(reject),
            "covered": None if truth is None else bool(lower <= truth <= upper),
            "divergences": report.divergences, "max_rhat": report.max_rhat,
            "problems": len(report.problems)}


def _wilson(k: float, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    z = stats.norm.ppf((1 + level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@dataclass
class PowerResult:
    """The result of :func:`power`.

    Attributes
    ----------
    table : DataFrame
        One row per design point: the design's values, ``nsim``, ``n_failed`` (fits that
        raised), ``power`` (fraction of successful fits where the decision found the
        effect), ``mcse`` (its Monte-Carlo SE), ``lower``/``upper`` (95% Wilson interval),
        ``mean_estimate``, ``mean_sd`` (of the effect's posterior), ``coverage`` (fraction
        of intervals containing the true effect), ``n_problems`` (fits with sampling
        problems) and, for the built-in design, ``power_z``/``power_t`` (closed forms,
        :func:`closed_form_power`).
    simulations : DataFrame
        One row per simulated data set: design point, ``sim``, estimate, interval,
        ``reject``, diagnostics, ``status``/``error``.
    decision : str
        The decision rule, in words.
    report : RunReport
        Wall time, worker memory (:mod:`bayesmix.runner`).
    """

    table: pd.DataFrame
    simulations: pd.DataFrame
    decision: str
    report: RunReport
    design_columns: tuple[str, ...] = ()

    def plot(self, x: str | None = None, ax: Any = None) -> Any:
        """Power curve with Monte-Carlo intervals (and the closed forms where known).

        Examples
        --------
        >>> res.plot("n_groups").savefig("power.png")  # doctest: +SKIP
        """
        from bayesmix.plots.power import plot_power

        return plot_power(self.table, x=x, design_columns=self.design_columns, ax=ax,
                          title=self.decision)

    def __repr__(self) -> str:
        cols = [*self.design_columns, "nsim", "power", "mcse", "lower", "upper"]
        cols += [c for c in ("power_z", "power_t") if c in self.table]
        return f"<PowerResult: {self.decision}>\n" + self.table[cols].to_string(
            index=False, float_format=lambda v: f"{v:.3g}")


def _grid(values: dict[str, Any]) -> list[dict[str, Any]]:
    lists = {k: list(v) if isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str)
             else [v] for k, v in values.items()}
    for k, v in lists.items():
        if not v:
            raise BatchError(f"{k} has no values")
    return [dict(zip(lists, combo)) for combo in itertools.product(*lists.values())]


def power(effect_size: float | Sequence[float], n_groups: int | Sequence[int],
          n_per_group: int | Sequence[int], *, sd_group: float | Sequence[float] = 1.0,
          sigma: float | Sequence[float] = 1.0, sd_slope: float | Sequence[float] = 0.0,
          assignment: str = "between", intercept: float = 0.0, formula: Any = None,
          effect: str = "treat", simulate: Callable[..., pd.DataFrame] | None = None,
          nsim: int = 200, prob: float = 0.95,
          decision: str | Callable[[np.ndarray], bool] = "interval",
          family: str = "gaussian", priors: dict[str, Any] | None = None,
          draws: int = 500, tune: int = 500, chains: int = 2, random_seed: int = 0,
          scheduler: Any = None, n_workers: int = 2,
          output_dir: str | os.PathLike[str] | None = None, retries: int = 2,
          progressbar: bool = True) -> PowerResult:
    """Simulation-based power of a mixed-model design, on the batch runner.

    Parameters
    ----------
    effect_size, n_groups, n_per_group, sd_group, sigma, sd_slope
        The design; each may be a list, and every combination is a design point (a power
        curve over ``n_groups``: ``n_groups=[10, 20, 30, 40]``). ``effect_size`` is on the
        response scale (the coefficient of ``treat``).
    assignment : {"between", "within"}
        Groups randomised to arms (cluster-randomised), or both arms in every group.
    formula : optional
        The model fitted to each data set; default ``"y ~ treat + (1 | group)"``
        (``"y ~ treat + (treat || group)"`` when ``sd_slope > 0``).
    effect : str
        The fixed effect the decision is about.
    simulate : callable, optional
        ``simulate(rng, **design) -> DataFrame`` for another design (a module-level function:
        it is sent to the workers); the design keywords are those given above that it needs.
    nsim : int
        Simulated data sets per design point; the Monte-Carlo SE of the power is at most
        ``0.5 / sqrt(nsim)`` (0.035 for 200).
    prob, decision
        The decision on each posterior. ``"interval"`` (default): the central ``prob``
        posterior interval of ``effect`` excludes 0 (two-sided, the Bayesian analogue of a
        test at level ``1 - prob``); ``"positive"``: ``P(effect > 0) >= prob`` (one-sided);
        or a function of the effect's posterior draws returning True for "found".
    family, priors
        As :class:`~bayesmix.Model`. The default priors (weakly informative, scaled to the
        data) are computed once per design point on a pilot data set and shared by its
        simulations (see ``shared_priors`` in :func:`~bayesmix.fit_many`).
    draws, tune, chains, random_seed
        Sampling of each fit; each simulation's seed derives from ``random_seed`` and its id.
    scheduler, n_workers, output_dir, retries, progressbar
        As :func:`~bayesmix.fit_many`: an embedded ``LocalCluster`` by default; results are
        written to ``output_dir`` as they finish and a rerun resumes.

    Returns
    -------
    PowerResult
        ``.table`` (power per design point with Monte-Carlo SE and interval),
        ``.simulations``, ``.plot()``.

    Examples
    --------
    >>> import bayesmix as bm
    >>> res = bm.power(0.6, n_groups=20, n_per_group=5, sd_group=0.5, nsim=4,
    ...                draws=100, tune=100, chains=1, scheduler="serial", progressbar=False)
    >>> res.table[["n_groups", "nsim"]].values.tolist()
    [[20, 4]]
    """
    from bayesmix.inference.sample import SamplerSettings

    if not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise BatchError(f"nsim must be a positive integer, not {nsim!r}")
    if not 0 < prob < 1:
        raise BatchError(f"prob must be in (0, 1), not {prob!r}")
    if isinstance(decision, str) and decision not in DECISIONS:
        raise BatchError(f"decision must be one of {', '.join(DECISIONS)} or a function of "
                         f"the effect's draws, not {decision!r}")
    fit_args = {"draws": draws, "tune": tune, "chains": chains, "cores": 1}
    SamplerSettings(**fit_args)
    builtin = simulate is None
    values = {"effect_size": effect_size, "n_groups": n_groups, "n_per_group": n_per_group,
              "sd_group": sd_group, "sigma": sigma, "sd_slope": sd_slope}
    points = _grid(values)
    varying = tuple(k for k in _GRID if len(_grid({k: values[k]})) > 1) or ("effect_size",)
    if builtin:
        simulate = simulate_two_arm
        for p in points:
            p.update(assignment=assignment, intercept=intercept)
            if assignment == "between" and int(p["n_groups"]) < 4:
                raise BatchError("a cluster-randomised design needs n_groups >= 4")
    if formula is None:
        if not builtin:
            raise BatchError("with simulate=..., give the formula to fit")
        slopes = any(float(p["sd_slope"]) > 0 for p in points)
        formula = "y ~ treat + (treat || group)" if slopes else "y ~ treat + (1 | group)"
    base_args = {"family": family, **({"priors": priors} if priors else {})}
    if isinstance(decision, str):
        rule = (f"the central {prob:.0%} posterior interval of {effect} excludes 0"
                if decision == "interval" else f"P({effect} > 0) >= {prob:g}")
    else:
        rule = f"{getattr(decision, '__name__', 'decision')}(draws of {effect})"

    tasks: dict[str, dict[str, Any]] = {}
    fingerprints: dict[str, str] = {}
    where: dict[str, tuple[int, int]] = {}
    for i, point in enumerate(points):
        pilot = simulate(np.random.default_rng(task_seed(random_seed, f"pilot{i}")), **point)
        args = _shared_priors(formula, {"pilot": pilot}, base_args)
        label = ",".join(f"{k}={point[k]}" for k in _GRID if k in point)
        for k in range(nsim):
            task_id = f"{label};sim={k}"
            where[task_id] = (i, k)
            tasks[task_id] = {"design": point, "simulate": simulate, "formula": formula,
                              "model_args": args, "fit_args": fit_args,
                              "seed": task_seed(random_seed, task_id), "effect": effect,
                              "prob": prob, "decision": decision}
            fingerprints[task_id] = hashlib.sha256(repr((
                str(formula), sorted((a, repr(b)) for a, b in args.items()),
                sorted(fit_args.items()), sorted(point.items()), effect, prob, rule,
                getattr(simulate, "__qualname__", repr(simulate)), random_seed)).encode()
            ).hexdigest()[:20]
    report = run_tasks(power_task, tasks, fingerprints=fingerprints, scheduler=scheduler,
                       n_workers=n_workers, output_dir=output_dir, retries=retries,
                       progressbar=progressbar, desc="simulations")
    sims = []
    for task_id, record in report.results.items():
        i, k = where[task_id]
        sims.append({"point": i, **{c: points[i][c] for c in _GRID if c in points[i]},
                     "sim": k, "status": record["status"], "error": record.get("error", ""),
                     **(record.get("result") or {})})
    sim_table = pd.DataFrame(sims)
    rows = []
    for i, point in enumerate(points):
        s = sim_table[(sim_table["point"] == i)]
        ok = s[s["status"] == "ok"] if "status" in s else s
        n = len(ok)
        k = float(ok["reject"].sum()) if n else math.nan
        p = k / n if n else math.nan
        lo, hi = _wilson(k, n)
        row = {**{c: point[c] for c in _GRID if c in point}, "nsim": len(s),
               "n_failed": len(s) - n, "power": p,
               "mcse": math.sqrt(p * (1 - p) / n) if n else math.nan, "lower": lo, "upper": hi,
               "mean_estimate": float(ok["estimate"].mean()) if n else math.nan,
               "mean_sd": float(ok["sd"].mean()) if n else math.nan,
               "coverage": float(ok["covered"].mean()) if n else math.nan,
               "n_problems": int((ok["problems"] > 0).sum()) if n else 0}
        if builtin and decision in ("interval", "positive"):
            cf = closed_form_power(point["effect_size"], point["n_groups"],
                                   point["n_per_group"], point["sd_group"], point["sigma"],
                                   point["sd_slope"], assignment, prob,
                                   two_sided=decision == "interval")
            row.update(power_z=cf["z"], power_t=cf["t"])
        rows.append(row)
    return PowerResult(table=pd.DataFrame(rows), simulations=sim_table, decision=rule,
                       report=report, design_columns=varying)
