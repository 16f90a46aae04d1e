"""Save a fit to disk and load it back: ``fit.save(path)`` and ``bm.load(path)``.

The format is a directory (suggested suffix ``.bayesmix``) holding

* ``bayesmix.json``: ``format`` ("bayesmix-fit"), ``format_version`` (an integer, now 1), the
  writing bayesmix version, the model's constructor arguments (formula, family, link, user
  priors, centring per block, na_action), the used data columns (values with their dtypes,
  categories and index), sampler settings, timings, and a SHA-256 fingerprint of the design
  arrays (X, response, trials, offset, level indices and covariates, names and levels);
* ``idata.zarr``: the ArviZ DataTree (every group) as a Zarr store.

Loading rebuilds the :class:`~bayesmix.Model` from the saved arguments and data, checks the
rebuilt design against the fingerprint (a mismatch means a different formulae/pandas gives a
different design: the fit would predict differently, so loading refuses), and opens the
DataTree: the loaded fit predicts on new data exactly as the original. A file whose
``format_version`` is newer than this bayesmix knows raises :class:`~bayesmix.PersistError`.
Only plain data (numbers, booleans, strings, categoricals) are stored; other column types
are refused at save time, before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix.data.structured import AR1
from bayesmix.errors import PersistError
from bayesmix.inference.sample import SamplerSettings
from bayesmix.priors import Prior

if TYPE_CHECKING:
    from bayesmix.model.model import ModelSpec

__all__ = ["save", "read", "SavedFit", "FORMAT_VERSION", "design_fingerprint"]

FORMAT_VERSION = 1
_META = "bayesmix.json"
_IDATA = "idata.zarr"


# -- data as JSON ---------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    raise PersistError(f"cannot store the value {value!r} ({type(value).__name__}); save "
                       "supports numbers, booleans, strings and categoricals")


def _encode(values: pd.Series | pd.Index) -> dict[str, Any]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = pd.Categorical(values)
        return {"kind": "category", "codes": cat.codes.tolist(), "ordered": bool(cat.ordered),
                "categories": _encode(pd.Index(cat.categories))}
    return {"kind": "plain", "dtype": str(values.dtype), "values": [_plain(v) for v in values]}


def _decode(spec: dict[str, Any]) -> Any:
    """The array that :func:`_encode` stored."""
    if spec["kind"] == "category":
        return pd.Categorical.from_codes(spec["codes"], categories=_decode(spec["categories"]),
                                         ordered=spec["ordered"])
    dtype, values = spec["dtype"], spec["values"]
    if dtype == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    if dtype.startswith("float"):
        values = [np.nan if v is None else v for v in values]
    return pd.array(values, dtype=dtype)


def _encode_frame(data: pd.DataFrame) -> dict[str, Any]:
    if isinstance(data.index, pd.MultiIndex):
        raise PersistError("save needs data with a plain (single-level) index; "
                           "reset_index() the data before fitting")
    bad = [c for c in data.columns if not isinstance(c, str)]
    if bad:
        raise PersistError(f"save needs string column names, not {bad[0]!r}")
    return {"index": _encode(data.index), "index_name": data.index.name,
            "columns": [{"name": c, **_encode(data[c])} for c in data.columns]}


def _decode_frame(spec: dict[str, Any]) -> pd.DataFrame:
    index = pd.Index(_decode(spec["index"]), name=spec["index_name"])
    return pd.DataFrame({c["name"]: _decode(c) for c in spec["columns"]}, index=index)


# -- model arguments ---------------------------------------------------------------------------
def design_fingerprint(model: "ModelSpec") -> str:
    """SHA-256 of the model's design arrays, names and levels (see the module docstring)."""
    h = hashlib.sha256()
    design = model.design

    def add(value: Any) -> None:
        if isinstance(value, np.ndarray):
            h.update(np.ascontiguousarray(value, dtype=float).tobytes())
        else:
            h.update(repr(value).encode())

    for value in (design.X, model.y, design.offset, list(design.coef_names)):
        add(value)
    if model.trials is not None:
        add(model.trials)
    for block in design.blocks:
        for value in (block.index, block.Z, block.name, list(block.coef_names),
                      [str(v) for v in block.levels]):
            add(value)
    return h.hexdigest()


def _formula_json(formula: Any) -> Any:
    """A formula as JSON: the text, or the texts of a bm.Formula / bm.NonLinear."""
    from bayesmix.spec.distributional import Formula, NonLinear

    if isinstance(formula, Formula):
        return {"kind": "Formula", "lines": list(formula.lines)}
    if isinstance(formula, NonLinear):
        rhs = {name: spec.formula.split("~", 1)[1].strip() for name, spec in formula.params}
        return {"kind": "NonLinear", "formula": formula.formula,
                "dpars": [spec.formula for _, spec in formula.dpars], "params": rhs}
    return formula


def _formula_from_json(value: Any) -> Any:
    from bayesmix.spec.distributional import Formula, NonLinear

    if isinstance(value, dict) and value.get("kind") == "Formula":
        return Formula(*value["lines"])
    if isinstance(value, dict) and value.get("kind") == "NonLinear":
        return NonLinear(value["formula"], *value["dpars"], **value["params"])
    return value


def _data2_json(data2: dict[str, Any] | None) -> dict[str, Any] | None:
    """Known covariance matrices, as labelled frames (values and level labels)."""
    if not data2:
        return None
    out = {}
    for key, matrix in data2.items():
        frame = matrix if isinstance(matrix, pd.DataFrame) else pd.DataFrame(np.asarray(matrix))
        out[key] = {"index": [_scalar(v) for v in frame.index],
                    "columns": [_scalar(v) for v in frame.columns],
                    "values": frame.to_numpy(dtype=float).tolist(),
                    "frame": isinstance(matrix, pd.DataFrame)}
    return out


def _data2_from_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    out: dict[str, Any] = {}
    for key, m in value.items():
        values = np.array(m["values"], dtype=float)
        out[key] = pd.DataFrame(values, index=m["index"], columns=m["columns"]) \
            if m["frame"] else values
    return out


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _model_args(model: "ModelSpec") -> dict[str, Any]:
    args = model.constructor_args()
    autocor = args["autocor"]
    return {"formula": _formula_json(args["formula"]), "family": args["family"],
            "link": args["link"], "data2": _data2_json(args["data2"]),
            "weights": args["weights"],
            "autocor": None if autocor is None else {"time": autocor.time,
                                                     "group": autocor.group},
            "na_action": args["na_action"], "centered": args["centered"],
            "marginalize": args["marginalize"],
            "priors": {k: {"dist": p.dist, "params": p.kwargs} for k, p in args["priors"].items()}}


def save(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings,
         timing: dict[str, float], path: str | Path, overwrite: bool = False) -> Path:
    """Write a fit (its DataTree, model, sampler settings and timings) to the directory
    ``path`` (format in the module docstring); ``fit.save(path)`` calls it.

    Examples
    --------
    >>> fit.save("sleep.bayesmix")  # doctest: +SKIP
    >>> same = bm.load("sleep.bayesmix")  # doctest: +SKIP
    """
    from bayesmix.version import __version__

    path = Path(path)
    meta = {"format": "bayesmix-fit", "format_version": FORMAT_VERSION,
            "bayesmix_version": __version__, "model": _model_args(model),
            "data": _encode_frame(model.data), "settings": _settings_json(settings),
            "timing": {k: float(v) for k, v in timing.items()},
            "design_sha256": design_fingerprint(model)}
    check = _decode_frame(json.loads(json.dumps(meta["data"])))
    if not check.equals(model.data) or not check.index.equals(model.data.index):
        raise PersistError("the model's data do not survive storage unchanged (unusual column "
                           "types?); convert them to numbers, strings or categoricals")
    if path.exists():
        if not overwrite:
            raise PersistError(f"{str(path)!r} exists; pass overwrite=True to replace it")
        if not (path / _META).exists():
            raise PersistError(f"{str(path)!r} exists and is not a saved bayesmix fit; "
                               "refusing to overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr notes on string encodings and metadata
        idata.to_zarr(path / _IDATA, consolidated=False)
    (path / _META).write_text(json.dumps(meta, indent=1))
    return path


def _settings_json(settings: SamplerSettings) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in asdict(settings).items()}


def _object_coords(dt: xr.DataTree) -> xr.DataTree:
    """Zarr returns string labels as numpy strings; the sampler gave Python objects."""
    groups = {}
    for name, node in dt.children.items():
        ds = node.to_dataset()
        fixed = {c: ds[c].astype(object) for c in ds.coords if ds[c].dtype.kind in "TU"}
        groups[name] = ds.assign_coords(fixed)
    out = xr.DataTree.from_dict(groups)
    out.attrs = dict(dt.attrs)
    return out


@dataclass(frozen=True, eq=False)
class SavedFit:
    """What a saved fit holds: the model's constructor arguments, the DataTree, the sampler
    settings and timings, and the design's fingerprint to check the rebuilt model against."""

    model_args: dict[str, Any]
    idata: xr.DataTree
    settings: SamplerSettings
    timing: dict[str, float]
    fingerprint: str


def read(path: str | Path) -> SavedFit:
    """Read a fit written by :func:`save`; :func:`bayesmix.load` rebuilds the model from it.

    Examples
    --------
    >>> saved = read("sleep.bayesmix")  # doctest: +SKIP
    """
    from bayesmix.version import __version__

    path = Path(path)
    if not (path / _META).is_file():
        raise PersistError(f"{str(path)!r} is not a saved bayesmix fit (no {_META} in it)")
    meta = json.loads((path / _META).read_text())
    if meta.get("format") != "bayesmix-fit":
        raise PersistError(f"{str(path / _META)!r} is not a bayesmix fit file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PersistError(
            f"{str(path)!r} was written by bayesmix {meta.get('bayesmix_version', '?')} in "
            f"format version {version}; this bayesmix ({__version__}) reads versions up to "
            f"{FORMAT_VERSION}: upgrade bayesmix to load it")
    args = meta["model"]
    autocor = args.get("autocor")
    model_args = {
        "formula": _formula_from_json(args["formula"]), "data": _decode_frame(meta["data"]),
        "family": args["family"], "link": args["link"],
        "priors": {k: Prior(v["dist"], **v["params"]) for k, v in args["priors"].items()}
        or None,
        "centered": args["centered"], "na_action": args["na_action"],
        "data2": _data2_from_json(args.get("data2")), "weights": args.get("weights"),
        "autocor": None if autocor is None else AR1(**autocor),
        "marginalize": args.get("marginalize", False)}  # older files: not marginal
    idata = xr.open_datatree(path / _IDATA, engine="zarr", consolidated=False).load()
    return SavedFit(model_args, _object_coords(idata), SamplerSettings(**meta["settings"]),
                    meta["timing"], meta["design_sha256"])
