"""The benchmark suite: models, their data, and the scaling series.

Each entry names a data source (a bundled data set or a simulation in
:mod:`benchmarks.simulate`), the formula and family, and which libraries fit it. The runner
writes every data set once to CSV plus a small JSON of categorical columns, so that bayesmix
and bambi (which run in different virtual environments) fit exactly the same data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["Entry", "SUITE", "SCALING_FORMULA", "LOGISTIC_SCALING_FORMULA", "scaling_entry",
           "write_data"]


@dataclass(frozen=True)
class Entry:
    """One benchmark model."""

    name: str
    source: str  # "dataset:<name>" or "sim:<function>[:rows]"
    formula: str
    family: str = "gaussian"
    note: str = ""
    second_fit: bool = False  # also time a second fit of the same structure in the process
    bambi_formula: str | None = None  # when bambi needs other spelling (None: same)


SUITE: tuple[Entry, ...] = (
    Entry("sleepstudy", "dataset:sleepstudy", "Reaction ~ Days + (Days | Subject)",
          second_fit=True,
          note="bambi fits (Days | Subject) without the intercept-slope correlation"),
    Entry("mathachieve", "dataset:mathachieve", "MathAch ~ SES + (SES | School)",
          second_fit=True,
          note="bambi fits (SES | School) without the intercept-slope correlation"),
    Entry("sleepstudy_uncorr", "dataset:sleepstudy", "Reaction ~ Days + (Days || Subject)",
          bambi_formula="Reaction ~ Days + (Days | Subject)", second_fit=True,
          note="the same model in both libraries (bambi's (Days | Subject) has no correlation)"),
    Entry("mathachieve_uncorr", "dataset:mathachieve", "MathAch ~ SES + (SES || School)",
          bambi_formula="MathAch ~ SES + (SES | School)", second_fit=True,
          note="the same model in both libraries (bambi's (SES | School) has no correlation)"),
    Entry("radon", "dataset:radon", "log_radon ~ floor + log_uranium + (1 | county)",
          second_fit=True, note="reference_estimates' radon_intercepts"),
    Entry("epilepsy_negbin", "dataset:epilepsy", "count ~ zAge + zBase * Trt + (1 | patient)",
          family="negativebinomial", second_fit=True),
    Entry("epilepsy_poisson", "dataset:epilepsy", "count ~ zAge + zBase * Trt + (1 | patient)",
          family="poisson", second_fit=True),
    Entry("psychometric", "sim:psychometric", "y ~ 1 + ability_z + (1 | person) + (1 | item)",
          family="bernoulli", note="simulated: 300 persons x 25 items"),
    Entry("psychometric_wide", "sim:psychometric_wide",
          "y ~ 1 + ability_z + grade_z + female + format + (1 | person) + (1 | item)",
          family="bernoulli",
          note="simulated: 560 persons x 14 of 24 items, six fixed coefficients"),
    Entry("psychometric_1000x40", "sim:psychometric_rows:40000",
          "y ~ 1 + ability_z + (1 | person) + (1 | item)", family="bernoulli",
          note="simulated: 1000 persons x 40 items"),
    Entry("courses", "sim:courses:73000",
          "y ~ 1 + service + (1 | student) + (1 | lecturer) + (1 | dept)",
          note="simulated InstEval-like ratings: 3000 students, ~1100 lecturers, 14 depts"),
)

SCALING_FORMULA = "y ~ 1 + service + (1 | student) + (1 | lecturer) + (1 | dept)"


LOGISTIC_SCALING_FORMULA = "y ~ 1 + ability_z + (1 | person) + (1 | item)"


def scaling_entry(rows: int, series: str = "gaussian") -> Entry:
    """One size of a scaling series: the crossed gaussian ``courses`` model or the crossed
    logistic ``psychometric`` one (40 items, rows / 40 persons)."""
    if series == "logistic":
        return Entry(f"psychometric_{rows}", f"sim:psychometric_rows:{rows}",
                     LOGISTIC_SCALING_FORMULA, family="bernoulli")
    return Entry(f"courses_{rows}", f"sim:courses:{rows}", SCALING_FORMULA)


def load_frame(source: str) -> pd.DataFrame:
    """The data of a source (runs in the bayesmix environment)."""
    kind, _, rest = source.partition(":")
    if kind == "dataset":
        import bayesmix as bm

        return bm.datasets.load(rest)
    if kind == "sim":
        from benchmarks import simulate

        name, _, rows = rest.partition(":")
        fn = getattr(simulate, name)
        return fn(int(rows)) if rows else fn()
    raise ValueError(source)


def write_data(source: str, directory: Path) -> tuple[Path, int]:
    """Write a source's data as ``<dir>/<slug>.csv`` plus ``.json`` (categorical columns and
    their categories, in order); return the CSV path and the number of rows."""
    slug = source.replace(":", "_")
    csv, meta = directory / f"{slug}.csv", directory / f"{slug}.json"
    if csv.exists() and meta.exists():
        return csv, json.loads(meta.read_text())["rows"]
    df = load_frame(source)
    cats = {col: [str(c) for c in df[col].cat.categories]
            for col in df.columns if isinstance(df[col].dtype, pd.CategoricalDtype)}
    out = df.copy()
    for col in cats:
        out[col] = out[col].astype(str)
    tmp = csv.with_suffix(".tmp")
    out.to_csv(tmp, index=False)
    tmp.replace(csv)
    meta.write_text(json.dumps({"rows": len(df), "categories": cats}))
    return csv, len(df)
