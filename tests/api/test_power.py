"""bm.power: the closed forms, the simulation against them within Monte-Carlo error, plots."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bayesmix as bm
from bayesmix.api.power import closed_form_power, simulate_two_arm

SMALL = dict(draws=300, tune=300, chains=2, scheduler="serial", progressbar=False)


def test_closed_form_matches_textbook_numbers():
    # between: SE^2 = 4 (0.25 + 1/5) / 20 = 0.09, Phi(0.6 / 0.3 - 1.96) = Phi(0.04)
    cf = closed_form_power(0.6, 20, 5, sd_group=0.5, sigma=1.0)
    assert cf["se"] == pytest.approx(0.3)
    assert cf["z"] == pytest.approx(0.5160 + 1e-6, abs=1e-3)
    assert cf["df"] == 18 and cf["t"] < cf["z"]  # the t-test pays for 18 df
    # many clusters: t -> z
    big = closed_form_power(0.2, 400, 5, sd_group=0.5, sigma=1.0)
    assert big["t"] == pytest.approx(big["z"], abs=0.01)
    # within groups, no slope variance: the group effects cancel, SE^2 = 4 sigma^2 / N
    within = closed_form_power(0.3, 10, 10, sd_group=5.0, sigma=1.0, assignment="within")
    assert within["se"] == pytest.approx(math.sqrt(4 / 100))
    one = closed_form_power(0.6, 20, 5, sd_group=0.5, two_sided=False)
    assert one["z"] == pytest.approx(0.6388, abs=1e-3)  # one-sided at 0.95: Phi(2 - 1.645)
    assert closed_form_power(0.0, 20, 5)["z"] == pytest.approx(0.05)


def test_simulated_design_is_balanced():
    d = simulate_two_arm(np.random.default_rng(0), 1.0, n_groups=6, n_per_group=4)
    assert len(d) == 24 and d["treat"].mean() == 0.5
    assert (d.groupby("group", observed=True)["treat"].nunique() == 1).all()
    w = simulate_two_arm(np.random.default_rng(0), 1.0, 6, 4, assignment="within")
    assert (w.groupby("group", observed=True)["treat"].mean() == 0.5).all()
    with pytest.raises(bm.BatchError, match="assignment"):
        simulate_two_arm(np.random.default_rng(0), 1.0, 6, 4, assignment="crossed")


def test_power_reproduces_closed_form_within_mc_error():
    """Cluster-randomised, 20 clusters of 5, ICC 0.2, effect 0.6: power 0.47 (t) / 0.52 (z).
    Decision: the 95% central posterior interval excludes 0. 48 simulations: MC SE 0.072."""
    res = bm.power(0.6, n_groups=20, n_per_group=5, sd_group=0.5, sigma=1.0, nsim=48,
                   random_seed=3, **SMALL)
    row = res.table.iloc[0]
    assert row["nsim"] == 48 and row["n_failed"] == 0
    for reference in (row["power_t"], row["power_z"]):
        mcse = math.sqrt(reference * (1 - reference) / row["nsim"])
        assert abs(row["power"] - reference) < 3 * mcse, (row["power"], reference)
    assert row["lower"] < row["power"] < row["upper"]
    # the posterior SD of the effect is close to the design-effect SE (weak priors)
    assert row["mean_sd"] == pytest.approx(0.3, rel=0.2)
    assert "excludes 0" in res.decision and "0.47" in repr(res)


def test_power_grid_decisions_and_plot(tmp_path):
    def _always(draws):  # a local function: fine with the serial scheduler
        return True

    res = bm.power([0.0, 2.0], n_groups=8, n_per_group=4, sd_group=0.3, nsim=3,
                   decision="positive", random_seed=1, **SMALL, output_dir=tmp_path)
    assert list(res.table["effect_size"]) == [0.0, 2.0]
    assert res.table["power"].iloc[1] == 1.0  # an effect of 2 SDs with 32 rows
    assert len(res.simulations) == 6 and set(res.simulations["status"]) == {"ok"}
    again = bm.power([0.0, 2.0], n_groups=8, n_per_group=4, sd_group=0.3, nsim=3,
                     decision="positive", random_seed=1, **SMALL, output_dir=tmp_path)
    assert again.report.n_run == 0
    fig = res.plot()
    fig.savefig(tmp_path / "power.png")
    assert (tmp_path / "power.png").stat().st_size > 1000
    custom = bm.power(1.0, n_groups=8, n_per_group=4, nsim=2, decision=_always, **SMALL)
    assert custom.table["power"].iloc[0] == 1.0
    with pytest.raises(bm.BatchError, match="decision"):
        bm.power(1.0, 8, 4, decision="bayes-factor", **SMALL)
    with pytest.raises(bm.BatchError, match="nsim"):
        bm.power(1.0, 8, 4, nsim=0, **SMALL)
    bad = bm.power(1.0, 8, 4, nsim=1, effect="dose", **SMALL)
    assert bad.table["n_failed"].iloc[0] == 1
    assert "dose" in bad.simulations["error"].iloc[0]


@pytest.mark.slow
def test_power_on_a_local_cluster_matches_closed_form():
    """200 simulations on a 2-worker LocalCluster (MC SE 0.035)."""
    pytest.importorskip("distributed")
    res = bm.power(0.5, n_groups=30, n_per_group=5, sd_group=0.5, nsim=200, draws=500,
                   tune=500, chains=2, random_seed=7, progressbar=False)
    row = res.table.iloc[0]
    mcse = math.sqrt(row["power_t"] * (1 - row["power_t"]) / 200)
    assert abs(row["power"] - row["power_t"]) < 3 * mcse
