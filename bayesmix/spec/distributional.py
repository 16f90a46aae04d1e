"""Models with several linear predictors: distributional (:class:`Formula`) and nonlinear
(:class:`NonLinear`) formulas, in brms's style.

* ``Formula("y ~ x + (1 | g)", "sigma ~ x")``: the first formula models the mean as usual;
  each further formula ``param ~ terms`` gives a family parameter (``sigma`` of the gaussian,
  later ``zi``, ``phi``...) its own linear predictor on the parameter's link scale (log for
  ``sigma``), with fixed and random effects.
* ``NonLinear("y ~ Asym / (1 + exp(-(age - xmid) / scal))", Asym="1 + (1 | Tree)",
  xmid="1", scal="1")``: the mean (on the family's link scale) is an arithmetic expression of
  nonlinear parameters and numeric data columns; each parameter is a linear predictor given
  by its right-hand-side formula. Distributional formulas may follow the expression:
  ``NonLinear("y ~ a * exp(b * x)", "sigma ~ x", a="1 + (1 | g)", b="1")``.

These objects are pure syntax (no data); :class:`bayesmix.Model` checks the parameter names
against the family and the columns against the data.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from bayesmix.errors import FormulaError
from bayesmix.spec.formula import FormulaSpec, Response, parse_formula, parse_response
from bayesmix.spec.nonlinear import FUNCTIONS, NonlinearExpr

__all__ = ["Formula", "NonLinear"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _split_tilde(text: str, what: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise FormulaError(f"{what} must be a string, not {type(text).__name__}")
    if text.count("~") != 1:
        raise FormulaError(f"{what} {text!r} needs exactly one '~' (e.g. 'sigma ~ x')", text)
    lhs, rhs = text.split("~")
    return lhs.strip(), rhs


def _dpar_spec(text: str, response: Response, taken: set[str]) -> tuple[str, FormulaSpec]:
    """Parse ``param ~ terms``; the design reuses the main response so rows line up."""
    lhs, _ = _split_tilde(text, "the distributional formula")
    if not lhs:
        raise FormulaError(f"the distributional formula {text!r} has no left side: write the "
                           "parameter it models, e.g. 'sigma ~ x'", text, 0, "~")
    if not _IDENT.match(lhs):
        raise FormulaError(f"the left side of {text!r} must name a family parameter such as "
                           f"'sigma', not {lhs!r}", text, 0, lhs)
    if lhs == response.expr or lhs == response.name:
        raise FormulaError(f"{text!r} repeats the response {lhs!r}: the first formula models "
                           "the mean; further formulas name a family parameter, e.g. "
                           "'sigma ~ x'", text, 0, lhs)
    if lhs == "mu":
        raise FormulaError("'mu' is modelled by the first formula; further formulas name "
                           "other family parameters such as 'sigma'", text, 0, lhs)
    if lhs in taken:
        raise FormulaError(f"the parameter {lhs!r} has two formulas; keep one", text, 0, lhs)
    spec = parse_formula(text)
    return lhs, dataclasses.replace(spec, response=response)


@dataclass(frozen=True, init=False)
class Formula:
    """A mean formula plus formulas for the family's other parameters (brms's ``bf()``).

    Parameters
    ----------
    formula : str
        The mean model, ``response ~ terms``, exactly as for :class:`bayesmix.Model`.
    *dpars : str
        ``param ~ terms`` for a family parameter, e.g. ``"sigma ~ x + (1 | g)"``; the
        parameter is modelled on its link scale (log for ``sigma``). No response.

    Examples
    --------
    >>> f = Formula("Reaction ~ Days + (Days | Subject)", "sigma ~ Days")
    >>> f.dpar_names
    ('sigma',)
    >>> f.specs["sigma"].fixed
    'Days'
    """

    main: FormulaSpec
    dpars: tuple[tuple[str, FormulaSpec], ...]

    def __init__(self, formula: str, *dpars: str) -> None:
        if isinstance(formula, str) and formula.strip().startswith("~"):
            raise FormulaError("the first formula needs a response: 'y ~ x + (1 | g)'",
                               formula, formula.index("~"), "~")
        main = parse_formula(formula)
        parsed: list[tuple[str, FormulaSpec]] = []
        for text in dpars:
            parsed.append(_dpar_spec(text, main.response, {n for n, _ in parsed}))
        object.__setattr__(self, "main", main)
        object.__setattr__(self, "dpars", tuple(parsed))

    @property
    def dpar_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.dpars)

    @property
    def specs(self) -> dict[str, FormulaSpec]:
        """Each distributional parameter's parsed formula."""
        return dict(self.dpars)

    @property
    def lines(self) -> tuple[str, ...]:
        return (self.main.formula, *(s.formula for _, s in self.dpars))

    def __str__(self) -> str:
        return "; ".join(self.lines)


@dataclass(frozen=True, init=False)
class NonLinear:
    """A nonlinear mean: ``response ~ expression`` with a linear formula per parameter.

    Parameters
    ----------
    formula : str
        ``response ~ expression`` in the nonlinear parameters and numeric data columns (see
        :mod:`bayesmix.spec.nonlinear` for what expressions may contain).
    *dpars : str
        Optional distributional formulas, ``"sigma ~ x"``, as in :class:`Formula`.
    **params : str
        One right-hand side per nonlinear parameter: ``Asym="1 + (1 | Tree)"``, ``xmid="1"``.
        Every parameter's fixed effects need an explicit prior (keys ``"Asym:(Intercept)"``,
        or ``"Asym"`` when its formula is ``"1"``).

    Examples
    --------
    >>> nl = NonLinear("circumference ~ Asym / (1 + exp(-(age - xmid) / scal))",
    ...                Asym="1 + (1 | Tree)", xmid="1", scal="1")
    >>> nl.param_names, nl.expr.covariates
    (('Asym', 'xmid', 'scal'), ('age',))
    """

    formula: str
    response: Response
    expr: NonlinearExpr
    params: tuple[tuple[str, FormulaSpec], ...]
    dpars: tuple[tuple[str, FormulaSpec], ...]

    def __init__(self, formula: str, *dpars: str, **params: str) -> None:
        lhs, rhs = _split_tilde(formula, "the nonlinear formula")
        if not lhs:
            raise FormulaError("the nonlinear formula needs a response: 'y ~ a * exp(b * x)'",
                               formula, formula.index("~"), "~")
        response = parse_response(lhs, 0, formula)
        if not params:
            raise FormulaError("give each nonlinear parameter a formula, e.g. "
                               "NonLinear('y ~ a * exp(b * x)', a='1 + (1 | g)', b='1')")
        parsed: list[tuple[str, FormulaSpec]] = []
        for name, text in params.items():
            if name in FUNCTIONS:
                raise FormulaError(f"{name!r} is a function of nonlinear expressions; "
                                   "rename the parameter")
            if not isinstance(text, str):
                raise FormulaError(f"the formula of {name!r} must be a string such as "
                                   f"'1 + (1 | g)', not {type(text).__name__}")
            if "~" in text:
                raise FormulaError(
                    f"the formula of the nonlinear parameter {name!r} has a left side: "
                    f"{text!r}. Give only its right-hand side, e.g. "
                    f"{name}={text.split('~', 1)[1].strip()!r}", text, text.index("~"), "~")
            spec = parse_formula(f"{name} ~ {text}")
            parsed.append((name, dataclasses.replace(spec, response=response)))
        expr = NonlinearExpr.parse(rhs, tuple(params))
        taken = set(params)
        dparsed: list[tuple[str, FormulaSpec]] = []
        for text in dpars:
            name, spec = _dpar_spec(text, response, taken | {n for n, _ in dparsed})
            dparsed.append((name, spec))
        object.__setattr__(self, "formula", formula)
        object.__setattr__(self, "response", response)
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "params", tuple(parsed))
        object.__setattr__(self, "dpars", tuple(dparsed))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.params)

    @property
    def dpar_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.dpars)

    @property
    def main(self) -> FormulaSpec:
        """A fixed-part-free spec carrying the response (the mean has no linear design)."""
        return FormulaSpec(formula=self.formula, response=self.response, fixed="0",
                           random=(), offsets=())

    @property
    def lines(self) -> tuple[str, ...]:
        return (self.formula, *(f"{n} ~ {s.formula.split('~', 1)[1].strip()}"
                                for n, s in self.params),
                *(s.formula for _, s in self.dpars))

    def __str__(self) -> str:
        return "; ".join(self.lines)
