"""The calibration CLI's own statistics (bayesmix.cli.calibration): fast checks that its
columns mean what docs/validation.md says they mean."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesmix.cli.calibration import (
    STUDIES,
    boundary_rule_rates,
    level_f,
    run_one,
    simulate,
    summarize,
)


def test_level_f_has_its_f_distribution_under_the_null():
    # 2 000 data sets with no level effect: F(9, 89) exceeds its 95 % quantile 5 % of the
    # time; the binomial MC SE is 0.49 %, so [3.5 %, 6.5 %] is a 3-SE band.
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(10), 10)
    labels = [f"g{k:02d}" for k in g]
    crit = stats.f.ppf(0.95, 9, 89)
    values = []
    for _ in range(2000):
        x = rng.normal(size=100)
        values.append(level_f(pd.DataFrame({"y": 1.0 + 2.0 * x + rng.normal(size=100),
                                            "x": x, "g": labels})))
    rate = np.mean(np.array(values) > crit)
    assert 0.035 < rate < 0.065, rate
    # The slope is adjusted for: a strong x does not leak into the level F.
    assert np.median(values) < 1.1


def test_boundary_rules_are_read_from_the_recorded_columns():
    table = pd.DataFrame({"pooling_g[(Intercept)]": [0.95, 0.79, 0.3, 0.1],
                          "f_level_means": [0.8, 1.1, 1.3, 4.0],
                          "ratio_g[(Intercept)]": [0.05, 0.4, 0.2, 0.7]})
    rates = {k: v["rate"] for k, v in boundary_rule_rates(table).items()}
    assert rates == {"rule: pooling factor >= 0.78": 0.5, "rule: pooling factor >= 0.80": 0.25,
                     "rule: F < 1.2": 0.5, "rule: former rule (q10 / median <= 0.3)": 0.5}
    # Absent columns (a study without the statistic) give no rate rather than a KeyError.
    assert boundary_rule_rates(table.drop(columns="f_level_means")).keys() == \
        {"rule: pooling factor >= 0.78", "rule: pooling factor >= 0.80",
         "rule: former rule (q10 / median <= 0.3)"}


# A short chain for speed; the study's own runs use 2 x 500 draws.
@pytest.mark.filterwarnings("ignore::bayesmix.errors.ConvergenceWarning")
def test_one_simulation_records_flags_statistics_and_coverage():
    study = STUDIES["gaussian_null_10"]
    row = run_one(study, sim=0, seed=5, draws=150)
    assert "error" not in row, row.get("error")
    df, truth = simulate(study, 0, 5)
    assert row["f_level_means"] == level_f(df)  # the same data set, the same statistic
    assert 0.0 <= row["pooling_g[(Intercept)]"] <= 1.0
    assert isinstance(row["pareto_k_flag"], bool) and isinstance(row["pareto_k_plain_flag"], bool)
    # The integrated flag can only clear rows, never add them.
    assert row["pareto_k_flag"] <= row["pareto_k_plain_flag"]
    assert {f"cover_{name}" for name in truth} <= set(row)
    summary = summarize(pd.DataFrame([row]))
    assert summary["failed fits"]["rate"] == 0.0 and "rule: F < 1.2" in summary
