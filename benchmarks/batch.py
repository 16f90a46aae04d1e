"""``python -m benchmarks.batch``: many small fits on a LocalCluster against a serial loop,
and the power curve of the docs page "Many models and large data".

``throughput``: ``--fits`` sleepstudy-sized data sets (sleepstudy's design, responses
simulated from its lme4 fit) fitted with ``Reaction ~ Days + (Days | Subject)``, first in a
plain loop in this process (``bm.Model(...).fit()`` one after another, the compile cache
warm after the first), then with ``bm.fit_many`` on a ``LocalCluster`` of ``--workers``
processes x 1 thread (cluster start-up timed separately). Reports fits per second of both,
their ratio, and each worker's memory (resident now and peak).

``power``: ``bm.power`` for a cluster-randomised two-arm design over a range of numbers of
clusters, against the closed forms; writes the table, the figure and a JSON record.

Examples::

    python -m benchmarks.batch throughput --fits 200 --workers 2
    python -m benchmarks.batch power --nsim 200 --png docs/power_curve.png
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FORMULA = "Reaction ~ Days + (Days | Subject)"


def sleepstudy_like(n: int, seed: int = 1) -> list:
    import bayesmix as bm

    sleep = bm.datasets.load("sleepstudy")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):  # lme4's estimates: 251.4 + 10.5 Days, SDs 24.7 and 5.9, cor 0.07, 25.6
        u0, u1 = rng.normal(0, 24.7, 18), rng.normal(0, 5.9, 18)
        d = sleep.copy()
        subj = d["Subject"].cat.codes.to_numpy() if hasattr(d["Subject"], "cat") else \
            np.repeat(np.arange(18), 10)
        d["Reaction"] = 251.4 + 10.5 * d["Days"] + u0[subj] + u1[subj] * d["Days"] + \
            rng.normal(0, 25.6, len(d))
        out.append(d)
    return out


def throughput(args: argparse.Namespace) -> dict:
    import bayesmix as bm

    data = sleepstudy_like(args.fits, args.seed)
    fit_args = dict(draws=args.draws, tune=args.tune, chains=args.chains, cores=1)
    # the serial loop: the same shared priors as fit_many, so both reuse one compiled model
    from bayesmix.api.batch import _shared_priors

    priors = _shared_priors(FORMULA, {"0": data[0]}, {"family": "gaussian"})["priors"]
    import warnings

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, d in enumerate(data):
            bm.Model(FORMULA, d, priors=priors).fit(**fit_args, random_seed=i,
                                                     progressbar=False)
    serial_s = time.perf_counter() - t0
    from bayesmix.runner import worker_memory

    serial_mem = worker_memory()
    res = bm.fit_many(FORMULA, data, **fit_args, n_workers=args.workers,
                      progressbar=not args.no_progress, random_seed=args.seed)
    assert (res.tasks["status"] == "ok").all(), res.errors
    return {
        "fits": args.fits, "workers": args.workers, "formula": FORMULA, "fit_args": fit_args,
        "serial_s": serial_s, "serial_fits_per_s": args.fits / serial_s,
        "serial_process_memory": serial_mem,
        "cluster_startup_s": res.report.startup_s, "cluster_s": res.report.wall_s,
        "cluster_fits_per_s": res.throughput,
        "ratio": res.throughput / (args.fits / serial_s),
        "ratio_with_startup": (args.fits / (res.report.wall_s + res.report.startup_s))
        / (args.fits / serial_s),
        "workers_memory": res.report.workers,
        "median_task_s": float(res.tasks["seconds"].median()),
    }


def power_curve(args: argparse.Namespace) -> dict:
    import bayesmix as bm

    res = bm.power(args.effect, n_groups=args.groups, n_per_group=args.per_group,
                   sd_group=args.sd_group, sigma=1.0, nsim=args.nsim, draws=args.draws,
                   tune=args.tune, chains=args.chains, n_workers=args.workers,
                   random_seed=args.seed, progressbar=not args.no_progress,
                   output_dir=args.output_dir)
    print(res)
    if args.png:
        res.plot("n_groups").savefig(args.png, dpi=110)
    table = res.table.copy()
    table["z_from_t"] = (table["power"] - table["power_t"]) / np.sqrt(
        table["power_t"] * (1 - table["power_t"]) / table["nsim"])
    return {"decision": res.decision, "table": table.to_dict(orient="records"),
            "wall_s": res.report.wall_s, "startup_s": res.report.startup_s,
            "workers_memory": res.report.workers}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--fits", type=int, default=200)
    t.add_argument("--draws", type=int, default=300)
    t.add_argument("--tune", type=int, default=300)
    t.add_argument("--chains", type=int, default=2)
    w = sub.add_parser("power")
    w.add_argument("--effect", type=float, default=0.5)
    w.add_argument("--groups", type=int, nargs="+", default=[10, 20, 30, 40])
    w.add_argument("--per-group", type=int, default=5)
    w.add_argument("--sd-group", type=float, default=0.5)
    w.add_argument("--nsim", type=int, default=200)
    w.add_argument("--draws", type=int, default=500)
    w.add_argument("--tune", type=int, default=500)
    w.add_argument("--chains", type=int, default=2)
    w.add_argument("--png", default=None)
    w.add_argument("--output-dir", default=None, help="results as they finish (resumable)")
    for q in (t, w):
        q.add_argument("--workers", type=int, default=2)
        q.add_argument("--seed", type=int, default=1)
        q.add_argument("--no-progress", action="store_true")
        q.add_argument("--out-json", default=None)
    args = p.parse_args(argv)
    started = dt.datetime.now().isoformat(timespec="seconds")
    result = throughput(args) if args.what == "throughput" else power_curve(args)
    record = {"started": started, "finished": dt.datetime.now().isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "python": platform.python_version()},
              "what": args.what, "result": result}
    text = json.dumps(record, indent=1, default=str)
    print(text)
    if args.out_json:
        Path(args.out_json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
