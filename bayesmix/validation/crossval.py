"""Exact cross-validation by refitting: ``fit.kfold()`` and ``fit.logo()``.

Folds hold out rows (``group=None``: a random split of the rows into k folds) or whole
groups (``group="Subject"``: each level's rows in one fold; ``logo`` holds out one level per
fold). Each fold refits the model on the other rows with the same priors (those of the full
model) and sampler settings (``draws``/``tune``/``chains`` may be lowered), then scores the
held-out rows.

**Held-out groups.** A held-out level's effects are not informed by its own rows, so its
rows are predicted as a new level: per posterior draw s, the log predictive density of row i
is ``log (1/M) sum_m p(y_i | theta_s, b_m)`` with ``M = n_re_draws`` fresh draws
``b_m ~ N(0, Sigma_s)`` (the brms ``sample_new_levels = "gaussian"`` predictive, averaged
over M draws to cut Monte-Carlo noise); ``elpd_i = log mean_s exp(...)``. Levels that
keep rows in the training fold use their fitted effects.

**One path.** A fold's model is :meth:`ModelSpec.on_rows <bayesmix.model.ModelSpec.on_rows>`:
the fitted model on the training rows, with its family, priors, centring, ordinal categories,
observation weights and integrated-out effects, sampled by the path every fit takes
(:func:`~bayesmix.inference.sample.sample_model`). The training folds keep every level of the
full model (a level without training rows is sampled from its prior given the SDs) and each
block keeps its parametrisation, so the parameters do not change across folds and the compile
cache (keyed by the graph's structure) serves every refit: only the data change.
``timing["compiles"]`` counts fresh compilations (0 after a fit of this model in the session).
Models that a subset of rows cannot refit raise before any refit: nonlinear and
distributional models, AR(1) residuals. (A centred block's held-out levels form a mild funnel
with the SD; blocks are centred only when their levels are well informed, so the SD is well
identified; the refits' sampling problems are reported.) Held-out rows are scored without
their observation weights.

The result is ArviZ's :class:`~arviz_stats.utils.ELPDDataLOOKFold` (so ``bm.compare``
accepts it) with the fold of each row (``folds``), the held-out group labels (``groups``) and
``per_fold()`` / ``per_group()`` tables. se = sqrt(n var(elpd_i)) as ArviZ; with grouped folds
rows of one group are correlated, so ``per_group()`` also gives the group-level se.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.utils import ELPDDataLOOKFold
from scipy.special import logsumexp

from bayesmix import varnames
from bayesmix.data.design import group_labels
from bayesmix.errors import BayesmixError, ConvergenceWarning, DataError, warn
from bayesmix.inference.sample import SamplerSettings, sample_model
from bayesmix.posterior.draws import family_param_draws, pointwise_loglik, posterior_values
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["kfold", "logo", "KFoldResult", "make_folds", "heldout_loglik"]


@dataclass(kw_only=True, repr=False)
class KFoldResult(ELPDDataLOOKFold):
    """k-fold results plus the fold of each row, group labels and timings."""

    folds: np.ndarray = None
    groups: np.ndarray = None
    group_name: str | None = None
    timing: dict[str, Any] = None

    def per_fold(self) -> pd.DataFrame:
        """Rows and elpd per fold."""
        elpd = pd.Series(self.elpd_i.values).groupby(self.folds)
        return pd.DataFrame({"n": elpd.size(), "elpd": elpd.sum()}).rename_axis("fold")

    def per_group(self) -> pd.DataFrame:
        """elpd per held-out group (sum over its rows), and the se of the total from the
        group sums (``attrs["se"]``): rows of a group are not independent."""
        labels = self.groups if self.groups is not None else np.arange(len(self.folds))
        elpd = pd.Series(self.elpd_i.values).groupby(labels, sort=False)
        table = pd.DataFrame({"n": elpd.size(), "elpd": elpd.sum()})
        table.index.name = self.group_name or "row"
        table.attrs["se"] = float(np.sqrt(len(table) * table["elpd"].var(ddof=1)))
        return table


def _group_of(idata: xr.DataTree, model: "ModelSpec", group: "str | pd.Series") -> tuple[np.ndarray, str]:
    """Labels of ``group`` per training row, and its name: a grouping factor, block name or
    column of the model's data, or a Series indexed like the data the model was given (any
    grouping, e.g. ``df["state"]`` for a model that does not use ``state``)."""
    if isinstance(group, pd.Series):
        name = str(group.name) if group.name is not None else "group"
        rows = model.design.rows
        missing = rows.difference(group.index)
        if len(missing):
            raise DataError(f"group {name!r} has no label for {len(missing)} of the model's "
                            f"rows (e.g. index {missing[0]!r}): pass a column of the data "
                            "the model was built from")
        labels = group.loc[rows]
        if labels.isna().any():
            raise DataError(f"group {name!r} is missing for {int(labels.isna().sum())} of the "
                            "model's rows; fill or drop them before building the model")
        return labels.to_numpy(dtype=object), name
    for block in model.design.blocks:
        if group in (block.name, block.group):
            return np.asarray(block.levels, dtype=object)[block.index], block.group
    data = model.data
    if group in data.columns:
        complete = data[~data.isna().any(axis=1).to_numpy()]
        return np.asarray(group_labels(complete, (group,)), dtype=object), group
    raise DataError(f"group {group!r} is neither a grouping factor ("
                    f"{', '.join(b.group for b in model.design.blocks) or 'none'}) nor a "
                    "column the formula uses; for another column pass it as a Series, e.g. "
                    f"group=df[{group!r}]")


def make_folds(idata: xr.DataTree, model: "ModelSpec", k: int = 10, group: str | None = None,
               random_seed: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Fold number (0..k-1) of each training row, and the group labels (None without group).

    Rows (or groups) are shuffled and dealt out in turn, so fold sizes differ by at most one
    row (group).
    """
    rng = np.random.default_rng(random_seed)
    n = model.design.n
    if group is None:
        if not 2 <= k <= n:
            raise BayesmixError(f"k must be between 2 and the number of rows ({n}), not {k!r}")
        folds = np.empty(n, dtype=np.int64)
        folds[rng.permutation(n)] = np.arange(n) % k
        return folds, None
    labels, name = _group_of(idata, model, group)
    return _deal_groups(labels, name, k, rng), labels


def _deal_groups(labels: np.ndarray, name: str, k: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Fold of each row when whole groups are shuffled and dealt out in turn."""
    unique = list(dict.fromkeys(labels.tolist()))
    if not 2 <= k <= len(unique):
        raise BayesmixError(f"k must be between 2 and the number of {name!r} groups "
                            f"({len(unique)}), not {k!r}")
    fold_of = dict(zip([unique[i] for i in rng.permutation(len(unique))],
                       np.arange(len(unique)) % k))
    return np.array([fold_of[v] for v in labels], dtype=np.int64)


def heldout_loglik(idata: xr.DataTree, model: "ModelSpec", rows: np.ndarray, seen: list[np.ndarray],
                   n_re_draws: int, rng: np.random.Generator) -> np.ndarray:
    """log p(y_i | theta_s) of training ``rows`` under ``fit``'s posterior, shape
    (chain, draw, len(rows)); levels with ``seen[b][level] == False`` are integrated over
    ``n_re_draws`` new effects per draw (see the module docstring)."""
    from bayesmix.posterior.effects import antithetic_effects

    design = model.design
    beta = posterior_values(idata, model, "fixef", ("coef",), slice(None)) if design.coef_names \
        else None
    eta = np.zeros((posterior_of(idata).sizes["chain"], posterior_of(idata).sizes["draw"], len(rows)))
    if beta is not None:
        eta += np.einsum("cdp,np->cdn", beta, design.X[rows])
    eta = (eta + design.offset[rows])[:, :, None, :]  # (chain, draw, M, n)
    for block, is_seen in zip(design.blocks, seen):
        idx, Z = block.index[rows], block.Z[rows]
        r = posterior_values(idata, model, varnames.ranef(block), (varnames.level_dim(block), varnames.term_dim(block)),
                              slice(None))
        known = is_seen[idx]
        part = np.einsum("cdnk,nk->cdn", r[:, :, idx, :], Z) * known
        eta = eta + part[:, :, None, :]
        if not known.all():  # one new effect per unseen level and (draw, m)
            codes = np.unique(idx[~known], return_inverse=True)[1]
            new = np.stack([antithetic_effects(idata, model, block, slice(None), n_re_draws, rng)
                            for _ in range(int(codes.max()) + 1)], axis=3)  # c,d,M,L,k
            contrib = np.zeros(eta.shape[:2] + (new.shape[2], len(rows)))
            contrib[..., ~known] = np.einsum("cdmnk,nk->cdmn", new[:, :, :, codes, :],
                                             Z[~known])
            eta = eta + contrib
    params = {k: v[..., None] for k, v in family_param_draws(idata, model).items()}
    trials = None if model.trials is None else model.trials[rows]
    ll = model.family.loglik(model.y[rows], eta, model.link, params, trials)
    return logsumexp(ll, axis=2) - np.log(ll.shape[2])


def kfold(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings, k: int = 10,
          group: "str | pd.Series | None" = None,
          folds: np.ndarray | None = None, random_seed: int | None = None,
          draws: int | None = None, tune: int | None = None, chains: int | None = None,
          n_re_draws: int = 20, progressbar: bool = False) -> KFoldResult:
    """Exact k-fold cross-validation by refitting (see the module docstring).

    ``group``: hold out whole levels of this grouping factor or column (a column the formula
    does not use: pass it as a Series, ``group=df["state"]``); ``folds``:
    your own fold number per row (overrides k and group). ``draws``/``tune``/``chains``
    default to the fit's.

    Examples
    --------
    >>> cv = fit.kfold(k=5, group="Subject", random_seed=1)  # doctest: +SKIP
    >>> cv.elpd, cv.se  # doctest: +SKIP
    >>> bm.compare({"slopes": cv, "intercepts": fit2.kfold(k=5, group="Subject", random_seed=1)})  # doctest: +SKIP
    """
    model.require_refit()
    design = model.design
    labels = group_name = None
    if group is not None:
        labels, group_name = _group_of(idata, model, group)
    if folds is not None:
        folds = np.asarray(folds)
        if folds.shape != (design.n,):
            raise BayesmixError(f"folds must give one fold per row ({design.n}), not shape "
                                f"{folds.shape}")
        folds = np.unique(folds, return_inverse=True)[1]
    elif labels is None:
        folds, _ = make_folds(idata, model, k, None, random_seed)
    else:
        folds = _deal_groups(labels, group_name, k, np.random.default_rng(random_seed))
    n_folds = int(folds.max()) + 1
    base = settings
    settings = dataclasses.replace(base, draws=draws or base.draws, tune=tune or base.tune,
                                   chains=chains or base.chains, progressbar=progressbar)
    from bayesmix.inference import compile_cache
    from bayesmix.inference.convergence import sampling_report

    compiles = compile_cache.STATS["compiles"]
    timing: dict[str, Any] = {"compile": 0.0, "sampling": []}
    seeds = np.random.SeedSequence(random_seed).generate_state(n_folds + 1)
    rng = np.random.default_rng(seeds[-1])
    elpd_i = np.empty(design.n)
    problems = []
    for j in range(n_folds):
        train, test = np.flatnonzero(folds != j), np.flatnonzero(folds == j)
        # the fold's model: this model on the training rows, sampled as every fit is; its
        # compiled code comes from the compile cache (same structure, the fold's data)
        fold = model.on_rows(train)
        fold_settings = dataclasses.replace(settings, random_seed=int(seeds[j]))
        fold_idata, fold_timing, _ = sample_model(fold, fold_settings)
        timing["compile"] += fold_timing.get("compile", 0.0)
        timing["sampling"].append(fold_timing["sampling"])
        report = sampling_report(fold_idata, design.blocks, fold_settings)
        problems += [f"fold {j + 1}: {p}" for p in report.problems]
        seen = [np.bincount(b.index[train], minlength=b.n_levels) > 0 for b in design.blocks]
        ll = heldout_loglik(fold_idata, model, test, seen, n_re_draws, rng)
        ll = ll.reshape(-1, len(test))
        elpd_i[test] = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    # fresh compilations (0: every refit reused the compiled structure of an earlier fit)
    timing["compiles"] = compile_cache.STATS["compiles"] - compiles
    if problems:
        warn("sampling problems in the refits:\n  " + "\n  ".join(problems[:10]),
             ConvergenceWarning)
    full = pointwise_loglik(idata, model).reshape(-1, design.n)
    lpd_i = logsumexp(full, axis=0) - np.log(full.shape[0])
    dim = varnames.obs_dim(model.response_name)
    coords = {dim: idata["observed_data"][dim].values}
    n = design.n
    return KFoldResult(
        elpd=float(elpd_i.sum()), se=float(np.sqrt(n * elpd_i.var(ddof=1))),
        p=float((lpd_i - elpd_i).sum()), n_samples=settings.chains * settings.draws,
        n_data_points=n, scale="log", warning=False, good_k=None,
        elpd_i=xr.DataArray(elpd_i, dims=(dim,), coords=coords), n_folds=n_folds,
        p_kfold_i=xr.DataArray(lpd_i - elpd_i, dims=(dim,), coords=coords),
        folds=folds, groups=labels, group_name=group_name, timing=timing)


def logo(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings, group: "str | pd.Series | None" = None,
         **kwargs: Any) -> KFoldResult:
    """Leave-one-group-out cross-validation: :func:`kfold` with one fold per level of
    ``group`` (default: the first grouping factor), levels in their fitted order.

    Examples
    --------
    >>> cv = fit.logo("Subject", draws=300, tune=300)  # doctest: +SKIP
    """
    blocks = model.design.blocks
    if group is None:
        if not blocks:
            raise BayesmixError("logo needs a group: the model has no grouping factor")
        group = blocks[0].group
    labels, _ = _group_of(idata, model, group)
    unique = list(dict.fromkeys(labels.tolist()))
    order = {v: i for i, v in enumerate(unique)}
    folds = np.array([order[v] for v in labels])
    return kfold(idata, model, settings, folds=folds, group=group, **kwargs)
