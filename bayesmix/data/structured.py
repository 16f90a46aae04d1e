"""Structured random effects: known covariance between levels, and AR(1) residuals (numpy).

Known covariance between levels (animal models, phylogenies)
-----------------------------------------------------------
``(1 | gr(animal, cov=A))`` with ``data2={"A": A}`` gives the level effects the prior
``r ~ MVN(0, sd^2 A)`` (brms's ``gr(..., cov=)``; the animal model of quantitative genetics).
With several terms, ``(1 + x | gr(animal, cov=A))``, the effects are matrix normal:
``cov(vec r) = Sigma (x) A`` with ``Sigma`` the terms' covariance. The model samples it
non-centred, ``r = L_A z L_Sigma^T`` with ``L_A`` the Cholesky factor of ``A`` and ``z``
standard normal, so no inverse or determinant is computed per draw.

``A`` is a pandas DataFrame whose index and columns are the levels (any order; the columns are
aligned to the index). Every level in the data must appear in ``A``; levels of ``A`` without
rows in the data (ancestors without records) are kept and get effects too, so the block's
levels are ``A``'s labels in ``A``'s order. A plain numpy array is accepted only when it is
``levels x levels`` for the factor's levels in their sorted (or categorical) order.

AR(1) residuals
---------------
``autocor=AR1(time="Days", group="Subject")`` makes the gaussian residuals of each group a
first-order autoregressive series. The parametrisation is nlme's ``corAR1``/``corCAR1``:
``sigma`` stays the *marginal* residual SD and

    cor(e_i, e_j) = ar ** |t_i - t_j|       (rows i, j of one group)

so with times 0, 1, 2, ... ``ar`` is the lag-1 correlation. (brms's ``ar()`` instead calls the
innovation SD ``sigma``; ours is ``sigma * sqrt(1 - ar**2)``.) Unequal spacing is exact: when
every within-group time gap is a whole number ``ar`` lies in (-1, 1) (an AR(1) on the integer
grid observed at some of its points); with fractional gaps it is the continuous-time
``corCAR1`` and lies in (0, 1). The default prior is ``Uniform`` on that interval (key
``"ar"``). The likelihood is the product of one-step-ahead densities: the first row of a group
is ``N(mu, sigma)`` and a later one ``N(mu_t + phi (y_prev - mu_prev), sigma sqrt(1 - phi^2))``
with ``phi = ar ** (t - t_prev)``; they multiply to the joint multivariate normal density.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import DataError
from bayesmix.families import Family

__all__ = ["AR1", "AR1Structure", "ar1_structure", "model_ar1_structure",
           "ar1_phi", "ar1_loglik", "ar1_simulate", "ar1_covariance",
           "AR_PRIOR_KEY", "known_covariance_factor", "relationship_matrix"]

AR_PRIOR_KEY = "ar"


@dataclass(frozen=True)
class AR1:
    """First-order autoregressive residuals along ``time`` within each level of ``group``.

    ``group=None`` treats all rows as one series. See the module docstring for the
    parametrisation (nlme's: marginal SD ``sigma``, correlation ``ar ** |t_i - t_j|``).

    Examples
    --------
    >>> import bayesmix as bm
    >>> df = bm.datasets.load("sleepstudy")
    >>> m = bm.Model("Reaction ~ Days + (1 | Subject)", df,
    ...              autocor=bm.AR1(time="Days", group="Subject"))
    >>> m.priors.loc["ar", "prior"]
    'Uniform(lower=-1, upper=1)'
    """

    time: str
    group: str | None = None

    def __str__(self) -> str:
        return f"AR(1) in {self.time}" + (f" within {self.group}" if self.group else "")


@dataclass(frozen=True, eq=False)
class AR1Structure:
    """Per-row AR(1) bookkeeping, in the model's row order (rows are never reordered).

    ``prev[i]`` is the row of the previous observation of row i's series (-1 for the first),
    ``gap[i]`` the time since it (1 for first rows, unused there), ``order`` a permutation
    that sorts the rows by group then time, and ``rank[i]`` the position of row i in its
    series. ``integer_gaps`` is True when every gap is a whole number (then ``ar`` may be
    negative).
    """

    spec: AR1
    prev: np.ndarray
    gap: np.ndarray
    order: np.ndarray
    rank: np.ndarray
    integer_gaps: bool
    n_series: int

    @property
    def first(self) -> np.ndarray:
        return self.prev < 0

    @property
    def bounds(self) -> tuple[float, float]:
        """The interval ``ar`` lives in."""
        return (-1.0, 1.0) if self.integer_gaps else (0.0, 1.0)


def _column(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    if not isinstance(name, str) or name not in frame.columns:
        close = difflib.get_close_matches(str(name), [str(c) for c in frame.columns], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"AR1 {role} column {name!r} is not in the data.{hint}")
    col = frame[name]
    if col.isna().any():
        raise DataError(f"AR1 {role} column {name!r} has {int(col.isna().sum())} missing "
                        "values; drop or fill those rows")
    return col


def ar1_structure(spec: AR1, frame: pd.DataFrame) -> AR1Structure:
    """Order the rows of ``frame`` into series and link each row to its predecessor.

    Examples
    --------
    >>> s = ar1_structure(AR1("t", "g"), pd.DataFrame({"t": [2, 0, 1, 0], "g": list("aaab")}))
    >>> s.prev.tolist(), s.gap.tolist()
    ([2, -1, 1, -1], [1.0, 1.0, 1.0, 1.0])
    """
    if not isinstance(spec, AR1):
        raise DataError(f"autocor must be bm.AR1(time=..., group=...), not {spec!r}")
    tcol = _column(frame, spec.time, "time")
    if not pd.api.types.is_numeric_dtype(tcol) or pd.api.types.is_bool_dtype(tcol):
        raise DataError(f"AR1 time column {spec.time!r} must be numeric, not {tcol.dtype}; "
                        "convert dates to numbers, e.g. (d - d.min()).dt.days")
    t = tcol.to_numpy(dtype=float)
    if not np.all(np.isfinite(t)):
        raise DataError(f"AR1 time column {spec.time!r} has infinite values")
    if spec.group is None:
        codes = np.zeros(len(t), dtype=np.int64)
        labels: list[Any] = [None]
    else:
        gcol = _column(frame, spec.group, "group")
        codes, uniques = pd.factorize(gcol.astype(object))
        labels = list(uniques)
    order = np.lexsort((t, codes))
    same = codes[order][1:] == codes[order][:-1]
    gaps = np.diff(t[order])
    dup = same & (gaps == 0)
    if dup.any():
        k = int(np.argmax(dup))
        where = f" in group {labels[codes[order][k]]!r}" if spec.group else ""
        raise DataError(f"AR1: {int(dup.sum())} rows repeat a time{where} (e.g. "
                        f"{spec.time} = {t[order][k]:g}); each time may occur once per series. "
                        "Average the repeats or add the grouping column that separates them")
    prev = np.full(len(t), -1, dtype=np.int64)
    gap = np.ones(len(t))
    prev[order[1:][same]] = order[:-1][same]
    gap[order[1:][same]] = gaps[same]
    starts = np.r_[True, ~same]
    series_start = np.maximum.accumulate(np.where(starts, np.arange(len(t)), 0))
    rank = np.empty(len(t), dtype=np.int64)
    rank[order] = np.arange(len(t)) - series_start
    integer = bool(np.all(gaps[same] == np.round(gaps[same])))
    return AR1Structure(spec, prev, gap, order, rank, integer, int(starts.sum()))


def model_ar1_structure(spec: AR1, data: pd.DataFrame, design: Any,
                        family: Family) -> AR1Structure:
    """:func:`ar1_structure` on the rows the design kept (rows with missing values in formula
    columns were dropped; the same rows are dropped here)."""
    from bayesmix.errors import FamilyError

    if not isinstance(spec, AR1):
        raise DataError(f"autocor must be bm.AR1(time=..., group=...), not {spec!r}")
    if not family.normal:
        raise FamilyError(f"AR1 is available for gaussian models; latent AR1 for family "
                          f"{family.name!r} is not implemented yet. Model the serial dependence "
                          "with a random effect of time within group instead, e.g. "
                          f"(1 | {spec.group or 'g'}:{spec.time})")
    for name, role in ((spec.time, "time"), (spec.group, "group")):
        if name is not None:
            _column(data.iloc[:0], name, role)  # existence first, with a suggestion
    used = [v for v in design.spec.variables if v in data.columns]
    kept = ~data[used].isna().any(axis=1).to_numpy()  # as make_design's missing-value rule
    return ar1_structure(spec, data.iloc[np.flatnonzero(kept)])


def ar1_phi(rho: np.ndarray, structure: AR1Structure) -> np.ndarray:
    """Per-row autoregressive coefficient ``rho ** gap`` (0 for the first row of a series)."""
    rho = np.asarray(rho, dtype=float)
    return np.where(structure.first, 0.0, np.power(rho, structure.gap))


def ar1_loglik(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, rho: np.ndarray,
               structure: AR1Structure) -> np.ndarray:
    """One-step-ahead log densities ``log p(y_i | y_prev(i))`` per row (they sum to the joint).

    ``mu`` has shape ``(..., n)``; ``sigma`` and ``rho`` broadcast against it (e.g.
    ``(chain, draw, 1)``). Used for LOO: leaving out row i then conditions row i on its
    observed predecessor, which approximates leave-future-out rather than exact LOO.
    """
    e = y - mu
    phi = ar1_phi(rho, structure)
    prev = np.where(structure.first, np.arange(len(structure.prev)), structure.prev)
    mean = mu + phi * e[..., prev]
    sd = sigma * np.sqrt(1.0 - phi ** 2)
    z = (y - mean) / sd
    return -0.5 * z ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def ar1_simulate(rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray,
                 rho: np.ndarray, structure: AR1Structure) -> np.ndarray:
    """Draw ``y`` with AR(1) residuals around ``mu`` (shape ``(..., n)``), series by series."""
    mu = np.asarray(mu, dtype=float)
    phi = np.broadcast_to(ar1_phi(rho, structure), mu.shape)
    sd = np.broadcast_to(np.asarray(sigma, float), mu.shape) * np.sqrt(1.0 - phi ** 2)
    eps = rng.standard_normal(mu.shape) * sd
    e = np.zeros(mu.shape)
    # Rows of rank r only need rank r - 1: one vectorised step per position in a series.
    for r in range(int(structure.rank.max()) + 1 if len(structure.rank) else 0):
        rows = np.flatnonzero(structure.rank == r)
        prev = structure.prev[rows]
        carry = phi[..., rows] * e[..., prev] if r else 0.0
        e[..., rows] = carry + eps[..., rows]
    return mu + e


def ar1_covariance(sigma: float, rho: float, time: np.ndarray) -> np.ndarray:
    """The AR(1) residual covariance ``sigma^2 rho^|t_i - t_j|`` of one series (for checks).

    Examples
    --------
    >>> ar1_covariance(2.0, 0.5, np.array([0, 1, 3]))[0].tolist()
    [4.0, 2.0, 0.5]
    """
    t = np.asarray(time, dtype=float)
    return sigma ** 2 * np.power(rho, np.abs(t[:, None] - t[None, :]))


# -- known covariance between levels --------------------------------------------------------

def known_covariance_factor(term: Any, data2: dict[str, Any] | None,
                            data_levels: list[Any]) -> tuple[list[Any], np.ndarray]:
    """The block's levels and the Cholesky factor of its covariance matrix between levels.

    ``data_levels`` are the levels present in the data, in the factor's order. Returns
    ``A``'s labels (data levels plus relatives without records) and ``L`` with
    ``L @ L.T == A`` in that order.
    """
    where = str(term)
    if data2 is None or not isinstance(data2, dict):
        raise DataError(f"{where} needs the matrix {term.cov!r}: pass "
                        f"data2={{{term.cov!r}: A}} to bm.Model")
    if term.cov not in data2:
        raise DataError(f"{where} names {term.cov!r}, which is not in data2 (keys: "
                        f"{', '.join(map(repr, data2)) or 'none'})")
    A = data2[term.cov]
    if isinstance(A, pd.DataFrame):
        labels, values = _aligned(A, term)
        labels = _match_labels(labels, data_levels, term)
    elif isinstance(A, np.ndarray):
        values = np.asarray(A, dtype=float)
        if values.shape != (len(data_levels), len(data_levels)):
            raise DataError(f"{term.cov!r} for {where} is a {values.shape} array but "
                            f"{term.group!r} has {len(data_levels)} levels; pass a DataFrame "
                            "whose index and columns are the levels (it may hold more levels, "
                            "e.g. ancestors without records)")
        labels = list(data_levels)
    else:
        raise DataError(f"data2[{term.cov!r}] must be a pandas DataFrame indexed by the levels "
                        f"of {term.group!r} (or a numpy array), not {type(A).__name__}")
    return labels, _cholesky(values, term)


def _aligned(A: pd.DataFrame, term: Any) -> tuple[list[Any], np.ndarray]:
    rows, cols = list(A.index), list(A.columns)
    if len(set(rows)) < len(rows):
        dup = pd.Index(rows)[pd.Index(rows).duplicated()][0]
        raise DataError(f"{term.cov!r} repeats the level {dup!r} in its index")
    if A.shape[0] != A.shape[1] or set(rows) != set(cols):
        extra = [c for c in cols if c not in set(rows)][:3] or [r for r in rows
                                                               if r not in set(cols)][:3]
        raise DataError(f"{term.cov!r} must be square with the same labels on rows and columns "
                        f"({A.shape[0]} x {A.shape[1]}; e.g. {extra} is on one side only)")
    try:
        values = A.loc[:, rows].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{term.cov!r} must hold numbers") from None
    return rows, values


def _match_labels(labels: list[Any], data_levels: list[Any], term: Any) -> list[Any]:
    """A's labels, with each level in the data's own spelling (e.g. 12 for the label '12')."""
    known = set(labels)
    missing = [v for v in data_levels if v not in known]
    if not missing:
        return labels
    as_text = {str(v): v for v in data_levels}
    if all(str(v) in {str(a) for a in labels} for v in data_levels):
        return [as_text.get(str(a), a) for a in labels]  # e.g. ints in data, strings in A
    missing = [v for v in data_levels if str(v) not in {str(a) for a in labels}]
    raise DataError(f"{len(missing)} level(s) of {term.group!r} are not in {term.cov!r}: "
                    f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}. "
                    f"Every level in the data needs a row and a column of {term.cov!r}")


def _cholesky(values: np.ndarray, term: Any) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise DataError(f"{term.cov!r} has missing or infinite entries")
    scale = max(float(np.max(np.abs(values))), 1e-300)
    asym = float(np.max(np.abs(values - values.T)))
    if asym > 1e-8 * scale:
        raise DataError(f"{term.cov!r} is not symmetric (largest |A - A.T| = {asym:.3g}); "
                        "a covariance matrix must be, e.g. use (A + A.T) / 2")
    try:
        return np.linalg.cholesky((values + values.T) / 2)
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh((values + values.T) / 2)[0])
        raise DataError(
            f"{term.cov!r} is not positive definite (smallest eigenvalue {low:.3g}); "
            "duplicated individuals or a marker-based relationship matrix often cause this. "
            "Add a small ridge, e.g. A + 0.01 * I, or use the nearest positive-definite matrix "
            "(R's Matrix::nearPD)") from None


def relationship_matrix(pedigree: pd.DataFrame, id: str = "id", sire: str = "sire",
                        dam: str = "dam") -> pd.DataFrame:
    """The additive relationship matrix ``A`` of a pedigree (Henderson's tabular method).

    ``pedigree`` has one row per individual with its parents (missing for founders); parents
    that have no row of their own are added as founders. ``A[i, j]`` is twice the kinship
    coefficient: 1 on the diagonal without inbreeding, 0.5 for parent-offspring and full
    sibs, 0.25 for half sibs. The result, labelled by individual, is what
    ``(1 | gr(animal, cov=A))`` takes in ``data2``. Cost O(n^2) memory and time.

    Examples
    --------
    >>> ped = pd.DataFrame({"id": ["c", "d"], "sire": ["a", "a"], "dam": ["b", None]})
    >>> relationship_matrix(ped).loc["c", ["a", "b", "d"]].tolist()
    [0.5, 0.5, 0.25]
    """
    for col in (id, sire, dam):
        if col not in pedigree.columns:
            raise DataError(f"the pedigree has no column {col!r}; name the columns with "
                            "id=, sire=, dam=")
    ids = pedigree[id].tolist()
    if pedigree[id].isna().any() or len(set(ids)) < len(ids):
        raise DataError(f"the pedigree's {id!r} column must hold each individual once")
    parents = {i: tuple(None if pd.isna(p) else p for p in (s, d))
               for i, s, d in zip(ids, pedigree[sire], pedigree[dam])}
    for parent in [p for pair in parents.values() for p in pair if p is not None]:
        parents.setdefault(parent, (None, None))  # a parent without its own row: a founder
    order = _parents_first(parents)
    pos = {ind: k for k, ind in enumerate(order)}
    A = np.zeros((len(order), len(order)))
    for k, ind in enumerate(order):
        ps = [pos[p] for p in parents[ind] if p is not None]
        if ps:
            A[k, :k] = 0.5 * A[ps, :k].sum(axis=0)
            A[:k, k] = A[k, :k]
        A[k, k] = 1.0 + (0.5 * A[ps[0], ps[1]] if len(ps) == 2 else 0.0)
    return pd.DataFrame(A, index=order, columns=order)


def _parents_first(parents: dict[Any, tuple[Any, Any]]) -> list[Any]:
    """Individuals ordered so that parents precede their offspring (ties: pedigree order)."""
    depth: dict[Any, int] = {}
    for start in parents:
        stack, path = [start], set()
        while stack:
            ind = stack[-1]
            todo = [p for p in parents[ind] if p is not None and p not in depth]
            if ind in path and todo:
                raise DataError(f"the pedigree has a cycle through {ind!r} (an individual "
                                "is its own ancestor)")
            if todo:
                path.add(ind)
                stack.extend(todo)
                continue
            stack.pop()
            path.discard(ind)
            depth[ind] = 1 + max((depth[p] for p in parents[ind] if p is not None), default=-1)
    rank = {ind: k for k, ind in enumerate(parents)}
    return sorted(parents, key=lambda ind: (depth[ind], rank[ind]))
