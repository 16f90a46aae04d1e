"""Sampling diagnostics name parameters in formula terms (synthetic draws, no sampling)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.inference.convergence import sampling_report, warn_on_problems


def _posterior(sd_shift: float, n_div: int = 0) -> xr.DataTree:
    rng = np.random.default_rng(5)
    c, d = 4, 500
    sd = np.abs(rng.normal(5, 1, (c, d, 2)))
    sd[0, :, 1] += sd_shift  # one chain stuck elsewhere: R-hat of the Days SD blows up
    rho = np.tanh(rng.normal(0, 0.3, (c, d)))
    cor = np.ones((c, d, 2, 2))
    cor[..., 0, 1] = cor[..., 1, 0] = rho
    term = ["(Intercept)", "Days"]
    post = xr.Dataset(
        {"fixef": (("chain", "draw", "coef"), rng.normal(size=(c, d, 2))),
         "sd_Subject": (("chain", "draw", "Subject__term"), sd),
         "cor_Subject": (("chain", "draw", "Subject__term", "Subject__term2"), cor),
         "sigma": (("chain", "draw"), np.abs(rng.normal(25, 1, (c, d))))},
        coords={"coef": term, "Subject__term": term, "Subject__term2": term})
    diverging = np.zeros((c, d), bool)
    diverging.flat[:n_div] = True
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging),
                        "maxdepth_reached": (("chain", "draw"), np.zeros((c, d), bool))})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


@pytest.fixture(scope="module")
def blocks():
    model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    return model.design.blocks


def test_worst_parameter_is_named_in_formula_terms(blocks):
    report = sampling_report(_posterior(sd_shift=20.0, n_div=7), blocks, None)
    assert report.max_rhat > 1.5
    assert report.worst_rhat == "the SD of Days in (Days | Subject)"
    assert report.divergences == 7
    text = report.text()
    assert "7 divergences" in text and "raise target_accept" in text
    assert str(report) == text  # print(fit.sampling_report()) shows the text, not a repr
    with pytest.warns(bm.ConvergenceWarning, match=r"R-hat .* for the SD of Days in \(Days"):
        warn_on_problems(report)


def test_healthy_draws_raise_no_warning(blocks):
    report = sampling_report(_posterior(sd_shift=0.0), blocks, None)
    assert report.max_rhat < 1.01 and report.problems == []
    assert report.worst_ess_bulk.startswith(("the coefficient", "the SD of", "the correlation",
                                             "the residual SD"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_on_problems(report)


@pytest.mark.parametrize("draws, chunk", [(500, 512), (501, 7)])
def test_rank_diagnostics_equal_arviz(draws, chunk, monkeypatch):
    """The vectorised ranks give ArviZ's rank R-hat and bulk ESS exactly: slow-mixing and
    shifted chains, repeated draws (ties, as rejections leave), an odd number of draws, two
    non-sample dimensions, a constant element, a missing draw, and elements ranked in chunks
    (7 at a time here)."""
    import arviz as az

    from bayesmix.inference import convergence as diagnostics
    from bayesmix.inference.convergence import rank_diagnostics

    monkeypatch.setattr(diagnostics, "RANK_CHUNK", chunk)

    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(3, draws, 20, 2)), axis=1) * 0.1 \
        + rng.normal(size=(3, draws, 20, 2))
    x[0, :, 4, 1] += 0.8  # one chain elsewhere
    x[:, 100:150, 7, 0] = x[:, 99:100, 7, 0]  # a stuck stretch: ties
    x[..., 9, 0] = np.round(x[..., 9, 0], 1)  # many ties
    x[..., 11, 1] = 2.5
    x[1, 17, 12, 0] = np.nan
    da = xr.DataArray(x, dims=("chain", "draw", "level", "term"))
    rhat, ess = rank_diagnostics(da)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want_rhat, want_ess = az.rhat(da), az.ess(da, method="bulk")
    assert rhat.dims == ("level", "term")
    np.testing.assert_allclose(rhat.values, want_rhat.values, rtol=1e-12)
    np.testing.assert_allclose(ess.values, want_ess.values, rtol=1e-12)
    assert rhat.values[4, 1] > 1.05 and np.isnan(rhat.values[11, 1])
    assert np.isnan(ess.values[12, 0]) and ess.values[11, 1] == 3 * (draws // 2) * 2
