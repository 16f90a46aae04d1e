"""Rendered pictures and the printed summary of one small sleepstudy fit."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.cli.main import main as cli_main
from bayesmix.text import format_table


@pytest.fixture(scope="module")
def fit():
    df = bm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        return bm.Model("Reaction ~ Days + (Days | Subject)", df).fit(
            draws=300, tune=300, chains=2, random_seed=11, progressbar=False)


def test_no_pooling_estimates_are_per_subject_least_squares(fit):
    df = bm.datasets.load("sleepstudy")
    raw = bm.plots.no_pooling_estimates(fit.idata, fit.model, "Subject")
    for subject, part in df.groupby("Subject", observed=True):
        slope, intercept = np.polyfit(part["Days"], part["Reaction"], 1)
        assert raw.loc[subject, "(Intercept)"] == pytest.approx(intercept)
        assert raw.loc[subject, "Days"] == pytest.approx(slope)


def test_shrinkage_plot_draws_both_estimates_per_subject(fit, tmp_path):
    fig = fit.plot_shrinkage("Subject")
    fig.savefig(tmp_path / "shrinkage.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "(Intercept)" and ax.get_ylabel() == "Days"
    labels = [line.get_label() for line in ax.lines]
    assert labels[:2] == ["no pooling (per level)", "partial pooling (posterior mean)"]
    assert [len(line.get_xdata()) for line in ax.lines[:2]] == [18, 18]
    assert len(ax.texts) == 18  # one arrow per subject
    # Partial pooling pulls the spread of intercepts toward the population.
    raw, pooled = ax.lines[0].get_xdata(), ax.lines[1].get_xdata()
    assert np.std(pooled) < np.std(raw)


def test_caterpillar_plot_has_a_panel_per_term_and_every_level(fit, tmp_path):
    fig = fit.plot_caterpillar("Subject")
    fig.savefig(tmp_path / "caterpillar.png")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["(Intercept)", "Days"]
    ticks = [t.get_text() for t in axes[0].get_yticklabels()]
    assert sorted(ticks) == sorted(str(s) for s in bm.datasets.load("sleepstudy")
                                   ["Subject"].unique())
    assert axes[0].get_ylabel() == "Subject"
    assert len(axes[0].lines[0].get_xdata()) == 18


def test_plot_unknown_group_names_the_factors(fit):
    with pytest.raises(bm.BayesmixError, match="no grouping factor 'Subjct'.*Subject"):
        fit.plot_caterpillar("Subjct")


def test_summary_reads_like_lme4(fit):
    text = str(fit.summary())
    for piece in ("Linear mixed model fit by NUTS (nutpie)",
                  "Formula: Reaction ~ Days + (Days | Subject)",
                  "Random effects", "Fixed effects:", "Number of obs: 180, groups:  Subject, 18",
                  "cor((Intercept), Days)", "Residual", "Sampling: ", "Priors: default"):
        assert piece in text
    fixed_block = text.split("Fixed effects:")[1].splitlines()
    assert fixed_block[1].split() == ["Estimate", "Est.Error", "lower", "upper", "ess_bulk",
                                      "ess_tail", "r_hat"]
    assert fixed_block[2].startswith("(Intercept)") and fixed_block[3].startswith("Days")
    assert repr(fit.summary()) == text


def test_format_table_aligns_text_left_and_numbers_right():
    table = pd.DataFrame({"Groups": ["Subject", "Residual"], "Std.Dev.": [27.0, 6.5],
                          "ess_bulk": [1689.4, np.nan]})
    lines = format_table(table, index=False).splitlines()
    assert lines == ["Groups   Std.Dev. ess_bulk",
                     "Subject     27.00     1689",
                     "Residual    6.500       NA"]


def test_cli_fit_prints_a_summary(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        code = cli_main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", "dyestuff", "--draws", "200",
                         "--tune", "200", "--chains", "2", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Formula: Yield ~ 1 + (1 | Batch)" in out and "Batch" in out


def test_cli_reports_bad_input_without_traceback(capsys):
    code = cli_main(["fit", "Yield ~ 1 + (1 | Bach)", "--data", "dyestuff"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: column 'Bach'" in err and "Did you mean 'Batch'" in err
