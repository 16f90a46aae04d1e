"""Parse lme4/brms mixed-model formulas into a frozen :class:`FormulaSpec`.

The fixed part is left as text for *formulae* to evaluate (interactions, ``I()``, ``scale()``,
``C()``, ``log()``...). This module only splits the formula into its response, fixed terms,
``offset(...)`` terms and random-effect terms, and expands lme4's shorthands:

* ``(x | g)``     correlated intercept and slope for each level of ``g``
* ``(x || g)``    the same terms, uncorrelated
* ``(1 | a/b)``   nesting, ``(1 | a) + (1 | a:b)``
* ``(1 | a:b)``   one effect per combination of ``a`` and ``b``
* ``cbind(s, f) ~ ...`` and ``s | trials(n) ~ ...`` binomial responses
* ``(1 | gr(g, cov=A))`` (brms) level effects correlated across levels by a known matrix
  ``A`` (relatedness, phylogeny) passed as ``data2={"A": A}``; ``gr(g)`` is plain ``g``
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from bayesmix.errors import FormulaError
from bayesmix.spec.terms import check_term, python_syntax_error

__all__ = ["Response", "GroupTerm", "FormulaSpec", "parse_formula"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Response:
    """The left-hand side of a formula.

    ``kind`` is ``"single"`` (``y``), ``"cbind"`` (``cbind(successes, failures)``) or
    ``"trials"`` (``successes | trials(n)``). ``expr`` is the (successes) expression and
    ``other`` the failures or trials expression.
    """

    kind: str
    expr: str
    other: str | None = None

    @property
    def name(self) -> str:
        """A short label for the response, used as the observed variable's name."""
        return self.expr if _NAME.match(self.expr) else re.sub(r"\W+", "_", self.expr).strip("_")


@dataclass(frozen=True)
class GroupTerm:
    """One random-effects term ``(expr | group)`` after expansion of ``/`` and ``||``.

    ``factors`` are the data columns whose combinations define the levels (``("a", "b")``
    for ``a:b``); ``correlated`` is False for ``||``; ``cov`` names the known covariance
    matrix between levels (a key of ``data2``) for ``gr(g, cov=A)``, else None.
    """

    expr: str
    group: str
    factors: tuple[str, ...]
    correlated: bool
    source: str
    cov: str | None = None

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
        group = f"gr({self.group}, cov={self.cov})" if self.cov else self.group
        return f"({self.expr} {bar} {group})"


@dataclass(frozen=True)
class FormulaSpec:
    """A parsed mixed-model formula.

    Examples
    --------
    >>> spec = parse_formula("Reaction ~ Days + (Days | Subject)")
    >>> spec.fixed, [str(t) for t in spec.random]
    ('Days', ['(Days | Subject)'])
    """

    formula: str
    response: Response
    fixed: str
    random: tuple[GroupTerm, ...]
    offsets: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()

    @property
    def variables(self) -> tuple[str, ...]:
        """Every data column name the formula mentions, in order of first appearance."""
        exprs = [self.response.expr, self.response.other or "", self.fixed, *self.offsets]
        for term in self.random:
            exprs.append(term.expr)
            exprs.extend(term.factors)
        seen: dict[str, None] = {}
        for text in exprs:
            for name in expression_variables(text):
                seen.setdefault(name, None)
        return tuple(seen)

    def fixed_terms(self) -> tuple[str, ...]:
        """The fixed part's terms (offsets and random terms apart), as written.

        Examples
        --------
        >>> parse_formula("y ~ x * z + C(f, Sum) + offset(o) + (1 | g)").fixed_terms()
        ('x * z', 'C(f, Sum)')
        """
        return tuple(piece.strip() for piece, _ in _split_top(self.fixed, "+", 0, self.fixed))

    @property
    def groups(self) -> tuple[str, ...]:
        """The grouping factors, each once, in formula order."""
        return tuple(dict.fromkeys(t.group for t in self.random))

    def __str__(self) -> str:
        """The formula as parsed: the right-hand side's terms in the order written, each
        random term after expansion (``(1 | a/b)`` -> ``(1 | a) + (1 | a:b)``)."""
        if not self.terms:
            return self.formula
        return f"{render_response(self.response)} ~ {' + '.join(self.terms)}"


def render_response(response: Response) -> str:
    """The left-hand side of a formula as parsed.

    Examples
    --------
    >>> render_response(Response("trials", "s", "n"))
    's | trials(n)'
    """
    if response.kind == "cbind":
        return f"cbind({response.expr}, {response.other})"
    if response.kind == "trials":
        return f"{response.expr} | trials({response.other})"
    return response.expr


def expression_variables(text: str) -> list[str]:
    """Names in a formula expression that refer to data columns (not functions or keywords).

    Examples
    --------
    >>> expression_variables("scale(x) + I(z ** 2) + C(f, Treatment('b'))")
    ['x', 'z', 'f']
    """
    text = re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: " " * len(m.group()), text)
    names = []
    for match in _IDENT.finditer(text):
        name, end = match.group(), match.end()
        rest = text[end:].lstrip()
        before = text[: match.start()].rstrip()
        if rest.startswith("(") or rest.startswith("=") and not rest.startswith("=="):
            continue  # a function call or keyword argument
        if before.endswith(".") or keyword.iskeyword(name) or name in ("True", "False", "None"):
            continue
        if text[: match.start()][-1:].isdigit():
            continue  # the exponent of a number such as 1e3 (a space before: a new name)
        names.append(name)
    return names


def _split_top(text: str, sep: str, offset: int, formula: str) -> list[tuple[str, int]]:
    """Split ``text`` at ``sep`` outside parentheses; return (piece, absolute position) pairs."""
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                raise FormulaError("unmatched ')': no '(' opens it", formula, offset + i, ")")
        elif depth == 0 and text.startswith(sep, i):
            # '|' must not split '||'
            if sep == "|" and (text.startswith("||", i) or (i > 0 and text[i - 1] == "|")):
                i += 1
                continue
            pieces.append((text[start:i], offset + start))
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    if depth > 0:
        pos = offset + _unclosed_paren(text)
        raise FormulaError("'(' is never closed", formula, pos, "(")
    pieces.append((text[start:], offset + start))
    return pieces


def _unclosed_paren(text: str) -> int:
    stack = []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            stack.pop()
    return stack[-1] if stack else 0


def _strip(piece: str, pos: int) -> tuple[str, int]:
    lead = len(piece) - len(piece.lstrip())
    return piece.strip(), pos + lead


def _outer_parens(text: str) -> bool:
    """True when ``text`` is entirely wrapped by one pair of parentheses."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return False
    return True


def parse_response(text: str, pos: int, formula: str) -> Response:
    text, pos = _strip(text, pos)
    if not text:
        raise FormulaError("the formula has no response before '~'", formula, pos, "~")
    m = re.fullmatch(r"cbind\s*\((.*)\)", text, flags=re.S)
    if m:
        inner_pos = pos + text.index("(") + 1
        parts = _split_top(m.group(1), ",", inner_pos, formula)
        if len(parts) != 2 or not all(p.strip() for p, _ in parts):
            raise FormulaError("cbind() needs exactly two arguments: cbind(successes, failures)",
                               formula, pos, "cbind")
        for part, ppos in parts:
            _check_expression(part, ppos, formula, "cbind()'s argument")
        return Response("cbind", parts[0][0].strip(), parts[1][0].strip())
    parts = _split_top(text, "|", pos, formula)
    if len(parts) == 2:
        (succ, _), (rest, rpos) = parts
        rest_s, rpos = _strip(rest, rpos)
        m = re.fullmatch(r"trials\s*\((.+)\)", rest_s, flags=re.S)
        if not m or not succ.strip():
            raise FormulaError("a '|' in the response must read 'successes | trials(n)'",
                               formula, rpos, rest_s or "|")
        _check_expression(succ, parts[0][1], formula, "the response")
        _check_expression(m.group(1), rpos + m.start(1), formula, "trials()")
        return Response("trials", succ.strip(), m.group(1).strip())
    if len(parts) > 2:
        raise FormulaError("too many '|' in the response", formula, parts[2][1] - 1, "|")
    _check_expression(text, pos, formula, "the response")
    return Response("single", text)


def _check_expression(text: str, pos: int, formula: str, what: str) -> None:
    """A response expression is Python (``log(y)``, ``y / n``): refuse what Python cannot read,
    such as two names with no operator (``y z``), with the caret at the first bad token."""
    text, pos = _strip(text, pos)
    error = python_syntax_error(text)
    if error is not None:
        raise FormulaError(f"cannot read {what} {text!r}: {error[1]}", formula,
                           pos + error[0], text[error[0]:error[0] + 1])


def _parse_group(text: str, pos: int, formula: str) -> list[tuple[str, tuple[str, ...]]]:
    """``a/b:c`` -> [("a", ("a",)), ("a:b:c", ("a", "b", "c"))]."""
    text, pos = _strip(text, pos)
    if _outer_parens(text):
        text, pos = _strip(text[1:-1], pos + 1)
    if not text:
        raise FormulaError("missing grouping factor after '|'", formula, pos, "|")
    nested: list[tuple[str, tuple[str, ...]]] = []
    prefix: tuple[str, ...] = ()
    for piece, ppos in _split_top(text, "/", pos, formula):
        factors = []
        for name, npos in _split_top(piece, ":", ppos, formula):
            name, npos = _strip(name, npos)
            if not _NAME.match(name):
                raise FormulaError(
                    f"grouping factor {name!r} is not a column name; write the grouping as "
                    "a column, 'a:b' (interaction) or 'a/b' (nesting)", formula, npos, name)
            factors.append(name)
        prefix = prefix + tuple(factors)
        nested.append((":".join(prefix), prefix))
    return nested


def _parse_random(text: str, pos: int, formula: str) -> list[GroupTerm]:
    inner, ipos = text[1:-1], pos + 1
    double = _split_top(inner, "||", ipos, formula)
    correlated = len(double) == 1
    parts = double if not correlated else _split_top(inner, "|", ipos, formula)
    if len(parts) != 2:
        raise FormulaError("a random-effects term needs one '|' (or '||'): (terms | group)",
                           formula, pos, text)
    (lhs, lpos), (rhs, rpos) = parts
    lhs, lpos = _strip(lhs, lpos)
    if not lhs:
        raise FormulaError("missing terms before '|' (write 1 for a random intercept)",
                           formula, lpos, "|")
    check_term(lhs, lpos, formula, f"the random term {text}")
    gr = _parse_gr(rhs, rpos, formula)
    if gr is not None:
        group, cov = gr
        return [GroupTerm(lhs, group, (group,), correlated, text, cov)]
    return [GroupTerm(lhs, group, factors, correlated, text)
            for group, factors in _parse_group(rhs, rpos, formula)]


def _parse_gr(text: str, pos: int, formula: str) -> tuple[str, str | None] | None:
    """``gr(g, cov=A)`` -> ("g", "A"); ``gr(g)`` -> ("g", None); not a gr() call -> None."""
    text, pos = _strip(text, pos)
    m = re.fullmatch(r"gr\s*\((.*)\)", text, flags=re.S)
    if not m:
        return None
    inner_pos = pos + m.start(1)
    args = [_strip(a, apos) for a, apos in _split_top(m.group(1), ",", inner_pos, formula)]
    group, gpos = args[0]
    if not _NAME.match(group):
        raise FormulaError(f"gr() takes one grouping column first, not {group!r}; write "
                           "gr(g, cov=A)", formula, gpos, group or "gr")
    cov = None
    for arg, apos in args[1:]:
        key, eq, value = (part.strip() for part in arg.partition("="))
        if not eq:
            raise FormulaError(f"gr() takes one grouping column; pass {arg!r} as a keyword "
                               "such as cov=A", formula, apos, arg)
        if key != "cov":
            raise FormulaError(f"gr() has no argument {key!r}; bayesmix supports "
                               "gr(g, cov=A) with A a key of data2", formula, apos, key)
        if not _NAME.match(value):
            raise FormulaError(f"cov= must name a matrix passed in data2, not {value!r}",
                               formula, apos, arg)
        cov = value
    return group, cov


def parse_formula(formula: str) -> FormulaSpec:
    """Parse an lme4/brms-style formula.

    Parameters
    ----------
    formula : str
        ``response ~ fixed terms + (terms | group) + ...``.

    Returns
    -------
    FormulaSpec
        Frozen description: response, fixed-part text, expanded random terms, offsets.

    Raises
    ------
    FormulaError
        With the offending token and its position, e.g. for an unclosed parenthesis.

    Examples
    --------
    >>> spec = parse_formula("strength ~ 1 + (1 | batch/cask)")
    >>> [t.group for t in spec.random]
    ['batch', 'batch:cask']
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string, not {type(formula).__name__}")
    tildes = [i for i, ch in enumerate(formula) if ch == "~"]
    if not tildes:
        raise FormulaError("the formula has no '~' separating response and predictors",
                           formula, len(formula), "")
    if len(tildes) > 1:
        raise FormulaError("the formula has more than one '~'", formula, tildes[1], "~")
    split = tildes[0]
    response = parse_response(formula[:split], 0, formula)
    rhs_pos = split + 1
    if not formula[rhs_pos:].strip():
        raise FormulaError("nothing after '~' (write 1 for an intercept-only model)",
                           formula, len(formula), "")
    fixed: list[str] = []
    random: list[GroupTerm] = []
    positions: list[int] = []
    offsets: list[str] = []
    rendered: list[str] = []
    fixed_pos: list[int] = []
    seen: dict[str, int] = {}
    for piece, pos in _split_top(formula[rhs_pos:], "+", rhs_pos, formula):
        text, tpos = _strip(piece, pos)
        if not text:
            raise FormulaError("empty term: two '+' in a row or a trailing '+'", formula, tpos, "+")
        if _outer_parens(text) and _has_bar(text[1:-1], tpos + 1, formula):
            terms = _parse_random(text, tpos, formula)
            random.extend(terms)
            positions.extend([tpos] * len(terms))
            rendered.extend(str(t) for t in terms)
            continue
        bars = [p for _, p in _split_top(text, "|", tpos, formula)[1:]]
        if bars or "||" in text:
            where = bars[0] - 1 if bars else tpos + text.index("||")
            raise FormulaError("'|' outside parentheses: write random effects as (terms | group)",
                               formula, where, "|")
        check_term(text, tpos, formula, "the fixed part")
        # formulae would merge a repeated term silently (and '0 + 0' means nothing more)
        key = re.sub(r"\s+", "", text)
        if key in seen:
            raise FormulaError(f"the term {text!r} appears twice; remove one", formula, tpos,
                               text)
        seen[key] = tpos
        rendered.append(text)
        m = re.fullmatch(r"offset\s*\((.+)\)", text, flags=re.S)
        if m:
            offsets.append(m.group(1).strip())
            continue
        fixed.append(text)
        fixed_pos.append(tpos)
    _check_duplicates(random, positions, formula)
    _check_intercept(fixed, fixed_pos, formula)
    _check_response_unused(response, formula, rhs_pos)
    return FormulaSpec(formula=formula, response=response, fixed=" + ".join(fixed) or "1",
                       random=tuple(random), offsets=tuple(offsets), terms=tuple(rendered))


def _check_intercept(fixed: list[str], fixed_pos: list[int], formula: str) -> None:
    """``1`` and ``0`` (or ``- 1``) together contradict each other: formulae would quietly
    pick one; the user must. The caret goes under the later of the two terms."""
    adds = [p for t, p in zip(fixed, fixed_pos) if re.sub(r"\s+", "", t) == "1"]
    drops = [p for t, p in zip(fixed, fixed_pos)
             if re.fullmatch(r"(0|-\s*1|.*-\s*1)", t.strip(), flags=re.S)]
    if adds and drops:
        later = max(adds[0], drops[0])
        raise FormulaError("the formula both keeps the intercept ('1') and removes it ('0' or "
                           "'- 1'); keep one of them", formula, later, formula[later:later + 1])


def _check_response_unused(response: Response, formula: str, rhs_pos: int) -> None:
    """The response as a predictor or grouping factor fits nonsense: refuse it at its first
    use on the right-hand side. (The trials, or a column in cbind's failures such as ``n`` in
    ``cbind(s, n - s)``, may be predictors.)"""
    names = set(expression_variables(response.expr))
    rhs = formula[rhs_pos:]
    used = expression_variables(rhs.replace("|", "+").replace("/", "+"))
    for name in used:
        if name in names:
            m = re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", rhs)
            pos = rhs_pos + (m.start() if m else 0)
            raise FormulaError(
                f"the response {name!r} is also used on the right-hand side (as a predictor "
                "or grouping factor); a variable cannot explain itself: remove it there",
                formula, pos, name)


def _has_bar(text: str, pos: int, formula: str) -> bool:
    return len(_split_top(text, "|", pos, formula)) > 1 or len(_split_top(text, "||", pos, formula)) > 1


def _check_duplicates(random: list[GroupTerm], positions: list[int], formula: str) -> None:
    seen: dict[tuple[str, str], GroupTerm] = {}
    for term, pos in zip(random, positions):
        key = (term.expr.replace(" ", ""), term.group, term.cov)
        if key in seen:
            raise FormulaError(
                f"the random term {term} appears twice (also in {seen[key].source}); "
                "remove one", formula, pos, term.source)
        seen[key] = term
