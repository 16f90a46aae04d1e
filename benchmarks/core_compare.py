"""Side-by-side timing of bayesmix and bambi on the core models (not a test).

Each job runs in a fresh process and measures the whole job: model construction, compilation
and sampling (4 chains x 1000 draws after 1000 tuning steps unless told otherwise). The
metric is the minimum bulk ESS over the non-level parameters (fixed effects, group SDs,
correlations, residual SD) divided by the wall time.

    python benchmarks/core_compare.py --bambi-python /path/to/venv-with-bambi/bin/python

bambi pins an older formulae, so it lives in its own virtual environment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

MODELS = {
    "sleepstudy": ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    "mathachieve": ("mathachieve", "MathAch ~ SES + (SES | School)"),
}

CHILD = r'''
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
lib, dataset, formula, draws, tune, chains, seed = sys.argv[1:8]
draws, tune, chains, seed = int(draws), int(tune), int(chains), int(seed)
t0 = time.perf_counter()
import numpy as np, arviz as az
if lib == "bayesmix":
    import bayesmix as bm
    df = bm.datasets.load(dataset)
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
if lib == "bayesmix":
    fit = bm.Model(formula, df).fit(draws=draws, tune=tune, chains=chains, random_seed=seed,
                                   progressbar=False)
    rep = fit.sampling_report()
    min_ess, worst, level_ess = rep.min_ess_bulk, rep.worst_ess_bulk, rep.min_ess_levels
else:
    import bambi as bmb, pandas as pd
    df = pd.read_csv(sys.argv[8])
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].astype("category")
    group = formula.split("|")[-1].strip(" )")
    df[group] = df[group].astype(str).astype("category")
    model = bmb.Model(formula, df)
    idata = model.fit(draws=draws, tune=tune, chains=chains, random_seed=seed,
                      progressbar=False)
    post = idata["posterior"].to_dataset() if hasattr(idata, "children") else idata.posterior
    ess = az.ess(post, method="bulk")
    pop = {v: float(np.nanmin(np.asarray(ess[v]))) for v in ess.data_vars
           if not any("factor" in d or "obs" in d for d in post[v].dims) and v != "mu"}
    lev = [float(np.nanmin(np.asarray(ess[v]))) for v in ess.data_vars
           if any("factor" in d for d in post[v].dims)]
    worst = min(pop, key=pop.get)
    min_ess, level_ess = pop[worst], min(lev) if lev else float("nan")
wall = time.perf_counter() - t0
print(json.dumps({"lib": lib, "dataset": dataset, "wall_s": wall, "import_s": t_import,
                  "min_ess_bulk": min_ess, "worst": worst, "min_ess_levels": level_ess,
                  "ess_per_s": min_ess / wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def run(python: str, lib: str, name: str, args: argparse.Namespace) -> dict:
    dataset, formula = MODELS[name]
    csv = Path(__file__).resolve().parents[1] / "bayesmix" / "datasets" / f"{dataset}.csv"
    cmd = [python, "-c", CHILD, lib, dataset, formula, str(args.draws), str(args.tune),
           str(args.chains), str(args.seed), str(csv)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"lib": lib, "dataset": dataset, "error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bambi-python", default=None)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/core_compare.json")
    args = parser.parse_args()
    rows = []
    for name in args.models:
        rows.append(run(sys.executable, "bayesmix", name, args))
        print(json.dumps(rows[-1]), flush=True)
        if args.bambi_python:
            rows.append(run(args.bambi_python, "bambi", name, args))
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
