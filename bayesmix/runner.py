"""Run many independent tasks (fits, simulations) on a Dask cluster or in this process.

The engine under :func:`bayesmix.fit_many` and :func:`bayesmix.power`, and open to any layer
(a calibration study is the same kind of batch): it knows nothing about models. A *task* is
an id (a string) and a payload; a module-level function ``fn(payload) -> dict`` (JSON-able)
turns the payload into a result in a worker process.

* **Where it runs.** ``scheduler=None`` starts an embedded ``distributed.LocalCluster``
  (``n_workers`` processes of one thread each) and closes it at the end; a string is a
  scheduler's address (``"tcp://10.0.0.5:8786"``); a ``distributed.Client`` or a cluster
  object is used as given (and left open); ``"serial"`` runs the tasks one after another
  in this process, without Dask.
* **Failures.** An exception raised by ``fn`` is caught in the worker and recorded as the
  task's result (``status="error"`` with the exception's type and message): one bad data
  set does not stop the batch. A task whose worker dies (killed, out of memory) is
  rescheduled on another worker by Dask; when Dask gives up on it (``KilledWorker``) this
  runner submits it again, up to ``retries`` times, then records the failure.
* **Nothing finished is lost.** With ``output_dir``, each result is written to
  ``output_dir/results/<id>.json`` (atomically: a temporary file renamed) as soon as it
  arrives in the client, before the next one is awaited. A rerun with the same
  ``output_dir`` reads those files and runs only the tasks without one (``resume``). Each
  result carries the task's *fingerprint* (a hash of what defines it); a stored result whose
  fingerprint differs from the new task's raises :class:`~bayesmix.errors.BatchError`
  instead of being silently reused.
* **Progress.** A progress bar over tasks (rich), with the count of errors.

Examples
--------
>>> from bayesmix.runner import run_tasks
>>> report = run_tasks(abs_task, {"a": -1, "b": 2}, scheduler="serial",
...                    progressbar=False)  # doctest: +SKIP
>>> report.results["a"]["result"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesmix.errors import BatchError

__all__ = ["run_tasks", "RunReport", "TaskStore", "worker_memory"]

RESULTS_DIR = "results"


# -- the store of finished results -----------------------------------------------------------------
class TaskStore:
    """``output_dir/results/<quoted id>.json``: one file per finished task, written atomically."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.root = Path(output_dir)
        self.dir = self.root / RESULTS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, task_id: str) -> Path:
        return self.dir / (urllib.parse.quote(task_id, safe="") + ".json")

    def read(self, task_id: str) -> dict[str, Any] | None:
        """The stored result of a task, or None if there is none or it cannot be read."""
        path = self.path(task_id)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # a file cut short by a crash: run the task again
            return None

    def write(self, record: dict[str, Any]) -> None:
        path = self.path(record["id"])
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, default=_json_default))
        os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# -- what runs in the worker -----------------------------------------------------------------------
def _call(fn: Callable[[Any], dict[str, Any]], task_id: str, payload: Any,
          fingerprint: str) -> dict[str, Any]:
    """Run one task; never raises (the error is the result), warnings are collected."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"id": task_id, "fingerprint": fingerprint,
                              "worker": f"{socket.gethostname()}:{os.getpid()}"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS installation.*")
        try:
            record["result"] = fn(payload)
            record["status"] = "ok"
        except Exception as err:  # noqa: BLE001 - the error is the task's result
            record["status"] = "error"
            record["error"] = f"{type(err).__name__}: {err}"
            record["traceback"] = traceback.format_exc(limit=8)
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    record["warnings"] = seen
    record["seconds"] = time.perf_counter() - t0
    return record


def worker_memory() -> dict[str, float]:
    """This process's resident memory now and at its peak, in MiB (Linux/macOS)."""
    import resource

    import psutil

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 1024 if sys.platform != "darwin" else peak / 2**20
    return {"pid": os.getpid(), "rss_mib": psutil.Process().memory_info().rss / 2**20,
            "peak_rss_mib": peak_mib}


# -- the report ------------------------------------------------------------------------------------
@dataclass
class RunReport:
    """What :func:`run_tasks` did.

    ``results``: task id -> record (``status`` "ok" | "error", ``result`` or ``error``,
    ``warnings``, ``seconds`` in the worker, ``worker`` as host:pid, ``fingerprint``), in the
    order of the tasks; ``n_run``: tasks run now; ``n_resumed``: taken from ``output_dir``;
    ``wall_s``: wall time of this call (cluster start excluded, ``startup_s``);
    ``workers``: memory per worker process at the end (:func:`worker_memory`);
    ``scheduler``: where it ran.
    """

    results: dict[str, dict[str, Any]]
    n_run: int
    n_resumed: int
    wall_s: float
    startup_s: float = 0.0
    workers: list[dict[str, Any]] = field(default_factory=list)
    scheduler: str = "serial"
    n_workers: int = 1


# -- progress --------------------------------------------------------------------------------------
class _Progress:
    def __init__(self, total: int, done: int, desc: str, enabled: bool) -> None:
        self.bar = None
        self.errors = 0
        if not enabled or total == 0:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[errors]}"), TimeElapsedColumn(),
                            TimeRemainingColumn())
        self.task = self.bar.add_task(desc, total=total, completed=done, errors="")
        self.bar.start()

    def advance(self, record: dict[str, Any]) -> None:
        if record.get("status") != "ok":
            self.errors += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1,
                            errors=f"{self.errors} errors" if self.errors else "")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- the runner ------------------------------------------------------------------------------------
def run_tasks(fn: Callable[[Any], dict[str, Any]], tasks: Mapping[str, Any], *,
              fingerprints: Mapping[str, str] | None = None,
              scheduler: Any = None, n_workers: int = 2, output_dir: str | os.PathLike[str] | None = None,
              resume: bool = True, retries: int = 2, progressbar: bool = True,
              desc: str = "tasks") -> RunReport:
    """Run ``fn(payload)`` for every task; see the module docstring for the behaviour.

    Parameters
    ----------
    fn : callable
        A module-level function (Dask pickles it by reference), payload -> JSON-able dict.
    tasks : mapping
        Task id (str) -> payload (picklable; DataFrames are fine).
    fingerprints : mapping, optional
        Task id -> a string that identifies what the task computes; compared with the stored
        one on resume.
    scheduler : None, "serial", str, distributed.Client or cluster
        None: an embedded ``LocalCluster(n_workers, threads_per_worker=1)``.
    output_dir : path, optional
        Where results are written as they finish (and read back on resume).
    retries : int
        Resubmissions of a task after Dask reports its worker died (``KilledWorker``).
    """
    ids = list(tasks)
    if len(set(ids)) != len(ids):
        raise BatchError("task ids must be unique")
    bad = [i for i in ids if not isinstance(i, str) or not i]
    if bad:
        raise BatchError(f"task ids must be non-empty strings, not {bad[0]!r}")
    fingerprints = dict(fingerprints or {})
    store = TaskStore(output_dir) if output_dir is not None else None
    results: dict[str, dict[str, Any]] = {}
    if store is not None and resume:
        for task_id in ids:
            record = store.read(task_id)
            if record is None:
                continue
            if record.get("fingerprint", "") != fingerprints.get(task_id, ""):
                raise BatchError(
                    f"{store.path(task_id)} holds a result for task {task_id!r} computed with "
                    "other settings or data than this batch's; use another output_dir (or "
                    "resume=False to overwrite)")
            results[task_id] = record
    todo = [i for i in ids if i not in results]
    n_resumed = len(results)
    progress = _Progress(len(ids), n_resumed, desc, progressbar)

    def finish(record: dict[str, Any]) -> None:
        results[record["id"]] = record
        if store is not None:
            store.write(record)
        progress.advance(record)

    t_start = time.perf_counter()
    startup = 0.0
    workers: list[dict[str, Any]] = []
    where = "serial"
    n_procs = 1
    try:
        if scheduler == "serial" or not todo:  # nothing to run: no cluster
            t0 = time.perf_counter()
            for task_id in todo:
                finish(_call(fn, task_id, tasks[task_id], fingerprints.get(task_id, "")))
            wall = time.perf_counter() - t0
            workers = [worker_memory()]
        else:
            with _client(scheduler, n_workers) as (client, where):
                startup = time.perf_counter() - t_start
                t0 = time.perf_counter()
                _run_dask(client, fn, todo, tasks, fingerprints, retries, finish)
                wall = time.perf_counter() - t0
                try:
                    memory = client.run(worker_memory)
                    workers = [{"worker": addr, **info} for addr, info in memory.items()]
                except Exception:  # noqa: BLE001 - memory is a report, not a result
                    workers = []
                n_procs = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    finally:
        progress.close()
    return RunReport(results={i: results[i] for i in ids if i in results}, n_run=len(todo),
                     n_resumed=n_resumed, wall_s=wall, startup_s=startup, workers=workers,
                     scheduler=where, n_workers=n_procs)


def _run_dask(client: Any, fn: Callable[[Any], dict[str, Any]], todo: list[str],
              tasks: Mapping[str, Any], fingerprints: Mapping[str, str], retries: int,
              finish: Callable[[dict[str, Any]], None]) -> None:
    from distributed import as_completed

    token = f"{os.getpid()}-{time.time_ns()}"

    def submit(task_id: str, attempt: int) -> Any:
        future = client.submit(_call, fn, task_id, tasks[task_id], fingerprints.get(task_id, ""),
                               key=f"bayesmix-{token}-{attempt}-{urllib.parse.quote(task_id)}",
                               pure=False)
        owner[future.key] = (task_id, attempt)
        return future

    owner: dict[str, tuple[str, int]] = {}
    pending = as_completed([submit(task_id, 0) for task_id in todo])
    for future in pending:
        task_id, attempt = owner.pop(future.key)
        try:
            record = future.result()
        except Exception as err:  # noqa: BLE001 - the worker died (KilledWorker) or was lost
            if attempt < retries:
                pending.add(submit(task_id, attempt + 1))
                continue
            record = {"id": task_id, "fingerprint": fingerprints.get(task_id, ""),
                      "status": "error", "worker": "",
                      "error": f"{type(err).__name__}: {err} (after {attempt + 1} submissions)",
                      "warnings": [], "seconds": float("nan")}
        finally:
            future.release()
        finish(record)


class _client:
    """Context manager: (client, description) for the ``scheduler`` argument."""

    def __init__(self, scheduler: Any, n_workers: int) -> None:
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.owned: list[Any] = []

    def __enter__(self) -> tuple[Any, str]:
        try:
            import distributed
        except ImportError as err:
            raise BatchError("running on a Dask cluster needs dask.distributed: "
                             "pip install 'bayesmix[batch]' (or scheduler='serial')") from err
        s = self.scheduler
        if isinstance(s, distributed.Client):
            return s, f"dask client {s.scheduler.address}"
        if s is None:
            import logging

            if not isinstance(self.n_workers, int) or self.n_workers < 1:
                raise BatchError(f"n_workers must be a positive integer, not {self.n_workers!r}")
            cluster = distributed.LocalCluster(
                n_workers=self.n_workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR)
            self.owned.append(cluster)
            client = distributed.Client(cluster)
            self.owned.insert(0, client)
            return client, f"LocalCluster({self.n_workers} workers x 1 thread)"
        if isinstance(s, (str, os.PathLike)) or hasattr(s, "scheduler_address"):
            client = distributed.Client(s)
            self.owned.insert(0, client)
            return client, f"dask scheduler {client.scheduler.address}"
        raise BatchError(f"scheduler must be None, 'serial', an address, a distributed.Client "
                         f"or a cluster, not {type(s).__name__}")

    def __exit__(self, *exc: Any) -> None:
        for obj in self.owned:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
