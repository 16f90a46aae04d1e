"""Combine benchmark runs into one report: ``python -m benchmarks.merge a.json b.json``.

Later runs replace earlier rows of the same model and library (e.g. a re-run of the suite
after a change, keeping the earlier run's large models); the report says which run each row
came from. Writes ``benchmarks/results/benchmarks.json``, ``docs/benchmarks.md`` and the
scaling plot, as ``python -m benchmarks`` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import report
from benchmarks.runner import ROOT


def merge(paths: list[Path]) -> tuple[dict, list[dict]]:
    """Metadata of the last run (with every run's start time) and the merged rows."""
    rows: dict[tuple[str, str], dict] = {}
    runs = []
    meta: dict = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        meta = {k: v for k, v in data.items() if k != "results"}
        runs.append(f"{meta['started']} to {meta.get('finished', 'interrupted')}")
        for row in data["results"]:
            rows[(row["model"], row["lib"])] = {**row, "run": meta["started"]}
    meta["started"] = runs[0].split(" to ")[0]
    meta["finished"] = runs[-1].split(" to ")[1]
    meta["runs"] = runs
    return meta, list(rows.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.merge", description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, help="JSON files of python -m benchmarks")
    p.add_argument("--out-json", type=Path, default=ROOT / "benchmarks/results/benchmarks.json")
    p.add_argument("--out-md", type=Path, default=ROOT / "docs/benchmarks.md")
    p.add_argument("--out-png", type=Path, default=ROOT / "docs/benchmarks_scaling.png")
    args = p.parse_args(argv)
    meta, rows = merge(args.runs)
    args.out_json.write_text(json.dumps({**meta, "results": rows}, indent=1, default=str))
    report.write_markdown(meta, rows, args.out_md, args.out_png)
    print(f"wrote {args.out_json}, {args.out_md}, {args.out_png} from {len(args.runs)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
