"""Checks of the data against a parsed formula, before and after the design is built.

Each problem is a :class:`~bayesmix.errors.DataError` (or :class:`FormulaError`) naming the
column or term at fault, raised before numpy or pandas meet it: duplicated column names,
unknown functions, a fixed-effect matrix too large to build, non-finite values. Aliased
fixed-effect columns are dropped with a :class:`~bayesmix.errors.RankDeficiencyWarning`
naming them, as lme4 does ("fixed-effect model matrix is rank deficient so dropping ...").
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import formulae.transforms
import numpy as np
import pandas as pd

from bayesmix.errors import DataError, FormulaError, RankDeficiencyWarning, warn
from bayesmix.spec.formula import FormulaSpec, expression_variables
from bayesmix.spec.terms import check_term

__all__ = ["check_frame", "check_functions", "check_size", "check_finite", "aliased_columns",
           "MAX_FIXED_CELLS"]

# A dense fixed-effect matrix above this many cells (8 bytes each: 400 MB) is refused before
# it is built: it takes minutes and is almost always a factor meant as a random effect.
MAX_FIXED_CELLS = 50_000_000

# Values whose square overflows double precision cannot enter a sum of squares.
MAX_ABS = 1e150

# Relative tolerance for a column to count as a linear combination of earlier ones (lme4's
# default for its rank check, check.rankX's tolerance, is 1e-7).
RANK_TOL = 1e-7


def check_frame(data: pd.DataFrame) -> None:
    """Column names must be unique, and of one level (no MultiIndex).

    Examples
    --------
    >>> try:
    ...     check_frame(pd.DataFrame([[1, 2]], columns=["x", "x"]))
    ... except DataError as err:
    ...     print(str(err)[:44])
    the data have 2 columns named 'x'; give each
    """
    if isinstance(data.columns, pd.MultiIndex):
        raise DataError("the data have MultiIndex (several-level) column names such as "
                        f"{data.columns[0]!r}; flatten them first, e.g. df.columns = "
                        "['_'.join(map(str, c)) for c in df.columns]")
    dup = data.columns[data.columns.duplicated()]
    if len(dup):
        name = dup[0]
        count = int((data.columns == name).sum())
        raise DataError(f"the data have {count} columns named {name!r}; give each column a "
                        "unique name (e.g. df.loc[:, ~df.columns.duplicated()] keeps the first)")


def check_functions(spec: FormulaSpec, known: Collection[str]) -> None:
    """Every function a term calls must exist (formulae's transforms or ``known``)."""
    available = set(known) | set(formulae.transforms.TRANSFORMS) | {"offset"}
    formula = spec.formula
    texts = [*spec.fixed_terms()] + [t.expr for t in spec.random]
    for text in texts:
        for name, _ in check_term(text, 0, text, "the term"):
            if name in available or name.startswith(("np.", "numpy.")):
                continue
            m = re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", formula)
            raise FormulaError(
                f"unknown function {name}() in the term {text!r}; available: "
                f"{', '.join(sorted(available))} and numpy's as np.<name>",
                formula, m.start() if m else None, name)


def check_size(spec: FormulaSpec, data: pd.DataFrame, n: int) -> None:
    """Refuse a fixed-effect matrix of more than :data:`MAX_FIXED_CELLS` cells before it is
    built; the factors' level counts give its width (interactions multiply them)."""
    width = 1
    widest: tuple[int, str] = (0, "")
    for term in spec.fixed_terms():
        names = [v for v in expression_variables(term) if v in data.columns]
        cols = 1
        for name in names:
            col = data[name]
            if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
                levels = int(col.nunique())
                cols *= max(levels - 1, 1)
                widest = max(widest, (levels, name))
        width += cols
    if n * width > MAX_FIXED_CELLS:
        levels, name = widest
        hint = (f" The factor {name!r} has {levels} levels: model it as a random effect, "
                f"(1 | {name}), instead of a fixed one.") if name else ""
        raise DataError(f"the fixed-effect matrix would have {n} rows x about {width} columns "
                        f"({n * width * 8 / 1e9:.1f} GB), more than bayesmix builds "
                        f"({MAX_FIXED_CELLS} cells).{hint}")


def check_finite(matrix: np.ndarray, names: Sequence[str], where: str,
                 rows: pd.Index) -> None:
    """Every value of a design matrix must be finite; name the first bad column and count.

    Examples
    --------
    >>> try:
    ...     check_finite(np.array([[1.0, np.inf]]), ["a", "b"], "the fixed effects",
    ...                  pd.RangeIndex(1))
    ... except DataError as err:
    ...     print(str(err)[:60])
    the column 'b' of the fixed effects has non-finite values (i
    """
    bad = ~np.isfinite(matrix)
    if not bad.any():
        huge = np.abs(matrix) > MAX_ABS
        if huge.any():
            j = int(np.argmax(huge.any(axis=0)))
            name = names[j] if j < len(names) else str(j)
            raise DataError(f"the column {name!r} of {where} has values as large as "
                            f"{np.abs(matrix[:, j]).max():.3g} in {int(huge[:, j].sum())} rows; "
                            f"beyond {MAX_ABS:g} their squares overflow. Rescale the column")
        return
    j = int(np.argmax(bad.any(axis=0)))
    count = int(bad[:, j].sum())
    first = rows[int(np.argmax(bad[:, j]))]
    name = names[j] if j < len(names) else str(j)
    raise DataError(f"the column {name!r} of {where} has non-finite values (inf or NaN) in "
                    f"{count} of {len(matrix)} rows (first: row {first!r}); e.g. log(0) or a "
                    "division by zero. Fix or drop those rows, or transform differently")


def aliased_columns(X: np.ndarray, names: Sequence[str]) -> tuple[int, ...]:
    """Indices of the columns to keep: each column that is (numerically) a linear combination
    of the columns before it is dropped, with a warning naming it, as lme4 does.

    Examples
    --------
    >>> import warnings
    >>> X = np.column_stack([np.ones(4), [1.0, 2, 3, 4], [2.0, 4, 6, 8]])
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     keep = aliased_columns(X, ["(Intercept)", "x", "x2"])
    >>> keep, "x2" in str(w[0].message)
    ((0, 1), True)
    """
    p = X.shape[1]
    norms = np.linalg.norm(X, axis=0)
    if p == 0 or (norms > 0).all() and np.linalg.matrix_rank(X / norms) == p:
        return tuple(range(p))
    keep: list[int] = []
    basis = np.zeros((X.shape[0], 0))
    for j in range(p):
        col = X[:, j]
        norm = float(np.linalg.norm(col))
        if norm == 0.0:
            continue
        resid = col / norm
        for _ in range(2):  # Gram-Schmidt twice: stable to rounding
            resid = resid - basis @ (basis.T @ resid)
        size = float(np.linalg.norm(resid))
        if size > RANK_TOL:
            keep.append(j)
            basis = np.column_stack([basis, resid / size])
    dropped = [names[j] for j in range(p) if j not in keep]
    if dropped:
        noun = "column / coefficient" if len(dropped) == 1 else "columns / coefficients"
        warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} {noun}: "
             f"{', '.join(dropped)} (each a linear combination of the columns before it, e.g. "
             "a constant predictor beside the intercept, or x and 2 * x); remove them from "
             "the formula to silence this", RankDeficiencyWarning)
    return tuple(keep)
