"""Predictions from a fit as ArviZ objects: ``fit.predict``, ``fit.posterior_predictive`` and
``fit.log_likelihood`` (the numpy work is in :mod:`bayesmix.posterior.draws`).

``kind`` says what is predicted, per posterior draw:

* ``"linear"``: the linear predictor eta (brms ``posterior_linpred``);
* ``"mean"``: E[y] = g^-1(eta) (brms ``posterior_epred``);
* ``"response"``: a draw of y itself (brms ``posterior_predict``).

Binomial models: new data that carry the columns of the response's trials (``n`` in
``s | trials(n) ~ ...``; ``s`` and ``f`` in ``cbind(s, f) ~ ...``) are predicted as counts out
of those trials; without them, per trial (``"mean"`` is the success probability, ``"response"``
a 0/1 draw).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import varnames
from bayesmix.errors import BayesmixError
from bayesmix.posterior.draws import (
    draw_slice,
    family_param_draws,
    linear_predictor,
    pointwise_loglik,
    trials_for,
)
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["predict", "posterior_predictive", "log_likelihood", "KINDS", "draw_summary"]

KINDS = ("mean", "linear", "response")


def _obs_labels(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None) -> np.ndarray:
    """Row labels: newdata's index, or the training rows as in ``observed_data``."""
    rows = model.design.rows if newdata is None else newdata.index
    return np.asarray(rows) if rows.is_unique else np.arange(len(rows))


def draw_summary(values: np.ndarray, prob: float = 0.95,
                 index: pd.Index | None = None) -> pd.DataFrame:
    """Mean, sd and equal-tailed interval over the first two axes (chain, draw) of ``values``.

    Examples
    --------
    >>> draw_summary(np.zeros((2, 10, 3))).columns.tolist()
    ['mean', 'sd', 'eti95_lb', 'eti95_ub']
    """
    if not 0 < prob < 1:
        raise BayesmixError(f"prob must be between 0 and 1, not {prob!r}")
    flat = values.reshape(-1, *values.shape[2:])
    pct = f"{100 * prob:g}"
    lo, hi = np.quantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return pd.DataFrame({"mean": flat.mean(axis=0), "sd": flat.std(axis=0, ddof=1),
                         f"eti{pct}_lb": lo, f"eti{pct}_ub": hi}, index=index)


def _predict_values(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None, kind: str, re: str,
                    draws: int | None, random_seed: int | None) -> np.ndarray:
    if kind not in KINDS:
        raise BayesmixError(f"kind must be one of {', '.join(map(repr, KINDS))}, not {kind!r}")
    rng = np.random.default_rng(random_seed)
    eta = linear_predictor(idata, model, newdata, re, draws, rng)
    if kind == "linear":
        return eta
    family, link = model.family, model.link
    params = family_param_draws(idata, model, draws, newdata, re, rng)
    trials = trials_for(idata, model, newdata, eta.shape[-1])
    if kind == "mean":
        return family.mean(eta, link, params, trials)
    return family.simulate(rng, eta, link, params, trials)


def predict(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None = None, kind: str = "mean",
            re: str = "include", draws: int | None = None, random_seed: int | None = None,
            summary: bool = False, prob: float = 0.95) -> xr.DataTree | pd.DataFrame:
    """Posterior predictions for the training rows (``newdata=None``) or for ``newdata``.

    ``newdata`` goes through the fitted design (same categories, ``scale()`` centring and
    contrasts), so predicting a subset of rows gives those rows of predicting all.
    ``re``: ``"include"`` (each level's fitted effects; unseen levels are an error naming
    them), ``"exclude"`` (random effects at zero: a typical level) or ``"sample_new"``
    (unseen levels get effects drawn from the fitted random-effect distribution, one draw per
    level and posterior draw). ``draws`` thins to about that many draws per chain.

    Returns a DataTree with group ``predictions`` (variable named after the response, dims
    chain, draw, obs; obs labelled by newdata's index), or with ``summary=True`` a DataFrame
    with one row per row of newdata (same index) and columns mean, sd, eti95_lb, eti95_ub.

    Examples
    --------
    >>> new = pd.DataFrame({"Days": [0, 5], "Subject": ["308", "308"]})  # doctest: +SKIP
    >>> fit.predict(new, summary=True)  # doctest: +SKIP
    >>> fit.predict(new, kind="response", random_seed=1)["predictions"]  # doctest: +SKIP
    """
    values = _predict_values(idata, model, newdata, kind, re, draws, random_seed)
    labels = _obs_labels(idata, model, newdata)
    if summary:
        index = newdata.index if newdata is not None else model.design.rows
        return draw_summary(values, prob, index=index)
    keep = draw_slice(idata, model, draws)
    draw_coords = posterior_of(idata)["draw"].values[keep]
    attrs = {"kind": kind, "re": re}
    ds = xr.Dataset(
        {model.response_name: (("chain", "draw", "obs"), values, attrs)},
        coords={"chain": posterior_of(idata)["chain"].values, "draw": draw_coords, "obs": labels},
        attrs=attrs)
    return xr.DataTree.from_dict({"predictions": ds})


def _log_likelihood_dataset(idata: xr.DataTree, model: "ModelSpec") -> xr.Dataset:
    name = model.response_name
    obs_dim = varnames.obs_dim(name)
    observed = idata["observed_data"].to_dataset()
    values = pointwise_loglik(idata, model)
    return xr.Dataset({name: (("chain", "draw", obs_dim), values)},
                      coords={"chain": posterior_of(idata)["chain"].values,
                              "draw": posterior_of(idata)["draw"].values,
                              obs_dim: observed[obs_dim].values})


def _with_groups(idata: xr.DataTree, model: "ModelSpec", extra: dict[str, xr.Dataset]) -> xr.DataTree:
    groups = {name: node.to_dataset() for name, node in idata.children.items()}
    groups.update(extra)
    return xr.DataTree.from_dict(groups)


def log_likelihood(idata: xr.DataTree, model: "ModelSpec") -> xr.DataTree:
    """A copy of ``idata`` with the pointwise ``log_likelihood`` group (for ArviZ's LOO).

    Examples
    --------
    >>> import arviz_stats  # doctest: +SKIP
    >>> arviz_stats.loo(fit.log_likelihood())  # doctest: +SKIP
    """
    return _with_groups(idata, model, {"log_likelihood": _log_likelihood_dataset(idata, model)})


def posterior_predictive(idata: xr.DataTree, model: "ModelSpec", random_seed: int | None = None,
                         draws: int | None = None) -> xr.DataTree:
    """A copy of ``idata`` with ``posterior_predictive`` (replicated responses of the
    training rows, named and dimensioned as ``observed_data``) and ``log_likelihood`` groups,
    ready for ArviZ's predictive checks and LOO.

    Examples
    --------
    >>> dt = fit.posterior_predictive(random_seed=1)  # doctest: +SKIP
    >>> import arviz_plots  # doctest: +SKIP
    >>> arviz_plots.plot_ppc_dist(dt)  # doctest: +SKIP
    """
    name = model.response_name
    obs_dim = varnames.obs_dim(name)
    values = _predict_values(idata, model, None, "response", "include", draws, random_seed)
    keep = draw_slice(idata, model, draws)
    observed = idata["observed_data"].to_dataset()
    pp = xr.Dataset({name: (("chain", "draw", obs_dim), values)},
                    coords={"chain": posterior_of(idata)["chain"].values,
                            "draw": posterior_of(idata)["draw"].values[keep],
                            obs_dim: observed[obs_dim].values})
    return _with_groups(idata, model, {"posterior_predictive": pp,
                              "log_likelihood": _log_likelihood_dataset(idata, model)})
