"""Assemble the PyMC model (the only module that writes PyMC model code).

Names in the model, and so in ``fit.idata.posterior``:

* ``fixef`` (dim ``coef``): fixed effects in lme4's names. Internally the predictors are
  centred and the intercept is sampled at their means (``_intercept_c``), then mapped back;
  a centred block with a random intercept samples ``intercept + r`` (hierarchical centring).
* ``sd_<block>`` (dim ``<block>__term``), ``cor_<block>`` (``<block>__term``,
  ``<block>__term2``) and ``r_<block>`` (dims ``<group>``, ``<block>__term``): the group SDs,
  correlations and level effects of each random-effects block.
* family parameters named exactly ``sigma``, ``nu``, ``shape``, ``phi``, ``theta``, ``zi``,
  ``hu`` (scalars) and ``cutpoints`` (dim ``cutpoint``, labelled ``"1|2"``, ``"2|3"``... by
  the adjacent categories, as R's ``ordinal::clm``); the observed variable is named after
  the response.
* further linear predictors (:mod:`bayesmix.data.linpred`: a distributional parameter such as
  ``sigma ~ x``, or a nonlinear parameter) add ``fixef_<p>`` (dim ``coef_<p>``) and blocks
  named ``<p>_<group>``; a modelled family parameter is ``inverse link(eta_<p>)`` per row
  and has no scalar variable. A nonlinear model's mean is its expression evaluated (from
  the same syntax tree as :mod:`bayesmix.posterior.draws`) on the parameters' predictors.

Each family's likelihood is its :attr:`Family.likelihood <bayesmix.families.family.Family>`,
which names the PyMC distribution and its arguments, written against :data:`PYTENSOR` (the
PyTensor :class:`~bayesmix.families.links.Math`); ``params`` maps parameter names to
tensors, all created by :func:`_family_params`, so that a parameter can be given its own
linear predictor without touching the likelihoods. Observation weights multiply each
row's log-likelihood (brms's ``weights()``): the observed variable stays the family's own
distribution (prior predictive draws are unweighted draws from the family) and a potential
adds ``(w - 1) * log p(y_i)``.

Variables starting with ``_`` are sampler internals and are dropped from the results. The level
effects ``r_<block>`` are not stored by the sampler: :mod:`bayesmix.model.level_effects` computes
them from the sampled ``_z``/``_gamma`` after sampling, so a model with 10^4 levels keeps one
copy of its level draws in memory instead of two. A gaussian model with one grouping factor
samples no level effects at all, one with a nested pair among other factors none of the pair's:
they are integrated out (``BuildPlan.marginal``, :mod:`bayesmix.model.integrated`,
:mod:`bayesmix.model.integrated_pair`) and drawn exactly afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Collection

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesmix import varnames
from bayesmix.data.design import Design, RandomBlock
from bayesmix.data.structured import AR_PRIOR_KEY, AR1Structure, ar1_simulate
from bayesmix.errors import PriorError
from bayesmix.families import Math, get_family, get_link
from bayesmix.model.integrated import MarginalStats, NestedStats, marginal_loglik, nested_loglik
from bayesmix.model.integrated_pair import PartialStats, partial_loglik_data
from bayesmix.model.parametrization import absorption, level_values
from bayesmix.model.transforms import qr_transform
from bayesmix.priors import Prior, PriorSpec, cutpoint_labels, local_priors

__all__ = ["BuildPlan", "build_model", "PYTENSOR", "pytensor_functions"]


@dataclass(frozen=True)
class BuildPlan:
    """Everything :func:`build_model` needs beyond the design: family, link, priors, centring."""

    family: str
    link: str
    priors: tuple[PriorSpec, ...]
    centered: tuple[bool, ...]  # one per random block
    response_name: str
    predictors: tuple[Any, ...] = ()  # linpred.LinearPredictor: dpars and nlpars
    nonlinear: Any = None  # nonlinear.NonlinearExpr of a nonlinear model's mean
    covariates: dict[str, np.ndarray] = field(default_factory=dict, compare=False)
    autocor: AR1Structure | None = None  # AR(1) residuals (gaussian), see bayesmix.data.structured
    categories: tuple[Any, ...] = ()  # ordinal families: the response's categories in order
    marginal: MarginalStats | NestedStats | PartialStats | None = None  # integrated out
    level_covariates: dict[int, tuple[int, ...]] | None = None  # see level_covariates()


def pytensor_functions() -> dict[str, Callable[..., Any]]:
    """The pytensor counterparts of :data:`bayesmix.spec.nonlinear.NUMPY_FUNCTIONS`."""
    return {"exp": pt.exp, "log": pt.log, "sqrt": pt.sqrt, "power": pt.power,
            "inv_logit": pt.sigmoid, "logit": lambda p: pt.log(p) - pt.log1p(-p),
            "abs": pt.abs, "log1p": pt.log1p, "expm1": pt.expm1}


def _data(name: str, values: np.ndarray) -> pt.TensorVariable:
    """Data enter as shared inputs, not constants: the compiled sampler then depends on the
    structure only, and :mod:`bayesmix.inference.compile_cache` reuses it for any data of that structure."""
    return pm.Data(f"_data_{name}", np.ascontiguousarray(values))


def _rv(name: str, prior: Prior, **kwargs: Any) -> pt.TensorVariable:
    dist = getattr(pm, prior.dist)
    # float64 constants: PyTensor stores a float such as 2.5 as float32 (the smallest exact
    # type) and then computes log(2.5) in float32, 3e-8 off
    params = {k: np.float64(v) if isinstance(v, float) else v for k, v in prior.kwargs.items()}
    return dist(name, **params, **kwargs)


def _vector_rv(name: str, priors: list[Prior], dims: str,
               transform: Any = None) -> pt.TensorVariable:
    """One vector of parameters whose entries may have different priors.

    Entries sharing a distribution become one vectorised random variable (fast); several
    distributions are stitched together in order. ``transform`` (the sampler's coordinates,
    e.g. :class:`~bayesmix.model.transforms.QRTransform`) applies to the vectorised case only.
    """
    by_dist: dict[str, list[int]] = {}
    for i, prior in enumerate(priors):
        by_dist.setdefault(prior.dist + repr(sorted(prior.kwargs)), []).append(i)
    if len(by_dist) == 1:
        return _stacked(name, priors, dims=dims,
                        **({} if transform is None else {"transform": transform}))
    out = pt.zeros(len(priors))
    for j, idx in enumerate(by_dist.values()):
        part = _stacked(f"_{name}_{j}", [priors[i] for i in idx], shape=len(idx))
        out = pt.set_subtensor(out[idx], part)
    return pm.Deterministic(name, out, dims=dims)


def _stacked(name: str, priors: list[Prior], **kwargs: Any) -> pt.TensorVariable:
    keys = list(priors[0].kwargs)
    params = {k: np.array([p.kwargs[k] for p in priors]) for k in keys}
    return getattr(pm, priors[0].dist)(name, **params, **kwargs)


def _fixed_part(design: Design, priors: dict[str, Prior], lp: str = "", center: bool = True,
                ordinal: bool = False, absorbed: Collection[int] = (), rows: bool = True
                ) -> tuple[pt.TensorVariable | None, Any, dict[int, Any]]:
    """Fixed-effects part of the linear predictor without the intercept and the ``absorbed``
    columns; the intercept term; and each absorbed slope's coefficient.

    The non-intercept columns are centred: the intercept is then the mean response at the
    predictor means and barely correlates with the slopes; ``fixef`` maps it back. An
    absorbed slope (see ``bayesmix.model.parametrization._absorption``) leaves the rows' sum, and
    its share of the centring, ``-mean(x_j) beta_j``, moves into the intercept term.
    ``rows=False`` creates the coefficients (and ``fixef``) only, for a marginal likelihood.
    ``center=False`` (nonlinear parameters) puts the priors on the coefficients as given. An
    ordinal family has no intercept (its cutpoints play that role): all columns are centred
    and the second value is the shift ``mean(X) @ beta`` that maps the centred cutpoints back.
    """
    names, sfx = list(design.coef_names), varnames.suffix(lp)
    if not names:
        return None, None, {}
    if ordinal:
        means = design.X.mean(axis=0)
        fixef = _vector_rv(varnames.fixef(lp), [priors[n] for n in names], dims=varnames.coef_dim(lp))
        return (pt.dot(_data(f"Xc{sfx}", design.X - means), fixef),
                pt.dot(_data(f"Xmeans{sfx}", means), fixef), {})
    if not design.has_intercept or not center:
        fixef = _vector_rv(varnames.fixef(lp), [priors[n] for n in names], dims=varnames.coef_dim(lp))
        return (pt.dot(_data(f"X{sfx}", design.X), fixef) if rows else None), None, {}
    j0 = names.index("(Intercept)")
    others = [j for j in range(len(names)) if j != j0]
    intercept_c = _rv(f"_intercept_c{sfx}", priors["(Intercept)"])
    fixef = pt.zeros(len(names))
    rest, intercept, slopes = None, intercept_c, {}
    if others:
        means = design.X[:, others].mean(axis=0)
        slope_priors = [priors[names[j]] for j in others]
        # QR coordinates follow the rows' curvature, which an absorbed slope no longer has
        qr = None if any(j in absorbed for j in others) else qr_transform(
            design.X[:, others] - means, [p.dist for p in slope_priors])
        beta = _vector_rv(f"_beta{sfx}", slope_priors, dims=f"_slope{sfx}", transform=qr)
        fixef = pt.set_subtensor(fixef[others], beta)
        fixef = pt.set_subtensor(fixef[j0], intercept_c - pt.dot(
            _data(f"Xmeans{sfx}", means), beta))
        kept = [i for i, j in enumerate(others) if j not in absorbed]
        moved = [i for i, j in enumerate(others) if j in absorbed]
        slopes = {others[i]: beta[i] for i in moved}
        if moved:
            intercept = intercept_c - pt.dot(
                _data(f"Xmeans_absorbed{sfx}", means[moved]), beta[moved])
        if kept and rows:
            Xc = design.X[:, [others[i] for i in kept]] - means[kept]
            rest = pt.dot(_data(f"Xc{sfx}", Xc), beta if not moved else beta[kept])
    else:
        fixef = pt.set_subtensor(fixef[j0], intercept_c)
    pm.Deterministic(varnames.fixef(lp), fixef, dims=varnames.coef_dim(lp))
    return rest, intercept, slopes


def _block_scale(block: RandomBlock, priors: dict[str, Prior]) -> pt.TensorVariable:
    """A block's SDs (``sd_<block>``) and correlations (``cor_<block>``): the Cholesky factor
    of its covariance (terms x terms) if correlated, else the vector of SDs."""
    name, tdim = block.name, varnames.term_dim(block)
    sd_priors = [priors[f"{'1' if t == '(Intercept)' else t}|{name}"] for t in block.coef_names]
    if not block.correlated:
        return _vector_rv(varnames.sd(block), sd_priors, dims=tdim)
    if len({p.dist for p in sd_priors}) > 1:
        raise PriorError(f"the SDs of the correlated block ({block.term.expr} | "
                         f"{block.group}) must share one distribution; got "
                         f"{', '.join(p.dist for p in sd_priors)}")
    keys = list(sd_priors[0].kwargs)
    sd_dist = getattr(pm, sd_priors[0].dist).dist(
        **{k: np.array([p.kwargs[k] for p in sd_priors]) for k in keys}, shape=block.n_terms)
    chol, corr, sds = pm.LKJCholeskyCov(
        f"_chol_{name}", n=block.n_terms, eta=priors[f"cor|{name}"].kwargs.get("eta", 1.0),
        sd_dist=sd_dist, compute_corr=True, store_in_trace=False)
    pm.Deterministic(varnames.sd(block), sds, dims=tdim)
    pm.Deterministic(varnames.cor(block), corr, dims=(tdim, varnames.term2_dim(block)))
    return chol


def _random_effects(block: RandomBlock, centered: bool, priors: dict[str, Prior],
                    means: dict[int, tuple[Any, Prior]] | None = None) -> pt.TensorVariable:
    """Level effects ``r`` (levels x terms) of one block, and their contribution per row.

    With ``means`` (term -> its fixed coefficient and that coefficient's prior; a centred
    block only, see ``bayesmix.model.parametrization._absorption``) the block samples ``mean + r``
    for those terms directly.
    """
    name, tdim, ldim = block.name, varnames.term_dim(block), varnames.level_dim(block)
    mean: Any = 0.0
    start = None
    if means:  # a level covariate makes a mean vary over the levels
        per_level = any(getattr(v, "ndim", 0) > 0 for v, _ in means.values())
        mean = pt.zeros((len(block.levels), block.n_terms) if per_level else block.n_terms)
        start = np.zeros((len(block.levels), block.n_terms))
        for k, (value, prior) in means.items():
            mean = pt.set_subtensor(mean[..., k], value)
            start[:, k] = _location(prior)
    # The start is set from the priors alone: the support point PyMC would take (the mean)
    # depends on the data through the centring of absorbed slopes, which would keep the
    # compile cache from storing the model's initial point.
    init = {} if start is None else {"initval": start}
    scale = _block_scale(block, priors)
    if block.correlated:
        if centered:
            gamma = pm.MvNormal(varnames.gamma(block), mu=mean, chol=scale, dims=(ldim, tdim),
                                **init)
        else:
            z = pm.Normal(varnames.z(block), 0.0, 1.0, dims=(ldim, tdim))
            gamma = pt.dot(z, scale.T)
    else:
        if centered:
            gamma = pm.Normal(varnames.gamma(block), mean, scale, dims=(ldim, tdim), **init)
        else:
            z = pm.Normal(varnames.z(block), 0.0, 1.0, dims=(ldim, tdim))
            gamma = z * scale
    if block.cov_chol is not None:  # gr(g, cov=A): r = L_A z L_Sigma^T, never A's inverse
        if centered:
            raise ValueError(f"block {name} has a known covariance and must be non-centred")
        gamma = pt.dot(_data(f"covchol_{name}", block.cov_chol), gamma)
    idx = _data(f"index_{name}", block.index)
    if block.intercept_only:
        return gamma[idx, 0]
    if block.n_terms == 1:
        return gamma[idx, 0] * _data(f"Z_{name}", block.Z[:, 0])
    return (gamma[idx] * _data(f"Z_{name}", block.Z)).sum(axis=1)


def _location(prior: Prior) -> float:
    """A prior's location (its mean or median where it has one), as a starting value."""
    for key in ("mu", "alpha", "loc"):
        if key in prior.kwargs and np.ndim(prior.kwargs[key]) == 0:
            return float(prior.kwargs[key])
    return 0.0


def stored_names(design: Design, family: str | None = None, lp: str = "") -> list[str]:
    """Deterministics the sampler must store (free variables are always stored)."""
    names = [varnames.fixef(lp)] if design.coef_names else []
    for block in design.blocks:
        names.append(varnames.sd(block))
        if block.correlated:
            names.append(varnames.cor(block))
    if family is not None and get_family(family).ordinal:
        names.append("cutpoints")
    return names


def coords_of(design: Design, lp: str = "") -> dict[str, list[Any]]:
    """Named dimensions and their labels (level names exactly as in the data)."""
    sfx = varnames.suffix(lp)
    coords: dict[str, list[Any]] = {varnames.coef_dim(lp): list(design.coef_names)}
    if design.has_intercept and len(design.coef_names) > 1:
        coords[f"_slope{sfx}"] = [n for n in design.coef_names if n != "(Intercept)"]
    for block in design.blocks:
        coords[varnames.level_dim(block)] = list(block.levels)
        coords[varnames.term_dim(block)] = list(block.coef_names)
        if block.correlated:
            coords[varnames.term2_dim(block)] = list(block.coef_names)
    return coords


def _linear_part(design: Design, centered: tuple[bool, ...], priors: dict[str, Prior],
                 lp: str = "", center: bool = True, ordinal: bool = False,
                 level_cols: dict[int, tuple[int, ...]] | None = None
                 ) -> tuple[pt.TensorVariable, Any]:
    """One linear predictor: fixed part, random effects and offset, per row; and, for an
    ordinal family, the shift that maps its centred cutpoints back (else None).
    ``level_cols``: the level covariates (:func:`level_covariates`; none if None)."""
    absorb = absorption(design, centered) if center and not ordinal else {}
    level_cols = level_cols if absorb and level_cols else {}
    j0 = design.coef_names.index("(Intercept)") if design.has_intercept else None
    columns = {j for terms in absorb.values() for j in terms.values()}
    moved = columns | {j for cols in level_cols.values() for j in cols}
    rest, intercept, slopes = _fixed_part(design, priors, lp, center, ordinal,
                                          moved - {j0})
    shift = intercept if ordinal else None
    intercept = None if ordinal else intercept
    # zeros as data, not pt.zeros(n): kfold refits change the number of rows
    eta = _data(f"zeros{varnames.suffix(lp)}", np.zeros(design.n)) if rest is None else rest
    if intercept is not None and j0 not in columns:
        eta = eta + intercept
    for i, (block, is_centred) in enumerate(zip(design.blocks, centered)):
        means = {k: (intercept if j == j0 else slopes[j], priors[design.coef_names[j]])
                 for k, j in absorb.get(i, {}).items()}
        if level_cols.get(i):
            cols = list(level_cols[i])
            k0 = block.coef_names.index("(Intercept)")
            values = _data(f"level_X_{block.name}", level_values(block, design.X[:, cols]))
            level_mean = pt.dot(values, pt.stack([slopes[j] for j in cols]))
            if k0 in means:  # the block absorbing the intercept
                means[k0] = (means[k0][0] + level_mean, means[k0][1])
            else:  # another centred block: its levels' mean is the covariates' part alone
                means[k0] = (level_mean, Prior("Normal", mu=0.0, sigma=1.0))  # (start at 0)
        eta = eta + _random_effects(block, is_centred, priors, means)
    if design.has_offset:
        eta = eta + _data(f"offset{varnames.suffix(lp)}", design.offset)
    return eta, shift


def build_model(design: Design, plan: BuildPlan, y: np.ndarray,
                trials: np.ndarray | None, weights: np.ndarray | None = None) -> pm.Model:
    """Build the PyMC model for a design (``y``/``trials`` already checked by the family;
    ``weights``, if given, multiply each row's log-likelihood)."""
    priors = {s.key: s.prior for s in plan.priors}
    ordinal = get_family(plan.family).ordinal
    coords = coords_of(design)
    for lp in plan.predictors:
        coords.update(coords_of(lp.design, lp.name))
    if ordinal:
        coords["cutpoint"] = cutpoint_labels(plan.categories)
    with pm.Model(coords=coords) as model:
        etas = {lp.name: _linear_part(lp.design, lp.centered, local_priors(plan.priors, lp.name),
                                      lp.name, lp.center)[0] for lp in plan.predictors}
        shift = None
        if plan.marginal is not None:
            return _marginal_model(model, design, plan, priors, y)
        if plan.nonlinear is None:
            eta, shift = _linear_part(design, plan.centered, priors, ordinal=ordinal,
                                      level_cols=plan.level_covariates)
        else:
            env = {**etas, **{k: _data(f"nl_{k}", v) for k, v in plan.covariates.items()}}
            eta = plan.nonlinear.evaluate(env, pytensor_functions()) + pt.zeros(design.n)
        params = _family_params(plan, priors, y)
        params.update({lp.name: _inverse_link(lp.link, etas[lp.name])
                       for lp in plan.predictors if lp.role == "dpar"})
        if ordinal:  # sampled for the centred predictors; report them for the raw ones
            pm.Deterministic("cutpoints", params["cutpoints"] + (0.0 if shift is None else shift),
                             dims="cutpoint")
        y_data = _data("y", y - 1 if ordinal else y)  # ordinal: PyMC counts categories from 0
        trials = None if trials is None else _data("trials", trials.astype("int64"))
        if plan.autocor is not None:
            observed = _ar1_gaussian(plan, eta, y_data, trials, params, priors)
        else:
            observed = _likelihood(plan, eta, y_data, trials, params)
        if weights is not None:
            w = _data("weights", np.asarray(weights, dtype=float))
            loglik = pm.logp(observed, model.rvs_to_values[observed])
            pm.Potential("_weights", pt.sum((w - 1.0) * loglik))
    return model


def _marginal_model(model: pm.Model, design: Design, plan: BuildPlan,
                    priors: dict[str, Prior], y: np.ndarray) -> pm.Model:
    """Gaussian model with level effects integrated out (see :mod:`bayesmix.model.integrated`): the
    sampler sees group SDs/correlations, ``sigma`` and, unless their normal priors let them be
    integrated out as well, the fixed effects; for a nested pair among other factors
    (:mod:`bayesmix.model.integrated_pair`) also the other blocks' effects, none absorbing the intercept."""
    stats = plan.marginal
    beta, eta = None, None
    partial = isinstance(stats, PartialStats)
    if partial:
        rest, intercept, _ = _fixed_part(design, priors)
        eta = sum((_random_effects(design.blocks[i], stats.centered[i], priors)
                   for i in stats.sampled), (0.0 if rest is None else rest)
                  + (0.0 if intercept is None else intercept))
    elif getattr(stats, "fixed", None) is None and design.coef_names:  # else integrated out
        _fixed_part(design, priors, rows=False)
        beta = model["fixef"]
    nested = isinstance(stats, (NestedStats, PartialStats))  # (1 | a/b): two intercepts
    scales = [_block_scale(design.blocks[i], priors)[0] for i in stats.pair] if nested \
        else _factor_entries(design, priors)
    sigma = _family_params(plan, priors, y)["sigma"]
    data = {k: _data(f"marginal_{k}", v) for k, v in stats.arrays().items()}
    if partial:
        data = partial_loglik_data(data, eta)
    pm.Potential("_marginal_loglik", nested_loglik(
        data, beta, *scales, sigma, (stats.nested if partial else stats).n_outer) if nested
        else marginal_loglik(data, beta, scales, sigma,
                             None if stats.fixed is None else stats.fixed.sd))
    return model


def _factor_entries(design: Design, priors: dict[str, Prior]) -> list[list[Any]]:
    """The block-diagonal lower-triangular factor ``L`` of all terms' covariance, as nested
    lists of scalar tensors (``None`` where structurally zero), for the marginal likelihood."""
    q = sum(b.n_terms for b in design.blocks)
    L: list[list[Any]] = [[None] * q for _ in range(q)]
    start = 0
    for block in design.blocks:
        scale = _block_scale(block, priors)
        for a in range(block.n_terms):
            for b in range(a + 1 if block.correlated else 0):
                L[start + a][start + b] = scale[a, b]
            if not block.correlated:
                L[start + a][start + a] = scale[a]
        start += block.n_terms
    return L


def _family_params(plan: BuildPlan, priors: dict[str, Prior],
                   y: np.ndarray) -> dict[str, pt.TensorVariable]:
    """Every family parameter, by name (scalars; the ordinal cutpoints a vector). A parameter
    with its own formula (``sigma ~ x``) is made by ``build_model`` instead."""
    modelled = {lp.name for lp in plan.predictors if lp.role == "dpar"}
    params: dict[str, pt.TensorVariable] = {}
    for name in get_family(plan.family).params:
        if name in modelled:
            continue
        if name == "cutpoints":
            params[name] = _cutpoints(plan, priors[name], y)
        else:
            params[name] = _rv(name, priors[name])
    return params


def _cutpoints(plan: BuildPlan, prior: Prior, y: np.ndarray) -> pt.TensorVariable:
    """Ordered cutpoints for the centred predictors, started at the marginal thresholds
    F^-1(P(y <= k)) (the estimate with no predictors): the prior's own starting point puts
    every cutpoint at 0, which is not strictly ordered, so the ordered transform cannot start
    there."""
    k = len(plan.categories)
    counts = np.bincount(np.asarray(y, dtype=np.int64) - 1, minlength=k)
    cum = (np.cumsum(counts)[:-1] + 0.5) / (len(y) + 1.0)  # strictly increasing, in (0, 1)
    keys = list(prior.kwargs)
    values = [np.broadcast_to(np.float64(prior.kwargs[key]), (k - 1,)).copy() for key in keys]
    base = getattr(pm, prior.dist)

    # The density is the prior's, restricted to ordered values (the ordered transform); a
    # prior draw is the sorted draw of k - 1 independent values, the same distribution.
    # (Drawn unsorted, as a plain variable with the ordered transform is, prior predictive
    # draws had unordered cutpoints: simulation-based calibration found it.)
    def dist(*args: Any, size: Any = None) -> Any:
        return pt.sort(base.dist(**dict(zip(keys, args)), size=size), axis=-1)

    def logp(value: Any, *args: Any) -> Any:
        return pm.logp(base.dist(**dict(zip(keys, args))), value)

    return pm.CustomDist("_cutpoints_c", *values, dist=dist, logp=logp, dims="cutpoint",
                         signature=",".join(["(k)"] * len(keys)) + "->(k)",
                         transform=pm.distributions.transforms.ordered,
                         initval=get_link(plan.link).link(cum))


PYTENSOR = Math(exp=pt.exp, log=pt.log, expm1=pt.expm1, log1p=pt.log1p, expit=pm.math.invlogit,
                logit=pm.math.logit, ndtr=lambda e: 0.5 * pt.erfc(-e / np.sqrt(2.0)),
                ndtri=lambda p: -np.sqrt(2.0) * pt.erfcinv(2.0 * p), clip=pt.clip,
                gammaln=pt.gammaln)
"""The PyTensor implementation of :class:`~bayesmix.families.links.Math`: the families' links
and likelihoods applied to the model's tensors."""


def _inverse_link(link: str, eta: pt.TensorVariable) -> pt.TensorVariable:
    return get_link(link).inverse(eta, PYTENSOR)  # links are checked when the model is specified


def _likelihood(plan: BuildPlan, eta, y, trials, params: dict[str, pt.TensorVariable]):
    """The observed variable: the family's PyMC distribution (its ``likelihood``)."""
    family = get_family(plan.family)
    dist, kwargs = family.likelihood(PYTENSOR, eta, get_link(plan.link), params, trials)
    return getattr(pm, dist)(plan.response_name, **kwargs, observed=y)


def _ar1_gaussian(plan: BuildPlan, eta, y, trials, params, priors):
    """Gaussian likelihood with AR(1) residuals as one-step-ahead densities (rows keep their
    order; each row is conditioned on the previous row of its series, see
    :mod:`bayesmix.data.structured`). ``sigma`` is the marginal residual SD (nlme's corAR1)."""
    s = plan.autocor
    sigma = params["sigma"]  # a scalar: Model refuses AR(1) with a sigma formula
    rho = _rv("ar", priors[AR_PRIOR_KEY])
    first = s.first
    prev = _data("ar_prev", np.where(first, np.arange(len(first)), s.prev))
    gap = _data("ar_gap", s.gap)
    later = _data("ar_later", (~first).astype(float))

    def logp(value, mu, sigma, rho):
        phi = later * rho ** gap  # 0 at the first row of a series
        e = value - mu
        sd = sigma * pt.sqrt(1.0 - phi ** 2)
        z = (e - phi * e[prev]) / sd
        return pt.sum(-0.5 * z ** 2 - pt.log(sd)) - 0.5 * np.log(2 * np.pi) * len(first)

    def random(mu, sigma, rho, rng=None, size=None):
        if size is not None and tuple(size)[-1:] != np.shape(mu)[-1:]:
            size = (*tuple(size), np.shape(mu)[-1])  # size given as the batch shape
        mu = np.broadcast_to(mu, size) if size is not None else mu
        return ar1_simulate(rng, mu, np.asarray(sigma)[..., None], np.asarray(rho)[..., None], s)

    return pm.CustomDist(plan.response_name, _inverse_link(plan.link, eta), sigma, rho,
                         logp=logp, random=random, signature="(n),(),()->(n)", observed=y)


