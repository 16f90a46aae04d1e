"""Pictures that stay readable at size (issue 17): hexbin densities above 5000 rows, the worst
k groups instead of a box per level, no empty panels, thinned Q-Q plots, hanging rootograms
with a labelled square-root axis, and effects plots that draw their data in the user's units.

Two small simulated fits: 6000 gaussian rows in 60 schools (the level effects integrated out,
so it samples in seconds) and 400 0/1 rows with a ``scale(x)`` term and a standardised column.
"""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402

import bayesmix as bm  # noqa: E402
from bayesmix.plots.effects import binned_proportions, user_units  # noqa: E402
from bayesmix.plots.panels import HEXBIN_ROWS, grid, worst_groups  # noqa: E402
from bayesmix.plots.rootogram import rootogram_table  # noqa: E402


def quiet_fit(model: bm.Model) -> bm.FitResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bm.ConvergenceWarning)
        warnings.simplefilter("ignore", bm.SingularFitWarning)
        return model.fit(draws=200, tune=200, chains=2, random_seed=1, progressbar=False)


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(7)
    g = rng.integers(0, 60, 6000)
    x = rng.normal(50, 10, 6000)
    y = 1 + 0.05 * x + rng.normal(0, 1, 60)[g] + rng.normal(0, 1.5, 6000)
    df = pd.DataFrame({"y": y, "x": x, "school": [f"S{i:02d}" for i in g]})
    return quiet_fit(bm.Model("y ~ x + (1 | school)", df))


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 20, 400)
    x = rng.uniform(0, 100, 400)
    w = rng.normal(170, 8, 400)
    eta = -2 + 0.04 * x + 0.05 * (w - 170) + rng.normal(0, 0.5, 20)[g]
    df = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "w": w,
                       "g": [f"g{i}" for i in g]})
    df["zw"] = (df["w"] - df["w"].mean()) / df["w"].std()
    fit = quiet_fit(bm.Model("y ~ scale(x) + zw + (1 | g)", df, family="bernoulli"))
    return fit, df


def points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def render(fig, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5000
    plt.close(fig)


def test_scatter_panels_become_hexbin_densities_above_the_threshold(big, tmp_path):
    assert len(big.model.y) > HEXBIN_ROWS
    fig = big.plot_residuals()
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    titles = [ax.get_title() for ax in panels]
    assert titles[:4] == ["Residuals vs fitted", "Scale-location", "Normal Q-Q of residuals",
                          "Residuals vs x"]
    for ax in (panels[0], panels[1], panels[3]):
        assert any(isinstance(c, PolyCollection) and len(c.get_offsets()) > 100
                   for c in ax.collections)
        assert points(ax) == 0  # no point cloud under the hexagons
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 3 and bars[0].get_ylabel() == "rows per hexagon (log scale)"
    assert points(panels[2]) == 2200  # Q-Q: 2000 quantiles and the 100 at each end
    render(fig, tmp_path, "big_residuals")


def test_few_rows_keep_points_and_no_cell_of_the_grid_is_empty(binary, tmp_path):
    fit, _ = binary
    fig = fit.plot_residuals()
    # fitted, scale-location, Q-Q, x, zw: five panels, the last two stretched over a row
    assert len(fig.axes) == 6
    assert [len(ax.get_subplotspec().colspan) for ax in fig.axes[:5]] == [2, 2, 2, 3, 3]
    assert points(fig.axes[0]) == 400
    assert all(ax.has_data() for ax in fig.axes)
    render(fig, tmp_path, "binary_residuals")
    _, axes = grid(4)
    assert [len(ax.get_subplotspec().colspan) for ax in axes] == [1, 1, 1, 1]  # 2 x 2


def test_group_panel_shows_the_worst_k_levels_ordered_by_mean(big, tmp_path):
    fig = big.plot_residuals(kind="groups", k_groups=8)
    (ax,) = fig.axes
    assert ax.get_title() == "Residuals per school: the 8 of 60 levels furthest off (52 not shown)"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ticks) == 8 and len(ax.get_xticks()) == 8
    resid = big.residuals().to_numpy()
    schools = big.model.data["school"].to_numpy()
    table = worst_groups(schools, resid, k=60)
    scores = table["z"].abs().sort_values(ascending=False)
    shown = [t.split(" (")[0] for t in ticks]
    assert set(shown) == set(scores.index[:8])
    means = table.loc[shown, "mean"].to_numpy()
    assert np.all(np.diff(means) >= 0)
    rows = pd.Series(schools).value_counts()
    assert ticks == [f"{s} ({rows[s]})" for s in shown]
    render(fig, tmp_path, "worst_groups")
    with pytest.raises(bm.BayesmixError, match="k_groups"):
        big.plot_residuals(kind="groups", k_groups=0)


def test_worst_groups_weighs_the_mean_by_the_rows_behind_it():
    labels = np.array(["a"] * 100 + ["b"])
    resid = np.r_[np.full(100, 0.3), 1.0]  # a: small mean on 100 rows; b: one row
    table = worst_groups(labels, resid, k=1)
    assert table.index.tolist() == ["a"]


def test_rootogram_bars_hang_from_the_expected_frequencies():
    y = np.array([0, 0, 0, 1, 1, 2, 5])
    sims = np.array([[0, 1, 1, 1, 2, 2, 3], [0, 0, 1, 1, 2, 3, 4]])
    table = rootogram_table(y, sims)
    assert table["left"].tolist() == [0, 1, 2, 3, 4, 5]
    assert table["observed"].tolist() == [3, 2, 1, 0, 0, 1]
    assert table["expected"].tolist() == [1.5, 2.5, 1.5, 1.0, 0.5, 0.0]


def test_count_rootogram_has_a_square_root_axis_and_a_frequency_axis(tmp_path):
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(10), 8)
    df = pd.DataFrame({"n": rng.poisson(np.exp(1 + rng.normal(0, 0.5, 10)[g])),
                       "site": [f"s{i}" for i in g]})
    fit = quiet_fit(bm.Model("n ~ 1 + (1 | site)", df, family="poisson"))
    fig = fit.plot_diagnostics()
    ax = fig.axes[3]
    assert ax.get_title() == "Posterior predictive check (hanging rootogram)"
    assert ax.get_ylabel() == "sqrt(frequency)"
    (right,) = ax.child_axes
    assert right.get_ylabel() == "frequency (rows; square-root spacing)"
    assert len(ax.patches) >= df["n"].max() + 1
    render(fig, tmp_path, "count_dashboard")


def test_binary_effects_draw_binned_proportions_in_the_user_units(binary, tmp_path):
    fit, df = binary
    fig = fit.plot_effects("x")  # the formula has scale(x): the axis is still in x's units
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "P(y)"
    curve = ax.lines[-1].get_xdata()
    assert curve.min() == pytest.approx(df["x"].min()) and curve.max() == pytest.approx(df["x"].max())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "observed proportion (10 bins of equal rows)" in labels
    table = binned_proportions(df["x"].to_numpy(), df["y"].to_numpy(), np.ones(len(df)))
    marks = [ln for ln in ax.lines if ln.get_marker() == "s"]
    (mark,) = marks
    np.testing.assert_allclose(mark.get_xdata(), table["x"])
    np.testing.assert_allclose(mark.get_ydata(), table["p"])
    render(fig, tmp_path, "binary_effects")


def test_a_standardised_column_is_drawn_in_its_original_units(binary, tmp_path):
    fit, df = binary
    fig = fit.plot_effects("zw")  # the model keeps only zw: it can only say what zw is
    assert fig.axes[0].get_xlabel() == \
        "zw (standardised: mean 0, SD 1 in the data, not the original units)"
    plt.close(fig)
    fig = fit.plot_effects("zw", units_from=df)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "w"
    curve = ax.lines[-1].get_xdata()
    assert curve.min() == pytest.approx(df["w"].min()) and curve.max() == pytest.approx(df["w"].max())
    (top,) = ax.child_axes
    assert top.get_xlabel().startswith("zw (the model's predictor: (w - ")
    render(fig, tmp_path, "zw_effects")
    name, a, b = user_units(df, "zw")
    assert name == "w" and a == pytest.approx(df["w"].mean()) and b == pytest.approx(df["w"].std())


def test_effects_of_many_rows_draw_a_hexbin_of_the_data(big, tmp_path):
    fig = big.plot_effects("x")
    ax = fig.axes[0]
    assert any(isinstance(c, PolyCollection) and len(c.get_offsets()) > 100
               for c in ax.collections)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "observed (hexbin density)"
    render(fig, tmp_path, "big_effects")
