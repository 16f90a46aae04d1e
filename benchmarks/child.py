"""One benchmark job in a fresh process: ``python benchmarks/child.py JOB.json``.

Runs in the bayesmix environment or in bambi's own one, so it imports neither library at module
level and nothing from ``bayesmix``/``benchmarks`` (bambi's environment has neither).

The timed region is the whole job after imports and data loading: model construction,
compilation and sampling (for bayesmix also its post-processing and sampling report, which
``fit()`` runs). The result is printed as one line ``BENCH_RESULT {json}``:

``wall_s`` timed region; ``construct_s`` model object construction (bayesmix: design,
priors, centring; bambi: ``bmb.Model``); ``compile_s`` PyMC model building plus compilation
(bayesmix: ``fit.timing`` build + compile; bambi: ``Model.build`` plus PyMC's ``init_nuts``,
which compiles the log density and its gradient); ``sampling_s``; ``min_ess_bulk`` and
``worst`` over the non-level parameters (fixed effects, group SDs, correlations, family
parameters); ``min_ess_levels`` over the level effects; ``peak_rss_mb`` (``ru_maxrss``,
imports included); ``grad_evals`` (leapfrog steps over all chains, warm-up excluded);
``second_fit_s`` a second construction and fit of the same model in the same process
(when asked).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(csv: str, meta: str):
    import pandas as pd

    info = json.load(open(meta))
    cats = info["categories"]
    df = pd.read_csv(csv, dtype={c: str for c in cats})
    for col, levels in cats.items():
        df[col] = pd.Categorical(df[col], categories=levels)
    return df


def run_bayesmix(job: dict, df) -> dict:
    import bayesmix as bm

    try:
        bm.get_family(job["family"])
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"family not available in bayesmix: {exc}"}

    def one() -> tuple[float, dict, object]:
        t0 = time.perf_counter()
        model = bm.Model(job["formula"], df, family=job["family"])
        t_construct = time.perf_counter() - t0
        fit = model.fit(draws=job["draws"], tune=job["tune"], chains=job["chains"],
                        random_seed=job["seed"], progressbar=False)
        wall = time.perf_counter() - t0
        return wall, {"construct_s": t_construct, **fit.timing}, fit

    wall, timing, fit = one()
    rep = fit.sampling_report()
    stats = fit.idata["sample_stats"].to_dataset()
    out = {
        "wall_s": wall, "construct_s": timing["construct_s"],
        "compile_s": timing.get("build", 0.0) + timing.get("compile", 0.0),
        "sampling_s": timing.get("sampling", float("nan")),
        "min_ess_bulk": rep.min_ess_bulk, "worst": rep.worst_ess_bulk,
        "min_ess_levels": rep.min_ess_levels, "max_rhat": rep.max_rhat,
        "divergences": rep.divergences,
        "grad_evals": int(stats["n_steps"].sum()) if "n_steps" in stats else None,
        "centered": dict(zip([b.name for b in fit.model.design.blocks],
                             map(bool, fit.model.centered))),
    }
    out["peak_rss_mb"] = _rss_mb()
    if job.get("second_fit"):
        del fit
        out["second_fit_s"] = one()[0]
    return out


def run_bambi(job: dict, df) -> dict:
    import arviz as az
    import bambi as bmb
    import numpy as np
    import pymc.sampling.mcmc as mcmc

    family = {"gaussian": "gaussian", "bernoulli": "bernoulli", "poisson": "poisson",
              "negativebinomial": "negativebinomial"}[job["family"]]
    timers = {"build": 0.0, "init_nuts": 0.0}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timers[name] += time.perf_counter() - t0
        return wrapper

    mcmc.init_nuts = timed("init_nuts", mcmc.init_nuts)
    bmb.Model.build = timed("build", bmb.Model.build)

    def one():
        timers.update(build=0.0, init_nuts=0.0)
        t0 = time.perf_counter()
        model = bmb.Model(job.get("bambi_formula") or job["formula"], df, family=family)
        t_construct = time.perf_counter() - t0
        idata = model.fit(draws=job["draws"], tune=job["tune"], chains=job["chains"],
                          cores=min(job["chains"], job.get("cores") or job["chains"]),
                          random_seed=job["seed"], progressbar=False)
        return time.perf_counter() - t0, t_construct, idata

    wall, t_construct, idata = one()
    compile_s = timers["build"] + timers["init_nuts"]
    post = idata["posterior"]
    post = post.to_dataset() if hasattr(post, "to_dataset") else post
    ess = az.ess(post, method="bulk")
    rhat = az.rhat(post)
    pop, lev = {}, []
    for var in ess.data_vars:
        dims = post[var].dims
        if any(d.endswith("_obs") or d == "__obs__" for d in dims) or var == "mu":
            continue
        values = np.asarray(ess[var], dtype=float)
        if any("factor" in d for d in dims):
            lev.append(float(np.nanmin(values)))
            continue
        flat = values.ravel()
        i = int(np.nanargmin(flat))
        pop[f"{var}[{i}]" if flat.size > 1 else str(var)] = float(flat[i])
    worst = min(pop, key=pop.get)
    stats = idata["sample_stats"]
    stats = stats.to_dataset() if hasattr(stats, "to_dataset") else stats
    out = {
        "wall_s": wall, "construct_s": t_construct, "compile_s": compile_s,
        "sampling_s": wall - t_construct - compile_s,
        "min_ess_bulk": pop[worst], "worst": worst,
        "min_ess_levels": min(lev) if lev else float("nan"),
        "max_rhat": float(max(np.nanmax(np.asarray(rhat[v])) for v in rhat.data_vars
                              if v in pop or any(k.startswith(f"{v}[") for k in pop))),
        "divergences": int(stats["diverging"].sum()) if "diverging" in stats else None,
        "grad_evals": int(stats["n_steps"].sum()) if "n_steps" in stats else None,
    }
    out["peak_rss_mb"] = _rss_mb()
    if job.get("second_fit"):
        del idata
        out["second_fit_s"] = one()[0]
    return out


def main() -> None:
    job = json.load(open(sys.argv[1]))
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    if job["lib"].startswith("bayesmix"):  # bayesmix, bayesmix-pytensor (BAYESMIX_KERNEL=0)
        import bayesmix  # noqa: F401
    else:
        import bambi  # noqa: F401
    import_s = time.perf_counter() - t0
    df = load(job["csv"], job["meta"])
    rss_before = _rss_mb()
    runner = run_bayesmix if job["lib"].startswith("bayesmix") else run_bambi
    out = runner(job, df)
    out.update(import_s=import_s, rss_after_import_mb=rss_before, rows=len(df))
    if "min_ess_bulk" in out:
        out["ess_per_s"] = out["min_ess_bulk"] / out["wall_s"]
        out["ess_per_s_sampling"] = out["min_ess_bulk"] / out["sampling_s"]
    print("BENCH_RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
