"""Turn a :class:`~bayesmix.spec.formula.FormulaSpec` and a DataFrame into model arrays.

The fixed part becomes a dense ``n x p`` matrix (via *formulae*). Each random-effects term
becomes a :class:`RandomBlock`: the level index of every row and a small ``n x k`` covariate
matrix, never a dense ``n x (levels * k)`` Z. A fitted :class:`Design` replays the same
transform (categories, ``scale()`` centring, contrasts) on new data with :meth:`Design.replay`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import formulae
import numpy as np
import pandas as pd

from bayesmix.data.checks import (
    aliased_columns,
    check_finite,
    check_frame,
    check_functions,
    check_size,
)
from bayesmix.data.structured import known_covariance_factor
from bayesmix.errors import DataError, FormulaError, MissingDataWarning, warn
from bayesmix.spec.formula import FormulaSpec, GroupTerm, expression_variables, parse_formula

__all__ = ["RandomBlock", "Design", "ReplayedDesign", "make_design", "lme4_name", "restrict_rows"]

# Functions available inside formula terms, besides formulae's own (scale, center, C, I...).
NAMESPACE: dict[str, Any] = {
    "log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10, "exp": np.exp,
    "sqrt": np.sqrt, "abs": np.abs, "np": np,
}


@dataclass(frozen=True, eq=False)
class RandomBlock:
    """One random-effects term's arrays: level index per row and per-row covariates.

    ``name`` is unique in the model (lme4's convention: ``g``, ``g.1`` when a factor has
    several terms); ``group`` is the grouping factor's label (``a:b`` for interactions).
    For ``gr(g, cov=A)``, ``cov_chol`` is the Cholesky factor of ``A`` in the order of
    ``levels`` (which then include ``A``'s levels without rows), and ``dim`` names the levels'
    dimension when it cannot be the factor's name (another block of ``g`` has other levels).
    """

    name: str
    group: str
    term: GroupTerm
    coef_names: tuple[str, ...]
    levels: tuple[Any, ...]
    index: np.ndarray
    Z: np.ndarray
    _z_design: Any = field(repr=False)
    cov_chol: np.ndarray | None = field(default=None, repr=False)
    dim: str = ""

    @property
    def correlated(self) -> bool:
        return self.term.correlated and self.n_terms > 1

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_terms(self) -> int:
        return len(self.coef_names)

    @property
    def intercept_only(self) -> bool:
        """True for ``(1 | g)``: the covariate column is all ones, so no product is needed."""
        return self.n_terms == 1 and bool(np.all(self.Z == 1.0))

    def counts(self) -> np.ndarray:
        """Number of observations of each level."""
        return np.bincount(self.index, minlength=self.n_levels)


@dataclass(frozen=True, eq=False)
class ReplayedDesign:
    """Arrays for new data built with a fitted design (see :meth:`Design.replay`).

    ``indices[b]`` is -1 for rows whose level of block ``b`` was not seen in fitting;
    ``new_levels[b]`` lists those labels.
    """

    X: np.ndarray
    offset: np.ndarray
    indices: tuple[np.ndarray, ...]
    Zs: tuple[np.ndarray, ...]
    new_levels: dict[str, list[Any]]


@dataclass(frozen=True, eq=False)
class Design:
    """Model arrays for one formula on one dataset.

    ``extra`` holds the kept rows of the ``extra_columns`` (e.g. observation weights);
    ``y_categorical`` the response as the user's pandas Categorical when it is one (ordinal
    families read the category order from it); ``fixed_columns`` the columns of the
    formula's fixed design that ``X`` keeps (None: all; see :meth:`without_intercept`).

    Examples
    --------
    >>> import bayesmix as bm
    >>> d = make_design("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> d.X.shape, d.coef_names, d.blocks[0].Z.shape
    ((180, 2), ('(Intercept)', 'Days'), (180, 2))
    """

    spec: FormulaSpec
    X: np.ndarray
    coef_names: tuple[str, ...]
    y: np.ndarray
    trials: np.ndarray | None
    offset: np.ndarray
    blocks: tuple[RandomBlock, ...]
    rows: pd.Index
    dropped: pd.Index
    _fixed_design: Any = field(repr=False)
    extra: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    y_categorical: pd.Categorical | None = field(default=None, repr=False)
    fixed_columns: tuple[int, ...] | None = None

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def has_intercept(self) -> bool:
        return "(Intercept)" in self.coef_names

    @property
    def has_offset(self) -> bool:
        return bool(self.spec.offsets)

    def without_intercept(self) -> Design:
        """The same design without the ``(Intercept)`` column (for ordinal families, whose
        cutpoints take its place); :meth:`replay` drops it too.

        Examples
        --------
        >>> import bayesmix as bm
        >>> d = make_design("Reaction ~ Days", bm.datasets.load("sleepstudy"))
        >>> d.without_intercept().coef_names
        ('Days',)
        """
        if not self.has_intercept:
            return self
        keep = tuple(j for j, name in enumerate(self.coef_names) if name != "(Intercept)")
        columns = keep if self.fixed_columns is None else tuple(self.fixed_columns[j]
                                                                for j in keep)
        return dataclasses.replace(self, X=self.X[:, list(keep)],
                                   coef_names=tuple(self.coef_names[j] for j in keep),
                                   fixed_columns=columns)

    def replay(self, newdata: pd.DataFrame) -> ReplayedDesign:
        """Apply the fitted transform to ``newdata`` (response columns are not needed).

        Examples
        --------
        >>> import bayesmix as bm
        >>> df = bm.datasets.load("sleepstudy")
        >>> d = make_design("Reaction ~ Days + (Days | Subject)", df)
        >>> r = d.replay(df.iloc[:3])
        >>> bool((r.X == d.X[:3]).all())
        True
        """
        frame = _check_new_data(self, newdata)
        X = np.zeros((len(frame), 0)) if self._fixed_design is None else _evaluate(
            lambda: np.asarray(self._fixed_design.evaluate_new_data(frame).design_matrix,
                               float), self.spec.fixed)
        if self.fixed_columns is not None:
            X = X.reshape(len(frame), -1)[:, list(self.fixed_columns)]
        offset = _offset(self.spec, frame)
        indices, Zs, new_levels = [], [], {}
        for block in self.blocks:
            labels = group_labels(frame, block.term.factors)
            lookup = {level: i for i, level in enumerate(block.levels)}
            # 308 and "308" name the same level (CSV columns come back as text or numbers)
            by_text = {str(level): i for i, level in enumerate(block.levels)}
            idx = np.array([lookup.get(v, by_text.get(str(v), -1)) for v in labels],
                           dtype=np.int64)
            unseen = list(dict.fromkeys(v for v, i in zip(labels, idx) if i < 0))
            if unseen:
                new_levels[block.name] = unseen
            Z = _evaluate(lambda b=block: np.asarray(
                b._z_design.evaluate_new_data(frame).design_matrix, float), block.term.expr)
            indices.append(idx)
            Zs.append(Z.reshape(len(frame), -1))
        return ReplayedDesign(X, offset, tuple(indices), tuple(Zs), new_levels)


def lme4_name(label: str) -> str:
    """Convert a formulae column label to lme4's spelling.

    Examples
    --------
    >>> lme4_name("Intercept"), lme4_name("Sex[Female]"), lme4_name("zBase:Trt[1]")
    ('(Intercept)', 'SexFemale', 'zBase:Trt1')
    """
    if label == "Intercept":
        return "(Intercept)"
    return re.sub(r"\[([^\]]*)\]", r"\1", label)


def make_design(formula: str | FormulaSpec, data: pd.DataFrame,
                na_action: str = "drop", extra_columns: Sequence[str] = (),
                data2: dict[str, Any] | None = None) -> Design:
    """Build the design arrays for ``formula`` on ``data``.

    Parameters
    ----------
    formula : str or FormulaSpec
    data : pandas.DataFrame
        Never modified. Rows with missing values in any used column are dropped with a
        :class:`~bayesmix.errors.MissingDataWarning` (``na_action="raise"`` refuses instead).
    extra_columns : sequence of str
        Columns outside the formula that the model uses per row (e.g. observation weights):
        their missing values drop rows like the formula's; kept values are in ``Design.extra``.
    data2 : dict, optional
        Matrices named in the formula, e.g. ``{"A": A}`` for ``(1 | gr(animal, cov=A))``
        (see :mod:`bayesmix.data.structured`).
    """
    spec = formula if isinstance(formula, FormulaSpec) else parse_formula(formula)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if na_action not in ("drop", "raise"):
        raise DataError(f"na_action must be 'drop' or 'raise', not {na_action!r}")
    check_columns(spec, data, extra_columns)
    frame, dropped, keep = complete_rows(spec, data, na_action, extra_columns)
    check_size(spec, frame, len(frame))
    fixed = _evaluate(lambda: formulae.design_matrices(
        spec.fixed, frame, na_action="error", extra_namespace=NAMESPACE).common, spec.fixed)
    columns = None
    if fixed is None:  # `y ~ 0 + (1 | g)`: no fixed effects at all
        X, coef_names = np.zeros((len(frame), 0)), ()
    else:
        X = np.asarray(fixed.design_matrix, dtype=float).reshape(len(frame), -1)
        coef_names = _column_names(fixed)
        check_finite(X, coef_names, "the fixed effects", frame.index)
        columns = aliased_columns(X, coef_names)
        if len(columns) < X.shape[1]:  # lme4 drops aliased columns; replay drops them too
            X, coef_names = X[:, list(columns)], tuple(coef_names[j] for j in columns)
        else:
            columns = None
    y = _response_values(spec.response.expr, frame)
    trials = None
    if spec.response.kind != "single":
        other = np.asarray(eval_expr(spec.response.other, frame), dtype=float)
        trials = other + np.asarray(y, float) if spec.response.kind == "cbind" else other
    blocks = _random_blocks(spec, frame, data2)
    extra = {c: data[c].to_numpy()[keep] for c in extra_columns}
    response = data[spec.response.expr] if spec.response.expr in data.columns else None
    y_categorical = response.array[keep] if response is not None and isinstance(
        response.dtype, pd.CategoricalDtype) else None
    return Design(spec, X, coef_names, y, trials, _offset(spec, frame), blocks,
                  frame.index, dropped, fixed, extra, y_categorical, columns)


# -- helpers ---------------------------------------------------------------------------------

def _evaluate(fn: Any, term: str) -> Any:
    """Run a formulae call; turn its errors into a FormulaError naming the term."""
    try:
        return fn()
    except DataError:
        raise
    except KeyError as err:
        raise FormulaError(f"in term {term!r}: {err.args[0]!r} is neither a column nor a "
                           "known function") from None
    except Exception as err:  # formulae raises many types; the user needs the term
        raise FormulaError(f"cannot evaluate the term {term!r}: {err}") from None


_CONTRASTS = {"Sum", "Treatment"}  # formulae's contrast names, as in C(f, Sum)


def check_columns(spec: FormulaSpec, data: pd.DataFrame, extra: Sequence[str] = ()) -> None:
    """Every column and function the formula names must exist, once, in ``data``."""
    check_frame(data)
    check_functions(spec, NAMESPACE)
    columns = [str(c) for c in data.columns]
    for name in [*spec.variables, *extra]:
        if name in data.columns or name in NAMESPACE or name in _CONTRASTS:
            continue
        close = difflib.get_close_matches(name, columns, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = _term_of(spec, name) if name in spec.variables else "the model's arguments"
        raise DataError(f"column {name!r} (in {where}) is not in the data.{hint} "
                        f"Available columns: {', '.join(columns)}")


def _term_of(spec: FormulaSpec, name: str) -> str:
    for term in spec.random:
        if name in term.factors or re.search(rf"\b{re.escape(name)}\b", term.expr):
            return f"the random term {term}"
    if re.search(rf"\b{re.escape(name)}\b", f"{spec.response.expr} {spec.response.other or ''}"):
        return "the response"
    return f"the formula '{spec.formula}'"


def complete_rows(spec: FormulaSpec, data: pd.DataFrame, na_action: str,
                   extra: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.Index, np.ndarray]:
    used = [v for v in spec.variables if v in data.columns]
    missing = data[list(dict.fromkeys([*used, *extra]))].isna()
    bad = missing.any(axis=1).to_numpy()
    dropped = data.index[bad]
    if bad.any():
        per_col = {c: int(n) for c, n in missing.sum().items() if n}
        detail = ", ".join(f"{c!r} ({n})" for c, n in per_col.items())
        if na_action == "raise" or bad.all():
            raise DataError(f"{bad.sum()} of {len(data)} rows have missing values in {detail}; "
                            "remove or impute them (na_action='drop' drops them)")
        warn(f"dropped {bad.sum()} of {len(data)} rows with missing values in {detail}; "
             "pass na_action='raise' to refuse instead", MissingDataWarning)
    frame = data.loc[~bad, used].copy()
    for col in used:
        frame[col] = _for_formulae(frame[col])
    return frame, dropped, ~bad


def _for_formulae(col: pd.Series) -> pd.Series:
    """formulae sorts unordered categories: make the user's category order explicit."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.cat.remove_unused_categories()
        return col.cat.set_categories(col.cat.categories, ordered=True)
    if pd.api.types.is_bool_dtype(col):
        return pd.Series(pd.Categorical(col, categories=[False, True], ordered=True),
                         index=col.index)
    return col


def _column_names(design: Any) -> tuple[str, ...]:
    labels = [label for term in design.terms.values() for label in term.labels]
    names = [lme4_name(label) for label in labels]
    if len(set(names)) < len(names):  # lme4 spelling collides: keep formulae's
        names = labels
    return tuple(names)


def eval_expr(expr: str, frame: pd.DataFrame) -> np.ndarray:
    if expr in frame.columns:
        return frame[expr].to_numpy()
    design = _evaluate(lambda: formulae.design_matrices(
        f"0 + I({expr})", frame, na_action="error", extra_namespace=NAMESPACE).common, expr)
    return np.asarray(design.design_matrix, dtype=float)[:, 0]


def _response_values(expr: str, frame: pd.DataFrame) -> np.ndarray:
    if expr in frame.columns:
        col = frame[expr]
        if isinstance(col.dtype, pd.CategoricalDtype) and len(col.cat.categories) == 2:
            # As R's glm: the first category is the failure (0), the second the success (1).
            return col.cat.codes.to_numpy(dtype=float)
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
            return np.asarray(col.astype(object))
        return col.to_numpy(dtype=float)
    return np.asarray(eval_expr(expr, frame), dtype=float)


def _offset(spec: FormulaSpec, frame: pd.DataFrame) -> np.ndarray:
    total = np.zeros(len(frame))
    for expr in spec.offsets:
        values = np.asarray(eval_expr(expr, frame), dtype=float)
        if not np.all(np.isfinite(values)):
            raise DataError(f"offset({expr}) has non-finite values (e.g. log of 0); "
                            "fix or drop those rows")
        total = total + values
    return total


def group_labels(frame: pd.DataFrame, factors: tuple[str, ...]) -> list[Any]:
    if len(factors) == 1:
        return frame[factors[0]].astype(object).tolist()
    parts = [frame[f].astype(object).astype(str) for f in factors]
    return [":".join(p) for p in zip(*parts)]


def _level_order(frame: pd.DataFrame, factors: tuple[str, ...], labels: list[Any]) -> list[Any]:
    """Categorical order where the user set one, else sorted (as R's factor()); observed only."""
    observed = set(labels)
    per_factor = []
    for f in factors:
        col = frame[f]
        if isinstance(col.dtype, pd.CategoricalDtype):
            per_factor.append(list(col.cat.categories))
        else:
            uniq = pd.unique(col.astype(object))
            try:
                per_factor.append(sorted(uniq))
            except TypeError:  # mixed types: keep order of appearance
                per_factor.append(list(uniq))
    if len(factors) == 1:
        return [v for v in per_factor[0] if v in observed]
    combos = pd.MultiIndex.from_product([[str(v) for v in lv] for lv in per_factor])
    return [lab for lab in (":".join(c) for c in combos) if lab in observed]


def _random_blocks(spec: FormulaSpec, frame: pd.DataFrame,
                   data2: dict[str, Any] | None = None) -> tuple[RandomBlock, ...]:
    blocks: list[RandomBlock] = []
    used_names: dict[str, int] = {}
    for term in spec.random:
        labels = group_labels(frame, term.factors)
        levels = _level_order(frame, term.factors, labels)
        cov_chol = None
        if term.cov is not None:
            levels, cov_chol = known_covariance_factor(term, data2, levels)
        if len(levels) < 2:
            raise DataError(
                f"grouping factor {term.group!r} in {term} has only {len(levels)} level "
                f"({levels[0]!r}); a random effect needs several levels. Drop the term or "
                "model the factor as a fixed effect")
        index = pd.Categorical(labels, categories=levels).codes.astype(np.int64)
        z_design = _evaluate(lambda t=term: formulae.design_matrices(
            t.expr, frame, na_action="error", extra_namespace=NAMESPACE).common, term.expr)
        if z_design is None:  # (0 | g), (-1 | g): nothing varies by level
            raise FormulaError(f"the random term {term} has no terms before '|': write "
                               f"(1 | {term.group}) for a random intercept", spec.formula,
                               max(spec.formula.find(term.source), 0), term.source)
        Z = np.asarray(z_design.design_matrix, dtype=float).reshape(len(frame), -1)
        check_finite(Z, _column_names(z_design), f"the random term {term}", frame.index)
        k = used_names.get(term.group, 0)
        used_names[term.group] = k + 1
        name = term.group if k == 0 else f"{term.group}.{k}"
        blocks.append(RandomBlock(name, term.group, term, _column_names(z_design),
                                  tuple(levels), index, Z, z_design, cov_chol))
    return tuple(_own_level_dims(blocks))


def _own_level_dims(blocks: list[RandomBlock]) -> list[RandomBlock]:
    """A gr() block whose levels differ from another block's of the same factor (relatives
    without records) gets its own levels' dimension, ``<group>__<cov>``."""
    out = []
    for block in blocks:
        clash = block.cov_chol is not None and any(
            other.group == block.group and other.levels != block.levels for other in blocks)
        out.append(dataclasses.replace(block, dim=f"{block.group}__{block.term.cov}")
                   if clash else block)
    return out


def _check_new_data(design: Design, newdata: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
    spec = design.spec
    # Every column of the right-hand side; a response column is needed only if it is
    # also a predictor.
    texts = [spec.fixed, *spec.offsets, *(t.expr for t in spec.random)]
    used = {v for text in texts for v in expression_variables(text)}
    used |= {f for t in spec.random for f in t.factors}
    needed = [v for v in spec.variables
              if v in used and v not in NAMESPACE and v not in _CONTRASTS]
    missing = [v for v in needed if v not in newdata.columns]
    if missing:
        raise DataError(f"newdata lacks the column(s) {', '.join(map(repr, missing))} "
                        "used by the model")
    frame = newdata[needed].copy()
    nas = frame.isna().any(axis=1)
    if nas.any():
        raise DataError(f"newdata has missing values in {int(nas.sum())} rows of the columns "
                        f"{', '.join(c for c in needed if frame[c].isna().any())}")
    for col in needed:
        frame[col] = _for_formulae(frame[col]) if not isinstance(
            frame[col].dtype, pd.CategoricalDtype) else frame[col]
    return frame


def restrict_rows(design: Design, rows: np.ndarray) -> Design:
    """The design restricted to ``rows`` (positions), keeping every level and column, so that
    a model built on it has the parameters of the full one (a k-fold refit).

    Examples
    --------
    >>> import bayesmix as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> sub = restrict_rows(m.design, np.arange(20))
    >>> sub.n, sub.blocks[0].n_levels
    (20, 18)
    """
    blocks = tuple(dataclasses.replace(b, index=b.index[rows], Z=b.Z[rows]) for b in design.blocks)
    return dataclasses.replace(design, X=design.X[rows], y=design.y[rows], offset=design.offset[rows],
                               blocks=blocks, rows=design.rows[rows],
                               trials=None if design.trials is None else design.trials[rows])
