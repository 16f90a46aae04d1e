"""Linear predictors besides the mean's: their designs, names, priors and centring.

A :class:`~bayesmix.spec.distributional.Formula` or :class:`~bayesmix.spec.distributional.NonLinear` model has
several linear predictors. Each one that is not the mean's is a :class:`LinearPredictor`
with its own :class:`~bayesmix.data.design.Design`, built by ``make_design`` on the *same rows*:
rows with a missing value in any column of any formula are dropped once, for all of them.

Names in the posterior (``<p>`` is the parameter, e.g. ``sigma`` or ``Asym``):

* ``fixef_<p>`` (dim ``coef_<p>``): its coefficients, on the parameter's link scale;
* its random-effects blocks are named ``<p>_<group>``: ``sd_<p>_<group>``,
  ``cor_<p>_<group>``, ``r_<p>_<group>`` (level dim: the grouping factor, as for the mean).

Tables: ``fit.fixef(dpar="sigma")``; ``fit.varcorr()`` lists these blocks with group
``"sigma_g"``; ``fit.ranef()`` / ``fit.coef()`` key them ``"sigma_g"``.

Priors (keys prefixed ``"<p>:"``, see :mod:`bayesmix.priors`):

* distributional parameters get data-scaled defaults on their link scale, with ``s`` = 1
  (log link) or 1.5 (logit): intercept Normal(g(typical value), s) with typical value sd(y)
  for ``sigma`` (1 for other log-link parameters, 0.5 for logit ones); slope of ``x``
  Normal(0, s / sd(x)); group SD of term ``z`` HalfNormal(s / sd(z)); LKJ(1).
* nonlinear parameters have no natural scale: every fixed effect needs a user prior
  (``"Asym:(Intercept)"``, or ``"Asym"`` when the formula is ``"1"``). A group SD defaults to
  HalfNormal(scale of the prior of the same term's coefficient), e.g. Asym ~ Normal(200, 50)
  gives ``Asym:1|Tree`` HalfNormal(50); where that scale is undefined (a Flat prior, a term
  without a fixed coefficient) the SD prior is required too.

Nonlinear coefficients are not centred internally (a prior on ``Asym:(Intercept)`` is the
prior of Asym at covariates 0); distributional ones are, like the mean's.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmix import varnames
from bayesmix.data.design import Design, RandomBlock, check_columns, complete_rows, make_design
from bayesmix.errors import DataError, FamilyError
from bayesmix.families import Family
from bayesmix.spec.distributional import Formula, NonLinear
from bayesmix.spec.formula import FormulaSpec
from bayesmix.spec.nonlinear import NonlinearExpr

__all__ = ["LinearPredictor", "Setup", "make_setup", "split_centering", "covariate_values"]


@dataclass(frozen=True, eq=False)
class LinearPredictor:
    """One distributional (``role="dpar"``) or nonlinear (``role="nlpar"``) parameter's
    linear predictor; ``link`` maps it to the parameter (identity for nonlinear ones)."""

    name: str
    role: str
    design: Design
    link: str
    formula: str
    centered: tuple[bool, ...] = ()

    @property
    def suffix(self) -> str:
        return f"_{self.name}"

    @property
    def fixef_var(self) -> str:
        return varnames.fixef(self.name)

    @property
    def coef_dim(self) -> str:
        return varnames.coef_dim(self.name)

    @property
    def center(self) -> bool:
        """Centre predictors internally (dpars); nonlinear priors are on the raw scale."""
        return self.role == "dpar"

    def block_key(self, block: RandomBlock) -> str:
        """The key of ``block`` in ``fit.ranef()``: ``"<name>_<group>"``."""
        return f"{self.name}_{block.group}"


@dataclass(frozen=True, eq=False)
class Setup:
    """Designs of a multi-formula model on common rows.

    ``design`` is the mean's (for a nonlinear model: a carrier of the response and rows,
    with no columns); ``covariates`` are the nonlinear expression's data columns.
    """

    design: Design
    predictors: tuple[LinearPredictor, ...]
    nonlinear: NonlinearExpr | None
    covariates: dict[str, np.ndarray]
    lines: tuple[str, ...]


def _check_dpars(names: tuple[str, ...], family: Family) -> None:
    for name in names:
        if name not in family.params:
            have = ", ".join(family.params) or "none besides the mean"
            raise FamilyError(f"family {family.name!r} has no parameter {name!r} to model "
                              f"with '{name} ~ ...'; its parameters are: {have}")
        if name not in family.param_links:
            raise FamilyError(f"family {family.name!r} has no link for its parameter "
                              f"{name!r}, so it cannot have a formula yet")


def _common_rows(specs: list[FormulaSpec], columns: tuple[str, ...], data: pd.DataFrame,
                 na_action: str) -> tuple[pd.DataFrame, pd.Index]:
    """Data rows complete in every formula's columns (one warning for all formulas)."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if na_action not in ("drop", "raise"):
        raise DataError(f"na_action must be 'drop' or 'raise', not {na_action!r}")
    used: dict[str, None] = {}
    for spec in specs:
        check_columns(spec, data)
        used.update(dict.fromkeys(v for v in spec.variables if v in data.columns))
    used.update(dict.fromkeys(columns))
    complete_rows(types.SimpleNamespace(variables=tuple(used)), data, na_action)
    bad = data[list(used)].isna().any(axis=1).to_numpy()
    return data[~bad], data.index[bad]


def _prefixed(design: Design, name: str) -> Design:
    blocks = tuple(dataclasses.replace(b, name=f"{name}_{b.name}") for b in design.blocks)
    return dataclasses.replace(design, blocks=blocks)


def covariate_values(expr: NonlinearExpr, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The expression's data columns as float arrays (a DataError for non-numeric ones)."""
    out = {}
    for col in expr.covariates:
        values = frame[col]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            raise DataError(f"the column {col!r} in the nonlinear expression must be numeric; "
                            f"it has values like {values.iloc[0]!r}")
        out[col] = values.to_numpy(dtype=float)
    return out


def make_setup(formula: Formula | NonLinear, data: pd.DataFrame, family: Family,
               na_action: str = "drop") -> Setup:
    """Designs for every linear predictor of ``formula`` on the same rows of ``data``.

    Examples
    --------
    >>> import bayesmix as bm
    >>> f = bm.Formula("Reaction ~ Days + (1 | Subject)", "sigma ~ Days")
    >>> s = make_setup(f, bm.datasets.load("sleepstudy"), bm.get_family("gaussian"))
    >>> s.predictors[0].design.coef_names, s.predictors[0].link
    (('(Intercept)', 'Days'), 'log')
    """
    _check_dpars(formula.dpar_names, family)
    nl = formula if isinstance(formula, NonLinear) else None
    lp_specs = [*(nl.params if nl else ()), *formula.dpars]
    columns: tuple[str, ...] = ()
    if nl is not None:
        if isinstance(data, pd.DataFrame):
            nl.expr.check_columns(list(data.columns))
        for name in nl.param_names:
            if isinstance(data, pd.DataFrame) and name in data.columns:
                raise DataError(f"the nonlinear parameter {name!r} is also a column of the "
                                "data; rename the parameter")
            if name in family.params:
                raise DataError(f"the nonlinear parameter {name!r} is a parameter of the "
                                f"family {family.name!r}; rename it")
        columns = nl.expr.covariates
    main_specs = [formula.main] if nl is None else []
    rows, dropped = _common_rows([*main_specs, *(s for _, s in lp_specs)], columns, data,
                                 na_action)
    designs = {name: dataclasses.replace(make_design(spec, rows, na_action), dropped=dropped)
               for name, spec in lp_specs}
    roles = {name: "nlpar" for name, _ in (nl.params if nl else ())}
    predictors = tuple(
        LinearPredictor(name, roles.get(name, "dpar"), _prefixed(designs[name], name),
                        family.param_links.get(name, "identity") if name not in roles
                        else "identity", spec.formula.split("~", 1)[1].strip())
        for name, spec in lp_specs)
    if nl is None:
        main = dataclasses.replace(make_design(formula.main, rows, na_action), dropped=dropped)
        return Setup(main, predictors, None, {}, formula.lines)
    first = designs[nl.param_names[0]]
    carrier = Design(nl.main, np.zeros((first.n, 0)), (), first.y, first.trials,
                     np.zeros(first.n), (), first.rows, dropped, None)
    return Setup(carrier, predictors, nl.expr, covariate_values(nl.expr, rows), nl.lines)


# -- centring ----------------------------------------------------------------------------------

def split_centering(centered: dict[str, bool] | None, design: Design,
                    predictors: tuple[LinearPredictor, ...]
                    ) -> tuple[dict[str, bool] | None, tuple[LinearPredictor, ...]]:
    """The mean's part of ``centered`` (for the data-driven rule) and the predictors with
    their blocks' centring: non-centred unless ``centered`` names the block (``"sigma_g"``)
    or its grouping factor (``"g"``, which also applies to the mean's blocks)."""
    if not predictors:
        return centered, predictors
    centered = dict(centered or {})
    main_known = {b.name for b in design.blocks} | {b.group for b in design.blocks}
    lp_known = {x for lp in predictors for b in lp.design.blocks for x in (b.name, b.group)}
    for key, value in centered.items():
        if key not in main_known | lp_known:
            raise DataError(f"centered={{{key!r}: ...}} names no grouping factor; the model "
                            f"has {', '.join(sorted(main_known | lp_known)) or 'none'}")
        if not isinstance(value, bool):
            raise DataError(f"centered[{key!r}] must be True or False, not {value!r}")
    out = tuple(dataclasses.replace(lp, centered=tuple(
        centered.get(b.name, centered.get(b.group, False)) for b in lp.design.blocks))
        for lp in predictors)
    return {k: v for k, v in centered.items() if k in main_known}, out

