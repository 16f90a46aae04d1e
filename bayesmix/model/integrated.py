"""Gaussian random effects integrated out of the likelihood (the sampler never sees them).

For a gaussian model with identity link whose random effects all belong to one grouping
factor, ``y_j = X_j beta + Z_j r_j + e_j`` with ``r_j ~ N(0, L L')`` and ``e_j ~ N(0, s^2 I)``
(``j`` a level, ``L`` the block-diagonal Cholesky factor of the terms' covariance), the
likelihood of the hyperparameters is available in closed form: ``y_j ~ N(X_j beta,
s^2 I + Z_j L L' Z_j')``. By Woodbury's identity it needs only, per level, the small
cross-products ``Z_j'Z_j``, ``Z_j'X_j``, ``Z_j'y_j`` (sufficient statistics, computed once),
and a ``q x q`` Cholesky factor per level and gradient, with ``q`` the number of terms:

* ``M_j = s^2 I + L' Z_j'Z_j L = C_j C_j'`` and ``u_j = L' Z_j' (y_j - X_j beta)``;
* ``log p(y) = -1/2 [n log 2 pi + 2 (n - q J) log s + 2 sum log diag C_j
  + (r'r - sum |C_j^-1 u_j|^2) / s^2]``.

The sampler then explores ``beta``, the group SDs and correlations and ``s`` only: no
funnel between an SD and its level effects, and a gradient that costs ``O(J q^3)`` instead of
``O(n)``. The level effects are drawn afterwards, exactly, from their conditional posterior
given each draw (:func:`draw_level_effects`): with ``r_j = L eta_j``, ``eta_j | ... ~
N(M_j^-1 u_j, s^2 M_j^-1)``. The joint draws are the same distribution the conditional model
samples; everything downstream (``ranef``, LOO, predictions) sees ordinary ``r_<block>``.

With normal priors on the fixed effects (the defaults), ``beta`` can be integrated out as
well (:class:`FixedPrior`; the matrix determinant lemma on ``H = diag(sd^-2) + X'V^-1X``), and
is then drawn exactly before the level effects. Whether that pays depends on the data
(2 chains x 1000 draws, nutpie, bulk ESS of the slowest non-level parameter, seeds 1 and 2):
where the levels are well measured a fixed effect's spread is set by its SD, a funnel when
both are sampled, and integrating ``beta`` out pays (sleepstudy ``(Days || Subject)``: 1179
-> 2126; ``(Days | Subject)``: 1143 -> 1240); where they are not, fewer sampled dimensions
explore the SDs' long tails worse (mathachieve ``(SES | School)``, SES-slope SD: 588/547 ->
309/202; radon: 1128/520 -> 770/847). :class:`bayesmix.Model` therefore integrates ``beta``
out when a block's information ratio reaches the centring threshold
(:data:`bayesmix.model.parametrization.CENTRE_RATIO`), as centring absorbs it in the conditional
model.

Two nested random intercepts (``(1 | a/b)``: :class:`NestedStats`, :func:`nested_loglik`)
are integrated out in two scalar Woodbury steps, the inner levels and then each outer level,
and drawn afterwards outer first. pastes (``strength ~ 1 + (1 | batch/cask)``, 2 chains x
1000 draws, seeds 1 and 2): min bulk ESS 545-874 with no or one divergence, against 20-85 with
20-26 divergences when sampled, and a third of the sampling time.

The loops over terms below are unrolled on purpose: ``q`` is small (at most
:data:`MAX_TERMS`), and element-wise expressions over the levels fuse into one compiled loop,
where a batched LAPACK call per ``2 x 2`` matrix would cost more than the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from bayesmix import varnames
from bayesmix.data.design import Design

__all__ = ["MAX_TERMS", "MAX_FIXED", "FixedPrior", "MarginalStats", "NestedStats",
           "marginal_obstacle", "nested_pair", "crossed_nested_pair", "fixed_prior",
           "sufficient_stats", "nested_stats", "marginal_loglik", "nested_loglik",
           "draw_level_effects", "draw_nested_effects"]

MAX_TERMS = 5  # the unrolled Cholesky's graph grows as q^3
MAX_FIXED = 12  # fixed effects integrated out too up to this many (p^3 graph, p^2 q per level)


def marginal_obstacle(design: Design, family: str, link: str, *, predictors: tuple = (),
                      nonlinear: Any = None, autocor: Any = None,
                      weights: Any = None) -> str | None:
    """Why the random effects cannot be integrated out (None when they can).

    Examples
    --------
    >>> import bayesmix as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> marginal_obstacle(m.design, m.family, "identity") is None
    True
    >>> marginal_obstacle(m.design, bm.get_family("poisson"), "log")
    'the family is not gaussian with identity link'
    """
    blocks = design.blocks
    if not family.normal or link != "identity":
        return "the family is not gaussian with identity link"
    if predictors or nonlinear is not None:
        return "the model has distributional or nonlinear parameters"
    if autocor is not None:
        return "the residuals are autocorrelated"
    if weights is not None:
        return "the model has observation weights"
    if not blocks:
        return "the model has no random effects"
    first = blocks[0]
    if nested_pair(design) is not None:
        return None
    if any(b.group != first.group or not np.array_equal(b.index, first.index)
           or b.n_levels != first.n_levels for b in blocks[1:]):
        if crossed_nested_pair(design) is not None:  # given the other factors' effects
            return None
        return ("the random effects belong to more than one grouping factor (only one, or a "
                "random intercept nested in another as in (1 | a/b), is integrated out)")
    if any(b.cov_chol is not None for b in blocks):
        return "a block has a known covariance between levels (gr(g, cov=A))"
    q = sum(b.n_terms for b in blocks)
    if q > MAX_TERMS:
        return f"the grouping factor has {q} terms (at most {MAX_TERMS} are integrated out)"
    return None


def nested_pair(design: Design) -> tuple[int, int] | None:
    """``(outer, inner)`` block indices when the random effects are two random intercepts, the
    inner factor's levels each within one level of the outer (``(1 | a/b)``), else None."""
    from bayesmix.model.parametrization import nested_in

    blocks = design.blocks
    if len(blocks) != 2 or not all(b.intercept_only and b.cov_chol is None for b in blocks):
        return None
    for outer, inner in ((0, 1), (1, 0)):
        if nested_in(blocks[inner], blocks[outer]):
            return outer, inner
    return None


def crossed_nested_pair(design: Design) -> tuple[int, int] | None:
    """``(outer, inner)`` block indices of two random intercepts, the inner factor's levels
    each within one level of the outer, among further blocks of other factors (``(1 | dept)
    + (1 | lecturer) + (1 | student)``): the pair is integrated out given the others
    (:mod:`bayesmix.model.integrated_pair`). The pair whose outer factor has the fewest levels (then the
    inner one); each factor of the pair must have no other block. None if there is no such
    pair, or no other block."""
    from bayesmix.model.parametrization import nested_in

    blocks = design.blocks
    if len(blocks) < 3:
        return None
    alone = [i for i, b in enumerate(blocks) if b.intercept_only and b.cov_chol is None
             and sum(c.group == b.group for c in blocks) == 1]
    pairs = [(o, i) for o in alone for i in alone if o != i and nested_in(blocks[i], blocks[o])]
    return min(pairs, key=lambda p: (blocks[p[0]].n_levels, blocks[p[1]].n_levels)) \
        if pairs else None


@dataclass(frozen=True, eq=False)
class NestedStats:
    """Sufficient statistics of a nested pair of random intercepts (``(1 | a/b)``): per inner
    level its rows, response sum and column sums, its outer level; the fixed part's totals.
    The response has the offset subtracted."""

    n_inner: np.ndarray  # (K,)
    Sy: np.ndarray  # (K,)
    SX: np.ndarray  # (K, p)
    outer_of: np.ndarray  # (K,) int
    n_outer: int
    XtX: np.ndarray  # (p, p)
    Xty: np.ndarray  # (p,)
    totals: np.ndarray  # (y'y, n)
    pair: tuple[int, int]  # (outer, inner) block indices

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("n_inner", "Sy", "SX", "outer_of", "XtX", "Xty",
                                              "totals")}


def nested_stats(design: Design, y: np.ndarray) -> NestedStats:
    """The cross-products :func:`nested_loglik` needs (once).

    Examples
    --------
    >>> import bayesmix as bm
    >>> m = bm.Model("strength ~ 1 + (1 | batch/cask)", bm.datasets.load("pastes"))
    >>> nested_stats(m.design, m.y).Sy.shape
    (30,)
    """
    pair = nested_pair(design)
    if pair is None:
        raise ValueError("the design has no nested pair of random intercepts")
    outer, inner = design.blocks[pair[0]], design.blocks[pair[1]]
    K, X = inner.n_levels, design.X
    yt = offset_response(design, y)
    outer_of = np.zeros(K, dtype=np.int64)
    outer_of[inner.index] = outer.index
    SX = np.stack([np.bincount(inner.index, weights=X[:, k], minlength=K)
                   for k in range(X.shape[1])], axis=1) if X.shape[1] else np.zeros((K, 0))
    return NestedStats(n_inner=np.bincount(inner.index, minlength=K).astype(float),
                       Sy=np.bincount(inner.index, weights=yt, minlength=K), SX=SX,
                       outer_of=outer_of, n_outer=outer.n_levels, pair=pair,
                       **_fixed_totals(X, yt))


def nested_loglik(data: dict[str, Any], beta: Any, sd_outer: Any, sd_inner: Any, sigma: Any,
                  n_outer: int) -> Any:
    """Marginal log-likelihood of ``(1 | a/b)`` as a PyTensor scalar: two nested Woodbury
    steps, each a scalar per level. With ``S_k`` the residual sum of inner level ``k``,
    ``d_k = s^2 + t_b^2 n_k``, ``A_j = sum n_k / d_k`` and ``B_j = sum S_k / d_k`` over the
    inner levels of outer level ``j``: ``log det V = sum_k ((n_k - 1) log s^2 + log d_k) +
    sum_j log(1 + t_a^2 A_j)`` and ``r'V^-1 r = (r'r - t_b^2 sum S_k^2 / d_k) / s^2 - t_a^2
    sum B_j^2 / (1 + t_a^2 A_j)``."""
    import pytensor.tensor as pt

    n_k, Sy, outer_of = data["n_inner"], data["Sy"], data["outer_of"]
    yty, n = data["totals"][0], data["totals"][1]
    if beta is None:
        S, rr = Sy, yty
    else:
        S = Sy - pt.dot(data["SX"], beta)
        rr = yty - 2.0 * pt.dot(beta, data["Xty"]) + pt.dot(beta, pt.dot(data["XtX"], beta))
    s2, ta2, tb2 = sigma ** 2, sd_outer ** 2, sd_inner ** 2
    d = s2 + tb2 * n_k
    A = pt.inc_subtensor(pt.zeros(n_outer)[outer_of], n_k / d)
    B = pt.inc_subtensor(pt.zeros(n_outer)[outer_of], S / d)
    e = 1.0 + ta2 * A
    logdet = pt.sum((n_k - 1.0) * pt.log(s2) + pt.log(d)) + pt.sum(pt.log(e))
    quad = (rr - tb2 * pt.sum(S ** 2 / d)) / s2 - ta2 * pt.sum(B ** 2 / e)
    return -0.5 * (n * np.log(2.0 * np.pi) + logdet + quad)


def draw_nested_effects(draws: xr.Dataset, design: Design, stats: NestedStats,
                        rng: np.random.Generator) -> xr.Dataset:
    """Add ``r_<outer>`` and ``r_<inner>``: per posterior draw, the outer intercepts from their
    conditional posterior with the inner ones integrated out (precision ``1/t_a^2 + A_j``,
    mean ``B_j / precision``), then the inner ones given them (precision ``1/t_b^2 + n_k /
    s^2``, mean ``(S_k - n_k a_j) / s^2 / precision``)."""

    outer, inner = (design.blocks[i] for i in stats.pair)
    sigma = draws["sigma"].transpose("chain", "draw").values[..., None]
    ta = draws[varnames.sd(outer)].transpose("chain", "draw", ...).values.reshape(sigma.shape)
    tb = draws[varnames.sd(inner)].transpose("chain", "draw", ...).values.reshape(sigma.shape)
    S = np.broadcast_to(stats.Sy, sigma.shape[:2] + stats.Sy.shape[-1:])  # or per draw
    if design.coef_names:
        beta = draws["fixef"].transpose("chain", "draw", "coef").values
        S = S - beta @ stats.SX.T
    d = sigma ** 2 + tb ** 2 * stats.n_inner
    J = stats.n_outer

    def per_outer(v: np.ndarray) -> np.ndarray:  # sums over each outer level's inner levels
        flat = v.reshape(-1, v.shape[-1])
        out = np.zeros((J, flat.shape[0]))
        np.add.at(out, stats.outer_of, flat.T)
        return out.T.reshape(v.shape[:-1] + (J,))

    prec_a = 1.0 / ta ** 2 + per_outer(np.broadcast_to(stats.n_inner / d, d.shape))
    a = per_outer(S / d) / prec_a + rng.standard_normal(prec_a.shape) / np.sqrt(prec_a)
    prec_b = 1.0 / tb ** 2 + stats.n_inner / sigma ** 2
    mean_b = (S - stats.n_inner * a[..., stats.outer_of]) / sigma ** 2 / prec_b
    b = mean_b + rng.standard_normal(mean_b.shape) / np.sqrt(prec_b)
    result = {}
    for block, values in ((outer, a), (inner, b)):
        dims = ("chain", "draw", varnames.level_dim(block), varnames.term_dim(block))
        result[varnames.ranef(block)] = xr.DataArray(
            values[..., None], dims=dims,
            coords={dims[2]: list(block.levels), dims[3]: list(block.coef_names)})
    return draws.assign(result)


@dataclass(frozen=True, eq=False)
class FixedPrior:
    """Independent normal priors on the fixed effects in the sampler's coordinates ``g``
    (the intercept at the predictors' means, then the slopes): ``g ~ N(mean, diag(sd^2))``
    and ``fixef = T g``."""

    mean: np.ndarray  # (p,)
    sd: np.ndarray  # (p,)
    T: np.ndarray  # (p, p)


@dataclass(frozen=True, eq=False)
class MarginalStats:
    """Per-level cross-products of one grouping factor's terms (``q`` of them, all blocks
    concatenated) with themselves, the fixed-effects columns and the response; and the
    fixed part's totals. The response has the offset subtracted.

    With ``fixed`` (normal priors on every fixed effect) the fixed effects are integrated
    out too: the columns are then ``X T`` and the response ``y - X T mean``.
    """

    ZtZ: np.ndarray  # (J, q, q)
    ZtX: np.ndarray  # (J, q, p)
    Zty: np.ndarray  # (J, q)
    XtX: np.ndarray  # (p, p)
    Xty: np.ndarray  # (p,)
    totals: np.ndarray  # (y'y, n): data inputs, so the compiled model does not depend on n
    fixed: FixedPrior | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("ZtZ", "ZtX", "Zty", "XtX", "Xty", "totals")}


def offset_response(design: Design, y: np.ndarray) -> np.ndarray:
    """The response with the offset subtracted."""
    return np.asarray(y, dtype=float) - (design.offset if design.has_offset else 0.0)


def _fixed_totals(X: np.ndarray, yt: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed part's cross-products and ``(y'y, n)``, as both statistics store them."""
    return {"XtX": X.T @ X, "Xty": X.T @ yt, "totals": np.array([yt @ yt, float(len(yt))])}


def _stacked_Z(design: Design) -> np.ndarray:
    return np.hstack([b.Z for b in design.blocks])


def fixed_prior(design: Design, priors: dict[str, Any]) -> FixedPrior | None:
    """The fixed effects' priors as a :class:`FixedPrior` when they are all normal (then the
    fixed effects can be integrated out as well), else None.

    The intercept's prior is on the mean response at the predictors' means (as
    :func:`bayesmix.model.build._fixed_part` samples it): ``fixef[0] = g[0] - means @ g[1:]``.
    """
    names = list(design.coef_names)
    if not names or len(names) > MAX_FIXED:
        return None
    chosen = [priors[n] for n in names]
    if any(p.dist != "Normal" or set(p.kwargs) != {"mu", "sigma"} for p in chosen):
        return None
    T = np.eye(len(names))
    if design.has_intercept and len(names) > 1:
        j0 = names.index("(Intercept)")
        others = [j for j in range(len(names)) if j != j0]
        T[j0, others] = -design.X[:, others].mean(axis=0)
    return FixedPrior(mean=np.array([p.kwargs["mu"] for p in chosen]),
                      sd=np.array([p.kwargs["sigma"] for p in chosen]), T=T)


def sufficient_stats(design: Design, y: np.ndarray,
                     priors: dict[str, Any] | None = None) -> MarginalStats:
    """The cross-products :func:`marginal_loglik` needs (``O(n q (q + p))``, once). With
    ``priors`` all normal on the fixed effects, in the coordinates that integrate them out.

    Examples
    --------
    >>> import bayesmix as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> sufficient_stats(m.design, m.y).ZtZ.shape
    (18, 2, 2)
    """
    idx, J = design.blocks[0].index, design.blocks[0].n_levels
    fixed = None if priors is None else fixed_prior(design, priors)
    Z, X = _stacked_Z(design), design.X
    yt = offset_response(design, y)
    if fixed is not None:  # g - mean ~ N(0, diag(sd^2)) multiplies the columns X T
        X = X @ fixed.T
        yt = yt - X @ fixed.mean
    q, p = Z.shape[1], X.shape[1]

    def per_level(w: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=w, minlength=J)

    ZtZ = np.empty((J, q, q))
    for a in range(q):
        for b in range(a, q):
            ZtZ[:, a, b] = ZtZ[:, b, a] = per_level(Z[:, a] * Z[:, b])
    ZtX = np.empty((J, q, p))
    for a in range(q):
        for k in range(p):
            ZtX[:, a, k] = per_level(Z[:, a] * X[:, k])
    Zty = np.stack([per_level(Z[:, a] * yt) for a in range(q)], axis=1)
    return MarginalStats(ZtZ=ZtZ, ZtX=ZtX, Zty=Zty, fixed=fixed, **_fixed_totals(X, yt))


def _cholesky(M: list[list[Any]], jitter: Any) -> list[list[Any]]:
    """Unrolled Cholesky factor of ``M + jitter I`` (nested lists of tensors, lower part
    used; ``None`` entries are zeros)."""
    import pytensor.tensor as pt

    q = len(M)
    C: list[list[Any]] = [[None] * q for _ in range(q)]
    for j in range(q):
        s = M[j][j] + jitter
        for m in range(j):
            s = s - C[j][m] ** 2
        C[j][j] = pt.sqrt(s)
        for i in range(j + 1, q):
            t = M[i][j] if M[i][j] is not None else pt.zeros_like(C[j][j])
            for m in range(j):
                t = t - C[i][m] * C[j][m]
            C[i][j] = t / C[j][j]
    return C


def _forward(C: list[list[Any]], u: list[Any]) -> list[Any]:
    """``C^-1 u`` for the unrolled lower-triangular ``C``."""
    w: list[Any] = []
    for i in range(len(C)):
        t = u[i] if u[i] is not None else 0.0
        for m in range(i):
            t = t - C[i][m] * w[m]
        w.append(t / C[i][i])
    return w


def _lsum(terms: list[Any]) -> Any:
    terms = [t for t in terms if t is not None]
    return sum(terms[1:], terms[0]) if terms else None


def _times(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a * b


def marginal_loglik(data: dict[str, Any], beta: Any, L: list[list[Any]], sigma: Any,
                    prior_sd: np.ndarray | None = None) -> Any:
    """The marginal log-likelihood as a PyTensor scalar (see the module docstring).

    ``data``: the :class:`MarginalStats` arrays as tensors; ``beta``: the fixed effects
    (None without any, or when they are integrated out); ``L``: the ``q x q``
    lower-triangular factor of the terms' covariance as nested lists of scalar tensors,
    ``None`` where structurally zero. ``prior_sd`` (the stats' ``fixed.sd``) integrates the
    fixed effects out as well: ``y ~ N(X T mean, V + X T diag(sd^2) T' X')`` by the matrix
    determinant lemma, with ``H = diag(sd^-2) + X'V^-1 X`` (``p x p``).
    """
    import pytensor.tensor as pt

    A, Zty, ZtX = data["ZtZ"], data["Zty"], data["ZtX"]
    yty, n = data["totals"][0], data["totals"][1]
    q = len(L)
    if beta is None:
        v = [Zty[:, a] for a in range(q)]
        rr = yty
    else:
        v = [Zty[:, a] - pt.dot(ZtX[:, a, :], beta) for a in range(q)]
        rr = yty - 2.0 * pt.dot(beta, data["Xty"]) + pt.dot(beta, pt.dot(data["XtX"], beta))

    def lt(vectors: list[Any]) -> list[Any]:  # L' v
        return [_lsum([_times(L[a][k], vectors[a]) for a in range(q)]) for k in range(q)]

    AL = [[_lsum([_times(A[:, a, b], L[b][m]) for b in range(q)]) for m in range(q)]
          for a in range(q)]
    M = [[_lsum([_times(L[a][k], AL[a][m]) for a in range(q)]) for m in range(q)]
         for k in range(q)]
    C = _cholesky(M, sigma ** 2)
    w = _forward(C, lt(v))
    fit = sum((pt.sum(wi ** 2) for wi in w[1:]), pt.sum(w[0] ** 2))
    logdet_c = sum((pt.sum(pt.log(C[i][i])) for i in range(1, q)), pt.sum(pt.log(C[0][0])))
    n_levels = A.shape[0]
    logdet = 2.0 * (n - q * n_levels) * pt.log(sigma) + 2.0 * logdet_c
    out = -0.5 * (n * np.log(2.0 * np.pi) + logdet + (rr - fit) / sigma ** 2)
    if prior_sd is None:
        return out
    p = len(prior_sd)
    G = [_forward(C, lt([ZtX[:, a, k] for a in range(q)])) for k in range(p)]
    XtX, Xty = data["XtX"], data["Xty"]
    H = [[None] * p for _ in range(p)]
    for k in range(p):
        for m in range(k + 1):
            cross = _lsum([pt.sum(G[k][i] * G[m][i]) for i in range(q)])
            H[k][m] = (XtX[k, m] - cross) / sigma ** 2
        H[k][k] = H[k][k] + 1.0 / prior_sd[k] ** 2
    b = [(Xty[k] - _lsum([pt.sum(G[k][i] * w[i]) for i in range(q)])) / sigma ** 2
         for k in range(p)]
    R = _cholesky(H, 0.0)
    c = _forward(R, b)
    return out + 0.5 * sum(ci ** 2 for ci in c) - sum(pt.log(R[k][k]) for k in range(p)) \
        - float(np.sum(np.log(prior_sd)))


def _factor(draws: xr.Dataset, design: Design, draw_slice: slice, chain: int) -> np.ndarray:
    """Per draw, the block-diagonal factor ``L`` (draws, q, q) from ``sd_``/``cor_``."""
    q = sum(b.n_terms for b in design.blocks)
    sizes = draws.sizes["draw"]
    n = len(range(*draw_slice.indices(sizes)))
    L = np.zeros((n, q, q))
    start = 0
    for block in design.blocks:
        k = block.n_terms
        sd = draws[varnames.sd(block)].isel(chain=chain, draw=draw_slice).values.reshape(n, k)
        part = np.zeros((n, k, k))
        if block.correlated:
            cor = draws[varnames.cor(block)].isel(chain=chain, draw=draw_slice).values
            part = sd[:, :, None] * np.linalg.cholesky(cor)
        else:
            part[:, np.arange(k), np.arange(k)] = sd
        L[:, start:start + k, start:start + k] = part
        start += k
    return L


def draw_level_effects(draws: xr.Dataset, design: Design, stats: MarginalStats,
                       rng: np.random.Generator, chunk: int = 250) -> xr.Dataset:
    """Add ``r_<block>`` to a posterior: one exact draw from the level effects' conditional
    posterior per posterior draw of ``fixef``, ``sd_``/``cor_`` and ``sigma``. When the
    fixed effects were integrated out too (``stats.fixed``), ``fixef`` is drawn first, from
    its conditional posterior given the SDs, correlations and ``sigma``.

    Examples
    --------
    >>> fit.posterior["r_Subject"].dims  # doctest: +SKIP
    ('chain', 'draw', 'Subject', 'Subject__term')
    """

    n_chain, n_draw = draws.sizes["chain"], draws.sizes["draw"]
    J, q = stats.Zty.shape
    p = stats.ZtX.shape[2]
    fixed = stats.fixed
    out = np.empty((n_chain, n_draw, J, q))
    fixef = np.empty((n_chain, n_draw, p)) if fixed is not None else None
    for c in range(n_chain):
        for s in range(0, n_draw, chunk):
            sl = slice(s, min(s + chunk, n_draw))
            L = _factor(draws, design, sl, c)
            sigma = draws["sigma"].isel(chain=c, draw=sl).values
            s2 = (sigma ** 2)[:, None, None, None]
            M = np.einsum("dak,jab,dbl->djkl", L, stats.ZtZ, L) + s2 * np.eye(q)
            C = np.linalg.cholesky(M)
            v = np.broadcast_to(stats.Zty, (len(sigma), J, q))
            if fixed is not None:  # g - mean | ... ~ N(H^-1 b, H^-1), then fixef = T g
                g = _draw_fixed(stats, fixed, L, C, v, sigma, rng)
                fixef[c, sl] = (g + fixed.mean) @ fixed.T.T
                v = v - np.einsum("jap,dp->dja", stats.ZtX, g)
            elif design.coef_names:
                beta = draws["fixef"].isel(chain=c, draw=sl).transpose(..., "coef").values
                v = v - np.einsum("jap,dp->dja", stats.ZtX, beta)
            u = np.einsum("dak,dja->djk", L, v)
            mean = np.linalg.solve(M, u[..., None])[..., 0]
            eps = rng.standard_normal(u.shape)
            noise = np.linalg.solve(np.swapaxes(C, -1, -2), eps[..., None])[..., 0]
            eta = mean + sigma[:, None, None] * noise
            out[c, sl] = np.einsum("dak,djk->dja", L, eta)
    result, start = {}, 0
    if fixef is not None:
        result["fixef"] = xr.DataArray(fixef, dims=("chain", "draw", "coef"),
                                       coords={"coef": list(design.coef_names)})
    for block in design.blocks:
        k = block.n_terms
        dims = ("chain", "draw", varnames.level_dim(block), varnames.term_dim(block))
        result[varnames.ranef(block)] = xr.DataArray(
            out[..., start:start + k].copy(), dims=dims,
            coords={dims[2]: list(block.levels), dims[3]: list(block.coef_names)})
        start += k
    return draws.assign(result)


def _draw_fixed(stats: MarginalStats, fixed: FixedPrior, L: np.ndarray, C: np.ndarray,
                v: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per draw, ``g - mean`` from its conditional posterior (see :func:`marginal_loglik`)."""
    w = np.linalg.solve(C, np.einsum("dak,dja->djk", L, v)[..., None])[..., 0]  # (d, J, q)
    G = np.linalg.solve(C, np.einsum("dak,jap->djkp", L, stats.ZtX))  # (d, J, q, p)
    s2 = (sigma ** 2)[:, None, None]
    H = (stats.XtX - np.einsum("djkp,djkm->dpm", G, G)) / s2 \
        + np.diag(1.0 / fixed.sd ** 2)
    b = (stats.Xty - np.einsum("djkp,djk->dp", G, w)) / s2[..., 0]
    R = np.linalg.cholesky(H)
    mean = np.linalg.solve(H, b[..., None])[..., 0]
    eps = rng.standard_normal(b.shape)
    return mean + np.linalg.solve(np.swapaxes(R, -1, -2), eps[..., None])[..., 0]
