"""The precompiled kernel of the standard class (bayesmix.model.kernel_plan,
bayesmix.inference.kernel): its log density and gradient are the PyMC model's, one compiled
kernel serves many formulas, and a fit through it equals the PyTensor path's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.inference import kernel as K
from bayesmix.inference.sample import SamplerSettings, sample_model
from bayesmix.model import kernel_plan as KP


def _data(seed: int = 1, n: int = 360) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    person, item = rng.integers(0, 30, n), rng.integers(0, 9, n)
    x = rng.normal(size=n)
    return pd.DataFrame({
        "y": rng.integers(0, 2, n), "c": rng.poisson(3, n), "x": x, "x2": x + rng.normal(size=n),
        "person": [f"p{k}" for k in person], "item": [f"i{k}" for k in item],
        "tr": np.full(n, 5), "s": rng.binomial(5, 0.4, n), "w": rng.uniform(0.5, 2, n),
        "off": 0.1 * rng.normal(size=n)})


def _well_measured(seed: int = 2) -> pd.DataFrame:
    """Few groups with many large counts: the parametrisation rule centres the block and it
    absorbs the intercept and the slope (hierarchical centring)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(6), 60)
    x = rng.normal(size=g.size)
    eta = 2.5 + 0.3 * x + rng.normal(size=6)[g] + 0.2 * rng.normal(size=6)[g] * x
    return pd.DataFrame({"c": rng.poisson(np.exp(eta)), "x": x, "z": rng.normal(size=g.size),
                         "g": [f"g{k}" for k in g]})


CASES = [
    ("y ~ x + x2 + (1 | person) + (1 | item)", "bernoulli", {}),
    ("c ~ x + (x || person)", "poisson", {}),
    ("c ~ x + offset(off) + (1 | person)", "negativebinomial", {}),
    ("x ~ c + (1 | person) + (1 | item)", "gaussian", {}),
    ("s | trials(tr) ~ x + (1 | item)", "binomial", {}),
    ("c ~ 0 + x + x2 + (1 | item)", "poisson", {}),
    ("y ~ x + (1 | item)", "bernoulli", {"weights": "w"}),
    ("c ~ x + (x | person)", "poisson", {}),
    ("y ~ x + x2 + (1 + x + x2 | person) + (1 | item)", "bernoulli", {}),
    ("x ~ x2 + (x2 | person)", "gaussian", {"marginalize": False}),
    ("c ~ x + offset(off) + (1 | person)", "poisson", {"weights": "w"}),
    ("s | trials(tr) ~ x + (1 | item) + (1 | person)", "binomial", {"weights": "w"}),
]


def _compare(model: bm.Model, seed: int = 0) -> tuple[float, float]:
    """Largest relative differences (log density, gradient) between the kernel and the
    PyMC model's compiled log density at five random points around the start."""
    arrays = model.kernel_arrays
    assert not isinstance(arrays, str), arrays
    pmm = model.pymc_model
    assert [v.name for v in pmm.value_vars] == list(arrays.value_names)
    logp, dlogp, start = pmm.compile_logp(), pmm.compile_dlogp(), pmm.initial_point()
    base = np.concatenate([np.asarray(start[v.name]).ravel() for v in pmm.value_vars])
    np.testing.assert_allclose(arrays.base_point, base, rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(seed)
    worst_lp = worst_grad = 0.0
    for _ in range(5):
        x = base + 0.5 * rng.normal(size=base.size)
        point, offset = {}, 0
        for v in pmm.value_vars:
            shape = start[v.name].shape
            size = int(np.prod(shape))
            point[v.name] = x[offset:offset + size].reshape(shape)
            offset += size
        grad = np.empty_like(x)
        lp = K.logp_and_grad(x, grad, arrays.F, arrays.I)
        ref_lp, ref_grad = logp(point), dlogp(point)
        worst_lp = max(worst_lp, abs(lp - ref_lp) / max(1.0, abs(ref_lp)))
        worst_grad = max(worst_grad, float(np.max(np.abs(grad - ref_grad)
                                                  / np.maximum(1.0, np.abs(ref_grad)))))
    return worst_lp, worst_grad


@pytest.mark.parametrize("formula, family, kwargs", CASES)
def test_kernel_equals_the_pymc_model(formula: str, family: str, kwargs: dict) -> None:
    model = bm.Model(formula, _data(), family=family, **kwargs)
    worst_lp, worst_grad = _compare(model)
    assert worst_lp < 1e-10
    # The negative binomial's dispersion gradient holds digamma(y + theta) - digamma(theta),
    # which PyTensor computes as a difference of two digammas (relative error ~1e-10 when
    # theta >> y, cancellation); the kernel sums 1 / (theta + k) exactly for counts.
    assert worst_grad < (1e-8 if family == "negativebinomial" else 1e-10)


MARGINAL = [  # (formula, data, whether the fixed effects are integrated out too)
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", True),
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy", True),
    ("x ~ x2 + (1 | person)", "sim", False),
    ("x ~ x2 + c + (x2 | person)", "sim", False),
    ("x ~ 0 + x2 + (1 | item)", "sim", False),
]


@pytest.mark.parametrize("formula, data, fixed_integrated", MARGINAL)
def test_marginal_kernel_equals_the_integrated_pymc_model(formula: str, data: str,
                                                          fixed_integrated: bool) -> None:
    """Gaussian models with their level effects (and fixed effects) integrated out:
    bayesmix.model.integrated.marginal_loglik and its gradient, written for the kernel."""
    df = bm.datasets.load("sleepstudy") if data == "sleepstudy" else _data()
    model = bm.Model(formula, df)
    assert model.marginal and (model.marginal_stats.fixed is not None) == fixed_integrated
    worst_lp, worst_grad = _compare(model)
    assert worst_lp < 1e-10 and worst_grad < 1e-10


def test_kernel_centred_blocks_with_absorbed_terms() -> None:
    model = bm.Model("c ~ x + z + (x || g)", _well_measured(), family="poisson")
    assert model.centered == (True,)  # the rule centres it: the case this test is about
    arrays = model.kernel_arrays
    # the block absorbs the intercept (no intercept in the rows' sum) and the slope of x
    assert arrays.I[KP.M_INTERCEPT_IN_ETA] == 0 and arrays.I[KP.M_NMOVED] == 1
    assert arrays.value_names[-1] == "_gamma_g"
    worst_lp, worst_grad = _compare(model)
    assert worst_lp < 1e-10 and worst_grad < 1e-10


def test_kernel_level_covariates_in_the_centred_intercepts_mean() -> None:
    """A predictor constant within each level of a centred block (an item's format, a
    patient's treatment) moves into the levels' prior mean (level_covariates)."""
    df = _well_measured()
    per_group = {g: i % 2 for i, g in enumerate(sorted(df["g"].unique()))}
    df = df.assign(w=df["g"].map(per_group).astype(float))
    model = bm.Model("c ~ x + w + (1 | g)", df, family="poisson")
    assert model.centered == (True,) and model.level_covariates == {0: (2,)}
    worst_lp, worst_grad = _compare(model)
    assert worst_lp < 1e-10 and worst_grad < 1e-10


def test_kernel_level_covariates_of_a_block_that_does_not_absorb_the_intercept() -> None:
    """Crossed, both blocks centred: items absorb the intercept, persons take the
    person-level covariate into their mean (r_person ~ N(ability * beta, sd))."""
    rng = np.random.default_rng(5)
    P, J = 60, 12
    person, item = np.repeat(np.arange(P), J), np.tile(np.arange(J), P)
    ability = rng.normal(size=P)
    eta = 0.2 + 0.7 * ability[person] + rng.normal(0, 1, P)[person] + rng.normal(0, 1, J)[item]
    df = pd.DataFrame({"y": (rng.uniform(size=P * J) < 1 / (1 + np.exp(-eta))).astype(int),
                       "ability": ability[person], "x": rng.normal(size=P * J),
                       "person": [f"p{k}" for k in person], "item": [f"i{k}" for k in item]})
    model = bm.Model("y ~ ability + x + (1 | person) + (1 | item)", df, family="bernoulli",
                     centered={"person": True, "item": True})
    assert model.level_covariates == {0: (1,)}  # persons: ability; items: the intercept
    worst_lp, worst_grad = _compare(model)
    assert worst_lp < 1e-10 and worst_grad < 1e-10


def test_models_outside_the_class_say_why() -> None:
    df = _data()
    reasons = {
        "nested": bm.Model("x ~ x2 + (1 | person/item)", df).kernel_arrays,
        "family": bm.Model("c ~ x + (1 | person)", df, family="zero_inflated_poisson"
                           ).kernel_arrays,
        "link": bm.Model("y ~ x + (1 | person)", df, family="bernoulli", link="probit"
                         ).kernel_arrays,
    }
    assert reasons["nested"] == "a nested pair of random intercepts integrated out"
    assert reasons["family"] == "the zero_inflated_poisson family with the log link"
    assert reasons["link"] == "the bernoulli family with the probit link"


def test_lkj_constant_is_pymcs() -> None:
    from pymc.distributions.multivariate import _lkj_normalizing_constant

    for eta in (0.5, 1.0, 2.0, 3.7):
        for n in (2, 3, 4):
            assert KP._lkj_constant(eta, n) == pytest.approx(
                float(_lkj_normalizing_constant(eta, n).eval()), rel=1e-12, abs=1e-12)


def test_kernel_layout_constants_match_the_plan() -> None:
    # kernel.py writes the slot numbers out (numba's cache is keyed by its own source)
    assert (K._N_META, K._N_F, K._N_I) == (KP.N_META, KP.N_FSLOTS, KP.N_ISLOTS)
    assert (KP.M_FAMILY, KP.M_NDIM, KP.M_POS_FAM, KP.M_NEXPANDED, KP.M_NTERMS) == (1, 2, 10, 15, 20)
    assert (KP.F_CONST, KP.F_XMEANS, KP.F_LKJ, KP.F_PRIOR_SD, KP.F_LEVELX) == (14, 13, 15, 22, 23)
    assert (KP.I_OTHERS, KP.I_LEVELCOLS) == (7, 8)
    assert (KP.M_MARGINAL, KP.M_P, KP.M_LEVELS) == (21, 22, 23)
    assert K._BF == KP.BLOCK_FIELDS


def test_one_compiled_kernel_serves_several_formulas() -> None:
    """Three formulas, three families: the same two compiled entry points, no compilation,
    no PyMC model built."""
    from bayesmix.inference import compile_cache

    df = _data()
    before = dict(compile_cache.STATS)
    addresses = set()
    settings = SamplerSettings(draws=60, tune=60, chains=1, random_seed=3, progressbar=False)
    for formula, family in [("y ~ x + (1 | person) + (1 | item)", "bernoulli"),
                            ("c ~ x + x2 + (x || person)", "poisson"),
                            ("x ~ c + (1 | item)", "gaussian")]:
        model = bm.Model(formula, df, family=family)  # (the gaussian one: integrated)
        idata, timing, compiled = sample_model(model, settings)
        addresses.add((compiled.compiled_logp_func.address,
                       compiled.compiled_expand_func.address))
        assert "compile" not in timing and "pymc_model" not in model.__dict__
        assert idata["posterior"]["fixef"].shape == (1, 60, len(model.design.coef_names))
    assert len(addresses) == 1
    assert dict(compile_cache.STATS) == before


def test_kernel_fit_equals_the_pytensor_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same model sampled through both paths (same seed and start): posterior means
    agree within Monte-Carlo error (0.3 posterior SD is > 4 MC SEs at ESS >= 200)."""
    df = _data(seed=4)
    settings = SamplerSettings(draws=400, tune=400, chains=2, random_seed=7, progressbar=False)

    def posterior(kernel_on: bool) -> tuple[np.ndarray, np.ndarray]:
        monkeypatch.setenv("BAYESMIX_KERNEL", "1" if kernel_on else "0")
        model = bm.Model("y ~ x + (1 | person) + (1 | item)", df, family="bernoulli")
        idata, _, _ = sample_model(model, settings)
        post = idata["posterior"]
        draws = np.concatenate([post["fixef"].values.reshape(-1, 2),
                                post["sd_person"].values.reshape(-1, 1)], axis=1)
        assert "r_person" in post  # level effects derived as on the PyTensor path
        return draws.mean(axis=0), draws.std(axis=0)

    mean_k, sd_k = posterior(True)
    mean_p, _ = posterior(False)
    assert np.all(np.abs(mean_k - mean_p) < 0.3 * sd_k)


def test_vectorized_rows_match_libm() -> None:
    """The kernel's polynomial exp and log1p (which let LLVM vectorize the logistic and Poisson
    rows) against numpy's libm-based ones, over the whole range a linear predictor takes: the
    differences are rounding (a few units in the last place), far inside the 1e-10 at which
    the kernel is compared with the PyMC model."""
    from bayesmix.inference.kernel import numerics

    rng = np.random.default_rng(3)
    eta = np.concatenate([np.linspace(-700, 700, 140_001), rng.normal(0, 3, 100_000),
                          rng.normal(0, 1e-6, 1_000)])
    y = rng.integers(0, 2, eta.size).astype(float)
    trials = rng.integers(1, 20, eta.size).astype(float)
    for family, n in ((1, np.ones_like(eta)), (2, trials)):
        lpi, g = np.empty_like(eta), np.empty_like(eta)
        numerics._logistic_rows(eta, y * n, n, family, lpi, g)
        softplus = np.logaddexp(0.0, eta)
        np.testing.assert_allclose(lpi, y * n * eta - n * softplus, rtol=1e-14, atol=1e-13)
        np.testing.assert_allclose(g, y * n - n / (1.0 + np.exp(-eta)), rtol=1e-14, atol=1e-13)
    lpi, g = np.empty_like(eta), np.empty_like(eta)
    numerics._poisson_rows(eta, np.zeros_like(eta), lpi, g)  # y = 0: both are -exp(eta)
    np.testing.assert_allclose(-g, np.exp(eta), rtol=2e-15, atol=0.0)
    counts = rng.poisson(3, eta.size).astype(float)
    numerics._poisson_rows(eta, counts, lpi, g)
    mu = np.exp(eta)
    scale = np.abs(counts * eta) + mu  # the terms' size: the result is good to a few ulp of it
    assert np.all(np.abs(lpi - (counts * eta - mu)) <= 8e-16 * scale)
    assert np.all(np.abs(g - (counts - mu)) <= 8e-16 * (counts + mu))


def test_stale_kernel_cache_is_dropped(tmp_path, monkeypatch) -> None:
    """numba keys a cached function by its own file only: when any of the kernel's sources
    changes, the package drops every cached function (a changed helper would otherwise leave
    its callers' cached code stale), and leaves the cache alone when none changed."""
    import bayesmix.inference.kernel as kernel_pkg

    for name in kernel_pkg._SOURCES:
        (tmp_path / name).write_text(f"# {name}\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    monkeypatch.setattr(kernel_pkg, "_HERE", tmp_path)

    def cached() -> list[str]:
        (cache / "conditional._conditional-25.py313.nbi").write_text("index")
        (cache / "conditional._conditional-25.py313.1.nbc").write_text("code")
        kernel_pkg._drop_stale_cache()
        return sorted(p.name for p in cache.glob("*.nb?"))

    assert cached() == []  # no stamp yet: dropped, stamp written
    assert len(cached()) == 2  # same sources: kept
    (tmp_path / "numerics.py").write_text("# a changed helper\n")
    assert cached() == []  # a helper changed: dropped again
    assert len(cached()) == 2
