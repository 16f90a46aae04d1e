"""The data-driven centred / non-centred choice (pure numpy, no sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.model.parametrization import CENTRE_RATIO, choose_centering, information_ratios


def _ratios(formula: str, dataset: str | pd.DataFrame, family: str = "gaussian"):
    df = bm.datasets.load(dataset) if isinstance(dataset, str) else dataset
    m = bm.Model(formula, df, family=family)
    return m, information_ratios(m.design, m.family, m.link, m.y, m.trials)


def test_nested_casks_are_better_measured_than_batches():
    # Two rows per cask but six per batch: the cask effects are pinned down by the data,
    # while a batch mean is blurred by the large cask-to-cask spread (lme4: SD 2.9 vs 1.3).
    model, (batch, cask) = _ratios("strength ~ 1 + (1 | batch/cask)", "pastes")
    assert cask > 10 * batch
    assert cask > CENTRE_RATIO


def test_singular_fit_stays_non_centred():
    # Dyestuff2: the batch variance estimate is zero, so the levels carry no information.
    model, (ratio,) = _ratios("Yield ~ 1 + (1 | Batch)", "dyestuff2")
    assert ratio == 0.0
    assert model.centered == (False,)


def test_well_measured_intercepts_are_centred_but_a_noisy_slope_is_not():
    # 47 students per school pin each school's mean down (centred) ...
    model, (ratio,) = _ratios("MathAch ~ SES + (1 | School)", "mathachieve")
    assert ratio > CENTRE_RATIO
    assert model.centered == (True,)
    # ... but a school's SES slope has a standard error about twice the slope SD (lme4: 0.66),
    # and a centred block with a poorly measured term mixes badly: keep it non-centred.
    model, (ratio,) = _ratios("MathAch ~ SES + (SES | School)", "mathachieve")
    assert ratio < 1
    assert model.centered == (False,)


def test_simulated_information_ratio_matches_theory():
    # Gaussian random intercept, tau = 2, sigma = 1, 10 rows per level: ratio = 10 * 4 / 1.
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(200), 10)
    y = rng.normal(0, 2, 200)[g] + rng.normal(0, 1, g.size)
    _, (ratio,) = _ratios("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g}))
    assert ratio == pytest.approx(40, rel=0.25)  # sd of the moment estimate of tau^2 ~ 10 %


def test_poisson_uses_working_weights():
    # Poisson intercepts: information per row is mu; tau = 0.5, mu = exp(2) ~ 7.4, 5 rows.
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(300), 5)
    y = rng.poisson(np.exp(2 + rng.normal(0, 0.5, 300)[g]))
    _, (ratio,) = _ratios("y ~ 1 + (1 | g)", pd.DataFrame({"y": y, "g": g}), "poisson")
    assert ratio == pytest.approx(5 * np.exp(2) * 0.25, rel=0.35)


def test_one_row_per_level_in_a_binomial_model_uses_nominal_dispersion():
    model, (ratio,) = _ratios("deaths | trials(patients) ~ 1 + (1 | hospital)", "mortality",
                              "binomial")
    assert np.isfinite(ratio)


def test_override_wins_and_unknown_factor_is_an_error():
    df = bm.datasets.load("sleepstudy")
    assert bm.Model("Reaction ~ Days + (Days | Subject)", df,
                    centered={"Subject": False}).centered == (False,)
    with pytest.raises(bm.DataError, match="names no grouping factor.*Subject"):
        bm.Model("Reaction ~ Days + (Days | Subject)", df, centered={"Subjct": True})
    with pytest.raises(bm.DataError, match="True or False"):
        m = bm.Model("Reaction ~ Days + (Days | Subject)", df)
        choose_centering(m.design, m.family, m.link, m.y, m.trials, {"Subject": "yes"})


def test_nested_blocks_stay_non_centred_and_crossed_ones_do_not_count_as_nested():
    from bayesmix.model.parametrization import nested_in

    pastes = bm.Model("strength ~ 1 + (1 | batch/cask)", bm.datasets.load("pastes"))
    batch, cask = pastes.design.blocks
    assert nested_in(cask, batch) and not nested_in(batch, cask)
    assert pastes.centered == (False, False)  # casks are informative (ratio > 4) but nested
    penicillin = bm.Model("diameter ~ 1 + (1 | plate) + (1 | sample)",
                          bm.datasets.load("penicillin"))
    plate, sample = penicillin.design.blocks
    assert not nested_in(plate, sample) and not nested_in(sample, plate)
    assert penicillin.centered == (False, True)  # 24 plates per sample: centred


def test_blocks_holding_ar1_series_stay_non_centred():
    # sleepstudy's subjects are well measured (ratio 2.7: centred), but with AR(1) residuals
    # within subjects their rows are not independent: non-centred unless asked.
    df = bm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days || Subject)"
    ar = bm.AR1(time="Days", group="Subject")
    assert bm.Model(formula, df).centered == (True,)
    assert bm.Model(formula, df, autocor=ar).centered == (False,)
    assert bm.Model(formula, df, autocor=ar, centered={"Subject": True}).centered == (True,)


def test_correlated_block_needs_the_higher_ratio():
    # sleepstudy (Days | Subject), ratio 2.7: centred it diverged a few times per run
    df = bm.datasets.load("sleepstudy")
    assert bm.Model("Reaction ~ Days + (Days | Subject)", df).centered == (False,)
    assert bm.Model("Reaction ~ Days + (Days || Subject)", df).centered == (True,)


def test_crossed_blocks_one_absorbs_the_intercept_the_other_needs_more_information():
    """Persons x items (bernoulli, as the benchmark's psychometric model): items (25 levels)
    absorb the intercept; the persons' block cannot absorb anything, so it needs
    PARTIAL_CENTRE_RATIO, which its ratio (~2.8) does not reach."""
    from bayesmix.model.parametrization import PARTIAL_CENTRE_RATIO

    rng = np.random.default_rng(20240601)
    persons, items = 300, 25
    ability = rng.standard_normal(persons)
    u, v = rng.normal(0, 1.0, persons), rng.normal(0, 0.9, items)
    p, i = np.repeat(np.arange(persons), items), np.tile(np.arange(items), persons)
    eta = 0.4 + 0.6 * ability[p] + u[p] + v[i]
    df = pd.DataFrame({"y": (rng.random(p.size) < 1 / (1 + np.exp(-eta))).astype(int),
                       "ability_z": ability[p], "person": p, "item": i})
    model, (person, item) = _ratios("y ~ 1 + ability_z + (1 | person) + (1 | item)", df,
                                    family="bernoulli")
    assert CENTRE_RATIO <= person < PARTIAL_CENTRE_RATIO < item
    assert model.centered == (False, True)


def test_working_fit_of_nearly_all_zero_counts_does_not_fail():
    """70 zeros and 2 ones (a rare event; a data set of the SBC run, which failed there with
    numpy's LinAlgError): the working GLM's log link runs to -inf; the centring rule keeps
    the block non-centred instead of failing."""
    from bayesmix.validation.sbc import SBCConfig, design_data

    formula, df = design_data("intercept", "negativebinomial", SBCConfig(), 2024)
    y = np.zeros(len(df), dtype=int)
    y[[3, 53]] = 1
    for family in ("negativebinomial", "poisson"):
        assert bm.Model(formula, df.assign(y=y), family=family).centered == (False,)
