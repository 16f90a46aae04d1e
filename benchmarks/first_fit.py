"""``python -m benchmarks first-fit``: the first fit of a model on a machine, and the second.

Each model is fitted by each library twice, each time in a fresh process: first with an
empty PyTensor compile directory (``cold``: what a user sees the first time a formula is
fitted on a machine: bambi compiles PyTensor's C code, bayesmix's PyTensor path compiles
numba code), then again with the compile directory the first job left (``warm``). bayesmix's
precompiled kernel (:mod:`bayesmix.inference.kernel`) is compiled once per machine when
bayesmix is installed with ``make``; its one-time compilation is measured separately, in an
empty numba cache, and reported in the header (``kernel_compile_s``).

Reported per job: wall time of the fit (model construction, compilation, sampling), the
minimum bulk ESS over the non-level parameters, ESS per second of wall time, gradient
evaluations (leapfrog steps of the kept draws), ESS per 1000 of them, and milliseconds per
gradient evaluation (sampling time over the steps of warm-up and draws, the warm-up counted
at the draws' rate: an approximation), so that the two levers, the sampler's efficiency
and the cost of a gradient, are visible apart.
The crossed logistic scaling series (40 items, rows / 40 persons) is run cold only.

Examples::

    python -m benchmarks first-fit                       # suite models + logistic series
    python -m benchmarks first-fit --models psychometric --sizes 1e3 --no-bambi
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.runner import HERE, ROOT, child_env, run_job, versions_bayesmix
from benchmarks.suite import SUITE, scaling_entry, write_data

MODELS = ("sleepstudy", "psychometric", "psychometric_wide", "psychometric_1000x40")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks first-fit",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--sizes", nargs="*", type=float, default=[1e3, 1e4, 1e5, 1e6],
                   help="rows of the crossed logistic scaling series")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--large", default="100000:500,1000000:300",
                   help="ROWS:N,...: jobs with at least ROWS rows use N tuning and N draws")
    p.add_argument("--no-bambi", action="store_true")
    p.add_argument("--bambi-max-rows", type=float, default=1e5)
    p.add_argument("--pytensor", action="store_true",
                   help="also fit with bayesmix's PyTensor path (BAYESMIX_KERNEL=0)")
    p.add_argument("--pytensor-max-rows", type=float, default=1e5)
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--out-json", type=Path, default=HERE / "results" / "first_fit.json")
    p.add_argument("--out-md", type=Path, default=ROOT / "docs" / "benchmarks_first_fit.md")
    p.add_argument("--out-png", type=Path, default=ROOT / "docs" / "benchmarks_logistic.png")
    return p.parse_args(argv)


def kernel_compile_seconds(scratch: Path) -> float | None:
    """The kernel's one-time compilation, in an empty numba cache, in a fresh process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(scratch / "numba"), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bayesmix.inference.kernel"], env=env,
                         capture_output=True, text=True)
    return time.perf_counter() - t0 if out.returncode == 0 else None


def end_to_end_seconds(scratch: Path) -> dict[str, float]:
    """``python -c`` sleepstudy quick start in a fresh process with an empty PyTensor compile
    directory (the kernel precompiled, as ``make`` leaves it): process start to summary."""
    code = ("import time; t0 = time.perf_counter(); import bayesmix as bm; t1 = time.perf_counter(); "
            "m = bm.Model('Reaction ~ Days + (Days | Subject)', bm.datasets.load('sleepstudy')); "
            "t2 = time.perf_counter(); fit = m.fit(random_seed=1, progressbar=False); "
            "str(fit.summary()); t3 = time.perf_counter(); "
            "import json; print('E2E ' + json.dumps({'import_s': t1 - t0, 'fit_s': t3 - t2, "
            "'to_sampling_s': fit.timing.get('build', 0) + fit.timing.get('compile', 0)}))")
    env = child_env(scratch / "pytensor-e2e", "bayesmix")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    total = time.perf_counter() - t0
    for line in out.stdout.splitlines():
        if line.startswith("E2E "):
            return {"process_s": total, **json.loads(line[4:])}
    return {"error": out.stderr[-500:]}


def _draws(rows: int, spec: str, tune: int, draws: int) -> tuple[int, int]:
    for part in sorted(spec.split(","), key=lambda p: float(p.split(":")[0])):
        threshold, n = part.split(":")
        if rows >= float(threshold):
            tune, draws = min(tune, int(n)), min(draws, int(n))
    return tune, draws


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bambi_python = None
    if not args.no_bambi:
        from benchmarks.bambi_env import DEFAULT_SPEC, bambi_versions, ensure_bambi

        bambi_python = ensure_bambi(DEFAULT_SPEC)
    data_dir = HERE / ".data"
    data_dir.mkdir(exist_ok=True)
    (HERE / ".cache").mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="first-fit-", dir=HERE / ".cache"))
    meta: dict[str, Any] = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items() if not k.startswith("out_")},
        "versions": {"bayesmix": versions_bayesmix(),
                     "bambi": bambi_versions(bambi_python) if bambi_python else None},
    }
    meta["kernel_compile_s"] = kernel_compile_seconds(scratch)
    meta["sleepstudy_end_to_end"] = end_to_end_seconds(scratch)
    print(json.dumps({k: meta[k] for k in ("kernel_compile_s", "sleepstudy_end_to_end")}),
          flush=True)
    by_name = {e.name: e for e in SUITE}
    entries = [("suite", by_name[m]) for m in args.models] + \
        [("scaling", scaling_entry(int(s), "logistic")) for s in args.sizes]
    libs = [("bayesmix", sys.executable, {})]
    if args.pytensor:
        libs.append(("bayesmix-pytensor", sys.executable, {"BAYESMIX_KERNEL": "0"}))
    if bambi_python:
        libs.append(("bambi", bambi_python, {}))
    rows: list[dict[str, Any]] = []
    workdir = scratch / "jobs"
    workdir.mkdir()
    try:
        for kind, entry in entries:
            csv, n = write_data(entry.source, data_dir)
            tune, draws = _draws(n, args.large, args.tune, args.draws)
            for lib, python, extra in libs:
                if (lib == "bambi" and n > args.bambi_max_rows) or \
                        (lib == "bayesmix-pytensor" and n > args.pytensor_max_rows):
                    continue
                cache = scratch / f"cache-{lib}-{entry.name}"  # empty: this structure is new
                env = {**child_env(cache, "bayesmix" if lib.startswith("bayesmix") else lib),
                       **extra}
                for phase in ("cold", "warm") if kind == "suite" else ("cold",):
                    job = {"name": entry.name, "formula": entry.formula, "family": entry.family,
                           "bambi_formula": entry.bambi_formula, "csv": str(csv),
                           "meta": str(csv.with_suffix(".json")), "chains": args.chains,
                           "seed": args.seed, "lib": lib, "phase": phase, "tune": tune,
                           "draws": draws, "second_fit": False}
                    res = run_job(python, job, env, args.timeout, workdir)
                    row = {"kind": kind, "model": entry.name, "lib": lib, "phase": phase,
                           "rows": n, "formula": entry.formula, "tune": tune, "draws": draws,
                           "chains": args.chains, **res}
                    if res.get("grad_evals"):
                        row["ess_per_kgrad"] = 1000 * res["min_ess_bulk"] / res["grad_evals"]
                        row["ms_per_grad"] = 1000 * res["sampling_s"] / (
                            res["grad_evals"] * (tune + draws) / draws)
                    rows.append(row)
                    print(_line(row), flush=True)
                    _write(args, meta, rows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    _write(args, meta, rows, final=True)
    return 0


def _line(r: dict[str, Any]) -> str:
    if "error" in r or "skipped" in r:
        return f"{r['model']:<22} {r['lib']:<18} {r['phase']:<5} {r.get('error') or r['skipped']}"[:200]
    return (f"{r['model']:<22} {r['lib']:<18} {r['phase']:<5} rows {r['rows']:>8,} wall "
            f"{r['wall_s']:7.1f} s  compile {r['compile_s']:6.1f} s  ESS {r['min_ess_bulk']:6.0f}"
            f"  ESS/s {r['ess_per_s']:7.1f}  ESS/kgrad {r.get('ess_per_kgrad', float('nan')):6.1f}"
            f"  ms/grad {r.get('ms_per_grad', float('nan')):7.3f}")


def ratio_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and phase: bayesmix's ESS/s over bambi's."""
    by = {(r["model"], r["lib"], r["phase"]): r for r in rows if "ess_per_s" in r}
    out = []
    for (model, lib, phase), r in by.items():
        b = by.get((model, "bambi", phase))
        if lib == "bayesmix" and b is not None:
            out.append({"model": model, "phase": phase, "rows": r["rows"],
                        "ratio": r["ess_per_s"] / b["ess_per_s"]})
    return out


def _write(args: argparse.Namespace, meta: dict[str, Any], rows: list[dict[str, Any]],
           final: bool = False) -> None:
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps({**meta, "results": rows}, indent=1, default=str))
    if final:
        from benchmarks.first_fit_report import write_markdown

        write_markdown(meta, rows, ratio_table(rows), args.out_md, args.out_png)


if __name__ == "__main__":
    sys.exit(main())
