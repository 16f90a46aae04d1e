"""The right-hand side of a nonlinear formula: a safe arithmetic expression and its evaluation.

The expression is parsed with Python's :mod:`ast` and only these nodes are accepted: numbers,
names, ``+ - * / **`` (R's ``^`` is read as ``**``), unary minus and plus, parentheses and
calls of :data:`FUNCTIONS`. Names are the nonlinear parameters (each with its own linear
formula) or numeric data columns. The same tree is evaluated with numpy (predictions) and
with pytensor (the PyMC model), so the two cannot disagree.

Examples
--------
>>> expr = NonlinearExpr.parse("Asym / (1 + exp(-(age - xmid) / scal))",
...                            ("Asym", "xmid", "scal"))
>>> expr.covariates
('age',)
>>> float(expr.evaluate({"Asym": 200.0, "xmid": 700.0, "scal": 350.0, "age": 700.0}))
100.0
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from bayesmix.errors import FormulaError

__all__ = ["NonlinearExpr", "FUNCTIONS", "NUMPY_FUNCTIONS"]

# name -> number of arguments
FUNCTIONS: dict[str, int] = {"exp": 1, "log": 1, "sqrt": 1, "power": 2, "inv_logit": 1,
                             "logit": 1, "abs": 1, "log1p": 1, "expm1": 1}

NUMPY_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "power": np.power,
    "inv_logit": special.expit, "logit": special.logit, "abs": np.abs, "log1p": np.log1p,
    "expm1": np.expm1,
}

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_ALLOWED = ("numbers, names, + - * / ** (or ^), unary minus, parentheses and the functions "
            + ", ".join(f"{f}()" for f in FUNCTIONS))


def _describe(node: ast.AST) -> str:
    kinds = {ast.Compare: "a comparison", ast.BoolOp: "a logical operator",
             ast.IfExp: "an if-expression", ast.Attribute: "an attribute",
             ast.Subscript: "indexing", ast.Lambda: "a lambda", ast.keyword: "a keyword argument",
             ast.Tuple: "a tuple", ast.List: "a list", ast.Starred: "a starred argument"}
    for cls, text in kinds.items():
        if isinstance(node, cls):
            return text
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return type(node).__name__


@dataclass(frozen=True, eq=False)
class NonlinearExpr:
    """A checked nonlinear expression: its text, tree, parameters and data columns."""

    text: str
    tree: ast.Expression
    params: tuple[str, ...]
    covariates: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, params: Sequence[str]) -> "NonlinearExpr":
        """Parse and check ``text``; names that are not ``params`` are taken as data columns.

        Raises :class:`~bayesmix.errors.FormulaError` naming any construct outside the
        whitelist (see the module docstring) and any parameter the expression does not use.
        """
        source = text.replace("^", "**")  # R's power; '^' has no other meaning here
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as err:
            raise FormulaError(f"cannot parse the nonlinear expression: {err.msg}", text,
                               max((err.offset or 1) - 1, 0), None) from None
        names: dict[str, None] = {}
        _check(tree.body, source.strip(), text, names)
        unused = [p for p in params if p not in names]
        if unused:
            raise FormulaError(
                f"the nonlinear parameter(s) {', '.join(map(repr, unused))} have a formula but "
                f"do not appear in the expression {text.strip()!r}; remove them or use them")
        covariates = tuple(n for n in names if n not in params)
        return cls(text.strip(), tree, tuple(params), covariates)

    def check_columns(self, columns: Sequence[str]) -> None:
        """Every name that is not a parameter must be a data column (else a FormulaError
        suggesting close parameter or column names)."""
        for name in self.covariates:
            if name in columns:
                continue
            close = difflib.get_close_matches(name, [*self.params, *map(str, columns)], n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise FormulaError(
                f"{name!r} in the nonlinear expression {self.text!r} is neither a nonlinear "
                f"parameter ({', '.join(self.params)}) nor a column of the data.{hint}")

    def evaluate(self, env: dict[str, Any],
                 functions: dict[str, Callable[..., Any]] | None = None) -> Any:
        """Evaluate with ``env`` (name -> value); numpy functions unless ``functions`` given."""
        return _eval(self.tree.body, env, functions or NUMPY_FUNCTIONS)


def _check(node: ast.AST, source: str, text: str, names: dict[str, None]) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            _refuse(f"the function name {node.id!r} without a call", node, source, text)
        names.setdefault(node.id, None)
        return
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, source, text, names)
        _check(node.right, source, text, names)
        return
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        _check(node.operand, source, text, names)
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            label = ast.get_source_segment(source, node.func) or "this call"
            _refuse(f"the function {label!r}", node, source, text)
        if node.keywords:
            _refuse("a keyword argument", node.keywords[0], source, text)
        arity = FUNCTIONS[node.func.id]
        if len(node.args) != arity:
            raise FormulaError(f"{node.func.id}() takes {arity} argument"
                               f"{'s' if arity > 1 else ''}, got {len(node.args)} in "
                               f"{ast.get_source_segment(source, node)!r}", text)
        for arg in node.args:
            _check(arg, source, text, names)
        return
    _refuse(_describe(node), node, source, text)


def _refuse(what: str, node: ast.AST, source: str, text: str) -> None:
    segment = ast.get_source_segment(source, node) or ""
    where = f" ({segment!r})" if segment else ""
    raise FormulaError(f"{what}{where} is not allowed in a nonlinear expression; allowed are "
                       f"{_ALLOWED}", text)


def _eval(node: ast.AST, env: dict[str, Any], functions: dict[str, Callable[..., Any]]) -> Any:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, env, functions),
                                      _eval(node.right, env, functions))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, env, functions))
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # checked in parse
    return functions[node.func.id](*(_eval(a, env, functions) for a in node.args))
