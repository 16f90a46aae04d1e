"""Assemble the PyMC model (the only module that writes PyMC model code).

Names in the model, and so in ``fit.idata.posterior``:

* ``fixef`` (dim ``coef``): fixed effects in lme4's names. Internally the predictors are
  centred and the intercept is sampled at their means (``_intercept_c``), then mapped back;
  a centred block with a random intercept samples ``intercept + r`` (hierarchical centring).
* ``sd_<block>`` (dim ``<block>__term``), ``cor_<block>`` (``<block>__term``,
  ``<block>__term2``) and ``r_<block>`` (dims ``<group>``, ``<block>__term``): the group SDs,
  correlations and level effects of each random-effects block.
* family parameters such as ``sigma``; the observed variable is named after the response.

Variables starting with ``_`` are sampler internals and are dropped from the results. The level
effects ``r_<block>`` are not stored by the sampler: :func:`derive_level_effects` computes them
from the sampled ``_z``/``_gamma`` after sampling, so a model with 10^4 levels keeps one copy
of its level draws in memory instead of two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from bayesmix.design import Design, RandomBlock
from bayesmix.errors import PriorError
from bayesmix.priors import Prior, PriorSpec
from bayesmix.transforms import qr_transform

__all__ = ["BuildPlan", "build_model", "term_dim", "level_dim"]


@dataclass(frozen=True)
class BuildPlan:
    """Everything :func:`build_model` needs beyond the design: family, link, priors, centring."""

    family: str
    link: str
    priors: tuple[PriorSpec, ...]
    centered: tuple[bool, ...]  # one per random block
    response_name: str


def term_dim(block: RandomBlock) -> str:
    return f"{block.name}__term"


_RESERVED_DIMS = {"chain", "draw", "sample"}  # ArviZ's sample dims


def level_dim(block: RandomBlock) -> str:
    """The levels' dimension: the grouping factor's name (``<name>__level`` if ArviZ reserves it)."""
    return f"{block.group}__level" if block.group in _RESERVED_DIMS else block.group


def _data(name: str, values: np.ndarray) -> pt.TensorVariable:
    """Data enter as shared inputs, not constants, so that the compiled sampler depends on the
    model's structure only: :mod:`bayesmix.compile_cache` reuses it for any data of the same
    structure, in the process and (from disk) in later processes."""
    return pm.Data(f"_data_{name}", np.ascontiguousarray(values))


def _rv(name: str, prior: Prior, **kwargs: Any) -> pt.TensorVariable:
    dist = getattr(pm, prior.dist)
    return dist(name, **prior.kwargs, **kwargs)


def _vector_rv(name: str, priors: list[Prior], dims: str,
               transform: Any = None) -> pt.TensorVariable:
    """One vector of parameters whose entries may have different priors.

    Entries sharing a distribution become one vectorised random variable (fast); several
    distributions are stitched together in order. ``transform`` (the sampler's coordinates,
    e.g. :class:`~bayesmix.transforms.QRTransform`) applies to the vectorised case only.
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


def _fixed_part(design: Design,
                priors: dict[str, Prior]) -> tuple[pt.TensorVariable | None, Any]:
    """Fixed-effects part of the linear predictor, without the intercept, and the intercept.

    The non-intercept columns are centred: the intercept is then the mean response at the
    predictor means and barely correlates with the slopes; ``fixef`` maps it back.
    """
    names = list(design.coef_names)
    if not names:
        return None, None
    if not design.has_intercept:
        fixef = _vector_rv("fixef", [priors[n] for n in names], dims="coef")
        return pt.dot(_data("X", design.X), fixef), None
    j0 = names.index("(Intercept)")
    others = [j for j in range(len(names)) if j != j0]
    intercept_c = _rv("_intercept_c", priors["(Intercept)"])
    fixef = pt.zeros(len(names))
    rest = None
    if others:
        means = design.X[:, others].mean(axis=0)
        slope_priors = [priors[names[j]] for j in others]
        beta = _vector_rv("_beta", slope_priors, dims="_slope", transform=qr_transform(
            design.X[:, others] - means, [p.dist for p in slope_priors]))
        fixef = pt.set_subtensor(fixef[others], beta)
        fixef = pt.set_subtensor(fixef[j0], intercept_c - pt.dot(_data("Xmeans", means), beta))
        rest = pt.dot(_data("Xc", design.X[:, others] - means), beta)
    else:
        fixef = pt.set_subtensor(fixef[j0], intercept_c)
    pm.Deterministic("fixef", fixef, dims="coef")
    return rest, intercept_c


def _absorbing_block(design: Design, centered: tuple[bool, ...]) -> int | None:
    """The centred block whose level intercepts absorb the fixed intercept, if any.

    Hierarchical centring (Gelfand, Sahu & Carlin 1995): sampling ``intercept + r_j`` instead
    of ``r_j`` removes the ridge between the intercept and the mean of the level effects,
    which otherwise makes the intercept mix slowly when a centred factor has few levels.
    """
    if not design.has_intercept:
        return None
    for i, (block, is_centred) in enumerate(zip(design.blocks, centered)):
        if is_centred and block.coef_names[0] == "(Intercept)" and np.all(block.Z[:, 0] == 1):
            return i
    return None


def _random_effects(block: RandomBlock, centered: bool, priors: dict[str, Prior],
                    intercept: Any = None) -> pt.TensorVariable:
    """Level effects ``r`` (levels x terms) of one block, and their contribution per row.

    With ``intercept`` (a centred block only) the block samples ``intercept + r`` directly.
    """
    name, tdim, ldim = block.name, term_dim(block), level_dim(block)
    sd_priors = [priors[f"{'1' if t == '(Intercept)' else t}|{name}"] for t in block.coef_names]
    mean = 0.0
    if intercept is not None:
        mean = pt.set_subtensor(pt.zeros(block.n_terms)[0], intercept)
    if block.correlated:
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
        pm.Deterministic(f"sd_{name}", sds, dims=tdim)
        pm.Deterministic(f"cor_{name}", corr, dims=(tdim, f"{name}__term2"))
        if centered:
            gamma = pm.MvNormal(f"_gamma_{name}", mu=mean, chol=chol, dims=(ldim, tdim))
        else:
            z = pm.Normal(f"_z_{name}", 0.0, 1.0, dims=(ldim, tdim))
            gamma = pt.dot(z, chol.T)
    else:
        sd = _vector_rv(f"sd_{name}", sd_priors, dims=tdim)
        if centered:
            gamma = pm.Normal(f"_gamma_{name}", mean, sd, dims=(ldim, tdim))
        else:
            z = pm.Normal(f"_z_{name}", 0.0, 1.0, dims=(ldim, tdim))
            gamma = z * sd
    idx = _data(f"index_{name}", block.index)
    if block.intercept_only:
        return gamma[idx, 0]
    if block.n_terms == 1:
        return gamma[idx, 0] * _data(f"Z_{name}", block.Z[:, 0])
    return (gamma[idx] * _data(f"Z_{name}", block.Z)).sum(axis=1)


def stored_names(design: Design) -> list[str]:
    """Deterministics the sampler must store (free variables are always stored)."""
    names = ["fixef"] if design.coef_names else []
    for block in design.blocks:
        names.append(f"sd_{block.name}")
        if block.correlated:
            names.append(f"cor_{block.name}")
    return names


def derive_level_effects(draws: xr.Dataset, design: Design, centered: tuple[bool, ...],
                         inplace: bool = False) -> xr.Dataset:
    """Add ``r_<block>`` (levels x terms) to a posterior or prior dataset (numpy, per draw).

    Mirrors :func:`_random_effects`: centred blocks sampled ``_gamma`` (``intercept + r`` for
    the block that absorbs the intercept), non-centred ones ``_z`` with ``r = z * sd`` or
    ``r = z @ L.T`` where ``L = diag(sd) chol(cor)``. ``inplace=True`` overwrites the
    internal ``_gamma``/``_z`` draws where it can (the sampler's own, dropped afterwards), so
    that a model with many levels holds one copy of its level draws.
    """
    absorb = _absorbing_block(design, centered)
    out = {}
    for i, (block, is_centred) in enumerate(zip(design.blocks, centered)):
        name, dims = block.name, ("chain", "draw", level_dim(block), term_dim(block))
        if is_centred:
            gamma = draws[f"_gamma_{name}"].transpose(*dims)
            values = gamma.values if inplace else gamma.values.copy()
            if i == absorb:
                values[..., 0] -= draws["_intercept_c"].transpose("chain", "draw").values[
                    ..., None]
            out[f"r_{name}"] = gamma.copy(data=values)
            continue
        z = draws[f"_z_{name}"].transpose(*dims)
        sd = draws[f"sd_{name}"].transpose("chain", "draw", dims[3]).values
        if block.correlated:
            cor = draws[f"cor_{name}"].transpose("chain", "draw", ...).values
            L = sd[..., :, None] * np.linalg.cholesky(cor)
            values = np.einsum("cdkl,cdjl->cdjk", L, z.values)
        else:
            values = z.values if inplace else z.values.copy()
            values *= sd[:, :, None, :]
        out[f"r_{name}"] = z.copy(data=values)
    return draws.assign(out)


def coords_of(design: Design) -> dict[str, list[Any]]:
    """Named dimensions and their labels (level names exactly as in the data)."""
    coords: dict[str, list[Any]] = {"coef": list(design.coef_names)}
    if design.has_intercept and len(design.coef_names) > 1:
        coords["_slope"] = [n for n in design.coef_names if n != "(Intercept)"]
    for block in design.blocks:
        coords[level_dim(block)] = list(block.levels)
        coords[term_dim(block)] = list(block.coef_names)
        if block.correlated:
            coords[f"{block.name}__term2"] = list(block.coef_names)
    return coords


def build_model(design: Design, plan: BuildPlan, y: np.ndarray,
                trials: np.ndarray | None) -> pm.Model:
    """Build the PyMC model for a design (``y``/``trials`` already checked by the family)."""
    priors = {s.key: s.prior for s in plan.priors}
    with pm.Model(coords=coords_of(design)) as model:
        rest, intercept = _fixed_part(design, priors)
        eta = pt.zeros(design.n) if rest is None else rest
        absorb = _absorbing_block(design, plan.centered)
        if intercept is not None and absorb is None:
            eta = eta + intercept
        for i, (block, centered) in enumerate(zip(design.blocks, plan.centered)):
            eta = eta + _random_effects(block, centered, priors,
                                        intercept if i == absorb else None)
        if design.has_offset:
            eta = eta + _data("offset", design.offset)
        y = _data("y", y)
        trials = None if trials is None else _data("trials", trials.astype("int64"))
        LIKELIHOODS[plan.family](plan, eta, y, trials, priors)
    return model


def _inverse_link(link: str, eta: pt.TensorVariable) -> pt.TensorVariable:
    if link == "identity":
        return eta
    if link == "log":
        return pt.exp(eta)
    if link == "logit":
        return pm.math.invlogit(eta)
    if link == "probit":
        return 0.5 * pt.erfc(-eta / np.sqrt(2.0))
    if link == "cloglog":
        return -pt.expm1(-pt.exp(eta))
    if link == "inverse":
        return 1.0 / eta
    raise ValueError(link)


def _gaussian(plan: BuildPlan, eta, y, trials, priors) -> None:
    sigma = _rv("sigma", priors["sigma"])
    pm.Normal(plan.response_name, mu=_inverse_link(plan.link, eta), sigma=sigma, observed=y)


def _bernoulli(plan: BuildPlan, eta, y, trials, priors) -> None:
    if plan.link == "logit":
        pm.Bernoulli(plan.response_name, logit_p=eta, observed=y)
    else:
        pm.Bernoulli(plan.response_name, p=_clip(_inverse_link(plan.link, eta)), observed=y)


def _binomial(plan: BuildPlan, eta, y, trials, priors) -> None:
    if plan.link == "logit":
        pm.Binomial(plan.response_name, n=trials, logit_p=eta, observed=y)
    else:
        pm.Binomial(plan.response_name, n=trials, p=_clip(_inverse_link(plan.link, eta)),
                    observed=y)


def _poisson(plan: BuildPlan, eta, y, trials, priors) -> None:
    pm.Poisson(plan.response_name, mu=_inverse_link(plan.link, eta), observed=y)


def _clip(p: pt.TensorVariable) -> pt.TensorVariable:
    return pt.clip(p, 1e-12, 1 - 1e-12)


LIKELIHOODS = {"gaussian": _gaussian, "bernoulli": _bernoulli, "binomial": _binomial,
               "poisson": _poisson}
