"""``python -m benchmarks``: fit the suite and the scaling series with bayesmix and bambi.

Every fit is a fresh process (:mod:`benchmarks.child`) timed from after its imports: model
construction, compilation and sampling, 2 chains x 1000 tuning + 1000 draws unless told
otherwise. bayesmix and bambi run in the same invocation, model by model, alternating.

Compilation caches. Both libraries cache compiled code under PyTensor's ``base_compiledir``
(bambi: PyTensor's C modules; bayesmix: numba code, see ``bayesmix.inference.compile_cache``). By
default the run uses a fresh, empty ``base_compiledir`` (``--cache fresh``) and starts each
suite model with a short warm-up job (10 tuning + 10 draws) whose wall time is reported as
the *cold start*; the timed job then finds the caches warm, as a user's second run would.
``--cache default`` uses the machine's usual directory instead (then "cold start" is only
cold if nothing was cached before).

Examples::

    python -m benchmarks                    # everything (see --help for the caps)
    python -m benchmarks --quick            # smoke test: tiny draws, small models
    python -m benchmarks --models sleepstudy radon --no-scaling --no-bambi
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

from benchmarks.suite import SUITE, Entry, scaling_entry, write_data

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CHILD = HERE / "child.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 30 tuning + 30 draws, no 73k model, scaling 10^3 and 10^4, "
                        "outputs under benchmarks/results/quick/")
    p.add_argument("--models", nargs="*", default=None,
                   help=f"suite models (default all: {' '.join(e.name for e in SUITE)})")
    p.add_argument("--no-suite", action="store_true")
    p.add_argument("--sizes", nargs="*", type=float, default=None,
                   help="rows of the scaling series (default 1e3 1e4 1e5 1e6)")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--draws", type=int, default=None, help="default 1000 (quick: 30)")
    p.add_argument("--tune", type=int, default=None, help="default 1000 (quick: 30)")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--large-draws", default="1000000:300",
                   help="ROWS:N[,ROWS:N]: jobs with at least ROWS rows use N tuning and N draws "
                        "(default 1000000:300; 'none' to disable)")
    p.add_argument("--bayesmix-max-rows", type=float, default=1e6)
    p.add_argument("--bambi-max-rows", type=float, default=73_000,
                   help="largest data set bambi fits (default 73000: the suite's crossed "
                        "model; scaling 10^3 and 10^4). bambi builds dense random-effects "
                        "design matrices, about 5 GB at 10^5 rows")
    p.add_argument("--no-bambi", action="store_true")
    p.add_argument("--bambi-python", default=None,
                   help="an interpreter with bambi (default: benchmarks/.bambi-venv, created "
                        "when missing)")
    p.add_argument("--bambi-spec", default=None, help="pip spec for bambi (default bambi==0.21.0)")
    p.add_argument("--cache", choices=("fresh", "default"), default="fresh",
                   help="compile caches: a fresh base_compiledir for this run (default) or the "
                        "usual one")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up (cold start) jobs")
    p.add_argument("--warmup-max-rows", type=float, default=1e5,
                   help="warm up only jobs with at most this many rows (default 1e5)")
    p.add_argument("--timeout", type=float, default=7200, help="seconds per job (default 7200)")
    p.add_argument("--out-json", default=None)
    p.add_argument("--out-md", default=None)
    p.add_argument("--out-png", default=None)
    args = p.parse_args(argv)
    q = args.quick
    args.draws = args.draws or (30 if q else 1000)
    args.tune = args.tune if args.tune is not None else (30 if q else 1000)
    if args.sizes is None:
        args.sizes = [1e3, 1e4] if q else [1e3, 1e4, 1e5, 1e6]
    if args.models is None:
        args.models = [e.name for e in SUITE if not (q and e.name == "courses")]
    out = HERE / "results" / ("quick" if q else "")
    args.out_json = Path(args.out_json or out / "benchmarks.json")
    args.out_md = Path(args.out_md or (out / "benchmarks.md" if q else ROOT / "docs" /
                                       "benchmarks.md"))
    args.out_png = Path(args.out_png or (out / "benchmarks_scaling.png" if q else ROOT / "docs" /
                                         "benchmarks_scaling.png"))
    return args


def _large_draws(spec: str) -> list[tuple[int, int]]:
    if spec.strip().lower() in ("", "none"):
        return []
    out = []
    for part in spec.split(","):
        rows, n = part.split(":")
        out.append((int(float(rows)), int(n)))
    return sorted(out)


def draws_for(rows: int, args: argparse.Namespace) -> tuple[int, int]:
    tune, draws = args.tune, args.draws
    for threshold, n in _large_draws(args.large_draws):
        if rows >= threshold:
            tune, draws = min(tune, n), min(draws, n)
    return tune, draws


def run_job(python: str, job: dict[str, Any], env: dict[str, str], timeout: float,
            workdir: Path) -> dict[str, Any]:
    path = workdir / f"job-{job['lib']}-{job['name']}-{job['phase']}.json"
    path.write_text(json.dumps(job))
    t0 = time.perf_counter()
    try:
        out = subprocess.run([python, str(CHILD), str(path)], capture_output=True, text=True,
                             env=env, timeout=timeout, cwd=str(workdir))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    elapsed = time.perf_counter() - t0
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("BENCH_RESULT "):
            res = json.loads(line[len("BENCH_RESULT "):])
            res["process_s"] = elapsed
            return res
    tail = (out.stderr or out.stdout)[-1500:]
    return {"error": f"exit {out.returncode}: {tail}"}


def child_env(cache_dir: Path | None, lib: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if lib == "bayesmix":
        env["PYTHONPATH"] = str(ROOT)  # the bayesmix of this checkout
    if cache_dir is not None:
        flags = env.get("PYTENSOR_FLAGS", "")
        env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={cache_dir}") if f)
    return env


def versions_bayesmix() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("pymc", "pytensor", "nutpie", "numba", "numpy", "arviz", "formulae"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmarks import report

    bambi_python = None
    if not args.no_bambi:
        from benchmarks.bambi_env import DEFAULT_SPEC, bambi_versions, ensure_bambi

        bambi_python = args.bambi_python or ensure_bambi(args.bambi_spec or DEFAULT_SPEC)
    data_dir = HERE / ".data"
    data_dir.mkdir(exist_ok=True)
    cache_root = HERE / ".cache"
    cache_dir = None
    if args.cache == "fresh":
        cache_root.mkdir(exist_ok=True)
        cache_dir = Path(tempfile.mkdtemp(prefix="run-", dir=cache_root))
    workdir = Path(tempfile.mkdtemp(prefix="jobs-", dir=str(cache_root) if cache_root.exists()
                                    else None))
    entries: list[tuple[str, Entry]] = []
    if not args.no_suite:
        by_name = {e.name: e for e in SUITE}
        unknown = [m for m in args.models if m not in by_name]
        if unknown:
            raise SystemExit(f"unknown models: {unknown}; known: {list(by_name)}")
        entries += [("suite", by_name[m]) for m in args.models]
    if not args.no_scaling:
        entries += [("scaling", scaling_entry(int(s))) for s in args.sizes]
    meta = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "settings": {"chains": args.chains, "tune": args.tune, "draws": args.draws,
                     "seed": args.seed, "large_draws": args.large_draws, "cache": args.cache,
                     "warmup": not args.no_warmup, "warmup_max_rows": args.warmup_max_rows,
                     "bayesmix_max_rows": args.bayesmix_max_rows,
                     "bambi_max_rows": None if args.no_bambi else args.bambi_max_rows,
                     "quick": args.quick},
        "versions": {"bayesmix": versions_bayesmix(),
                     "bambi": bambi_versions(bambi_python) if bambi_python else None},
    }
    rows: list[dict[str, Any]] = []
    print(report.header_line(), flush=True)
    try:
        for kind, entry in entries:
            csv, n = write_data(entry.source, data_dir)
            tune, draws = draws_for(n, args)
            libs = [("bayesmix", sys.executable, args.bayesmix_max_rows)]
            if bambi_python:
                libs.append(("bambi", bambi_python, args.bambi_max_rows))
            base = {"name": entry.name, "formula": entry.formula, "family": entry.family,
                    "bambi_formula": entry.bambi_formula, "csv": str(csv),
                    "meta": str(csv.with_suffix(".json")), "chains": args.chains,
                    "seed": args.seed}
            results: dict[str, dict[str, Any]] = {}
            warm = not args.no_warmup and n <= args.warmup_max_rows
            phases = (["warmup"] if warm else []) + ["timed"]
            for phase in phases:
                for lib, python, cap in libs:
                    row = results.setdefault(lib, {
                        "kind": kind, "model": entry.name, "lib": lib, "rows": n,
                        "formula": entry.formula, "family": entry.family, "note": entry.note,
                        "tune": tune, "draws": draws, "chains": args.chains})
                    if "skipped" in row or "error" in row:
                        continue
                    if n > cap:
                        row["skipped"] = f"over --{lib}-max-rows ({cap:.0f})"
                    elif lib == "bambi" and "skipped" in results.get("bayesmix", {}):
                        row["skipped"] = results["bayesmix"]["skipped"]
                    if "skipped" in row:
                        print(report.line(row), flush=True)
                        continue
                    job = {**base, "lib": lib, "phase": phase,
                           "tune": 10 if phase == "warmup" else tune,
                           "draws": 10 if phase == "warmup" else draws,
                           "second_fit": entry.second_fit and phase == "timed"}
                    res = run_job(python, job, child_env(cache_dir, lib), args.timeout, workdir)
                    if phase == "warmup":
                        if "error" in res:
                            row["warmup_error"] = res["error"]
                        elif "skipped" in res:
                            row["skipped"] = res["skipped"]
                            print(report.line(row), flush=True)
                        else:
                            row["cold_start_s"] = res["wall_s"]
                    else:
                        row.update(res)
                        other = results.get("bayesmix", {})
                        ratio = other["ess_per_s"] / row["ess_per_s"] if lib == "bambi" and \
                            "ess_per_s" in other and row.get("ess_per_s") else None
                        print(report.line(row, ratio), flush=True)
            rows.extend(results.values())
            _write(args, meta, rows, report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if cache_dir is not None:
            shutil.rmtree(cache_dir, ignore_errors=True)
    meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    _write(args, meta, rows, report, final=True)
    print(f"\nwrote {args.out_json}, {args.out_md}, {args.out_png}")
    return 0


def _write(args: argparse.Namespace, meta: dict, rows: list[dict], report: Any,
           final: bool = False) -> None:
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps({**meta, "results": rows}, indent=1, default=str))
    if final:
        report.write_markdown(meta, rows, args.out_md, args.out_png)
