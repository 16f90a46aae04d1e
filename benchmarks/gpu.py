"""``python -m benchmarks gpu``: the crossed model of the scaling series fitted with a JAX sampler.

Simulates :func:`benchmarks.simulate.courses` at ``--rows`` rows (InstEval-like ratings:
``y ~ 1 + service + (1 | student) + (1 | lecturer) + (1 | dept)``, about ``rows / 24``
students and ``rows / 66`` lecturers), fits it with ``fit(sampler="numpyro")`` (or
``blackjax``), chains vectorised on the one device JAX sees, and reports:

* ``device``: what JAX computed on (``cpu``, or ``gpu: <card>``): check it before reading
  the timings; a CUDA build of jaxlib (``pip install "jax[cuda12]"``) is needed for a GPU;
* ``build_s`` (the PyMC model), ``compile_s`` (JAX tracing and XLA compilation, from
  :mod:`jax.monitoring`), ``sampling_s`` (warm-up, draws and the stored deterministics),
  ``wall_s`` (the whole ``fit``, post-processing and sampling report included);
* ``min_ess_bulk`` over the population-level parameters (fixed effects, SDs, ``sigma``),
  ``ess_per_s`` (per second of the whole fit) and ``ess_per_s_sampling``;
* the posterior means against the simulation's true values (:data:`benchmarks.simulate.TRUTH`).

``--nutpie`` also fits the same data with nutpie on the CPU, for the comparison.

Examples::

    python -m benchmarks gpu --rows 1000000 --sampler numpyro           # the GPU run
    python -m benchmarks gpu --rows 2000 --draws 50 --tune 50 --nutpie  # a smoke test on CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from benchmarks.simulate import TRUTH, courses
from benchmarks.suite import SCALING_FORMULA

VERSIONS = ("bayesmix", "pymc", "pytensor", "jax", "jaxlib", "numpyro", "blackjax", "nutpie",
            "jax-cuda12-plugin")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks gpu",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=float, default=1e6, help="rows to simulate (default 1e6)")
    p.add_argument("--sampler", choices=("numpyro", "blackjax"), default="numpyro")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--tune", type=int, default=300,
                   help="tuning steps (default 300, as the CPU scaling series at 10^6 rows)")
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nutpie", action="store_true",
                   help="also fit the same data with nutpie (CPU) for comparison")
    p.add_argument("--out-json", type=Path, default=None, help="write the results here too")
    return p.parse_args(argv)


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def fit_once(df: Any, sampler: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fit the scaling formula to ``df`` with ``sampler``; timings, ESS and recovery."""
    import bayesmix as bm

    t0 = time.perf_counter()
    model = bm.Model(SCALING_FORMULA, df)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bm.ConvergenceWarning)
        fit = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, sampler=sampler,
                        random_seed=args.seed, progressbar=False)
    wall = time.perf_counter() - t0
    report = fit.sampling_report()
    timing = fit.timing
    truth = TRUTH["courses"]
    fixef = fit.fixef()["mean"]
    sds = fit.varcorr()
    sds = sds[sds["kind"] == "sd"].set_index("group")["mean"]
    sampling = timing.get("sampling", float("nan"))
    return {
        "sampler": sampler, "wall_s": wall, "build_s": timing.get("build", 0.0),
        "compile_s": timing.get("compile", 0.0), "sampling_s": sampling,
        "min_ess_bulk": report.min_ess_bulk, "worst": report.worst_ess_bulk,
        "max_rhat": report.max_rhat, "divergences": report.divergences,
        "ess_per_s": report.min_ess_bulk / wall,
        "ess_per_s_sampling": report.min_ess_bulk / sampling if sampling > 0 else None,
        "estimates": {
            **{f"fixef[{k}]": [float(fixef[k]), v] for k, v in truth["fixef"].items()},
            **{f"sd[{k}]": [float(sds[k]), v] for k, v in truth["sd"].items() if k in sds.index},
            "sigma": [float(fit.posterior["sigma"].mean()), truth["sigma"]],
        },
        "warnings": [str(w.message).splitlines()[0] for w in caught
                     if issubclass(w.category, bm.ConvergenceWarning)],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bayesmix.errors import SamplerError
    from bayesmix.inference.jax_samplers import check_jax_sampler, jax_device

    try:  # what to install, before simulating
        check_jax_sampler(args.sampler)
    except SamplerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = int(args.rows)
    t0 = time.perf_counter()
    df = courses(rows)
    sim_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "device": jax_device(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "versions": versions(),
        "formula": SCALING_FORMULA, "rows": rows,
        "levels": {c: int(df[c].nunique()) for c in ("student", "lecturer", "dept")},
        "settings": {"chains": args.chains, "tune": args.tune, "draws": args.draws,
                     "seed": args.seed, "chain_method": "vectorized"},
        "simulate_s": sim_s,
        "fits": [],
    }
    print(f"{rows} rows, levels {result['levels']}; JAX device: {result['device']}", flush=True)
    for sampler in [args.sampler] + (["nutpie"] if args.nutpie else []):
        res = fit_once(df, sampler, args)
        result["fits"].append(res)
        print(f"{sampler:9s} wall {res['wall_s']:.1f} s (build {res['build_s']:.1f}, compile "
              f"{res['compile_s']:.1f}, sampling {res['sampling_s']:.1f}); min bulk ESS "
              f"{res['min_ess_bulk']:.0f} ({res['worst']}), {res['ess_per_s']:.2f} ESS/s, "
              f"max R-hat {res['max_rhat']:.3f}, {res['divergences']} divergences", flush=True)
    line = json.dumps(result, default=str)
    if args.out_json is not None:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(result, indent=1, default=str))
    print("GPU_BENCH " + line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
