"""Posterior predictive checks, influence index plots and the one-figure diagnostic dashboard.

PPC pictures are arviz-plots' own (``plot_ppc_dist``, ``plot_ppc_rootogram`` for bars,
``plot_loo_pit``, ``plot_rank``, ``plot_trace``) on a DataTree that
:func:`predictive_datatree` builds from :mod:`bayesmix.posterior.draws`, except the hanging
rootogram of counts (:mod:`bayesmix.plots.rootogram`: arviz-plots draws a "discrete" one, with
observed and expected frequencies as points).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import arviz as az
import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from arviz_plots import PlotCollection
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bayesmix.diagnostics.influence import K_THRESHOLD, influence
from bayesmix.errors import BayesmixError
from bayesmix.inference.convergence import parameter_label, population_vars
from bayesmix.plots.panels import point_style
from bayesmix.plots.rootogram import draw_rootogram
from bayesmix.posterior.draws import draw_slice, pointwise_loglik, simulate_response
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["predictive_datatree", "plot_ppc", "plot_influence", "plot_diagnostics", "auto_kind",
           "PPC_KINDS", "worst_parameter"]

PPC_KINDS = ("auto", "density", "ecdf", "bars", "rootogram", "loo_pit")


def predictive_datatree(idata: xr.DataTree, model: "ModelSpec", n_sims: int = 500,
                        random_seed: int | None = 0) -> xr.DataTree:
    """posterior (thinned to about ``n_sims`` draws), posterior_predictive, log_likelihood and
    observed_data groups, as arviz-plots' PPC and LOO-PIT functions want them.

    Examples
    --------
    >>> tree = predictive_datatree(fit.idata, fit.model, n_sims=200)  # doctest: +SKIP
    >>> azp.plot_ppc_dist(tree)  # doctest: +SKIP
    """
    per_chain = int(np.ceil(n_sims / posterior_of(idata).sizes["chain"]))
    keep = draw_slice(idata, model, per_chain)
    posterior = posterior_of(idata).isel(draw=keep)
    observed = idata["observed_data"].to_dataset()
    name = model.response_name
    obs_dim = observed[name].dims[0]
    coords = {"chain": posterior.chain.values, "draw": posterior.draw.values,
              obs_dim: observed[obs_dim].values}
    dims = ("chain", "draw", obs_dim)
    sims = simulate_response(idata, model, draws=per_chain, random_seed=random_seed)
    loglik = pointwise_loglik(idata, model, draws=per_chain)
    if model.family.discrete:  # arviz-plots tells discrete data by their dtype
        sims = sims.astype(np.int64)
        observed = observed.assign({name: observed[name].astype(np.int64)})
    return xr.DataTree.from_dict({
        "posterior": posterior,
        "posterior_predictive": xr.Dataset({name: (dims, sims)}, coords=coords),
        "log_likelihood": xr.Dataset({name: (dims, loglik)}, coords=coords),
        "observed_data": observed,
    })


def _on_axes(fig: Figure, ax: Axes, data: xr.Dataset, aes: dict[str, list[str]]) -> PlotCollection:
    """A PlotCollection that draws into an existing matplotlib axes (for the dashboard)."""
    names = list(data.data_vars)
    viz = xr.DataTree.from_dict({
        "/": xr.Dataset({"figure": np.array(fig, dtype=object)}),
        "plot": xr.Dataset({v: np.array(ax, dtype=object) for v in names}),
        "row_index": xr.Dataset({v: 0 for v in names}),
        "col_index": xr.Dataset({v: 0 for v in names})})
    return PlotCollection(data, viz, backend="matplotlib", aes=aes)


def auto_kind(idata: xr.DataTree, model: "ModelSpec") -> str:
    family = model.family
    if not family.discrete:
        return "density"
    return "rootogram" if family.response == "count" else "bars"


def _draw_ppc(tree: xr.DataTree, kind: str, name: str, num_samples: int,
              fig: Figure | None = None, ax: Axes | None = None) -> PlotCollection:
    kwargs: dict[str, Any] = {"backend": "matplotlib", "var_names": [name]}
    if kind in ("density", "ecdf"):
        if ax is not None:
            kwargs["plot_collection"] = _on_axes(
                fig, ax, xr.Dataset({name: xr.DataArray(np.zeros(num_samples), dims="sample")}),
                {"overlay_ppc": ["sample"]})
        return azp.plot_ppc_dist(tree, kind="kde" if kind == "density" else "ecdf",
                                 num_samples=num_samples, **kwargs)
    if ax is not None:
        kwargs["plot_collection"] = _on_axes(fig, ax, tree["observed_data"].to_dataset(), {})
    if kind in ("bars", "rootogram"):
        return azp.plot_ppc_rootogram(tree, yscale="sqrt" if kind == "rootogram" else "linear",
                                      **kwargs)
    with warnings.catch_warnings():  # high Pareto k is reported by fit.influence()
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        return azp.plot_loo_pit(tree, **kwargs)


def plot_ppc(idata: xr.DataTree, model: "ModelSpec", kind: str = "auto", num_samples: int = 50, n_sims: int = 500,
             random_seed: int | None = 0) -> Figure:
    """Posterior predictive check with arviz-plots.

    ``"density"`` (KDE of ``num_samples`` simulated data sets over the observed one; the
    default for gaussian models), ``"ecdf"``, ``"bars"`` (observed and predicted frequency
    of each value; default for 0/1 and binomial responses), ``"rootogram"`` (a hanging
    rootogram on a square-root axis, see :mod:`bayesmix.plots.rootogram`; default for
    counts) or ``"loo_pit"`` (LOO-PIT calibration).

    Examples
    --------
    >>> fig = fit.plot_ppc()  # doctest: +SKIP
    >>> fig = fit.plot_ppc("loo_pit")  # doctest: +SKIP
    """
    if kind not in PPC_KINDS:
        raise BayesmixError(f"kind must be one of {', '.join(map(repr, PPC_KINDS))}, not {kind!r}")
    kind = auto_kind(idata, model) if kind == "auto" else kind
    if kind == "rootogram":
        fig, ax = plt.subplots()
        draw_rootogram(ax, idata, model, n_sims, random_seed)
        ax.set_title(f"{model.spec.response.name}: bars hang from the expected frequencies; "
                     "a good fit ends them on 0", fontsize=9)
    else:
        tree = predictive_datatree(idata, model, n_sims, random_seed)
        pc = _draw_ppc(tree, kind, model.response_name, num_samples)
        fig = pc.get_viz("figure")
        _label_ppc(fig.axes[0], kind, model.spec.response.name)
    fig.suptitle(f"Posterior predictive check ({kind}) of {model.spec.formula}",
                 fontsize=10)
    fig.set_size_inches(7.5, 4.2)
    fig.tight_layout()
    return fig


def _label_ppc(ax: Axes, kind: str, response: str) -> None:
    ax.set_title(response)
    if kind in ("density", "ecdf", "bars", "rootogram"):
        ax.set_xlabel(response)
    if kind == "density":
        ax.set_ylabel("density (blue: simulated, black: observed)")
    elif kind == "ecdf":
        ax.set_ylabel("ECDF (blue: simulated, black: observed)")
    elif kind == "bars":
        ax.set_ylabel("frequency")


def _label_top(ax: Axes, x: np.ndarray, y: np.ndarray, labels: list[Any], n: int) -> None:
    for i in np.argsort(-np.nan_to_num(y, nan=-np.inf))[:n]:
        ax.annotate(str(labels[i]), (x[i], y[i]), xytext=(3, 3), textcoords="offset points",
                    fontsize=8)


def plot_influence(idata: xr.DataTree, model: "ModelSpec", group: str | None = None, n_label: int = 3,
                   draws: int | None = None) -> Figure:
    """Index plots of influence: Pareto k per observation, and per level of ``group`` its
    leave-one-group-out Pareto k and Cook's distance analogue; the ``n_label`` most
    influential are labelled. See :func:`bayesmix.diagnostics.influence.influence`.

    Examples
    --------
    >>> fig = fit.plot_influence("Subject")  # doctest: +SKIP
    """
    result = influence(idata, model, draws=draws)

    groups = [model.find_block(group).group] if result.groups else []
    ncols = 1 + 2 * len(groups)
    fig, axes = plt.subplots(1, ncols, figsize=(4.4 * ncols, 3.8), squeeze=False)
    ax = axes[0][0]
    k = result.observations["pareto_k"].to_numpy()
    x = np.arange(len(k))
    high = k > K_THRESHOLD
    ax.scatter(x[~high], k[~high], **point_style(int((~high).sum())))
    ax.scatter(x[high], k[high], color="C3", s=16, label=f"k > {K_THRESHOLD}")
    ax.axhline(K_THRESHOLD, color="C3", lw=0.9, ls="--")
    _label_top(ax, x, np.where(high, k, np.nan), list(result.observations.index),
               min(n_label, int(high.sum())))
    ax.set_xlabel("observation (row order)")
    ax.set_ylabel("Pareto k (PSIS-LOO)")
    ax.set_title("Leave one observation out")
    for j, name in enumerate(groups):
        table = result.groups[name]
        levels = list(table.index)
        xs = np.arange(len(levels))
        kk = table["pareto_k"].to_numpy()
        ax_k, ax_d = axes[0][1 + 2 * j], axes[0][2 + 2 * j]
        ax_k.scatter(xs, kk, **_POINT)
        ax_k.axhline(K_THRESHOLD, color="C3", lw=0.9, ls="--")
        _label_top(ax_k, xs, kk, levels, n_label)
        ax_k.set_xlabel(f"{name} (level order)")
        ax_k.set_ylabel("Pareto k (leave the level out)")
        ax_k.set_title(f"Leave one {name} out")
        dist = table["cooks_distance"].to_numpy()
        reliable = kk <= K_THRESHOLD
        ax_d.vlines(xs, 0, dist, color="0.6", lw=0.9)
        ax_d.scatter(xs[reliable], dist[reliable], color="C0", s=14)
        ax_d.scatter(xs[~reliable], dist[~reliable], facecolor="none", edgecolor="C3", s=18)
        _label_top(ax_d, xs, dist, levels, n_label)
        ax_d.set_ylim(0, 1.2 * np.nanmax(dist) if np.isfinite(dist).any() else 1)
        ax_d.set_xlabel(f"{name} (level order); open red: k > {K_THRESHOLD}, approximate")
        ax_d.set_ylabel("Cook's distance (fixed effects)")
        ax_d.set_title(f"Influence of each {name} on the fixed effects", fontsize=10)
    fig.tight_layout()
    return fig


_POINT = {"s": 12, "alpha": 0.7, "color": "C0", "edgecolor": "none"}


def worst_parameter(idata: xr.DataTree, model: "ModelSpec") -> tuple[str, xr.DataArray]:
    """The population-level parameter with the highest R-hat: its label and (chain, draw).

    Examples
    --------
    >>> label, draws = worst_parameter(fit.idata, fit.model)  # doctest: +SKIP
    >>> label  # doctest: +SKIP
    'the correlation of (Intercept) and Days in (Days | Subject)'
    """
    best: tuple[float, str, xr.DataArray] | None = None
    for name, da in population_vars(posterior_of(idata), model.design.blocks).items():
        with np.errstate(invalid="ignore", divide="ignore"):
            rhat = np.atleast_1d(np.asarray(az.rhat(da), dtype=float)).ravel()
        if not np.isfinite(rhat).any():
            continue
        i = int(np.nanargmax(rhat))
        if best is None or rhat[i] > best[0]:
            other = [d for d in da.dims if d not in ("chain", "draw")]
            idx = np.unravel_index(i, [da.sizes[d] for d in other]) if other else ()
            flat = da.isel(dict(zip(other, idx))).transpose("chain", "draw")
            best = (float(rhat[i]), parameter_label(name, da, i, model.design.blocks),
                    flat.drop_vars(other, errors="ignore"))
    if best is None:
        raise BayesmixError("the model has no population-level parameters to diagnose")
    return best[1], best[2]


def plot_diagnostics(idata: xr.DataTree, model: "ModelSpec", n_sims: int = 500, random_seed: int | None = 0) -> Figure:
    """The standard dashboard in one figure: residuals vs fitted, residual Q-Q, random-effects
    Q-Q (first factor and term), posterior predictive check, and rank and trace plots of the
    parameter with the highest R-hat.

    Examples
    --------
    >>> fig = fit.plot_diagnostics()  # doctest: +SKIP
    """
    from bayesmix.diagnostics.residuals import fitted, residuals
    from bayesmix.plots.residuals import (
        fitted_scale,
        panel_fitted,
        panel_qq,
        panel_scale,
        ranef_panel,
        residual_label,
    )

    fig, axes = plt.subplots(2, 3, figsize=(14.0, 8.2))
    resid = residuals(idata, model, "auto", n_sims, random_seed).to_numpy()
    values = fitted(idata, model).to_numpy()
    label = residual_label("auto", idata, model)
    response = model.spec.response.name
    xscale = fitted_scale(values, model)
    panel_fitted(axes[0][0], values, resid, response, label, xscale)
    panel_qq(axes[0][1], resid, label)
    blocks = model.design.blocks
    if blocks:
        ranef_panel(axes[0][2], idata, model, blocks[0], 0, 0.95)
    else:
        panel_scale(axes[0][2], values, resid, response, label, xscale)
    kind = auto_kind(idata, model)
    if kind == "rootogram":
        draw_rootogram(axes[1][0], idata, model, n_sims, random_seed)
        axes[1][0].set_title("Posterior predictive check (hanging rootogram)")
    else:
        tree = predictive_datatree(idata, model, n_sims, random_seed)
        _draw_ppc(tree, kind, model.response_name, 50, fig, axes[1][0])
        _label_ppc(axes[1][0], kind, response)
        axes[1][0].set_title(f"Posterior predictive check ({kind})")
    label_worst, worst = worst_parameter(idata, model)
    data = xr.Dataset({label_worst: worst})
    dt = xr.DataTree.from_dict({"posterior": data})
    azp.plot_rank(dt, backend="matplotlib", plot_collection=_on_axes(
        fig, axes[1][1], data, {"color": ["chain"], "overlay": ["chain"]}))
    azp.plot_trace(dt, backend="matplotlib", plot_collection=_on_axes(
        fig, axes[1][2], data, {"color": ["chain"], "overlay": ["chain"]}))
    rhat = float(az.rhat(worst))
    axes[1][1].set_title(f"Rank plot: {label_worst}\n(highest R-hat, {rhat:.3f})", fontsize=9)
    axes[1][1].set_xlabel("fractional rank (one line per chain)")
    axes[1][2].set_title(f"Trace: {label_worst}", fontsize=9)
    axes[1][2].set_xlabel("draw")
    axes[1][2].set_ylabel(label_worst.replace("the ", "", 1), fontsize=8)
    fig.suptitle(f"Diagnostics of {model.spec.formula} ({model.family.name})",
                 fontsize=12)
    fig.tight_layout()
    return fig
