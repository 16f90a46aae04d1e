"""Classic mixed-model datasets shipped with bayesmix, with reference lme4/glmmTMB estimates.

The CSV files were exported from the R packages that publish them (lme4, nlme, rstanarm, brms,
R ``datasets``); ``PROVENANCE.md`` next to them says where each comes from and under which licence.

In these files a *quoted* field is an R factor (or string) and an *unquoted* field is a number, so
``load`` reads the quoting, not just the text: ``cbpp.period`` (``"1"`` .. ``"4"``) loads as a
categorical column with levels ``["1", "2", "3", "4"]``, not as integers, exactly as R sees it.
Factor levels follow R's order: numeric-looking levels sort numerically (``"2"`` before ``"10"``),
other levels alphabetically, except the factors listed in ``schema.json`` whose R levels are in a
different order (e.g. ``orthodont.Sex`` is ``["Male", "Female"]``, so the reference level is Male).

Examples
--------
>>> from bayesmix import datasets
>>> df = datasets.load("sleepstudy")
>>> df.shape
(180, 3)
>>> df["Subject"].cat.categories[:3].tolist()
['308', '309', '310']
>>> list(datasets.load("cbpp")["period"].cat.categories)
['1', '2', '3', '4']
>>> datasets.reference_estimates("sleepstudy_slopes")["fixef"]["Days"]  # doctest: +ELLIPSIS
10.467...
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import DatasetError

__all__ = ["load", "names", "list_datasets", "reference_estimates", "describe"]

_PACKAGE = __name__

# One CSV field: a quoted string (with "" as an escaped quote, commas and newlines allowed inside)
# or a run of characters up to the next comma/newline; followed by its terminator.
_FIELD = re.compile(r'(?:"((?:[^"]|"")*)"|([^,\r\n"]*))(,|\r\n|\n|\r|$)')
_NA_TOKENS = frozenset({"NA", ""})


# --------------------------------------------------------------------------------------------
# files


def _read_text(filename: str) -> str:
    return resources.files(_PACKAGE).joinpath(filename).read_text(encoding="utf-8")


@cache
def names() -> tuple[str, ...]:
    """Names of the shipped datasets (file names without ``.csv``), sorted.

    Examples
    --------
    >>> from bayesmix import datasets
    >>> "sleepstudy" in datasets.names()
    True
    """
    files = resources.files(_PACKAGE).iterdir()
    return tuple(sorted(f.name[: -len(".csv")] for f in files if f.name.endswith(".csv")))


@cache
def _schema() -> dict[str, Any]:
    return json.loads(_read_text("schema.json"))


@cache
def _references() -> dict[str, dict[str, Any]]:
    return json.loads(_read_text("reference_estimates.json"))


def _resolve(name: str) -> str:
    """Canonical dataset name for ``name`` (case-insensitive, optional ``.csv``), or raise."""
    if not isinstance(name, str):
        raise DatasetError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key.endswith(".csv"):
        key = key[: -len(".csv")]
    available = names()
    if key in available:
        return key
    close = difflib.get_close_matches(key, available, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DatasetError(
        f"unknown dataset {name!r}.{hint} Available datasets: {', '.join(available)}."
    )


# --------------------------------------------------------------------------------------------
# CSV parsing that keeps R's quoting information


def _tokenize(text: str) -> list[list[tuple[str, bool]]]:
    """Split CSV text into rows of ``(value, was_quoted)`` fields."""
    rows: list[list[tuple[str, bool]]] = []
    row: list[tuple[str, bool]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _FIELD.match(text, pos)
        if m is None or m.end() == pos:  # a stray quote inside an unquoted field
            line = text.count("\n", 0, pos) + 1
            raise DatasetError(f"malformed CSV near line {line}")
        quoted_value, plain_value, terminator = m.groups()
        if quoted_value is not None:
            row.append((quoted_value.replace('""', '"'), True))
        else:
            row.append((plain_value, False))
        pos = m.end()
        if terminator != ",":
            if row != [("", False)]:  # skip blank lines
                rows.append(row)
            row = []
    return rows


def _to_number(token: str) -> float | int | None:
    if token in _NA_TOKENS:
        return None
    special = {"Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if token in special:
        return special[token]
    try:
        return int(token)
    except ValueError:
        return float(token)


def _default_levels(values: list[str | None]) -> list[str]:
    """R's level order: numerically if every level looks like a number, else alphabetically."""
    levels = {v for v in values if v is not None}
    try:
        return sorted(levels, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(levels, key=lambda s: (s.casefold(), s))


def _parse(dataset: str, text: str) -> pd.DataFrame:
    rows = _tokenize(text)
    if not rows:
        raise DatasetError(f"dataset {dataset!r} is empty")
    header = [value for value, _ in rows[0]]
    body = rows[1:]
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DatasetError(
                f"dataset {dataset!r}: line {i} has {len(row)} fields, expected {len(header)}"
            )
    overrides: dict[str, list[str]] = _schema().get("level_overrides", {}).get(dataset, {})
    columns: dict[str, Any] = {}
    for j, column in enumerate(header):
        fields = [row[j] for row in body]
        is_factor = any(quoted for _, quoted in fields)
        if is_factor:
            # Unquoted NA inside a quoted column is R's missing value; anything else is a label.
            values = [None if (not q and v in _NA_TOKENS) else v for v, q in fields]
            levels = overrides.get(column) or _default_levels(values)
            unknown = {v for v in values if v is not None} - set(levels)
            if unknown:
                raise DatasetError(
                    f"dataset {dataset!r}, column {column!r}: values {sorted(unknown)} are not in "
                    f"the level order given in schema.json"
                )
            columns[column] = pd.Categorical(values, categories=levels)
        else:
            try:
                numbers = [_to_number(v) for v, _ in fields]
            except ValueError as err:
                raise DatasetError(
                    f"dataset {dataset!r}, column {column!r}: unquoted non-numeric value ({err})"
                ) from None
            if all(isinstance(x, int) for x in numbers):
                columns[column] = np.array(numbers, dtype=np.int64)
            else:
                columns[column] = np.array(
                    [math.nan if x is None else x for x in numbers], dtype=np.float64
                )
    return pd.DataFrame(columns)


@cache
def _load_cached(dataset: str) -> pd.DataFrame:
    return _parse(dataset, _read_text(f"{dataset}.csv"))


# --------------------------------------------------------------------------------------------
# public API


def load(name: str) -> pd.DataFrame:
    """Load a shipped dataset as a new :class:`pandas.DataFrame`.

    Parameters
    ----------
    name
        Dataset name, case-insensitive, with or without ``.csv`` (see :func:`names`).

    Returns
    -------
    pandas.DataFrame
        A fresh copy every call (changing it does not affect later calls). Columns that are R
        factors are ``pandas.Categorical`` with R's level order and labels exactly as in the file
        (e.g. ``"308"``); numeric columns are ``int64`` when every value is a whole number without
        missing values, ``float64`` otherwise.

    Raises
    ------
    bayesmix.errors.DatasetError
        If no dataset has that name; the message lists the available names and the closest one.

    Examples
    --------
    >>> from bayesmix import datasets
    >>> cbpp = datasets.load("CBPP")
    >>> cbpp.dtypes.to_dict()  # doctest: +SKIP
    {'herd': category, 'incidence': int64, 'size': int64, 'period': category}
    >>> datasets.load("orthodont")["Sex"].cat.categories.tolist()
    ['Male', 'Female']
    """
    return _load_cached(_resolve(name)).copy(deep=True)


def _provenance_table() -> list[dict[str, str]]:
    """Rows of the table in PROVENANCE.md: file, rows, source, licence, typical model."""
    out = []
    for line in _read_text("PROVENANCE.md").splitlines():
        if not re.match(r"^\|\s*\w+\.csv\s*\|", line):
            continue
        # split on | that are not escaped as \|
        cells = [c.strip().replace(r"\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) >= 5:
            out.append(dict(zip(["file", "rows", "source", "licence", "typical_model"], cells)))
    return out


def list_datasets() -> pd.DataFrame:
    """Table of the shipped datasets.

    Returns
    -------
    pandas.DataFrame
        One row per dataset with columns ``name``, ``rows``, ``columns``, ``source``,
        ``licence``, ``typical_model`` and ``references`` (keys of :func:`reference_estimates`
        fitted to it).

    Examples
    --------
    >>> from bayesmix import datasets
    >>> table = datasets.list_datasets()
    >>> int(table.set_index("name").loc["sleepstudy", "rows"])
    180
    """
    info = {row["file"][: -len(".csv")]: row for row in _provenance_table()}
    refs = _references()
    records = []
    for name in names():
        row = info.get(name, {})
        header = _read_text(f"{name}.csv").split("\n", 1)[0]
        records.append(
            {
                "name": name,
                "rows": int(row["rows"]) if row.get("rows", "").isdigit() else None,
                "columns": header.count(",") + 1,
                "source": _strip_md(row.get("source", "")),
                "licence": row.get("licence", ""),
                "typical_model": _strip_md(row.get("typical_model", "")),
                "references": [k for k, v in refs.items() if v.get("dataset") == name],
            }
        )
    return pd.DataFrame.from_records(records)


def _strip_md(text: str) -> str:
    return text.replace("`", "")


def reference_estimates(key: str | None = None) -> dict[str, Any]:
    """Reference maximum-likelihood / REML estimates from lme4 or glmmTMB.

    Parameters
    ----------
    key
        A reference fit, e.g. ``"sleepstudy_slopes"``; ``None`` returns all of them, keyed by name.

    Returns
    -------
    dict
        A copy of the entry: ``dataset``, ``formula`` (lme4/brms syntax), ``family``, ``method``,
        ``fixef`` and ``fixef_se`` (coefficient names as R prints them), ``varcorr``
        (``"group:term:sd"``, ``"group:term1:term2:cor"``, ``"Residual::sd"``), ``loglik``,
        ``nobs`` and, for negative binomial fits, ``dispersion``. See ``PROVENANCE.md``.

    Raises
    ------
    bayesmix.errors.DatasetError
        For an unknown key; the message lists the available keys.

    Examples
    --------
    >>> from bayesmix import datasets
    >>> ref = datasets.reference_estimates("cbpp_binomial")
    >>> ref["formula"]
    'incidence | trials(size) ~ period + (1|herd)'
    >>> sorted(ref["fixef"])
    ['(Intercept)', 'period2', 'period3', 'period4']
    """
    refs = _references()
    if key is None:
        return copy.deepcopy(refs)
    if key not in refs:
        close = difflib.get_close_matches(key, list(refs), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(
            f"unknown reference estimate {key!r}.{hint} Available: {', '.join(refs)}."
        )
    return copy.deepcopy(refs[key])


def describe(name: str) -> str:
    """Provenance and column summary of one dataset, as text.

    Examples
    --------
    >>> from bayesmix import datasets
    >>> print(datasets.describe("dyestuff"))  # doctest: +ELLIPSIS
    dyestuff: 30 rows, 2 columns
    source: lme4 Dyestuff
    ...
    """
    dataset = _resolve(name)
    df = _load_cached(dataset)
    row = next((r for r in _provenance_table() if r["file"] == f"{dataset}.csv"), {})
    lines = [f"{dataset}: {len(df)} rows, {df.shape[1]} columns"]
    if row:
        lines += [
            f"source: {_strip_md(row['source'])}",
            f"licence: {row['licence']}",
            f"typical model: {_strip_md(row['typical_model'])}",
        ]
    lines.append("columns:")
    width = max(len(c) for c in df.columns)
    for column in df.columns:
        s = df[column]
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = [str(c) for c in s.cat.categories]
            shown = ", ".join(levels[:6]) + (", ..." if len(levels) > 6 else "")
            kind = f"factor, {len(levels)} levels: {shown}"
        else:
            kind = f"{s.dtype}, range {s.min():g} .. {s.max():g}"
        missing = int(s.isna().sum())
        if missing:
            kind += f", {missing} missing"
        lines.append(f"  {column:<{width}}  {kind}")
    refs = [k for k, v in _references().items() if v.get("dataset") == dataset]
    if refs:
        lines.append("reference fits (bayesmix.datasets.reference_estimates):")
        for key in refs:
            ref = _references()[key]
            lines.append(f"  {key}: {ref['formula']}  [{ref['family']}, {ref['method']}]")
    notes = _schema().get("notes", {}).get(dataset)
    if notes:
        lines.append(f"note: {notes}")
    lines.append("See PROVENANCE.md in bayesmix/datasets for licences and the export details.")
    return "\n".join(lines)
