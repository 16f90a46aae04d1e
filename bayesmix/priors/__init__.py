"""Default priors scaled to the data, and user overrides (pure numpy, no PyMC model code).

Defaults. ``g`` is the link and ``s`` the natural unit of the linear predictor: ``s = sd(y)``
on the identity scale of gaussian, student_t and gamma, ``sd(log y)`` for lognormal,
``sd(y) / mean(y)^2`` for gamma's inverse link, and 1 on a logit, probit, cloglog or log
scale (which are unit-free):

=====================  ========================================================================
parameter              default
=====================  ========================================================================
``(Intercept)``        Normal(g(mean y) - mean offset, 2.5 s), for the intercept at the means of
                       the predictors (predictors are centred internally, as in brms);
                       lognormal: mean(log y); student_t: the median instead of the mean;
                       binomial types: g(mean of y / n). Ordinal families have no intercept.
coefficient ``x``      Normal(0, 2.5 s / sd(x))
group SD of term ``z``  HalfNormal(s / sd(z)); sd(z) := 1 for intercepts and constant columns
correlations           LKJ(eta=1) on each block's correlation matrix
``sigma``              Exponential(lam = 1 / sd(y)); lognormal: 1 / sd(log y)
``nu`` (student_t)     Gamma(alpha=2, beta=0.1), as brms (mean 20; heavy tails stay possible)
``shape`` (gamma),     Exponential(lam=0.01). These are precisions (large = less noise): the
``phi`` (beta, beta_   prior is flat near 0 (brms's Gamma(0.01, 0.01) piles its mass at 0, so
binomial), ``theta``   its prior predictive draws are degenerate) and decays beyond a few
(negative binomials)   hundred, so that data close to the limiting model (Poisson, binomial)
                       keep NUTS in a bounded region instead of a flat ridge to infinity.
``zi``, ``hu``         Beta(1, 1): uniform on the probability of a structural/hurdle zero
``cutpoints``          Normal(0, 5) on each cutpoint, restricted to increasing order (the
                       cutpoints of the centred predictors, as for the intercept)
=====================  ========================================================================

Override with ``priors={key: Prior(...)}``; keys are a coefficient name (``"Days"``,
``"(Intercept)"``), ``"term|group"`` for one SD (``"1|Subject"``, ``"Days|Subject"``),
``"cor|group"``, a family parameter (``"sigma"``, ``"nu"``, ``"shape"``, ``"phi"``,
``"theta"``, ``"zi"``, ``"hu"``, ``"cutpoints"``), or a class: ``"b"`` (all coefficients
but the intercept), ``"sd"`` (all SDs), ``"cor"`` (all correlations). A family parameter's
prior must live on its support: positive for ``sigma``..``theta``, (0, 1) for ``zi``/``hu``
(Beta or Uniform), the real line for ``cutpoints``.

Distributional and nonlinear parameters (:mod:`bayesmix.data.linpred`) prefix the same keys with
their name: ``"sigma:x"``, ``"sigma:(Intercept)"``, ``"sigma:1|g"``, ``"sigma:cor|g"`` and
the classes ``"sigma:b"``, ``"sigma:sd"``, ``"sigma:cor"``; the class keys without a prefix
apply to the mean's formula only.
"""

from bayesmix.priors.defaults import (
    ar_prior_specs,
    check_ar_prior,
    cutpoint_labels,
    data_scale,
    default_priors,
    resolve_priors,
)
from bayesmix.priors.predictors import extend_priors, finish_priors, local_priors
from bayesmix.priors.prior import KNOWN_DISTRIBUTIONS, Prior, PriorSpec, as_prior, prior_table

__all__ = ["Prior", "PriorSpec", "default_priors", "resolve_priors", "KNOWN_DISTRIBUTIONS",
           "cutpoint_labels", "prior_table", "as_prior", "ar_prior_specs", "check_ar_prior",
           "extend_priors", "finish_priors", "local_priors", "data_scale"]
