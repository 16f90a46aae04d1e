"""The checks of ``make wheel-check``: the built wheel's contents, and the README's quick start
run against the installed wheel.

``python wheel_check.py inspect dist/bayesmix-*.whl``: the wheel holds the datasets, their
provenance and the licence files, and its metadata's licence expression names the data's GPL
licences beside the code's MIT.

``python wheel_check.py quickstart /path/to/README.md /path/to/checkout``, run by the
interpreter of a throwaway virtual environment that has the wheel installed, from a directory
outside the checkout, so that ``import bayesmix`` finds the installed package and never the
source tree: bayesmix and every dataset load from the installation, then the first ```python
block under "## Quick start" of the README, as it stands, runs.
"""

from __future__ import annotations

import os
import re
import sys
import time
import zipfile
from pathlib import Path


def quick_start(readme: Path) -> str:
    section = readme.read_text(encoding="utf-8").split("## Quick start", 1)[1]
    match = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    if match is None:
        raise SystemExit(f"no ```python block under '## Quick start' in {readme}")
    return match.group(1)


def inspect(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    need = ["bayesmix/datasets/sleepstudy.csv", "bayesmix/datasets/PROVENANCE.md",
            "bayesmix/datasets/reference_estimates.json", "bayesmix/datasets/schema.json"]
    missing = [n for n in need if n not in names]
    missing += [f for f in ("licenses/LICENSE", "licenses/bayesmix/datasets/PROVENANCE.md")
                if not any(n.endswith(f) for n in names)]
    if missing:
        raise SystemExit(f"missing from {wheel.name}: {missing}")
    expression = [line for line in metadata.splitlines() if line.startswith("License-Expression:")]
    if not expression or "MIT" not in expression[0] or "GPL" not in expression[0]:
        raise SystemExit(f"{wheel.name}: the licence expression must name the code's MIT and the "
                         f"data's GPL licences, found {expression}")
    csvs = sum(n.startswith("bayesmix/datasets/") and n.endswith(".csv") for n in names)
    print(f"{wheel.name}: {csvs} datasets, {expression[0]}")


def quickstart(readme: Path, checkout: Path) -> None:
    readme, checkout = readme.resolve(), checkout.resolve()
    os.environ.setdefault("MPLBACKEND", "Agg")
    t0 = time.perf_counter()
    import bayesmix as bm

    where = Path(bm.__file__).resolve()
    if checkout in where.parents or "site-packages" not in where.parts:
        raise SystemExit(f"bayesmix was imported from {where}, not from the installed wheel")
    data_dir = Path(bm.datasets.__file__).resolve().parent
    shipped = sorted(p.name for p in data_dir.glob("*.csv"))
    rows = {name: len(bm.datasets.load(name)) for name in bm.datasets.names()}
    assert len(shipped) == len(rows) > 0, (shipped, rows)
    assert (data_dir / "PROVENANCE.md").is_file() and bm.datasets.reference_estimates()
    print(f"bayesmix {bm.__version__} from {where.parent}")
    print(f"{len(rows)} datasets load from {data_dir}: {rows}")

    code = quick_start(readme)
    namespace: dict = {"__name__": "__quickstart__"}
    t1 = time.perf_counter()
    exec(compile(code, "README.md quick start", "exec"), namespace)
    t2 = time.perf_counter()
    fit = namespace["fit"]
    fixef = fit.fixef()
    print(fixef[["mean", "sd", "r_hat"]].round(3).to_string())
    assert 230 < fixef.loc["(Intercept)", "mean"] < 275 and 5 < fixef.loc["Days", "mean"] < 16
    print(f"quick start ran from the wheel: import {t1 - t0:.1f} s, quick start {t2 - t1:.1f} s "
          f"(first fit on an empty compile cache included)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["inspect"] and len(sys.argv) == 3:
        inspect(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["quickstart"] and len(sys.argv) == 4:
        quickstart(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
