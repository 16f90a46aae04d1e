"""Choose centred or non-centred sampling for each random-effects block from the data.

NUTS samples a hierarchical model well in the *non-centred* form (``r = sd * z``) when the data
say little about each level, and in the *centred* form (``r ~ N(0, sd)``) when they pin each
level down. Which case holds depends on the information ratio of a level,

    ratio_j = tau^2 * I_j,

the prior variance of its effect (``tau^2``) times the information the data carry about it
(``I_j``; ``n_j / sigma^2`` for a gaussian intercept). bayesmix estimates both by moments
before sampling (pure numpy, milliseconds):

1. a fixed-effects-only GLM fit by a few IRLS steps gives working residuals ``e`` and weights
   ``w`` on the link scale (gaussian: ordinary residuals, ``w = 1``);
2. per level of the block, the weighted mean residual ``m_j`` along the block's first covariate
   and its weight ``W_j``; the dispersion ``phi`` is the weighted within-level variance, which
   also absorbs the noise of *other* grouping factors (so a batch whose casks vary a lot is not
   mistaken for a well-measured one);
3. ``I_j = W_j / phi``, ``tau^2 = max(var_j(m_j) - mean_j(1 / I_j), 0)``.

A block is centred when, for every one of its terms, the median ``ratio_j`` is at least
:data:`CENTRE_RATIO` (2: the data say clearly more about a typical level than its prior does).
A centred block samples each level's whole coefficient for the terms that are also fixed
effects (hierarchical centring, see :func:`absorption`), which is what makes
centring pay from a ratio of about 2. A block that cannot absorb all its terms (a term that is
no fixed effect, or crossed factors, of which only one can absorb the intercept), and a
correlated block (a centred multivariate normal has a funnel where an SD is small), need
:data:`PARTIAL_CENTRE_RATIO` (4), the threshold measured before hierarchical centring. Measured minimum
bulk ESS over the non-level
parameters, 2 chains x 1000 draws, mean of two seeds, centred against non-centred:
dyestuff (ratio 3.6) 811 vs 372; sleepstudy ``(Days || Subject)`` (2.7) 1620 vs 499;
``(Days | Subject)`` (2.7) 664 vs 405 but with 4-5 divergences per run (so correlated
blocks need the higher ratio, below); grouseticks' broods (2.5) 125 vs 130 (a tie);
epilepsy (1.9) 367 vs 369 (a tie: stays non-centred). Below 1 centring loses badly:
mathachieve ``(SES | School)`` (0.25) 6 vs 240 for the SD, radon ``(floor | county)`` (0.09)
73 vs 392.
A lone block whose levels carry level-constant predictors (a patient's treatment and
baseline) centres from :data:`LEVEL_COVARIATE_RATIO` (1.5): centred, it takes those
predictors into its levels' prior mean (:func:`level_covariates`), which removes
their ridge with the level intercepts. Epilepsy Poisson, 2 chains x 1000 draws, seeds 1 and 2,
min bulk ESS non-centred vs centred with the covariates absorbed: all four visits (ratio 1.9)
200-261 vs 1160-1290, sampling 0.4 vs 0.17 s; two visits (0.9) 330-469 vs 866-894; one visit
(1.0, one row per patient) 446-540 vs 315-365, so the threshold stays above 1.
Slopes count: a school's SES slope measured with a standard error twice the slope SD keeps
``(SES | School)`` non-centred even though the intercepts are well measured, because a
centred block with a poorly measured slope mixes badly.

Other families enter through a proxy with the same moments: student_t as gaussian,
lognormal as gaussian on log y, ordinal responses as gaussian on the category index; gamma
(variance mu^2) and beta (mu(1 - mu)) with a free dispersion; negative binomial, zero-inflated
and hurdle counts with the Poisson variance function and a dispersion of at least 1;
beta-binomial as binomial. Zeros carry no information about a hurdle model's counts, so they
get working weight 0: with them, the hurdle Poisson simulation of
``tests/families/test_families_recovery.py`` (25 groups of 12 rows, hu = 0.4) scored 3.1 and stayed
non-centred, with a minimum bulk ESS of 131 in 2 x 500 draws; without them it scores 18.6
and is centred, ESS 912 (hurdle negative binomial: 146 against 752).

A block that has another one nested in it (batches holding casks, departments holding
lecturers) learns about its levels through the inner levels, whose effects do not average out
over its rows: the variance of a level's estimate is ``phi_inner / W_j + tau_inner^2 / m_j``
with ``m_j`` inner levels in level ``j``. Counting the inner effects as row noise instead
made a department of 5 000 ratings look perfectly measured (ratio 15) when its 78 lecturers
pin it down only about as well as its prior (ratio ~1): the centred 14-department block of
the benchmark's 73 000-row crossed model then mixed catastrophically (2 x 500 draws: R-hat
2.06, ESS 3 for the department SD; non-centred: R-hat 1.02, ESS 108).

A block nested in another one (casks within batches) stays non-centred whatever its ratio:
the data then inform ``r_batch + r_cask`` and a centred inner block turns that sum into a
ridge. Pastes' ``(1 | batch/cask)``, 2 chains x 1000 draws, seeds 1 and 2: all non-centred
2 and 0 divergences, minimum ESS 232 and 277; casks centred 25 and 26 divergences, ESS 64
and 135; both centred 49 and 36 divergences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bayesmix.data.design import Design, RandomBlock
from bayesmix.families import Family, Moments, get_link

__all__ = ["information_ratios", "choose_centering", "rule_may_centre", "CENTRE_RATIO",
           "PARTIAL_CENTRE_RATIO", "LEVEL_COVARIATE_RATIO", "centre_threshold",
           "level_covariates", "level_values"]

CENTRE_RATIO = 2.0
LEVEL_COVARIATE_RATIO = 1.5  # a lone block with level-constant predictors (see above)
PARTIAL_CENTRE_RATIO = 4.0  # correlated blocks, and blocks not all of whose terms are absorbed


def _working_problem(family: Family, link: str, y: np.ndarray,
                     design: Design) -> tuple[str, np.ndarray, Design]:
    """The (link, response, design) whose GLM moments stand in for the model's (the family's
    :class:`~bayesmix.families.family.Moments` say how)."""
    y = family.linear_scale(y)  # lognormal: gaussian moments of log y
    if family.transform is not None:
        return "identity", y, design
    if family.ordinal:  # no intercept in the design: the working fit needs one
        X = np.column_stack([np.ones(design.n), design.X])
        return "identity", y, replace(design, X=X)
    return link, y, design


def _working_fit(design: Design, moments: Moments, link_name: str, y: np.ndarray,
                 trials: np.ndarray | None, steps: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Working residuals and weights of a fixed-effects GLM (a few IRLS steps)."""
    X, offset = design.X, design.offset
    n = trials if trials is not None else np.ones_like(y)
    target = y / n if moments.proportion else y
    if moments.gaussian and link_name == "identity":
        coef = np.linalg.lstsq(X, y - offset, rcond=None)[0] if X.shape[1] else np.zeros(0)
        return y - offset - X @ coef, np.ones_like(y)
    lo, hi = (0.02, 0.98) if moments.proportion else (moments.floor(y), np.inf)
    link = get_link(link_name)
    mu = np.clip(0.5 * target + 0.5 * np.mean(target), lo, hi)
    eta = link.link(mu)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            dmu = link.mu_eta(eta)
            w = np.maximum(dmu ** 2 / np.maximum(moments.variance(mu, n), 1e-12), 1e-12)
            z = eta - offset + (target - mu) / np.where(np.abs(dmu) > 1e-12, dmu, 1e-12)
            if X.shape[1]:
                sw = np.sqrt(w)
                if not (np.all(np.isfinite(z * sw)) and np.all(np.isfinite(sw))):
                    break  # (e.g. a log link on all-but-all zeros): keep the last step
                try:
                    coef = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
                except np.linalg.LinAlgError:
                    break
                eta = X @ coef + offset
            else:
                eta = offset.copy()
            mu = np.clip(link.inverse(eta), lo, hi)
        dmu = link.mu_eta(eta)
        safe = np.where(np.abs(dmu) > 1e-12, dmu, 1e-12)
        resid = (target - mu) / safe
        weight = dmu ** 2 / np.maximum(moments.variance(mu, n), 1e-12)
    if not (np.all(np.isfinite(resid)) and np.all(np.isfinite(weight))):
        # no usable working fit: no information (the blocks stay non-centred, the safe side)
        return np.zeros_like(resid), np.zeros_like(weight)
    return resid, weight


@dataclass(frozen=True)
class _Moments:
    """A block's moment estimates: median information ratio (smallest over its terms), the
    variance of its first term (``tau2``) and the residual dispersion within its levels."""

    ratio: float
    tau2: float = 0.0
    phi: float | None = None


def _block_ratio(block: RandomBlock, e: np.ndarray, w: np.ndarray, gaussian: bool,
                 inner: list[tuple[RandomBlock, _Moments]] = ()) -> _Moments:
    """Information ratio of a block's levels (see the module docstring).

    ``inner``: blocks nested in this one, with their moments. Their level effects do not
    average out over this block's rows but over its inner levels, so the variance of a
    level's first-term estimate gains ``tau2_inner / m_j`` (``m_j`` inner levels in level
    ``j``) and the residual dispersion is the innermost block's within-level one.
    """
    k = block.n_terms
    if k == 1:
        coefs, variances, resid_ss, used_rows, used = _one_term_fits(block, e, w)
    else:
        coefs, variances, resid_ss, used_rows, used = _level_fits(block, e, w)
    if len(coefs) < 2:
        if gaussian:
            return _Moments(0.0)  # about one row per level: not separable from the residuals
        phi = 1.0  # the family's nominal dispersion
        coefs, variances = _single_row_estimates(block, e, w)
        if len(coefs) < 2:
            return _Moments(0.0)
        used = list(np.flatnonzero(np.bincount(block.index, weights=w * block.Z[:, 0] ** 2,
                                               minlength=block.n_levels) > 1e-12))
    else:
        dof = used_rows - k * len(coefs)
        phi = resid_ss / dof if dof >= 5 else 1.0
        phi = max(phi, 1e-12) if gaussian else max(phi, 1.0)
    own_phi = phi
    inner = [(b_, m_) for b_, m_ in inner if m_.phi is not None and m_.tau2 > 0]
    extra = np.zeros(len(coefs))
    if inner and block.coef_names[0] == "(Intercept)":
        phi = min(m_.phi for _, m_ in inner) if gaussian else phi
        for inner_block, moments in inner:
            pairs = np.unique(block.index * inner_block.n_levels + inner_block.index)
            m = np.bincount(pairs // inner_block.n_levels, minlength=block.n_levels)[used]
            extra += moments.tau2 / np.maximum(m, 1)
    b, v = np.array(coefs), phi * np.array(variances)
    v[:, 0] += extra
    tau2 = np.maximum(np.var(b, axis=0, ddof=1) - np.mean(v, axis=0), 0.0)
    return _Moments(float(np.min(np.median(tau2 / v, axis=0))), float(tau2[0]), own_phi)


def _level_fits(block: RandomBlock, e: np.ndarray, w: np.ndarray) -> tuple[
        list[np.ndarray], list[np.ndarray], float, int, list[int]]:
    """Per-level weighted least squares of the working residuals on the block's terms:
    coefficients, their unscaled variances, the residual sum of squares and rows used, and
    the levels used (those with more rows than terms and a full-rank design)."""
    k = block.n_terms
    order = np.argsort(block.index, kind="stable")
    starts = np.searchsorted(block.index[order], np.arange(block.n_levels + 1))
    coefs, variances, resid_ss, used_rows, used = [], [], 0.0, 0, []
    for j in range(block.n_levels):
        rows = order[starts[j]:starts[j + 1]]
        Zj, wj = block.Z[rows], w[rows]
        gram = Zj.T @ (Zj * wj[:, None])
        if len(rows) <= k or np.linalg.matrix_rank(gram) < k:
            continue  # too few rows to estimate this level on its own
        inv = np.linalg.inv(gram)
        b = inv @ (Zj.T @ (wj * e[rows]))
        resid_ss += float(np.sum(wj * (e[rows] - Zj @ b) ** 2))
        used_rows += len(rows)
        coefs.append(b)
        variances.append(np.diag(inv))
        used.append(j)
    return coefs, variances, resid_ss, used_rows, used


def _one_term_fits(block: RandomBlock, e: np.ndarray, w: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, float, int, np.ndarray]:
    """:func:`_level_fits` for a one-term block, vectorised (a factor with 10^4 levels takes
    milliseconds instead of seconds)."""
    z, idx, L = block.Z[:, 0], block.index, block.n_levels
    count = np.bincount(idx, minlength=L)
    gram = np.bincount(idx, weights=w * z * z, minlength=L)
    cross = np.bincount(idx, weights=w * z * e, minlength=L)
    ee = np.bincount(idx, weights=w * e * e, minlength=L)
    used = np.flatnonzero((count > 1) & (gram > 0))
    b = cross[used] / gram[used]
    resid = ee[used] - 2 * b * cross[used] + b * b * gram[used]
    return (b[:, None], (1.0 / gram[used])[:, None], float(np.maximum(resid, 0.0).sum()),
            int(count[used].sum()), used)


def _single_row_estimates(block: RandomBlock, e: np.ndarray,
                          w: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-level estimates along the first covariate only (levels with very few rows)."""
    z = block.Z[:, 0]
    W = np.bincount(block.index, weights=w * z * z, minlength=block.n_levels)
    num = np.bincount(block.index, weights=w * z * e, minlength=block.n_levels)
    seen = W > 1e-12
    return ([np.array([m]) for m in num[seen] / W[seen]],
            [np.array([1.0 / x]) for x in W[seen]])


def information_ratios(design: Design, family: Family, link: str, y: np.ndarray,
                       trials: np.ndarray | None) -> tuple[float, ...]:
    """Median information ratio ``tau^2 * I_j`` of each block (see the module docstring).

    >>> import bayesmix as bm
    >>> m = bm.Model("strength ~ 1 + (1 | batch/cask)", bm.datasets.load("pastes"))
    >>> [round(r) for r in information_ratios(m.design, m.family, m.link, m.y, m.trials)]
    [0, 29]
    """
    link, y, design = _working_problem(family, link, np.asarray(y, float), design)
    e, w = _working_fit(design, family.moments, link, y, trials)
    if not family.moments.zeros_inform:  # zeros say nothing about a hurdle model's counts
        w = w * (y > 0)
    gaussian = family.moments.free_dispersion  # (estimated from the residuals)
    moments: dict[int, _Moments] = {}
    # innermost first: a nested block has more levels than the block it is nested in
    for i in sorted(range(len(design.blocks)), key=lambda i: -design.blocks[i].n_levels):
        block = design.blocks[i]
        inner = [(other, moments[j]) for j, other in enumerate(design.blocks)
                 if j in moments and nested_in(other, block)]
        moments[i] = _block_ratio(block, e, w, gaussian, inner)
    return tuple(moments[i].ratio for i in range(len(design.blocks)))


def choose_centering(design: Design, family: Family, link: str, y: np.ndarray,
                     trials: np.ndarray | None,
                     override: dict[str, bool] | None = None,
                     ar_group: str | None | bool = False,
                     ratios: tuple[float, ...] | None = None) -> tuple[bool, ...]:
    """Centred (True) or non-centred (False) for each block; ``override`` maps a grouping
    factor or block name to True/False and wins over the data-driven rule. ``ar_group``: the
    grouping of AR(1) residuals (None: one series; False: no AR(1)), see
    :func:`rule_may_centre`. ``ratios``: :func:`information_ratios` if already computed."""
    from bayesmix.errors import DataError

    override = dict(override or {})
    known = {b.name for b in design.blocks} | {b.group for b in design.blocks}
    for key, value in override.items():
        if key not in known:
            raise DataError(f"centered={{{key!r}: ...}} names no grouping factor; the model "
                            f"has {', '.join(sorted(known)) or 'none'}")
        if not isinstance(value, bool):
            raise DataError(f"centered[{key!r}] must be True or False, not {value!r}")
    if ratios is None:
        ratios = information_ratios(design, family, link, y, trials)
    forced = {i: override.get(block.name, override.get(block.group))
              for i, block in enumerate(design.blocks)
              if block.name in override or block.group in override}
    chosen = [forced[i] if i in forced else
              bool(ratio >= centre_threshold(design, i) and rule_may_centre(design, i, ar_group))
              for i, ratio in enumerate(ratios)]
    chosen = _partial_blocks_need_more(design, chosen, ratios, forced)
    return tuple(_known_cov_non_centred(block, c, override)
                 for block, c in zip(design.blocks, chosen))


def centre_threshold(design: Design, i: int) -> float:
    """The information ratio from which block ``i`` is centred (before the checks of
    :func:`_partial_blocks_need_more`): :data:`LEVEL_COVARIATE_RATIO` for a lone block with
    level-constant predictors, else :data:`CENTRE_RATIO`."""
    if len(design.blocks) == 1 and level_covariates(design, (True,)):
        return LEVEL_COVARIATE_RATIO
    return CENTRE_RATIO


def _partial_blocks_need_more(design: Design, chosen: list[bool], ratios: tuple[float, ...],
                              forced: dict[int, bool]) -> list[bool]:
    """A centred block that cannot sample all its terms as whole coefficients (a term that is
    no fixed effect, or whose fixed effect another block absorbs: crossed factors share one
    intercept) keeps the ridge hierarchical centring removes, so it needs
    :data:`PARTIAL_CENTRE_RATIO`. Crossed persons x items (bernoulli, 300 x 25; ratios 2.8 and
    41): items absorb the intercept, and persons centred as well mixed badly (min bulk ESS 53
    of 2 000 draws, 22 s of sampling). So does a correlated block: a centred multivariate
    normal under the LKJ prior has a funnel where an SD is small. sleepstudy ``(Days |
    Subject)`` (ratio 2.7) centred gave 4-5 divergent transitions in 2 and 4 chains of 1000
    draws, non-centred none."""
    for _ in range(len(chosen)):
        absorb = absorption(design, tuple(chosen))
        drop = [i for i, c in enumerate(chosen) if c and i not in forced
                and (len(absorb.get(i, {})) < design.blocks[i].n_terms
                     or design.blocks[i].correlated)
                and ratios[i] < PARTIAL_CENTRE_RATIO]
        if not drop:
            break
        for i in drop:
            chosen[i] = False
    return chosen


def _known_cov_non_centred(block: RandomBlock, centred: bool, override: dict) -> bool:
    """gr(g, cov=A) blocks are sampled as r = L_A z (a centred MvNormal would need A's
    inverse in every gradient); asking for centring there is an error, not ignored."""
    if block.cov_chol is None:
        return centred
    if override.get(block.name) is True or (block.name not in override
                                            and override.get(block.group) is True):
        from bayesmix.errors import DataError

        raise DataError(f"{block.term} has a known covariance between levels and is always "
                        f"sampled non-centred; drop centered={{{block.group!r}: True}}")
    return False


def nested_in(inner: RandomBlock, outer: RandomBlock) -> bool:
    """True when every level of ``inner`` lies within one level of ``outer`` (fewer levels)."""
    if outer.n_levels >= inner.n_levels or inner.group == outer.group:
        return False
    parents = np.full(inner.n_levels, -1)
    parents[inner.index] = outer.index
    return bool(np.all(parents[inner.index] == outer.index))


def rule_may_centre(design: Design, i: int, ar_group: str | None | bool = False) -> bool:
    """Whether the rule may centre block ``i`` at all, whatever its information ratio.

    Not a block nested in another one (see the module docstring), and not a block whose
    levels hold the series of AR(1) residuals: the ratio counts each row as independent
    information, but autocorrelated rows carry less, and the level intercepts trade off
    against the residual correlation. sleepstudy ``(Days | Subject)`` with AR(1) residuals
    within subjects (ratio 2.7), 2 x 1000 draws: 52 divergences centred, none non-centred.
    """
    block = design.blocks[i]
    if _nested(block, design.blocks):
        return False
    return ar_group is False or (ar_group is not None and block.group != ar_group)


def _nested(block: RandomBlock, blocks: tuple[RandomBlock, ...]) -> bool:
    return any(nested_in(block, other) for other in blocks if other is not block)


# -- which fixed effects a centred block absorbs (used by bayesmix.model.build) ---------------------
def absorption(design: Design, centered: tuple[bool, ...]) -> dict[int, dict[int, int]]:
    """Which centred blocks absorb which fixed effects: ``{block: {term: fixed column}}``.

    Hierarchical centring (Gelfand, Sahu & Carlin 1995): a centred block samples each level's
    whole coefficient ``beta_j + r_j`` (prior mean ``beta_j``) for every term that is also a
    fixed effect with the same column of values, instead of ``r_j``. That removes the ridge
    between ``beta_j`` and the mean of the level effects, along which both mix slowly when
    the levels are well measured (sleepstudy ``(Days || Subject)`` forced centred: bulk ESS of
    ``Days`` 250 of 2 000 draws without, ~2 000 with). Each fixed column is absorbed by at
    most one block: the centred one with the fewest levels (in a crossed design the one with
    the most rows per level, the best measured), the first of equals; known-covariance blocks
    never (they are non-centred).
    """
    if not design.has_intercept:
        return {}
    names, taken, out = list(design.coef_names), set(), {}
    order = sorted(range(len(design.blocks)), key=lambda i: (len(design.blocks[i].levels), i))
    for i in order:
        block, is_centred = design.blocks[i], centered[i]
        if not is_centred or block.cov_chol is not None:
            continue
        for k, term in enumerate(block.coef_names):
            j = names.index(term) if term in names else None
            if j is None or j in taken:
                continue
            same = np.all(block.Z[:, k] == 1) if term == "(Intercept)" else \
                np.array_equal(block.Z[:, k], design.X[:, j])
            if same:
                taken.add(j)
                out.setdefault(i, {})[k] = j
    return out


def level_covariates(design: Design, centered: tuple[bool, ...]
                     ) -> dict[int, tuple[int, ...]]:
    """Fixed columns that a centred block's levels take into their prior mean, as level
    covariates: ``{block: (fixed columns,)}``.

    A column constant within every level of a centred block (a patient's treatment, a
    school's sector, a person's ability score in a crossed design) moves into the prior mean
    of the levels' intercepts: ``beta_0 + r_j ~ N(beta_0 + x_j beta, sd)`` for the block that
    absorbs the intercept, ``r_j ~ N(x_j beta, sd)`` for another centred block. Left in the
    rows' sum, such a slope trades off against the level intercepts along a ridge as the
    intercept did (epilepsy Poisson, hand-written PyMC models, 2 x 1000 draws, seeds 1 and 2:
    min bulk ESS of the slopes 72-85 non-centred, 70-92 centred with the intercept absorbed,
    964-1303 with the patient-level covariates absorbed too; sampling time halved). In a
    crossed logistic model of 1000 persons x 40 items whose items absorb the intercept, the
    person-level ``ability_z`` had a bulk ESS of 377 of 2000 draws while it stayed in the
    rows' sum (``docs/performance.md``). The block absorbing the intercept chooses first;
    each column goes to one block.
    """
    absorb = absorption(design, centered)
    if not absorb:
        return {}
    j0 = design.coef_names.index("(Intercept)")
    taken = {j for terms in absorb.values() for j in terms.values()}
    first = [i for i, terms in absorb.items() if j0 in terms.values()]
    if not first:
        return {}
    others = [i for i in sorted(range(len(design.blocks)),
                                key=lambda i: (design.blocks[i].n_levels, i))
              if centered[i] and i not in first and not design.blocks[i].correlated
              and "(Intercept)" in design.blocks[i].coef_names
              and design.blocks[i].cov_chol is None]
    out: dict[int, tuple[int, ...]] = {}
    for i in first + others:
        block = design.blocks[i]
        # a column is constant within levels when each row equals its level's (any) value
        per_level = level_values(block, design.X)
        same = np.all(per_level[block.index] == design.X, axis=0)
        cols = [j for j in range(len(design.coef_names))
                if same[j] and j not in taken and np.ptp(design.X[:, j]) > 0]
        if cols:
            out[i] = tuple(cols)
            taken |= set(cols)
    return out


def level_values(block: RandomBlock, X: np.ndarray) -> np.ndarray:
    """Each level's value of level-constant columns ``X`` (rows x k); 0 for levels without
    rows (their prior mean then is the intercept's; they have no likelihood)."""
    out = np.zeros((block.n_levels, X.shape[1]))
    out[block.index] = X
    return out
