"""Simulated data sets for the benchmark suite (fixed seeds, documented true parameters).

Two designs that the bundled data sets do not cover:

``psychometric`` -- a crossed logistic model of a typical test: persons answer items,
    ``y ~ 1 + ability_z + (1 | person) + (1 | item)`` (family bernoulli), where ``ability_z`` is a
    standardised person covariate (e.g. a prior grade). Defaults: 300 persons x 25 items =
    7 500 rows, every person answers every item.

``courses`` -- a large crossed gaussian model of course evaluations, shaped like lme4's
    ``InstEval`` (73 421 ratings of 1 128 lecturers by 2 972 students in 14 departments):
    ``y ~ 1 + service + (1 | student) + (1 | lecturer) + (1 | dept)``. Each lecturer belongs
    to one department; each student rates lecturers of his or her own department three
    times out of four and otherwise any lecturer; ``service`` (0/1) marks a lecture held for
    another department. The defaults give 73 000 rows, 3 000 students, 1 100 lecturers and
    14 departments; :func:`courses` scales students and lecturers with the number of rows
    (``rows / 24.3`` students and ``rows / 66.4`` lecturers, at least 20 each) for the
    scaling series, the departments staying at 14.

True parameters (also in :data:`TRUTH`) are close to the lme4 estimates for ``InstEval``
(residual SD 1.18, lecturer SD 0.52, student SD 0.32, department SD 0.07) and to a typical
Rasch-type test (item SD 1, person SD 1 on the logit scale).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["psychometric", "psychometric_wide", "psychometric_rows", "courses", "TRUTH", "SEEDS"]

SEEDS = {"psychometric": 20240601, "courses": 20240602, "psychometric_wide": 20240603}

TRUTH = {
    "psychometric": {
        "formula": "y ~ 1 + ability_z + (1 | person) + (1 | item)",
        "family": "bernoulli",
        "fixef": {"(Intercept)": 0.4, "ability_z": 0.6},
        "sd": {"person": 1.0, "item": 0.9},
    },
    "psychometric_wide": {
        "formula": "y ~ 1 + ability_z + grade_z + female + format + (1 | person) + (1 | item)",
        "family": "bernoulli",
        "fixef": {"(Intercept)": 0.3, "ability_z": 0.6, "grade_z": 0.25, "female": 0.1,
                  "format[b]": -0.4, "format[c]": 0.3},
        "sd": {"person": 1.0, "item": 0.8},
    },
    "courses": {
        "formula": "y ~ 1 + service + (1 | student) + (1 | lecturer) + (1 | dept)",
        "family": "gaussian",
        "fixef": {"(Intercept)": 3.2, "service": -0.07},
        "sd": {"student": 0.32, "lecturer": 0.52, "dept": 0.07},
        "sigma": 1.18,
    },
}


def psychometric(persons: int = 300, items: int = 25, seed: int | None = None) -> pd.DataFrame:
    """Every person answers every item; P(correct) = logistic(b0 + b1 ability_z + u_p + v_i)."""
    rng = np.random.default_rng(SEEDS["psychometric"] if seed is None else seed)
    t = TRUTH["psychometric"]
    ability_z = rng.standard_normal(persons)
    u = rng.normal(0.0, t["sd"]["person"], persons)
    v = rng.normal(0.0, t["sd"]["item"], items)
    p_idx = np.repeat(np.arange(persons), items)
    i_idx = np.tile(np.arange(items), persons)
    eta = (t["fixef"]["(Intercept)"] + t["fixef"]["ability_z"] * ability_z[p_idx] + u[p_idx]
           + v[i_idx])
    y = (rng.random(persons * items) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({
        "y": y,
        "ability_z": ability_z[p_idx],
        "person": pd.Categorical([f"p{k:04d}" for k in p_idx]),
        "item": pd.Categorical([f"i{k:02d}" for k in i_idx]),
    })


def psychometric_rows(rows: int) -> pd.DataFrame:
    """The psychometric design with 40 items and ``rows / 40`` persons (the crossed logistic
    scaling series; 1 000 persons x 40 items at 40 000 rows)."""
    return psychometric(persons=max(rows // 40, 5), items=40)


def psychometric_wide(persons: int = 560, items: int = 24, answered: int = 14,
                      seed: int | None = None) -> pd.DataFrame:
    """A crossed logistic model with six fixed coefficients: each person answers ``answered``
    of the ``items`` (at random), items come in three formats, persons have an ability score,
    a grade and a 0/1 indicator. 560 persons x 14 answers = 7 840 rows."""
    rng = np.random.default_rng(SEEDS["psychometric_wide"] if seed is None else seed)
    t = TRUTH["psychometric_wide"]
    f, sd = t["fixef"], t["sd"]
    ability = rng.standard_normal(persons)
    grade = 0.5 * ability + np.sqrt(0.75) * rng.standard_normal(persons)  # correlated scores
    female = rng.integers(0, 2, persons)
    fmt = np.array(["a", "b", "c"])[np.arange(items) % 3]
    u, v = rng.normal(0.0, sd["person"], persons), rng.normal(0.0, sd["item"], items)
    p_idx = np.repeat(np.arange(persons), answered)
    i_idx = np.concatenate([rng.choice(items, answered, replace=False) for _ in range(persons)])
    eta = (f["(Intercept)"] + f["ability_z"] * ability[p_idx] + f["grade_z"] * grade[p_idx]
           + f["female"] * female[p_idx] + np.select([fmt[i_idx] == "b", fmt[i_idx] == "c"],
                                                     [f["format[b]"], f["format[c]"]], 0.0)
           + u[p_idx] + v[i_idx])
    y = (rng.random(eta.size) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({
        "y": y, "ability_z": ability[p_idx], "grade_z": grade[p_idx], "female": female[p_idx],
        "format": pd.Categorical(fmt[i_idx], categories=["a", "b", "c"]),
        "person": pd.Categorical([f"p{k:04d}" for k in p_idx]),
        "item": pd.Categorical([f"i{k:02d}" for k in i_idx]),
    })


def courses(rows: int = 73_000, students: int | None = None, lecturers: int | None = None,
            depts: int = 14, seed: int | None = None) -> pd.DataFrame:
    """InstEval-like ratings (see the module docstring); ``rows`` exactly."""
    rng = np.random.default_rng(SEEDS["courses"] if seed is None else seed)
    t = TRUTH["courses"]
    if students is None:
        students = 3_000 if rows == 73_000 else max(20, round(rows / 24.3))
    if lecturers is None:
        lecturers = 1_100 if rows == 73_000 else max(20, round(rows / 66.4))
    lect_dept = np.concatenate([np.arange(depts),
                                rng.integers(0, depts, max(lecturers - depts, 0))])[:lecturers]
    stud_dept = rng.integers(0, depts, students)
    popularity = rng.gamma(2.0, 1.0, lecturers)
    # each student gets about the same number of ratings; every student at least one
    s_idx = np.concatenate([np.arange(students), rng.integers(0, students, rows - students)]) \
        if rows >= students else rng.choice(students, rows, replace=False)
    own = rng.random(rows) < 0.75
    l_idx = np.empty(rows, dtype=np.int64)
    by_dept = [np.flatnonzero(lect_dept == d) for d in range(depts)]
    weights = [popularity[ix] / popularity[ix].sum() for ix in by_dept]
    all_w = popularity / popularity.sum()
    sd = stud_dept[s_idx]
    for d in range(depts):
        rows_d = np.flatnonzero(own & (sd == d))
        l_idx[rows_d] = rng.choice(by_dept[d], rows_d.size, p=weights[d])
    rest = np.flatnonzero(~own)
    l_idx[rest] = rng.choice(lecturers, rest.size, p=all_w)
    d_idx = lect_dept[l_idx]
    service = (d_idx != sd).astype(np.float64)
    u_s = rng.normal(0.0, t["sd"]["student"], students)
    u_l = rng.normal(0.0, t["sd"]["lecturer"], lecturers)
    u_d = rng.normal(0.0, t["sd"]["dept"], depts)
    mu = (t["fixef"]["(Intercept)"] + t["fixef"]["service"] * service + u_s[s_idx] + u_l[l_idx]
          + u_d[d_idx])
    y = mu + rng.normal(0.0, t["sigma"], rows)
    order = rng.permutation(rows)
    df = pd.DataFrame({
        "y": y[order],
        "service": service[order],
        "student": pd.Categorical.from_codes(s_idx[order], [f"s{k:05d}" for k in range(students)]),
        "lecturer": pd.Categorical.from_codes(l_idx[order],
                                              [f"l{k:05d}" for k in range(lecturers)]),
        "dept": pd.Categorical.from_codes(d_idx[order], [f"d{k:02d}" for k in range(depts)]),
    })
    for col in ("student", "lecturer", "dept"):  # a lecturer nobody rated is no level
        df[col] = df[col].cat.remove_unused_categories()
    return df
