"""``python -m benchmarks gpu``: the entry point of the GPU run, smoke-tested on CPU at 2 000 rows.

Run as a subprocess (tests do not import the benchmarks package), as a GPU run would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_entry_point_runs_on_cpu(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("numpyro")
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "gpu", "--rows", "2000", "--draws", "100",
         "--tune", "100", "--chains", "2", "--out-json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPU_BENCH " in proc.stdout
    res = json.loads(out.read_text())
    assert res["device"].startswith("cpu")
    assert res["rows"] == 2000 and res["levels"]["dept"] == 14
    assert res["settings"]["chain_method"] == "vectorized"
    assert res["versions"]["jax"] and res["versions"]["numpyro"]
    (fit,) = res["fits"]
    assert fit["sampler"] == "numpyro"
    assert fit["compile_s"] > 0 and fit["sampling_s"] > 0 and fit["wall_s"] >= fit["sampling_s"]
    assert fit["min_ess_bulk"] > 20 and fit["ess_per_s"] > 0
    # posterior means near the simulation's truth (2 000 rows: 82 students, 30 lecturers)
    est = fit["estimates"]
    assert abs(est["fixef[(Intercept)]"][0] - est["fixef[(Intercept)]"][1]) < 0.5
    assert abs(est["sigma"][0] - est["sigma"][1]) < 0.1


def test_gpu_benchmark_without_jax_names_what_to_install(tmp_path):
    """Without JAX the entry point stops before simulating, with the install line."""
    stub = tmp_path / "nojax"
    stub.mkdir()
    (stub / "sitecustomize.py").write_text(
        "import importlib.util, sys\n"
        "_real = importlib.util.find_spec\n"
        "def _find(name, *a):\n"
        "    return None if name.split('.')[0] in ('jax', 'numpyro') else _real(name, *a)\n"
        "importlib.util.find_spec = _find\n")
    env = {**os.environ, "PYTHONPATH": f"{stub}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "gpu", "--rows", "2000"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: sampler='numpyro' needs jax and numpyro" in proc.stderr
    assert "bayesmix[jax]" in proc.stderr and "Traceback" not in proc.stderr
