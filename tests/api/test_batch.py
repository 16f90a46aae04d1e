"""bm.fit_many and bayesmix.runner: tidy results, errors per task, resume, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.runner import run_tasks

FORMULA = "Reaction ~ Days + (1 | Subject)"
FIT = dict(draws=150, tune=150, chains=1)


def simulated(n: int, seed: int = 1) -> list[pd.DataFrame]:
    """Data sets with sleepstudy's design and simulated responses (one structure)."""
    sleep = bm.datasets.load("sleepstudy")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = sleep.copy()
        d["Reaction"] = (250 + 10 * d["Days"] + np.repeat(rng.normal(0, 30, 18), 10)
                         + rng.normal(0, 25, len(d)))
        out.append(d)
    return out


def test_fit_many_serial_tidy_errors_and_resume(tmp_path):
    data = {"a": simulated(1)[0], "b": simulated(1, 2)[0],
            "bad": bm.datasets.load("sleepstudy").drop(columns="Days")}
    res = bm.fit_many(FORMULA, data, **FIT, scheduler="serial", output_dir=tmp_path,
                      progressbar=False)
    assert list(res.tasks["id"]) == ["a", "b", "bad"]
    assert list(res.tasks["status"]) == ["ok", "ok", "error"]
    assert "DataError" in res.errors.set_index("id").loc["bad", "error"]
    assert "Days" in res.errors.set_index("id").loc["bad", "error"]
    p = res.params
    assert set(p["id"]) == {"a", "b"}
    assert set(p["parameter"]) == {"(Intercept)", "Days", "sd((Intercept)|Subject)", "sigma"}
    assert {"mean", "sd", "lower", "upper", "r_hat", "ess_bulk"} <= set(p.columns)
    days = res.estimates()["Days"]
    assert days.between(5, 15).all()
    # every task's result is on disk as JSON
    files = sorted((tmp_path / "results").glob("*.json"))
    assert len(files) == 3 and all(json.loads(f.read_text())["id"] for f in files)
    # a rerun resumes: nothing is fitted again, the same table comes back
    again = bm.fit_many(FORMULA, data, **FIT, scheduler="serial", output_dir=tmp_path,
                        progressbar=False)
    assert again.report.n_run == 0 and again.report.n_resumed == 3
    pd.testing.assert_frame_equal(again.params, res.params)
    # other settings with the same directory: refused, not silently mixed
    with pytest.raises(bm.BatchError, match="other settings"):
        bm.fit_many(FORMULA, data, draws=100, tune=150, chains=1, scheduler="serial",
                    output_dir=tmp_path, progressbar=False)


def test_fit_many_by_groups_and_formula_list():
    sleep = bm.datasets.load("sleepstudy")
    sleep["half"] = np.where(sleep["Subject"].astype(int) < 340, "early", "late")
    res = bm.fit_many({"int": FORMULA, "slope": "Reaction ~ Days + (Days || Subject)"},
                      sleep, by="half", **FIT, scheduler="serial", progressbar=False)
    assert sorted(zip(res.tasks["id"], res.tasks["model"])) == [
        ("early", "int"), ("early", "slope"), ("late", "int"), ("late", "slope")]
    assert (res.tasks["status"] == "ok").all()
    assert "sd(Days|Subject)" in set(res.params.query("model == 'slope'")["parameter"])
    assert (res.tasks["n_obs"] == res.tasks["id"].map(sleep["half"].value_counts())).all()


def test_fit_many_input_errors(tmp_path):
    sleep = bm.datasets.load("sleepstudy")
    with pytest.raises(bm.BatchError, match="no column 'gene'"):
        bm.fit_many(FORMULA, sleep, by="gene", scheduler="serial")
    with pytest.raises(bm.BatchError, match="output_dir"):
        bm.fit_many(FORMULA, [sleep], save_fits=True, scheduler="serial")
    with pytest.raises(bm.BatchError, match="DataFrame"):
        bm.fit_many(FORMULA, [sleep, 3], scheduler="serial")
    with pytest.raises(bm.SamplerError):
        bm.fit_many(FORMULA, [sleep], draws=0, scheduler="serial")


def test_fit_many_saves_fits_from_paths(tmp_path):
    path = tmp_path / "one.csv"
    simulated(1)[0].to_csv(path, index=False)
    res = bm.fit_many(FORMULA, {"one": path}, **FIT, scheduler="serial", output_dir=tmp_path,
                      save_fits=True, progressbar=False)
    fit = res.load("one")
    assert isinstance(fit, bm.FitResult)
    assert float(fit.fixef().loc["Days", "mean"]) == pytest.approx(
        res.estimates().loc[("one", "m1"), "Days"])


def _double(payload):
    if payload < 0:
        raise ValueError("negative")
    return {"value": 2 * payload}


def test_runner_records_errors_per_task(tmp_path):
    report = run_tasks(_double, {"a": 1, "b": -1}, scheduler="serial", output_dir=tmp_path,
                       progressbar=False)
    assert report.results["a"]["result"] == {"value": 2}
    assert report.results["b"]["status"] == "error"
    assert report.results["b"]["error"] == "ValueError: negative"
    with pytest.raises(bm.BatchError, match="unique|strings"):
        run_tasks(_double, {1: 1}, scheduler="serial")


def test_import_bayesmix_does_not_import_dask():
    code = ("import sys, bayesmix; "
            "print(any(m.split('.')[0] in ('dask', 'distributed', 'matplotlib') "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True)
    assert out.stdout.strip() == "False"


def test_killed_worker_loses_nothing(tmp_path):
    """A 2-worker LocalCluster; one worker is SIGKILLed mid-batch: every task still finishes,
    results written before the kill are intact, and a rerun resumes without refitting."""
    distributed = pytest.importorskip("distributed")
    import logging

    data = simulated(16)
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        killed: dict[str, object] = {}

        def kill_when_some_finished() -> None:
            deadline = time.time() + 240
            while time.time() < deadline:
                done = list((out / "results").glob("*.json")) if out.exists() else []
                if len(done) >= 2:
                    killed["before"] = {p.name: p.read_bytes() for p in done}
                    os.kill(victim, signal.SIGKILL)
                    killed["at"] = len(done)
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=kill_when_some_finished, daemon=True)
        watcher.start()
        res = bm.fit_many(FORMULA, data, **FIT, scheduler=client, output_dir=out,
                          progressbar=False)
        watcher.join(5)
        assert killed, "the worker was not killed"
        assert killed["at"] < len(data), "the batch ended before the kill"
        assert (res.tasks["status"] == "ok").all(), res.errors
        assert len(res.tasks) == len(data)
        # the worker that replaced the killed one (the nanny restarts it) is not the victim
        assert victim not in client.run(os.getpid).values()
    # results written before the kill are unchanged
    for name, content in killed["before"].items():
        assert (out / "results" / name).read_bytes() == content
    # every result file is complete JSON
    for f in (out / "results").glob("*.json"):
        assert json.loads(f.read_text())["status"] == "ok"
    # a rerun with the same directory fits nothing again (no cluster is even started)
    again = bm.fit_many(FORMULA, data, **FIT, output_dir=out, progressbar=False)
    assert again.report.n_run == 0 and again.report.n_resumed == len(data)
    pd.testing.assert_frame_equal(again.params, res.params)
