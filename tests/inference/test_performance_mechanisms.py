"""The mechanisms behind bayesmix's speed and memory use (no timing assertions).

* random effects enter through integer indices: no dense n x levels matrix anywhere;
* the design of a 10^5-row crossed model fits a small memory budget;
* the centring rule picks centred for well-measured levels and non-centred for poorly
  measured ones;
* the compile cache (:mod:`bayesmix.inference.compile_cache`): a second fit of the same structure does
  not recompile, in the same process (memory) or a fresh one (disk); data are swapped, not
  baked in; cached and fresh compilations give the same draws to rounding (the machine code
  loaded from disk and the code compiled in this process may round differently in the last
  bits, so draws agree to ~1e-11 relative, not bit for bit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import ancestors

import bayesmix as bm
from bayesmix.inference import compile_cache
from bayesmix.model.build import stored_names

ROOT = Path(__file__).resolve().parents[2]


def _crossed(rows: int, students: int, lecturers: int, depts: int = 14,
             seed: int = 0) -> pd.DataFrame:
    """A crossed design like benchmarks/simulate.py's courses (kept local: tests do not
    import the benchmarks package)."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.arange(students), rng.integers(0, students, rows - students)])
    lect = rng.integers(0, lecturers, rows)
    lect[:lecturers] = np.arange(lecturers)
    dept_of = np.arange(lecturers) % depts
    y = (3 + rng.normal(0, 0.3, students)[s] + rng.normal(0, 0.5, lecturers)[lect]
         + rng.normal(0, 0.1, depts)[dept_of[lect]] + rng.normal(0, 1.2, rows))
    return pd.DataFrame({
        "y": y, "service": rng.integers(0, 2, rows).astype(float),
        "student": pd.Categorical.from_codes(s, [f"s{i}" for i in range(students)]),
        "lecturer": pd.Categorical.from_codes(lect, [f"l{i}" for i in range(lecturers)]),
        "dept": pd.Categorical.from_codes(dept_of[lect], [f"d{i}" for i in range(depts)]),
    })


FORMULA = "y ~ 1 + service + (1 | student) + (1 | lecturer) + (1 | dept)"


# -- no dense Z ---------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _pytensor_path(monkeypatch):
    """These tests are about the PyTensor path's compile cache; models of the standard class
    would otherwise take the precompiled kernel (tests/model/test_kernel.py)."""
    monkeypatch.setenv("BAYESMIX_KERNEL", "0")


def test_model_graph_has_no_dense_rows_by_levels_matrix():
    df = _crossed(rows=6_000, students=1_500, lecturers=400)
    model = bm.Model(FORMULA, df)
    n = model.design.n
    levels = [b.n_levels for b in model.design.blocks]
    pm_model = model.pymc_model
    sizes = {v.name: np.asarray(v.get_value()).shape for v in pm_model.data_vars}
    assert any(s == (n,) for s in sizes.values())  # the data are there ...
    for name, shape in sizes.items():  # ... but nothing of n x levels
        assert int(np.prod(shape)) <= 2 * n, (name, shape)
        assert not (n in shape and any(k in shape for k in levels if k > 1)), (name, shape)
    constants = [v for v in ancestors([pm_model.logp()]) if isinstance(v, Constant)]
    assert max(np.asarray(c.data).size for c in constants) < n  # no data baked into the graph
    # the whole of the model's data: a handful of length-n vectors
    total = sum(np.asarray(v.get_value()).nbytes for v in pm_model.data_vars)
    assert total < 10 * n * 8


def test_design_of_a_1e5_row_crossed_model_fits_a_memory_budget():
    df = _crossed(rows=100_000, students=4_000, lecturers=1_500)
    tracemalloc.start()
    try:
        model = bm.Model(FORMULA, df)
        _ = model.pymc_model  # the PyMC graph too (no compilation)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [b.n_levels for b in model.design.blocks] == [4_000, 1_500, 14]
    # A dense random-effects design would be 1e5 x 5514 x 8 bytes = 4.4 GB; the index form
    # is a few length-n vectors (0.8 MB each). 150 MB leaves room for pandas/formulae copies.
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MB"


# -- centring rule -----------------------------------------------------------------------------
def _groups(levels: int, per_level: int, sd: float, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(levels), per_level)
    y = 10 + rng.normal(0, sd, levels)[g] + rng.normal(0, 1.0, g.size)
    return pd.DataFrame({"y": y, "g": pd.Categorical([f"g{i:03d}" for i in g])})


def test_centring_rule_many_informative_rows_per_level_is_centred():
    # 100 rows per level, level SD 1 = residual SD: ratio ~ 100
    model = bm.Model("y ~ 1 + (1 | g)", _groups(levels=20, per_level=100, sd=1.0))
    assert model.centered == (True,)


def test_centring_rule_few_rows_per_level_is_non_centred():
    # 3 rows per level, level SD 0.3: ratio ~ 0.3
    model = bm.Model("y ~ 1 + (1 | g)", _groups(levels=200, per_level=3, sd=0.3))
    assert model.centered == (False,)


def test_centring_rule_outer_block_is_measured_through_its_nested_levels():
    # 14 departments x 20 lecturers x 30 ratings: 600 ratings per department, but the
    # department means are blurred by lecturer effects (SD 0.5 over 20 lecturers) that do not
    # average out over the ratings; counted as row noise they made the department look well
    # measured (ratio ~10, centred), and the centred 14-level block mixed badly.
    rng = np.random.default_rng(7)
    depts, per_dept, per_lect = 14, 20, 30
    lect = np.repeat(np.arange(depts * per_dept), per_lect)
    dept = lect // per_dept
    y = (rng.normal(0, 0.1, depts)[dept] + rng.normal(0, 0.5, depts * per_dept)[lect]
         + rng.normal(0, 1.0, lect.size))
    df = pd.DataFrame({"y": y, "dept": pd.Categorical([f"d{i:02d}" for i in dept]),
                       "lecturer": pd.Categorical([f"l{i:03d}" for i in lect])})
    model = bm.Model("y ~ 1 + (1 | dept) + (1 | lecturer)", df)
    from bayesmix.model.parametrization import information_ratios

    dept_ratio, lect_ratio = information_ratios(model.design, model.family, model.link,
                                                model.y, model.trials)
    assert lect_ratio > 4 > dept_ratio
    assert model.centered == (False, False)  # lecturers: nested; departments: poorly measured


# -- QR coordinates for correlated slopes ---------------------------------------------------
def test_correlated_slopes_are_sampled_in_qr_coordinates_of_the_same_model(monkeypatch):
    import bayesmix.model.build as build
    from bayesmix.model.transforms import QRTransform

    formula, df = "count ~ zAge + zBase * Trt + (1 | patient)", bm.datasets.load("epilepsy")
    # non-centred: centred, the patient-level predictors move into the patients' means
    qr = bm.Model(formula, df, family="poisson", centered={"patient": False}).pymc_model
    transform = qr.rvs_to_transforms[qr["_beta"]]
    assert isinstance(transform, QRTransform)
    monkeypatch.setattr(build, "qr_transform", lambda *a: None)
    plain = bm.Model(formula, df, family="poisson", centered={"patient": False}).pymc_model
    assert plain.rvs_to_transforms[plain["_beta"]] is None
    # the same log density at the same beta (theta = R beta), Jacobian aside
    point = qr.initial_point(random_seed=1)
    theta = np.array([0.3, -0.2, 0.5, 0.1])
    point["_beta_qr__"] = theta
    beta = transform.R_inv @ theta
    plain_point = {k: v for k, v in point.items() if k != "_beta_qr__"} | {"_beta": beta}
    assert float(qr.compile_logp(jacobian=False)(point)) == pytest.approx(
        float(plain.compile_logp(jacobian=False)(plain_point)), rel=1e-10)
    # one slope, or bounded priors: no transform (the graph is unchanged)
    one = bm.Model("Reaction ~ Days + (1 | Subject)", bm.datasets.load("sleepstudy"),
                   marginalize=False)
    assert one.pymc_model.rvs_to_transforms[one.pymc_model["_beta"]] is None


def test_absorbed_slopes_keep_the_initial_point_cacheable():
    """Hierarchical centring puts the data's predictor means into the level effects' prior
    mean; their start comes from the priors, so the compile cache can store the initial
    point (without it every fresh process recompiled sleepstudy: 4.7 s instead of 0.5 s)."""
    from bayesmix.inference.compile_cache import _base_point

    model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"),
                     centered={"Subject": True})
    base = _base_point(model.pymc_model)
    assert base is not None
    start = model.pymc_model.initial_point()["_gamma_Subject"]
    np.testing.assert_allclose(start[:, 0], model.prior_dict["(Intercept)"].kwargs["mu"])
    np.testing.assert_allclose(start[:, 1], 0.0)


# -- compile cache -----------------------------------------------------------------------------
def _dyestuff(shift: float = 0.0) -> pd.DataFrame:
    df = bm.datasets.load("dyestuff").copy()
    df["Yield"] = df["Yield"] + shift
    return df


# Fixed priors: default priors scale with the data, and prior scales are structure (constants
# in the graph); with these, shifted data give the same structure.
PRIORS = {"(Intercept)": bm.Prior("Normal", mu=2000, sigma=1000),
          "1|Batch": bm.Prior("HalfNormal", sigma=100),
          "sigma": bm.Prior("Exponential", lam=0.02)}
FIT = dict(draws=30, tune=30, chains=1, random_seed=3, progressbar=False)


def test_structure_key_ignores_data_values_but_not_structure():
    a = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(), priors=PRIORS)
    b = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(1000.0), priors=PRIORS)
    fewer = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff().query("Batch != 'F'"),
                     priors=PRIORS)
    other_prior = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(),
                           priors={**PRIORS, "sigma": bm.Prior("Exponential", lam=0.05)})
    keys = [compile_cache.structure_key(m.pymc_model, stored_names(m.design))
            for m in (a, b, fewer, other_prior)]
    assert keys[0] == keys[1]
    assert len(set(keys)) == 3  # five levels instead of six; another prior scale


def test_second_fit_of_the_same_structure_does_not_recompile():
    compile_cache.clear_memory_cache()
    first = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(), priors=PRIORS).fit(**FIT)
    stats = dict(compile_cache.STATS)
    again = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(), priors=PRIORS).fit(**FIT)
    shifted = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(1000.0), priors=PRIORS).fit(**FIT)
    assert compile_cache.STATS["compiles"] == stats.get("compiles", 0)
    assert compile_cache.STATS["memory_hits"] == stats.get("memory_hits", 0) + 2
    # same seed, same structure, same data: the same draws
    np.testing.assert_array_equal(first.idata["posterior"]["fixef"].values,
                                  again.idata["posterior"]["fixef"].values)
    # the data were swapped, not baked into the compiled code: the cached code evaluates the
    # shifted model's log density exactly as PyMC does
    assert not np.array_equal(first.idata["posterior"]["fixef"].values,
                              shifted.idata["posterior"]["fixef"].values)
    model = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(1000.0), priors=PRIORS)
    pm_model = model.pymc_model
    compiled = compile_cache.compile_model(
        pm_model, [rv.name for rv in pm_model.free_RVs] + stored_names(model.design))
    x = compiled.initial_point_func(0)
    names, slices, shapes = compiled.shape_info
    values = {v.name for v in pm_model.value_vars}
    point = {n: x[s].reshape(sh) for n, s, sh in zip(names, slices, shapes) if n in values}
    assert _nutpie_logp(compiled, x) == pytest.approx(float(pm_model.compile_logp()(point)),
                                                      rel=1e-10)


def _nutpie_logp(compiled, x: np.ndarray) -> float:
    """The log density that nutpie's sampler sees (the C entry point)."""
    import ctypes

    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p)(compiled.compiled_logp_func.address)
    x = np.ascontiguousarray(x, dtype=np.float64)
    grad, logp = np.zeros_like(x), np.zeros(())
    assert fn(x.size, x.ctypes.data, grad.ctypes.data, logp.ctypes.data,
              compiled.user_data.ctypes.data) == 0
    return float(logp)


def test_fresh_process_loads_the_compiled_model_from_disk():
    compile_cache.clear_memory_cache()
    fit = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(), priors=PRIORS).fit(**FIT)
    code = """
import json, warnings
warnings.simplefilter("ignore")
import bayesmix as bm
from bayesmix.inference import compile_cache
from tests.inference.test_performance_mechanisms import _dyestuff, PRIORS, FIT
fit = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(), priors=PRIORS).fit(**FIT)
print(json.dumps({"stats": dict(compile_cache.STATS),
                  "fixef": fit.idata["posterior"]["fixef"].values.ravel().tolist()}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=str(ROOT), timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["stats"].get("disk_hits") == 1 and not res["stats"].get("compiles"), res["stats"]
    # and the loaded code samples as the freshly compiled one did, to rounding: the two
    # processes may run differently optimised machine code for the same expression, whose
    # last-bit differences grow along the 60 leapfrog trajectories to ~1e-11 relative (seen on
    # a fresh machine). 1e-8 leaves a 1000x margin, while a wrong data binding or structure
    # would move the draws by about a posterior SD (~1e-2 relative here).
    np.testing.assert_allclose(np.asarray(res["fixef"]),
                               fit.idata["posterior"]["fixef"].values.ravel(), rtol=1e-8)


def test_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("BAYESMIX_COMPILE_CACHE", "0")
    assert not compile_cache._enabled()


def test_cache_fallback_logs_one_line(monkeypatch, caplog):
    """When the cached path cannot be used (say a newer nutpie changed a private internal),
    the model is compiled by nutpie's own compiler and one warning line says why."""
    import logging

    def broken(*args, **kwargs):
        raise RuntimeError("simulated change of a private internal")

    monkeypatch.setattr(compile_cache, "_load_entry", broken)
    compile_cache.clear_memory_cache()
    before = compile_cache.STATS["fallbacks"]
    model = bm.Model("Yield ~ 1 + (1 | Batch)", _dyestuff(), priors=PRIORS)
    with caplog.at_level(logging.WARNING, logger="bayesmix"):
        compiled = compile_cache.compile_model(model.pymc_model, stored_names(model.design))
    assert compile_cache.STATS["fallbacks"] == before + 1
    lines = [r.getMessage() for r in caplog.records if r.name == "bayesmix"]
    assert len(lines) == 1
    assert "compile cache not used" in lines[0] and "simulated change" in lines[0]
    assert compiled is not None
