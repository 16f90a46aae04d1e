"""brms-style ``hypothesis()``: posterior tests of linear (or any arithmetic) combinations.

A hypothesis reads ``lhs OP rhs`` with OP one of ``<``, ``>``, ``<=``, ``>=``, ``=``.
Names are model parameters:

* coefficients, spelled as in ``fit.fixef()``: ``Days``, ``(Intercept)``, ``SectorCatholic``,
  ``Days:SexFemale`` (or in backquotes: ```scale(x)```);
* family parameters such as ``sigma``;
* coefficients of a distributional or nonlinear parameter, spelled as their prior keys:
  ``sigma:x``, ``Asym:(Intercept)`` (or just ``Asym`` when it has no predictors);
* group SDs and correlations: ``sd_Subject[Days]``, ``sd_Subject[(Intercept)]``
  (``sd_Subject`` alone for a one-term block), ``cor_Subject[(Intercept),Days]``.

The text is never evaluated as Python: names are replaced by placeholders, and the result is
parsed with :mod:`ast` and walked over a whitelist (numbers, + - * / **, unary minus).

Reported per hypothesis (brms semantics, on ``lhs - rhs``): estimate (posterior mean),
est_error (sd), equal-tailed interval, ``evid_ratio`` and ``post_prob``. One-sided hypotheses:
post_prob = P(H | y) and evid_ratio = P(H) / P(not H). Point hypotheses (``=``): the
Savage-Dickey density ratio p(lhs - rhs = 0 | y) / p(lhs - rhs = 0) from kernel density
estimates on posterior and prior draws (the prior draws come from
``model.prior_predictive``), and post_prob = ER / (1 + ER); with ``prior_draws=0`` both
are NaN. ``star`` is "*" when the interval excludes 0 (point) or post_prob > prob (one-sided).
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix import varnames
from bayesmix.errors import BayesmixError
from bayesmix.results.tables import posterior_of

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["hypothesis", "parameter_draws", "HypothesisError"]


class HypothesisError(BayesmixError, ValueError):
    """A hypothesis that cannot be parsed or names an unknown parameter."""


def parameter_draws(draws: xr.Dataset, model: "ModelSpec") -> dict[str, np.ndarray]:
    """Every scalar parameter a hypothesis may name, as (chain, draw) arrays."""
    out: dict[str, np.ndarray] = {}
    if "fixef" in draws:
        fixef = draws["fixef"].transpose("chain", "draw", "coef")
        for j, name in enumerate(fixef.coords["coef"].values):
            out[str(name)] = fixef.values[..., j]
    for name in model.family.params:
        if name in draws and draws[name].ndim == 2:  # vector params (cutpoints) have no one name
            out[name] = draws[name].transpose("chain", "draw").values
    for lp in model.predictors:  # distributional / nonlinear parameters' coefficients
        var = varnames.fixef(lp.name)
        if var not in draws:
            continue
        fixef = draws[var].transpose("chain", "draw", ...)
        coefs = [str(c) for c in fixef.coords[fixef.dims[-1]].values]
        for j, coef in enumerate(coefs):
            out[f"{lp.name}:{coef}"] = fixef.values[..., j]  # as the prior keys: "Asym:x"
        if coefs == ["(Intercept)"] and lp.name not in out:
            out[lp.name] = fixef.values[..., 0]  # a nonlinear parameter with no predictors
    for block in model.all_blocks:
        sd = draws[varnames.sd(block)].transpose("chain", "draw", ...).values
        for j, term in enumerate(block.coef_names):
            out[f"sd_{block.name}[{term}]"] = sd[..., j]
        if block.n_terms == 1:
            out[varnames.sd(block)] = sd[..., 0]
        if block.correlated:
            cor = draws[varnames.cor(block)].transpose("chain", "draw", ...).values
            for i, a in enumerate(block.coef_names):
                for j, b in enumerate(block.coef_names):
                    if i != j:
                        out[f"cor_{block.name}[{a},{b}]"] = cor[..., i, j]
    return out


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow}
_COMPARE = {ast.Lt: "<", ast.Gt: ">", ast.LtE: "<", ast.GtE: ">", ast.Eq: "="}


def _substitute(text: str, names: list[str]) -> tuple[str, dict[str, str]]:
    """Replace backquoted names and known names (longest first) by placeholders."""
    slots: dict[str, str] = {}

    def slot(name: str) -> str:
        key = next((k for k, v in slots.items() if v == name), None)
        if key is None:
            key = f"_p{len(slots)}_"
            slots[key] = name
        return f" {key} "

    def quoted(match: re.Match) -> str:
        name = match.group(1)
        if name not in names:
            raise HypothesisError(_unknown(name, names))
        return slot(name)

    text = re.sub(r"`([^`]*)`", quoted, text)
    for name in sorted(names, key=len, reverse=True):
        pattern = rf"(?<![\w.`]){re.escape(name)}(?![\w.`])"
        text = re.sub(pattern, lambda m, n=name: slot(n), text)
    return text, slots


def _unknown(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (f"unknown parameter {name!r} in the hypothesis.{hint} Parameters: "
            f"{', '.join(names)}")


def _parse(text: str, names: list[str]) -> tuple[ast.expr, ast.expr, str, dict[str, str]]:
    body, slots = _substitute(text, names)
    body = re.sub(r"(?<![<>=!])=(?!=)", "==", body)  # a single '=' is the point hypothesis
    try:
        tree = ast.parse(body.strip(), mode="eval").body
    except SyntaxError:
        raise HypothesisError(f"cannot parse the hypothesis {text!r}; write e.g. 'Days > 8' or "
                              "'a + b = 0' (backquote names with spaces: `my name`)") from None
    if not isinstance(tree, ast.Compare) or len(tree.ops) != 1 or \
            type(tree.ops[0]) not in _COMPARE:
        raise HypothesisError(f"the hypothesis {text!r} needs exactly one of <, >, <=, >=, =")
    return tree.left, tree.comparators[0], _COMPARE[type(tree.ops[0])], slots


def _evaluate(node: ast.expr, values: dict[str, np.ndarray], slots: dict[str, str],
              names: list[str], text: str) -> np.ndarray | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id in slots:
            return values[slots[node.id]]
        raise HypothesisError(_unknown(node.id, names))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left, values, slots, names, text),
                                   _evaluate(node.right, values, slots, names, text))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _evaluate(node.operand, values, slots, names, text)
        return -inner if isinstance(node.op, ast.USub) else inner
    what = ast.unparse(node)
    for key, name in slots.items():
        what = what.replace(key, name)
    raise HypothesisError(f"{what!r} in the hypothesis {text!r} is not allowed: use numbers, "
                          "parameter names, + - * / ** and parentheses")


def _density_at_zero(values: np.ndarray) -> float:
    from scipy import stats

    flat = np.asarray(values, float).ravel()
    if flat.std() == 0:
        return float("nan")
    return float(stats.gaussian_kde(flat)(0.0)[0])


def hypothesis(idata: xr.DataTree, model: "ModelSpec", hypotheses: str | list[str], prob: float = 0.95,
               prior_draws: int = 4000, random_seed: int | None = 0) -> pd.DataFrame:
    """Test hypotheses about the parameters (brms ``hypothesis()``; module docstring).

    Returns one row per hypothesis (index: its text) with columns estimate, est_error,
    interval bounds, evid_ratio, post_prob, star.

    Examples
    --------
    >>> fit.hypothesis("Days > 8")  # doctest: +SKIP
    >>> fit.hypothesis(["2*Days - (Intercept) > 0", "sd_Subject[Days] = 5"])  # doctest: +SKIP
    """
    from bayesmix.posterior.predict import draw_summary

    items = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    values = parameter_draws(posterior_of(idata), model)
    names = list(values)
    parsed = [(_parse(h, names), h) for h in items]
    prior_values = None
    if prior_draws and any(p[2] == "=" for p, _ in parsed):
        prior = model.prior_predictive(draws=prior_draws, random_seed=random_seed)
        prior_values = parameter_draws(prior["prior"].to_dataset(), model)
    rows = []
    for (left, right, op, slots), text in parsed:
        def diff(vals: dict[str, np.ndarray], left: Any = left, right: Any = right, slots: Any = slots,
                 text: str = text) -> np.ndarray:
            lhs = _evaluate(left, vals, slots, names, text)
            rhs = _evaluate(right, vals, slots, names, text)
            return np.broadcast_to(np.asarray(lhs - rhs, float), vals[names[0]].shape)

        d = diff(values)
        stats = draw_summary(d[..., None], prob).iloc[0].to_dict()
        lb, ub = list(stats)[2:4]
        if op == "=":
            ratio = float("nan")
            if prior_values is not None:
                ratio = _density_at_zero(d) / _density_at_zero(diff(prior_values))
            post = ratio / (1 + ratio) if np.isfinite(ratio) else float("nan")
            star = "*" if stats[lb] > 0 or stats[ub] < 0 else ""
        else:
            post = float((d > 0).mean() if op == ">" else (d < 0).mean())
            ratio = post / (1 - post) if post < 1 else float("inf")
            star = "*" if post > prob else ""
        rows.append({"estimate": stats["mean"], "est_error": stats["sd"], lb: stats[lb],
                     ub: stats[ub], "evid_ratio": ratio, "post_prob": post, "star": star})
    return pd.DataFrame(rows, index=pd.Index(items, name="hypothesis"))
