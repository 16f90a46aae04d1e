"""``bm.fit_many``: one formula (or several) fitted to many data sets, on a Dask cluster.

Each task builds a :class:`~bayesmix.Model` and fits it in a worker process. Workers keep
their own compile cache (:mod:`bayesmix.inference.compile_cache`, keyed by the model's
structure), so a worker compiles each structure once, the first time it meets it, and binds
every later data set of that structure to the compiled sampler (and a structure compiled
before, by any process on the machine, comes from the disk cache). The scheduling, retries,
writing of results as they finish and resuming are :mod:`bayesmix.runner`'s.
"""

from __future__ import annotations

import hashlib
import math
import os
import urllib.parse
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import BatchError
from bayesmix.runner import RunReport, run_tasks

__all__ = ["fit_many", "BatchResult"]

_FITS_DIR = "fits"


# -- the task --------------------------------------------------------------------------------------
def _read_data(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    path = Path(data)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".gz"):
        return pd.read_csv(path)
    if path.suffix in (".pkl", ".pickle"):
        return pd.read_pickle(path)
    raise BatchError(f"cannot read the data set {str(path)!r}: give a DataFrame or a "
                     ".csv, .parquet or .pkl file")


def fit_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Fit one model in a worker: the compact result of :func:`fit_many` (runs anywhere)."""
    from bayesmix.api.model import Model

    data = _read_data(payload["data"])
    model = Model(payload["formula"], data, **payload["model_args"])
    fit = model.fit(**payload["fit_args"], random_seed=payload["seed"], progressbar=False)
    prob = payload["prob"]
    rows = tidy_rows(fit, prob)
    report = fit.sampling_report()
    out: dict[str, Any] = {
        "params": rows,
        "diagnostics": {"n_obs": int(len(model.y)), "divergences": report.divergences,
                        "max_rhat": report.max_rhat, "min_ess_bulk": report.min_ess_bulk,
                        "min_ess_tail": report.min_ess_tail,
                        "treedepth_hits": report.treedepth_hits,
                        "problems": len(report.problems),
                        **{f"{k}_s": v for k, v in fit.timing.items()}},
    }
    if payload.get("save_path"):
        fit.save(payload["save_path"], overwrite=True)
        out["saved"] = str(payload["save_path"])
    return out


def tidy_rows(fit: Any, prob: float) -> list[dict[str, Any]]:
    """fixef, varcorr and the family's other parameters as records with a common set of columns."""
    pct = f"{100 * prob:g}"
    keep = ["mean", "sd", f"eti{pct}_lb", f"eti{pct}_ub", "ess_bulk", "ess_tail", "r_hat"]

    def rec(component: str, parameter: str, group: str, term: str, term2: str,
            row: pd.Series) -> dict[str, Any]:
        values = {("lower" if k.endswith("_lb") else "upper" if k.endswith("_ub") else k):
                  float(row[k]) for k in keep}
        return {"component": component, "parameter": parameter, "group": group, "term": term,
                "term2": term2, **values}

    rows = [rec("fixef", str(term), "", str(term), "", row)
            for term, row in fit.fixef(prob=prob).iterrows()]
    vc = fit.varcorr(prob=prob)
    for _, row in vc.iterrows():
        group, term, term2, kind = str(row["group"]), str(row["term"]), str(row["term2"]), \
            str(row["kind"])
        if group == "Residual":
            label = "sigma"
        elif kind == "cor":
            label = f"cor({term},{term2}|{group})"
        elif kind == "sd":
            label = f"sd({term}|{group})"
        else:
            label = f"{kind}({term}|{group})" if group else term
        rows.append(rec("varcorr", label, group, term, term2, row))
    has_residual = bool((vc["group"] == "Residual").any())
    for name, row in fit.family_params(prob=prob).iterrows():
        if name == "sigma" and has_residual:
            continue
        rows.append(rec("family", str(name), "", str(name), "", row))
    return rows


# -- the result ------------------------------------------------------------------------------------
@dataclass
class BatchResult:
    """The fits of :func:`fit_many`.

    Attributes
    ----------
    params : DataFrame
        Tidy: one row per data set x model x parameter, with columns ``id``, ``model``,
        ``component`` ("fixef", "varcorr", "family"), ``parameter`` (``"Days"``,
        ``"sd((Intercept)|Subject)"``, ``"cor((Intercept),Days|Subject)"``, ``"sigma"``),
        ``group``, ``term``, ``term2``, ``mean``, ``sd``, ``lower``, ``upper`` (the central
        posterior interval at ``prob``), ``ess_bulk``, ``ess_tail``, ``r_hat``.
    tasks : DataFrame
        One row per task: ``id``, ``model``, ``status`` ("ok" or "error"), ``error``,
        ``n_obs``, ``divergences``, ``max_rhat``, ``min_ess_bulk``, ``problems`` (count of
        sampling problems), ``n_warnings``, ``seconds`` (in the worker), ``worker``, ``saved``
        (the fit's directory with ``save_fits``, for :func:`bayesmix.load`).
    report : RunReport
        Wall time, tasks run and resumed, worker memory (:mod:`bayesmix.runner`).
    """

    params: pd.DataFrame
    tasks: pd.DataFrame
    report: RunReport
    warnings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def errors(self) -> pd.DataFrame:
        """The tasks that failed, with their error messages."""
        return self.tasks.loc[self.tasks["status"] != "ok", ["id", "model", "error"]]

    @property
    def throughput(self) -> float:
        """Fits per second of wall time in this call (tasks resumed from disk excluded)."""
        return self.report.n_run / self.report.wall_s if self.report.wall_s > 0 else math.nan

    @property
    def workers(self) -> pd.DataFrame:
        """Memory of each worker process at the end of the batch (MiB: now and peak)."""
        return pd.DataFrame(self.report.workers)

    def estimates(self, component: str | None = "fixef", value: str = "mean") -> pd.DataFrame:
        """Wide table: one row per data set (and model), one column per parameter.

        Examples
        --------
        >>> res.estimates().head()  # doctest: +SKIP
        """
        table = self.params if component is None else \
            self.params[self.params["component"] == component]
        return table.pivot_table(index=["id", "model"], columns="parameter", values=value,
                                 sort=False)

    def load(self, task_id: str) -> Any:
        """The saved fit of a task (``save_fits=True``), as a :class:`~bayesmix.FitResult`."""
        from bayesmix.api.persist import load

        row = self.tasks.loc[self.tasks["id"] == task_id]
        if row.empty or not isinstance(row["saved"].iloc[0], str):
            raise BatchError(f"no saved fit for task {task_id!r}: fit_many(..., "
                             "save_fits=True, output_dir=...) saves them")
        return load(row["saved"].iloc[0])

    def __repr__(self) -> str:
        n = len(self.tasks)
        ok = int((self.tasks["status"] == "ok").sum()) if n else 0
        r = self.report
        return (f"<BatchResult: {n} fits ({ok} ok, {n - ok} errors); {r.n_run} run in "
                f"{r.wall_s:.1f} s ({self.throughput:.2f} fits/s) on {r.scheduler}"
                f"{f', {r.n_resumed} resumed' if r.n_resumed else ''}>")


# -- fit_many --------------------------------------------------------------------------------------
def _formulas(formula: Any) -> dict[str, Any]:
    if isinstance(formula, Mapping):
        out = {str(k): v for k, v in formula.items()}
    elif isinstance(formula, (list, tuple)):
        out = {f"m{i + 1}": f for i, f in enumerate(formula)}
    else:
        return {"m1": formula}
    if not out:
        raise BatchError("no formula given")
    return out


def _datasets(data: Any, by: str | Sequence[str] | None) -> dict[str, Any]:
    if isinstance(data, pd.DataFrame):
        if by is None:
            return {"1": data}
        cols = [by] if isinstance(by, str) else list(by)
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise BatchError(f"by={by!r}: no column {missing[0]!r} in the data (columns: "
                             f"{', '.join(map(str, data.columns[:12]))})")
        out: dict[str, Any] = {}
        for key, frame in data.groupby(cols if len(cols) > 1 else cols[0], sort=True,
                                       observed=True):
            parts = key if isinstance(key, tuple) else (key,)
            out["/".join(map(str, parts))] = frame.reset_index(drop=True)
        return out
    if by is not None:
        raise BatchError("by= splits one DataFrame; with several data sets leave it out")
    if isinstance(data, Mapping):
        out = {str(k): v for k, v in data.items()}
        if len(out) != len(data):
            raise BatchError("data set ids must be distinct as strings")
    elif isinstance(data, (list, tuple)):
        out = {str(i): v for i, v in enumerate(data)}
    else:
        raise BatchError(f"data must be a DataFrame (with by=), a dict or a list of DataFrames "
                         f"or paths, not {type(data).__name__}")
    if not out:
        raise BatchError("no data sets given")
    for key, value in out.items():
        if not isinstance(value, (pd.DataFrame, str, os.PathLike)):
            raise BatchError(f"data set {key!r} is a {type(value).__name__}: give a DataFrame "
                             "or the path of a .csv/.parquet/.pkl file")
    return out


def _data_hash(data: Any) -> str:
    if isinstance(data, pd.DataFrame):
        h = pd.util.hash_pandas_object(data, index=True).to_numpy()
        return hashlib.sha256(h.tobytes() + ",".join(map(str, data.columns)).encode()).hexdigest()
    path = Path(data)
    try:
        st = path.stat()
        return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return str(path)


def task_seed(random_seed: int, task_id: str) -> int:
    """A seed per task from the batch's seed and the task's id (the same on every rerun)."""
    ss = np.random.SeedSequence([int(random_seed), zlib.crc32(task_id.encode())])
    return int(ss.generate_state(1)[0])


def fit_many(formula: Any, data: Any, *, by: str | Sequence[str] | None = None,
             family: str = "gaussian", priors: dict[str, Any] | None = None,
             model_args: dict[str, Any] | None = None,
             draws: int = 1000, tune: int = 1000, chains: int = 4, cores: int = 1,
             target_accept: float = 0.8, max_treedepth: int = 10, random_seed: int = 0,
             prob: float = 0.95, scheduler: Any = None, n_workers: int = 2,
             output_dir: str | os.PathLike[str] | None = None, save_fits: bool = False,
             shared_priors: bool = True, resume: bool = True, retries: int = 2,
             progressbar: bool = True) -> BatchResult:
    """Fit one formula (or several) to many data sets, in parallel on a Dask cluster.

    Parameters
    ----------
    formula : str, Formula, NonLinear, or a list or dict of them
        As :class:`~bayesmix.Model`; a list names the models ``m1, m2, ...``, a dict by its
        keys. Every formula is fitted to every data set.
    data : DataFrame, dict or list
        One DataFrame split by ``by`` (one data set per group: per gene, region, site), or
        data sets keyed by id (a list: ids ``"0", "1", ...``), each a DataFrame or the path of
        a ``.csv``/``.parquet``/``.pkl`` file that the workers can read (a path is read in
        the worker: less to send over the network).
    by : str or list of str, optional
        Column(s) of ``data`` whose groups are the data sets; ids ``"a"`` or ``"a/b"``.
    family, priors, model_args
        Passed to :class:`~bayesmix.Model` (``model_args``: the other keyword arguments,
        e.g. ``{"centered": {"Subject": False}}``).
    shared_priors : bool
        The default priors are scaled to the data (see the guide page "Choosing priors"), and their scales
        are constants of the compiled sampler. With ``True`` (default) they are computed
        once per formula, on the first data set that builds, and given to every fit of that
        formula (``priors`` still override them): all fits of a formula then share one
        structure and a worker compiles it once. Data sets on very different scales
        (genes with expression levels orders of magnitude apart) need ``False``: each data
        set gets its own default priors, and each fit compiles its own sampler (10-20 s a
        fit on a 2-core machine) -- or give ``priors`` for every parameter.
    draws, tune, chains, cores, target_accept, max_treedepth
        Passed to :meth:`~bayesmix.Model.fit`. ``cores=1``: one worker thread per fit, its
        chains run one after the other (the workers are the parallelism).
    random_seed : int
        The batch's seed; each task's seed derives from it and the task's id, so a rerun (or
        a resumed run) gives the same draws.
    prob : float
        Level of the central posterior intervals in the results.
    scheduler : None, "serial", str, distributed.Client or cluster
        None (default): an embedded ``distributed.LocalCluster`` with ``n_workers`` processes
        of one thread, closed at the end; an address such as ``"tcp://10.0.0.5:8786"``; a
        ``Client`` (left open); ``"serial"``: a loop in this process (no Dask).
    output_dir : path, optional
        Each finished task is written to ``output_dir/results/<id>.json`` as it arrives; a
        rerun with the same directory skips the tasks found there (``resume=False`` reruns
        them). Nothing finished is lost when a worker (or this process) dies.
    save_fits : bool
        Also save each fit (its DataTree as a Zarr store, model and data) to
        ``output_dir/fits/<id>.bayesmix``, written by the worker: the directory must be on
        a file system the workers share. ``BatchResult.load(id)`` reads one back.
    retries : int
        Resubmissions of a task whose worker died, after Dask's own rescheduling.
    progressbar : bool
        A progress bar over tasks.

    Returns
    -------
    BatchResult
        ``.params`` (tidy: data set x model x parameter), ``.tasks`` (status, diagnostics,
        error per task), ``.errors``, ``.throughput``, ``.workers`` (memory).

    A formula that fails on a data set (a missing column, too few levels, a sampler error)
    does not stop the batch: the task's ``status`` is ``"error"`` and ``error`` holds the
    exception's type and message. Warnings raised during a fit (convergence, singular fits)
    are collected per task in ``BatchResult.warnings``; ``tasks.problems`` counts the
    sampling problems.

    Examples
    --------
    >>> import bayesmix as bm
    >>> sleep = bm.datasets.load("sleepstudy")
    >>> res = bm.fit_many("Reaction ~ Days + (1 | Subject)", [sleep, sleep.iloc[:90]],
    ...                   draws=200, tune=200, chains=2, scheduler="serial", progressbar=False)
    >>> res.estimates()["Days"].round(-1).tolist()
    [10.0, 10.0]

    On a cluster (two local worker processes, the default)::

        res = bm.fit_many("y ~ x + (1 | site)", df, by="gene", output_dir="genes_out")
        res.params.query("parameter == 'x'")
    """
    from bayesmix.inference.sample import SamplerSettings

    formulas = _formulas(formula)
    datasets = _datasets(data, by)
    if save_fits and output_dir is None:
        raise BatchError("save_fits=True needs output_dir (where the fits are written)")
    if not 0 < prob < 1:
        raise BatchError(f"prob must be in (0, 1), not {prob!r}")
    fit_args = {"draws": draws, "tune": tune, "chains": chains, "cores": cores,
                "target_accept": target_accept, "max_treedepth": max_treedepth}
    SamplerSettings(**fit_args)  # bad settings fail here, not once per task
    model_args = {"family": family, **({"priors": priors} if priors else {}),
                  **(model_args or {})}
    several = len(formulas) > 1
    formula_args = {name: _shared_priors(f, datasets, model_args) if shared_priors
                    else model_args for name, f in formulas.items()}
    tasks: dict[str, dict[str, Any]] = {}
    fingerprints: dict[str, str] = {}
    labels: dict[str, tuple[str, str]] = {}
    data_hashes = {key: _data_hash(value) for key, value in datasets.items()}
    for name, f in formulas.items():
        for key, frame in datasets.items():
            task_id = f"{key}::{name}" if several else key
            labels[task_id] = (key, name)
            save_path = None
            if save_fits:
                save_path = str(Path(output_dir) / _FITS_DIR /  # type: ignore[arg-type]
                                (urllib.parse.quote(task_id, safe="") + ".bayesmix"))
            args = formula_args[name]
            tasks[task_id] = {"formula": f, "data": frame, "model_args": args,
                              "fit_args": fit_args, "seed": task_seed(random_seed, task_id),
                              "prob": prob, "save_path": save_path}
            fingerprints[task_id] = hashlib.sha256(repr(
                (str(f), sorted((k, repr(v)) for k, v in args.items()),
                 sorted(fit_args.items()), random_seed, prob, data_hashes[key])).encode()
            ).hexdigest()[:20]
    report = run_tasks(fit_task, tasks, fingerprints=fingerprints, scheduler=scheduler,
                       n_workers=n_workers, output_dir=output_dir, resume=resume,
                       retries=retries, progressbar=progressbar, desc="fits")
    return _collect(report, labels)


def _shared_priors(formula: Any, datasets: dict[str, Any], model_args: dict[str, Any]
                   ) -> dict[str, Any]:
    """``model_args`` with every prior of the first data set that builds made explicit."""
    import warnings

    from bayesmix.api.model import Model
    from bayesmix.errors import BayesmixError

    for data in datasets.values():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = Model(formula, _read_data(data), **model_args)
                priors = {spec.key: spec.prior for spec in model.prior_specs}
                args = {**model_args, "priors": priors}
                Model(formula, _read_data(data), **args)  # the explicit priors are accepted
        except (BayesmixError, ValueError, TypeError, KeyError, OSError):
            continue
        return args
    return model_args  # no data set builds: every task will record its error


def _collect(report: RunReport, labels: dict[str, tuple[str, str]]) -> BatchResult:
    params: list[pd.DataFrame] = []
    rows: list[dict[str, Any]] = []
    caught: dict[str, list[str]] = {}
    for task_id, record in report.results.items():
        key, name = labels[task_id]
        result = record.get("result") or {}
        diag = result.get("diagnostics", {})
        rows.append({"id": key, "model": name, "status": record["status"],
                     "error": record.get("error", ""), "n_obs": diag.get("n_obs"),
                     "divergences": diag.get("divergences"), "max_rhat": diag.get("max_rhat"),
                     "min_ess_bulk": diag.get("min_ess_bulk"), "problems": diag.get("problems"),
                     "n_warnings": len(record.get("warnings", [])),
                     "seconds": record.get("seconds"), "worker": record.get("worker", ""),
                     "saved": result.get("saved")})
        if record.get("warnings"):
            caught[task_id] = record["warnings"]
        if result.get("params"):
            frame = pd.DataFrame(result["params"])
            frame.insert(0, "model", name)
            frame.insert(0, "id", key)
            params.append(frame)
    columns = ["id", "model", "component", "parameter", "group", "term", "term2", "mean", "sd",
               "lower", "upper", "ess_bulk", "ess_tail", "r_hat"]
    table = pd.concat(params, ignore_index=True) if params else pd.DataFrame(columns=columns)
    return BatchResult(params=table, tasks=pd.DataFrame(rows), report=report, warnings=caught)
