"""Simulation-based calibration (bayesmix.validation.sbc): its bookkeeping, fast; a small run
of the suite, slow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix.validation.sbc import (
    SBCConfig,
    design_data,
    plot_ranks,
    run_sbc,
    stated_priors,
    summarize,
)


def _ranks(values: np.ndarray, L: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"family": "gaussian", "design": "intercept", "sim": range(len(values)),
                         "parameter": "sigma", "rank": values, "L": L, "error": ""})


def test_summary_tells_uniform_ranks_from_skewed_ones():
    rng = np.random.default_rng(0)
    uniform = summarize(_ranks(rng.integers(0, 101, 400)))
    assert uniform.loc[0, "p_value"] > 0.01 and uniform.loc[0, "n_sims"] == 400
    # A posterior biased upwards: the truth falls low among the draws.
    skewed = summarize(_ranks(np.minimum(rng.integers(0, 101, 400), rng.integers(0, 101, 400))))
    assert skewed.loc[0, "p_value"] < 1e-6 and skewed.loc[0, "mean_rank_fraction"] < 0.4


def test_designs_and_stated_priors():
    config = SBCConfig(n_groups=6, n_per_group=4)
    formula, df = design_data("nested", "binomial", config, 1)
    assert formula == "y | trials(n) ~ x + (1 | g / h)" and len(df) == 24
    assert df.groupby("h")["g"].nunique().max() == 1  # h nested in g
    formula, df = design_data("slopes", "gaussian", config, 1)
    priors = {k: repr(v) for k, v in stated_priors(formula, df, "gaussian").items()}
    assert priors["x"] == "Normal(mu=0, sigma=1)"
    assert priors["x|g"] == "HalfNormal(sigma=1)"
    assert priors["cor|g"] == "LKJ(eta=2)"


@pytest.mark.slow
def test_small_sbc_run_is_uniform(tmp_path: Path):
    # 40 simulations of a gaussian random-intercept model: every parameter's ranks pass the
    # chi-square test (Holm-adjusted over the 4 parameters) at 0.001. A sampler or a model
    # with a wrong density fails it (a posterior 2x too narrow gives p < 1e-6 at 40 sims).
    config = SBCConfig(families=("gaussian",), n_sims=40, processes=1, draws=300, tune=300)
    summary = run_sbc(config, tmp_path)
    assert set(summary["parameter"]) == {"fixef[(Intercept)]", "fixef[x]", "sd_g[(Intercept)]",
                                         "sigma"}
    assert (summary["n_sims"] == 40).all() and (summary["p_holm"] > 0.001).all()
    ranks = pd.read_csv(tmp_path / "sbc_ranks.csv", keep_default_na=False)
    assert plot_ranks(ranks, tmp_path / "ranks.png").stat().st_size > 1000
