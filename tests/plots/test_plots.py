"""Every diagnostic picture, rendered to PNG and inspected: panels, points, lines, labels.

Three small fits: sleepstudy (gaussian, correlated slope), radon's county intercepts (85
counties of 1 to 116 rows, for shrinkage against group size) and simulated Poisson counts.
"""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

import bayesmix as bm  # noqa: E402


def quiet_fit(model: bm.Model, **kwargs) -> bm.FitResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        warnings.simplefilter("ignore", bm.SingularFitWarning)
        return model.fit(progressbar=False, **kwargs)


@pytest.fixture(scope="module")
def sleep():
    model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    return quiet_fit(model, draws=400, tune=400, chains=2, random_seed=3)


@pytest.fixture(scope="module")
def radon():
    model = bm.Model("log_radon ~ floor + (1 | county)", bm.datasets.load("radon"))
    return quiet_fit(model, draws=300, tune=300, chains=2, random_seed=1)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=72)
    y = rng.poisson(np.exp(0.8 + 0.5 * x + rng.normal(0, 0.4, 12)[g]))
    df = pd.DataFrame({"events": y, "dose": x, "site": [f"s{i}" for i in g]})
    return quiet_fit(bm.Model("events ~ dose + (1 | site)", df, family="poisson"),
                     draws=300, tune=300, chains=2, random_seed=1)


def render(fig, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5000
    plt.close(fig)


def points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_residual_panels_cover_fitted_scale_qq_predictors_and_groups(sleep, tmp_path):
    fig = sleep.plot_residuals()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Residuals vs fitted", "Scale-location", "Normal Q-Q of residuals",
                      "Residuals vs Days", "Residuals per Subject"]
    assert fig.axes[0].get_xlabel() == "fitted Reaction (posterior mean)"
    assert fig.axes[0].get_ylabel() == "Pearson residual"
    assert [points(ax) for ax in fig.axes[:3]] == [180, 180, 180]
    assert fig.axes[3].get_xlabel() == "Days"
    render(fig, tmp_path, "residuals")


def test_group_boxplots_are_ordered_by_mean_residual(sleep, tmp_path):
    fig = sleep.plot_residuals(kind="groups")
    (ax,) = fig.axes
    assert ax.get_title() == "Residuals per Subject"
    assert ax.get_xlabel() == "Subject (rows); 18 levels, ordered by mean residual"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert all(t.endswith(" (10)") for t in ticks)  # ten days per subject
    ticks = [t.removesuffix(" (10)") for t in ticks]
    resid = sleep.residuals()
    subjects = bm.datasets.load("sleepstudy")["Subject"].astype(str).to_numpy()
    means = pd.Series(resid.to_numpy()).groupby(subjects).mean()
    assert sorted(ticks) == sorted(means.index)
    assert np.all(np.diff(means.loc[ticks].to_numpy()) >= 0)
    render(fig, tmp_path, "residual_groups")


def test_pearson_residuals_use_the_residual_sd(sleep):
    resid = sleep.residuals("pearson")
    response = sleep.residuals("response")
    sigma = float((sleep.posterior["sigma"] ** 2).mean() ** 0.5)
    np.testing.assert_allclose(resid.to_numpy(), response.to_numpy() / sigma)
    assert 0.7 < resid.std() < 1.0  # level effects absorb part of the noise (lme4 alike)


def test_qq_of_random_effects_has_a_panel_per_term_with_every_level(sleep, tmp_path):
    fig = sleep.plot_qq("ranef")
    assert [ax.get_title() for ax in fig.axes] == ["(Intercept) in (Days | Subject)",
                                                   "Days in (Days | Subject)"]
    assert [points(ax) for ax in fig.axes] == [18, 18]
    assert fig.axes[1].get_ylabel() == "Subject effect on Days"
    # The reference line has the slope of the posterior mean SD of the term.
    line = fig.axes[1].lines[0]
    slope = np.polyfit(line.get_xdata(), line.get_ydata(), 1)[0]
    assert slope == pytest.approx(float(sleep.posterior["sd_Subject"].sel(
        Subject__term="Days").mean()))
    # Posterior means are sorted along the normal quantiles.
    ys = fig.axes[1].collections[-1].get_offsets()[:, 1]
    assert np.all(np.diff(ys) >= 0)
    render(fig, tmp_path, "qq_ranef")
    fig = sleep.plot_qq()
    assert points(fig.axes[0]) == 180 and fig.axes[0].get_xlabel() == "standard normal quantile"
    render(fig, tmp_path, "qq_residuals")
    with pytest.raises(bm.BayesmixError, match="no grouping factor 'Subjct'"):
        sleep.plot_qq("ranef", group="Subjct")


def test_simulated_residual_panels_show_the_test_p_values(sleep, tmp_path):
    fig = sleep.plot_simulated_residuals(n_sims=300)
    left, right = fig.axes
    assert points(left) == 180 and points(right) == 180
    text = left.texts[0].get_text()
    assert "uniformity: p =" in text and "dispersion: p =" in text
    assert right.get_xlabel() == "predicted Reaction (rank-transformed)"
    assert len([ln for ln in right.lines if ln.get_marker() == "o"]) == 3  # 25/50/75%
    render(fig, tmp_path, "simulated_residuals")


def test_ppc_density_overlays_the_simulated_data_sets(sleep, tmp_path):
    fig = sleep.plot_ppc(num_samples=30)
    (ax,) = fig.axes
    assert len(ax.lines) == 31  # 30 simulated KDEs and the observed one
    assert ax.get_xlabel() == "Reaction" and ax.get_title() == "Reaction"
    render(fig, tmp_path, "ppc_density")
    fig = sleep.plot_ppc("loo_pit")
    assert "ECDF" in fig.axes[0].get_ylabel() and len(fig.axes[0].lines) >= 1
    render(fig, tmp_path, "ppc_loo_pit")
    with pytest.raises(bm.BayesmixError, match="kind must be one of"):
        sleep.plot_ppc("violin")


def test_count_ppc_is_a_rootogram_with_every_observed_value(counts, tmp_path):
    fig = counts.plot_ppc()
    (ax,) = fig.axes
    assert ax.get_xlabel() == "events" and ax.get_ylabel() == "sqrt(frequency)"
    # a hanging rootogram: one bar per count from 0 to the largest, hanging from the
    # square root of the expected frequency down by the square root of the observed one
    y = counts.model.y.astype(int)
    bars = ax.patches
    assert len(bars) >= y.max() + 1
    observed = np.bincount(y, minlength=len(bars))
    np.testing.assert_allclose([b.get_height() for b in bars], np.sqrt(observed))
    expected = ax.lines[0].get_ydata()
    np.testing.assert_allclose([b.get_y() + b.get_height() for b in bars], expected)
    render(fig, tmp_path, "ppc_rootogram")


def test_count_residuals_are_quantile_residuals(counts, tmp_path):
    fig = counts.plot_residuals(kind="fitted")
    assert fig.axes[0].get_ylabel() == "quantile residual (normal scale)"
    assert points(fig.axes[0]) == 72
    render(fig, tmp_path, "count_residuals")


def test_influence_index_plot_labels_the_most_influential_subjects(sleep, tmp_path):
    fig = sleep.plot_influence("Subject", n_label=3)
    obs, k_group, cooks = fig.axes
    assert points(obs) == 180 and points(k_group) == 18 and points(cooks) == 18
    assert obs.get_ylabel() == "Pareto k (PSIS-LOO)"
    assert cooks.get_ylabel() == "Cook's distance (fixed effects)"
    labelled = [t.get_text() for t in cooks.texts]
    top = sleep.influence().most_influential("Subject", 3)
    assert labelled == [str(v) for v in top]
    render(fig, tmp_path, "influence")


def test_influence_tables(sleep):
    result = sleep.influence()
    table = result.groups["Subject"]
    assert list(table.columns) == ["n_rows", "pareto_k", "cooks_distance", "shift:(Intercept)",
                                   "shift:Days"]
    assert table["n_rows"].tolist() == [10] * 18
    assert len(result.observations) == 180 and result.observations["pareto_k"].notna().all()
    assert "does not refit" in result.text() or "k > 0.7" not in result.text()


def test_dashboard_has_six_labelled_panels(sleep, tmp_path):
    fig = sleep.plot_diagnostics(n_sims=200)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 6
    assert titles[:4] == ["Residuals vs fitted", "Normal Q-Q of residuals",
                          "(Intercept) in (Days | Subject)", "Posterior predictive check (density)"]
    assert titles[4].startswith("Rank plot: the ") and "highest R-hat" in titles[4]
    assert titles[5].startswith("Trace: the ")
    assert len(fig.axes[5].lines) == 2  # one trace per chain
    render(fig, tmp_path, "dashboard")


def test_fixed_effect_forest_leaves_out_the_intercept(sleep, tmp_path):
    fig = sleep.plot_fixef()
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "Days" in labels and "(Intercept)" not in labels
    assert "95% intervals" in fig.axes[-1].get_xlabel()
    render(fig, tmp_path, "fixef")
    fig = sleep.plot_fixef(intercept=True)
    assert "(Intercept)" in [t.get_text() for ax in fig.axes for t in ax.texts]
    plt.close(fig)


def test_two_dimensional_shrinkage_draws_the_population_ellipses(sleep, tmp_path):
    fig = sleep.plot_shrinkage("Subject", kind="2d")
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.lines]
    assert "population 50% contour" in labels and "population 95% contour" in labels
    assert len(ax.texts) == 18  # one arrow per subject
    ellipse = ax.lines[labels.index("population 95% contour")]
    fixed = sleep.fixef()["mean"]
    assert np.mean(ellipse.get_xdata()) == pytest.approx(fixed["(Intercept)"], rel=1e-3)
    assert np.mean(ellipse.get_ydata()) == pytest.approx(fixed["Days"], rel=1e-2)
    render(fig, tmp_path, "shrinkage_2d")
    with pytest.raises(bm.BayesmixError, match="kind must be"):
        sleep.plot_shrinkage(kind="3d")


def test_radon_shrinkage_grows_as_county_size_falls(radon, tmp_path):
    table = bm.plots.shrinkage_table(radon.idata, radon.model, "county")
    assert len(table) == 85 and table["n_rows"].min() == 1
    # Small counties move most: rank correlation of size and distance about -0.5.
    assert table["n_rows"].corr(table["distance"], method="spearman") < -0.3
    fig = radon.plot_shrinkage("county")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "rows per county (log scale)"
    assert [len(line.get_xdata()) for line in ax.lines[:2]] == [85, 85]
    render(fig, tmp_path, "shrinkage_radon")
    fig = radon.plot_shrinkage("county", kind="1d")
    assert len(fig.axes[0].get_yticklabels()) == 85
    plt.close(fig)
