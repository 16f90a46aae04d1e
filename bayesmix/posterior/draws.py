"""The linear predictor, family parameters and response draws from a fit (numpy, per draw).

Everything after sampling that needs the model's predictions goes through here: pointwise
log-likelihood (LOO/WAIC), posterior predictive draws (PPC, simulation-based residuals) and
predictions on new data. Arrays have shape ``(chain, draw, n)``.

``re`` says what to do with the random effects:

* ``"include"``: each row gets its level's sampled effects; a level not seen in fitting is an
  error that names it (lme4's ``allow.new.levels = FALSE``).
* ``"exclude"``: random effects at zero (a typical level: lme4's ``re.form = NA``).
* ``"sample_new"``: seen levels use their effects; each unseen level gets one draw from the
  fitted random-effect distribution per posterior draw, shared by that level's rows. For a
  ``gr(g, cov=A)`` block a new level's relatedness to the fitted ones is unknown (it is not
  in ``A``), so it is drawn independently, ``N(0, sd^2)``, as an unrelated individual;
  add it to ``A`` and refit to use its relatives.

Models with several linear predictors (:mod:`bayesmix.data.linpred`): ``linear_predictor(...,
dpar="sigma")`` gives a distributional or nonlinear parameter's predictor (link scale), and
:func:`family_param_draws` turns each modelled family parameter into per-row draws. A
nonlinear model's ``linear_predictor`` is its expression evaluated with numpy on the
parameters' predictors and the data columns (the tree the PyMC model was built from).

With AR(1) residuals (``autocor=bm.AR1(...)``), :func:`pointwise_loglik` returns one-step-ahead
densities ``log p(y_i | y_prev(i))`` (they sum to the joint log-likelihood; LOO on them
approximates leave-future-out, not exact leave-one-out), and :func:`simulate_response` draws
whole AR(1) residual series: on new data, the series of ``newdata``'s own groups and times,
not conditioned on the training residuals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import varnames
from bayesmix.data.structured import AR1Structure, ar1_loglik, ar1_simulate, ar1_structure
from bayesmix.errors import BayesmixError, DataError
from bayesmix.families import get_link
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["Arrays", "model_arrays", "linear_predictor", "family_param_draws",
           "pointwise_loglik", "simulate_response", "expected_response", "newdata_trials",
           "category_probabilities", "RE_OPTIONS"]

RE_OPTIONS = ("include", "exclude", "sample_new")


@dataclass(frozen=True, eq=False)
class Arrays:
    """Per-row model inputs: the training design's or a replay of it on new data."""

    X: np.ndarray
    offset: np.ndarray
    indices: tuple[np.ndarray, ...]
    Zs: tuple[np.ndarray, ...]
    new_levels: dict[str, list[Any]]
    n: int


def model_arrays(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None = None,
                 design: Any = None) -> Arrays:
    """The arrays of the training data (``newdata=None``) or of ``newdata`` via the fitted design.

    ``design``: another linear predictor's design (default: the mean's).

    Examples
    --------
    >>> arrays = model_arrays(fit.idata, fit.model, bm.datasets.load("sleepstudy").iloc[:5])  # doctest: +SKIP
    >>> arrays.X.shape  # doctest: +SKIP
    (5, 2)
    """
    design = model.design if design is None else design
    if newdata is None:
        return Arrays(design.X, design.offset, tuple(b.index for b in design.blocks),
                      tuple(b.Z for b in design.blocks), {}, design.n)
    replayed = design.replay(newdata)
    return Arrays(replayed.X, replayed.offset, replayed.indices, replayed.Zs,
                  replayed.new_levels, len(newdata))


def draw_slice(idata: xr.DataTree, model: "ModelSpec", draws: int | None) -> slice:
    """Thin to about ``draws`` draws per chain (evenly spaced), to bound memory."""
    n_draws = posterior_of(idata).sizes["draw"]
    if draws is None or draws >= n_draws:
        return slice(None)
    if draws < 1:
        raise BayesmixError(f"draws must be a positive integer, not {draws!r}")
    return slice(None, None, int(np.ceil(n_draws / draws)))


def posterior_values(idata: xr.DataTree, model: "ModelSpec", name: str, dims: tuple[str, ...],
                      keep: slice) -> np.ndarray:
    da = posterior_of(idata)[name].isel(draw=keep)
    return da.transpose("chain", "draw", *dims).values


def _new_level_effects(idata: xr.DataTree, model: "ModelSpec", block: Any, n_new: int, keep: slice,
                       rng: np.random.Generator) -> np.ndarray:
    """Draws of effects for ``n_new`` unseen levels from N(0, Sigma) of each posterior draw."""
    sd = posterior_values(idata, model, varnames.sd(block), (varnames.term_dim(block),), keep)
    z = rng.standard_normal((*sd.shape[:2], n_new, block.n_terms))
    if block.correlated:
        cor = posterior_values(idata, model, varnames.cor(block),
                                (varnames.term_dim(block), varnames.term2_dim(block)), keep)
        L = sd[..., :, None] * np.linalg.cholesky(cor)
        return np.einsum("cdkl,cdjl->cdjk", L, z)
    return z * sd[:, :, None, :]


def linear_predictor(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None = None,
                     re: str = "include", draws: int | None = None,
                     random_seed: int | np.random.Generator | None = None,
                     dpar: str | None = None) -> np.ndarray:
    """Posterior draws of the linear predictor, shape ``(chain, draw, n)``.

    ``dpar``: a distributional or nonlinear parameter's predictor instead of the mean's
    (``"sigma"``: log sigma per row). A nonlinear model's mean predictor is its expression.

    Examples
    --------
    >>> eta = linear_predictor(fit.idata, fit.model)  # doctest: +SKIP
    >>> eta.shape  # doctest: +SKIP
    (4, 1000, 180)
    >>> log_sigma = linear_predictor(fit.idata, fit.model, dpar="sigma")  # doctest: +SKIP
    """
    if re not in RE_OPTIONS:
        raise BayesmixError(f"re must be one of {', '.join(map(repr, RE_OPTIONS))}, not {re!r}")
    keep = draw_slice(idata, model, draws)
    rng = np.random.default_rng(random_seed)
    if dpar is None and model.nonlinear is not None:
        return _nonlinear_eta(idata, model, newdata, re, keep, rng)
    if dpar is None:
        return _linear_eta(idata, model, model.design, "fixef", newdata, re, keep, rng)
    lp = model.predictor(dpar)
    return _linear_eta(idata, model, lp.design, lp.fixef_var, newdata, re, keep, rng)


def _nonlinear_eta(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None, re: str, keep: slice,
                   rng: np.random.Generator) -> np.ndarray:
    from bayesmix.data.linpred import covariate_values

    expr = model.nonlinear
    env: dict[str, Any] = {lp.name: _linear_eta(idata, model, lp.design, lp.fixef_var, newdata, re,
                                                keep, rng)
                           for lp in model.predictors if lp.role == "nlpar"}
    if newdata is None:
        env.update(model.setup.covariates)
    else:
        missing = [c for c in expr.covariates if c not in newdata.columns]
        if missing:
            raise DataError(f"newdata lacks the column(s) {', '.join(map(repr, missing))} "
                            "used by the nonlinear expression")
        values = covariate_values(expr, newdata)
        bad = [c for c, v in values.items() if not np.all(np.isfinite(v))]
        if bad:
            raise DataError(f"newdata has missing or infinite values in {', '.join(bad)}")
        env.update(values)
    shape = next(iter(env.values())).shape[:2] + (len(newdata) if newdata is not None
                                                  else model.design.n,)
    with np.errstate(all="ignore"):  # a draw may overflow exp(); the result says so (inf)
        return np.array(np.broadcast_to(expr.evaluate(env), shape), dtype=float)


def _linear_eta(idata: xr.DataTree, model: "ModelSpec", design: Any, fixef_var: str,
                newdata: pd.DataFrame | None, re: str, keep: slice,
                rng: np.random.Generator) -> np.ndarray:
    arrays = model_arrays(idata, model, newdata, design)
    if re == "include" and arrays.new_levels:
        listing = "; ".join(f"{name}: {', '.join(map(repr, levels[:5]))}"
                            + (" ..." if len(levels) > 5 else "")
                            for name, levels in arrays.new_levels.items())
        raise DataError(f"newdata has levels not seen in fitting ({listing}). Use "
                        "re='sample_new' to draw their effects from the fitted random-effect "
                        "distribution, or re='exclude' to predict for a typical level")
    n_draws = len(range(posterior_of(idata).sizes["draw"])[keep])
    eta = np.zeros((posterior_of(idata).sizes["chain"], n_draws, arrays.n))
    if design.coef_names:
        beta = posterior_values(idata, model, fixef_var, ("coef" + fixef_var[5:],), keep)
        eta += np.einsum("cdp,np->cdn", beta, arrays.X)
    eta += arrays.offset
    if re == "exclude":
        return eta
    for block, idx, Z in zip(design.blocks, arrays.indices, arrays.Zs):
        r = posterior_values(idata, model, varnames.ranef(block),
                         (varnames.level_dim(block), varnames.term_dim(block)), keep)
        unseen = idx < 0
        if unseen.any():  # re == "sample_new": one draw per unseen level, shared by its rows
            codes = _unseen_codes(newdata, block, unseen)
            extra = _new_level_effects(idata, model, block, int(codes.max()) + 1, keep, rng)
            r = np.concatenate([r, extra], axis=2)
            idx = idx.copy()
            idx[unseen] = block.n_levels + codes
        for c in range(eta.shape[0]):  # per chain: bounds the (draw, n, k) temporary
            eta[c] += np.einsum("dnk,nk->dn", r[c][:, idx, :], Z)
    return eta


def _unseen_codes(newdata: pd.DataFrame | None, block: Any, unseen: np.ndarray) -> np.ndarray:
    """0, 1, ... per unseen level label, for the unseen rows (rows of one level share a code)."""
    from bayesmix.data.design import group_labels

    labels = group_labels(newdata, block.term.factors)
    lookup: dict[Any, int] = {}
    return np.array([lookup.setdefault(labels[i], len(lookup)) for i in np.flatnonzero(unseen)],
                    dtype=np.int64)


def family_param_draws(idata: xr.DataTree, model: "ModelSpec", draws: int | None = None,
                       newdata: pd.DataFrame | None = None, re: str = "include",
                       random_seed: int | np.random.Generator | None = None
                       ) -> dict[str, np.ndarray]:
    """The family's parameters as arrays broadcastable against ``(chain, draw, n)``.

    A scalar parameter has shape ``(chain, draw, 1)``; one with its own formula
    (``bm.Formula("y ~ x", "sigma ~ x")``) is computed per row of the training data or of
    ``newdata``, shape ``(chain, draw, n)``, with ``re`` as in :func:`linear_predictor`.

    A vector parameter keeps its own dimension last, e.g. the ordinal cutpoints as
    ``(chain, draw, 1, K - 1)``.

    Examples
    --------
    >>> family_param_draws(fit.idata, fit.model, newdata=new)["sigma"].shape  # doctest: +SKIP
    (4, 1000, 12)
    """
    keep = draw_slice(idata, model, draws)
    rng = np.random.default_rng(random_seed)
    modelled = {lp.name: lp for lp in model.predictors if lp.role == "dpar"}
    out = {}
    for name in model.family.params:
        if name in modelled:
            eta = linear_predictor(idata, model, newdata, re, draws, rng, dpar=name)
            out[name] = get_link(modelled[name].link).inverse(eta)
        elif name in posterior_of(idata):
            da = posterior_of(idata)[name]
            own = tuple(d for d in da.dims if d not in ("chain", "draw"))
            out[name] = posterior_values(idata, model, name, own, keep)[:, :, None, ...]
    return out


def newdata_trials(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame) -> np.ndarray | None:
    """The binomial trials of ``newdata`` when it has the columns the formula's response names
    (``n`` of ``s | trials(n)``, ``s`` and ``f`` of ``cbind(s, f)``), else None."""
    from bayesmix.data.design import eval_expr
    from bayesmix.spec.formula import expression_variables

    response = model.spec.response
    if model.trials is None or response.kind == "single":
        return None
    exprs = [response.other] + ([response.expr] if response.kind == "cbind" else [])
    if not all(v in newdata.columns for e in exprs for v in expression_variables(e)):
        return None
    other = np.asarray(eval_expr(response.other, newdata), dtype=float)
    trials = other + np.asarray(eval_expr(response.expr, newdata), float) \
        if response.kind == "cbind" else other
    if not np.all(np.isfinite(trials)) or np.any(trials < 0) or np.any(trials != np.round(trials)):
        raise DataError("the trials in newdata (from the response "
                        f"'{model.spec.formula.split('~')[0].strip()}') must be "
                        "non-negative whole numbers")
    return trials


def trials_for(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None, n: int) -> np.ndarray | None:
    """Training trials; for new data the trials column when given, else 1 (per-trial scale)."""
    if model.trials is None:
        return None
    if newdata is None:
        return model.trials
    trials = newdata_trials(idata, model, newdata)
    return np.ones(n) if trials is None else trials


def pointwise_loglik(idata: xr.DataTree, model: "ModelSpec", draws: int | None = None,
                     weighted: bool = False) -> np.ndarray:
    """log p(y_i | theta) for every draw and training row, shape ``(chain, draw, n)``.

    With observation weights the sampler used ``w_i * log p(y_i | theta)``; these values are
    the unweighted family densities by default, because LOO/WAIC and predictive checks ask
    how well the model predicts one observation, and a weight is not part of the
    observation. ``weighted=True`` returns ``w_i * log p(y_i | theta)`` (brms's ``log_lik``
    of a weighted model), e.g. when the weights are frequencies of identical rows.

    Examples
    --------
    >>> pointwise_loglik(fit.idata, fit.model).shape  # doctest: +SKIP
    (4, 1000, 180)
    """
    family = model.family
    eta = linear_predictor(idata, model, draws=draws)
    params = family_param_draws(idata, model, draws)
    structure = _ar_structure(idata, model, None)
    if structure is not None:  # one-step-ahead densities (module docstring)
        values = ar1_loglik(model.y, get_link(model.link).inverse(eta), params["sigma"],
                            _ar_draws(idata, model, draws), structure)
    else:
        values = family.loglik(model.y, eta, model.link, params, model.trials)
    if weighted and model.weights is not None:
        values = values * model.weights
    return values


def _ar_structure(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None) -> AR1Structure | None:
    structure = getattr(model, "autocor_structure", None)
    if structure is None or newdata is None:
        return structure
    return ar1_structure(structure.spec, newdata)


def _ar_draws(idata: xr.DataTree, model: "ModelSpec", draws: int | None) -> np.ndarray:
    return posterior_values(idata, model, "ar", (), draw_slice(idata, model, draws))[..., None]


def simulate_response(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None = None,
                      re: str = "include", draws: int | None = None,
                      random_seed: int | None = None) -> np.ndarray:
    """Posterior predictive draws of the response, shape ``(chain, draw, n)``."""
    rng, eta, params, trials = _response_inputs(idata, model, newdata, re, draws, random_seed)
    family = model.family
    structure = _ar_structure(idata, model, newdata)
    if structure is not None:  # whole AR(1) residual series around the mean
        return ar1_simulate(rng, get_link(model.link).inverse(eta), params["sigma"],
                            _ar_draws(idata, model, draws), structure)
    return family.simulate(rng, eta, model.link, params, trials)


def expected_response(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None = None,
                      re: str = "include", draws: int | None = None,
                      random_seed: int | None = None) -> np.ndarray:
    """Posterior draws of E[y] (binomial: expected successes of the row's trials)."""
    _, eta, params, trials = _response_inputs(idata, model, newdata, re, draws, random_seed)
    return model.family.mean(eta, model.link, params, trials)


def _response_inputs(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None, re: str,
                     draws: int | None, random_seed: int | None) -> tuple[Any, ...]:
    """The generator, linear predictor, family parameter draws and trials of the rows."""
    rng = np.random.default_rng(random_seed)
    eta = linear_predictor(idata, model, newdata, re, draws, rng)
    params = family_param_draws(idata, model, draws, newdata, re, rng)
    return rng, eta, params, trials_for(idata, model, newdata, eta.shape[-1])


def category_probabilities(idata: xr.DataTree, model: "ModelSpec", newdata: pd.DataFrame | None = None,
                           re: str = "include", draws: int | None = None,
                           random_seed: int | None = None) -> np.ndarray:
    """Posterior draws of P(y = k) for an ordinal model, shape ``(chain, draw, n, K)``;
    the categories are ``model.categories``.

    Examples
    --------
    >>> probs = category_probabilities(fit.idata, fit.model)  # doctest: +SKIP
    >>> probs.sum(axis=-1).round(6).min()  # doctest: +SKIP
    1.0
    """
    from bayesmix.families.densities import cumulative_probs

    if not model.family.ordinal:
        raise BayesmixError(f"category probabilities are for ordinal models; this one is "
                            f"{model.family.name!r} (use expected_response)")
    eta = linear_predictor(idata, model, newdata, re, draws, np.random.default_rng(random_seed))
    cutpoints = family_param_draws(idata, model, draws)["cutpoints"]
    return cumulative_probs(eta, model.link, cutpoints)
