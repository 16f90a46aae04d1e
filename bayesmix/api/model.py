"""The user-facing :class:`Model`: a :class:`~bayesmix.model.ModelSpec` that can be fitted.

The pipeline is visible and every stage is public:
``parse_formula`` (:mod:`bayesmix.spec`) -> ``make_design`` (:mod:`bayesmix.data`) -> family
check (:mod:`bayesmix.families`) -> ``default_priors``/``resolve_priors``
(:mod:`bayesmix.priors`) -> ``build_model`` (:mod:`bayesmix.model`) -> ``sample_model``
(:mod:`bayesmix.inference`) -> :class:`~bayesmix.FitResult` (tables in
:mod:`bayesmix.results`, analyses in the layers above).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bayesmix.model.model import ModelSpec

if TYPE_CHECKING:
    from bayesmix.api.fit import FitResult
    from bayesmix.inference.ml import MLResult

__all__ = ["Model"]


class Model(ModelSpec):
    """A Bayesian mixed model: lme4 formula, data and family.

    Parameters
    ----------
    formula : str, Formula or NonLinear
        lme4/brms syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``; a
        :class:`~bayesmix.Formula` adds formulas for family parameters
        (``bm.Formula("y ~ x", "sigma ~ x")``), a :class:`~bayesmix.NonLinear` makes the
        mean a nonlinear function of parameters with their own formulas.
    data : pandas.DataFrame
        Never modified; rows with missing values in used columns are dropped with a warning.
    family : str
        ``"gaussian"`` (default), ``"student_t"``, ``"lognormal"``, ``"gamma"``,
        ``"bernoulli"``, ``"binomial"``, ``"beta_binomial"``, ``"beta"``, ``"poisson"``,
        ``"negativebinomial"``, ``"zero_inflated_poisson"``,
        ``"zero_inflated_negativebinomial"``, ``"hurdle_poisson"``,
        ``"hurdle_negativebinomial"`` or ``"cumulative"`` (ordinal); see
        :mod:`bayesmix.families` for their parametrisations.
    link : str, optional
        Defaults to the family's canonical link.
    priors : dict, optional
        Overrides, e.g. ``{"Days": bm.Prior("Normal", mu=0, sigma=5)}``; see ``model.priors``.
    centered : dict, optional
        Force the parametrisation per grouping factor, e.g. ``{"Subject": False}``; by
        default it is chosen from the data (see :mod:`bayesmix.model.parametrization`).
    na_action : {"drop", "raise"}
    weights : str, optional
        A column of positive observation weights: each row's log-likelihood is multiplied by
        its weight (brms's ``weights()``; a weight of 2 counts the row twice). Rows with a
        missing weight are handled like other missing data. Stored as ``model.weights``.
    data2 : dict, optional
        Matrices the formula names, e.g. ``{"A": A}`` for ``(1 | gr(animal, cov=A))``: a
        DataFrame whose index and columns are the levels (see :mod:`bayesmix.data.structured`).
    autocor : AR1, optional
        ``bm.AR1(time="Days", group="Subject")``: AR(1) residuals within each group (gaussian
        family; marginal SD ``sigma``, correlation ``ar ** |t_i - t_j|`` as in nlme).
    marginalize : bool, optional
        Integrate the level effects out of the likelihood and draw them exactly after
        sampling (:mod:`bayesmix.model.integrated`): the sampler explores the fixed effects, SDs,
        correlations and ``sigma`` only, which mixes several times better per second. By
        default on where possible: gaussian family with identity link, every random term on
        one grouping factor (at most 5 terms) or two nested random intercepts (``(1 |
        a/b)``), no AR(1), weights or further formulas, and ``centered`` not given. Such a
        nested pair beside other factors (``(1 | student) + (1 | lecturer) + (1 | dept)``,
        lecturers within departments) is integrated out given the other factors' effects,
        which are sampled, non-centred unless ``centered`` names them (it may, and the pair
        stays integrated out; :mod:`bayesmix.model.integrated_pair`, ``model.integrated_blocks``).
        ``True`` where impossible raises a ``FamilyError`` saying why. Stored as
        ``model.marginal``.

    Examples
    --------
    >>> import bayesmix as bm
    >>> model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
    >>> model.priors.loc["Days", "prior"]
    'Normal(mu=0, sigma=48.89)'
    """

    def fit(self, draws: int = 1000, tune: int = 1000, chains: int = 4, *,
            sampler: str = "nutpie", random_seed: int | None = None, cores: int | None = None,
            target_accept: float = 0.8, max_treedepth: int = 10,
            progressbar: bool = True) -> FitResult:
        """Sample the posterior with NUTS and return a :class:`~bayesmix.FitResult`.

        A fixed ``random_seed`` gives the same draws on the same machine and versions, equal
        to rounding (a model loaded from the compile cache may differ in the last bits).

        Examples
        --------
        >>> import bayesmix as bm
        >>> m = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff"))
        >>> fit = m.fit(draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
        >>> round(float(fit.fixef().loc["(Intercept)", "mean"]), -2)
        1500.0
        """
        from bayesmix.api.fit import FitResult
        from bayesmix.diagnostics.checks import warn_on_fit
        from bayesmix.inference.sample import SamplerSettings, sample_model

        settings = SamplerSettings(sampler=sampler, draws=draws, tune=tune, chains=chains,
                                   cores=cores, random_seed=random_seed,
                                   target_accept=target_accept, max_treedepth=max_treedepth,
                                   progressbar=progressbar)
        idata, timing, compiled = sample_model(self, settings, self._compiled)
        if sampler == "nutpie":
            self._compiled = compiled
        fit = FitResult(model=self, idata=idata, settings=settings, timing=timing)
        warn_on_fit(idata, self, settings, levels=fit._levels)
        return fit

    def fit_ml(self, reml: bool = True) -> MLResult:
        """Maximum-likelihood fit: REML/ML (gaussian) or Laplace (``reml=False``; GLMMs).

        See :func:`bayesmix.inference.ml.fit_ml`.
        """
        from bayesmix.inference.ml import fit_ml

        return fit_ml(self, reml=reml)
