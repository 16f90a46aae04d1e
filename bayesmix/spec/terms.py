"""Check that a formula's terms use every token: the grammar of the fixed part and of the
terms before ``|`` in a random-effects term.

*formulae* (which evaluates the terms) ignores what it cannot place: ``x z`` becomes ``x``,
``x: + z`` becomes ``x:z``, a column named ``True`` vanishes. So each term is read here
first, token by token, with the grammar of R's model formulas::

    sum     := signed (("+" | "-") signed)*
    signed  := ["-"] product
    product := power (("*" | ":" | "/" | "%in%") power)*
    power   := atom ["**" INTEGER]
    atom    := NAME | "0" | "1" | NAME "(" arguments ")" | "(" sum ")"

Function arguments are Python expressions (``I(x ** 2)``, ``C(f, Treatment('b'))``), checked
with Python's own parser. The first token the grammar cannot use is reported with a
:class:`~bayesmix.errors.FormulaError` whose caret points at it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from bayesmix.errors import FormulaError

__all__ = ["check_term", "term_calls", "python_syntax_error"]

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op>%in%|\*\*|\|\||[-+*/:^(),|=\[\]~<>!&%@{}])
""", re.VERBOSE)
_CONSTANTS = ("True", "False", "None")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int  # absolute position in the formula


def _tokenize(text: str, pos: int, formula: str) -> list[_Token]:
    tokens, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            raise FormulaError(f"unexpected character {text[i]!r}", formula, pos + i, text[i])
        if m.lastgroup != "space":
            tokens.append(_Token(m.lastgroup or "", m.group(), pos + i))
        i = m.end()
    return tokens


_PY_WORD = re.compile(r"(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+)|([A-Za-z_.][A-Za-z0-9_.]*)")


def python_syntax_error(text: str) -> tuple[int, str] | None:
    """(offset, message) of the first token Python cannot read in ``text``, else None.

    R-style names with dots (``log.y``, ``x.1``) are read as names, and ``%in%`` as an
    operator, so that only real syntax errors count.

    Examples
    --------
    >>> python_syntax_error("log(x.1) + 2"), python_syntax_error("y z")
    (None, (2, 'invalid syntax'))
    """
    source = _PY_WORD.sub(lambda m: m.group(1) or "_" * len(m.group(2)),
                          text.replace("%in%", "  & "))
    try:
        ast.parse(source, mode="eval")
    except SyntaxError as err:
        offset = min(max((err.offset or 1) - 1, 0), max(len(text) - 1, 0))
        return offset, str(err.msg).removesuffix(". Perhaps you forgot a comma?")
    return None


class _Reader:
    """Recursive descent over one term's tokens; raises at the first unusable token."""

    def __init__(self, tokens: list[_Token], end: int, formula: str, where: str) -> None:
        self.tokens, self.i, self.end, self.formula, self.where = tokens, 0, end, formula, where
        self.calls: list[tuple[str, int]] = []

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def fail(self, message: str) -> FormulaError:
        token = self.peek()
        if token is None:  # the term ended early: point just after it (at the next '+')
            pos = self.end
            while pos < len(self.formula) and self.formula[pos].isspace():
                pos += 1
            return FormulaError(f"{message}; the term ends too early", self.formula, pos,
                                self.formula[pos:pos + 1])
        return FormulaError(f"{message}, not {token.text!r}", self.formula, token.pos,
                            token.text)

    def sum(self, closing: str | None) -> None:
        self.signed()
        while (tok := self.peek()) is not None and tok.text in "+-" and tok.kind == "op":
            self.i += 1
            self.signed()
        tok = self.peek()
        if tok is None and closing is None:
            return
        if tok is not None and tok.text == closing:
            return
        if tok is not None and tok.kind in ("name", "number", "string") or (
                tok is not None and tok.text == "("):
            raise self.fail(f"two terms with no operator between them in {self.where}: "
                            "join them with '+', '*' or ':'")
        raise self.fail(f"expected '+', '-', '*', ':' or the end of the term in {self.where}"
                        if closing is None else f"expected {closing!r} or an operator")

    def signed(self) -> None:
        tok = self.peek()
        if tok is not None and tok.text == "-":
            self.i += 1
        self.product()

    def product(self) -> None:
        self.power()
        while (tok := self.peek()) is not None and tok.text in ("*", ":", "/", "%in%"):
            self.i += 1
            self.power()

    def power(self) -> None:
        self.atom()
        tok = self.peek()
        if tok is not None and tok.text == "^":
            raise FormulaError(f"write powers of terms with '**', e.g. (a + b)**2, in "
                               f"{self.where}", self.formula, tok.pos, "^")
        if tok is not None and tok.text == "**":
            self.i += 1
            exponent = self.peek()
            if exponent is None or not re.fullmatch(r"[1-9]\d*", exponent.text):
                raise self.fail("the power of a term must be a whole number such as 2")
            self.i += 1

    def atom(self) -> None:
        tok = self.peek()
        if tok is None:
            raise self.fail(f"expected a column, a number or a function call in {self.where}")
        if tok.kind == "number":
            if tok.text not in ("0", "1"):  # formulae would drop '2 * x' or '1e-3 * w'
                raise FormulaError(
                    f"the number {tok.text} is not a term in {self.where}: only 1 (keep the "
                    "intercept) and 0 (drop it) are; write arithmetic inside I(), e.g. "
                    f"I({tok.text} * x)", self.formula, tok.pos, tok.text)
            self.i += 1
            return
        if tok.kind == "name":
            if tok.text in _CONSTANTS:
                raise FormulaError(
                    f"{tok.text!r} is a Python constant, not a column, in {self.where}: rename "
                    f"the column {tok.text!r} (e.g. df.rename(columns={{{tok.text!r}: "
                    f"'{tok.text.lower()}_'}}))", self.formula, tok.pos, tok.text)
            self.i += 1
            nxt = self.peek()
            if nxt is not None and nxt.text == "(":
                self.call(tok)
            return
        if tok.text == "(":
            self.i += 1
            start = self.i
            if self._has_bar(start):
                raise FormulaError(
                    f"a random-effects term {self._group_text(tok)} must be added to the "
                    "formula on its own with '+', not combined with '*', ':' or "
                    "parentheses", self.formula, tok.pos, "(")
            self.sum(")")
            if self.peek() is None:
                raise self.fail("'(' is never closed")
            self.i += 1
            return
        raise self.fail(f"expected a column, a number or a function call in {self.where}")

    def _matching(self, start: int) -> int:
        """Index of the ')' closing the '(' just before ``start``."""
        depth = 1
        for j in range(start, len(self.tokens)):
            depth += self.tokens[j].text == "("
            depth -= self.tokens[j].text == ")"
            if depth == 0:
                return j
        return len(self.tokens)

    def _has_bar(self, start: int) -> bool:
        close, depth = self._matching(start), 0
        for tok in self.tokens[start:close]:
            depth += tok.text == "("
            depth -= tok.text == ")"
            if depth == 0 and tok.text in ("|", "||"):
                return True
        return False

    def _group_text(self, open_tok: _Token) -> str:
        close = self._matching(self.i)
        stop = self.tokens[close].pos + 1 if close < len(self.tokens) else len(self.formula)
        return repr(self.formula[open_tok.pos:stop])

    def call(self, name: _Token) -> None:
        open_idx = self.i
        close = self._matching(open_idx + 1)
        if close >= len(self.tokens):
            raise FormulaError("'(' is never closed", self.formula, self.tokens[open_idx].pos,
                               "(")
        stop = self.tokens[close].pos + 1
        source = self.formula[name.pos:stop]
        error = python_syntax_error(source)
        if error is not None:  # the arguments are Python: let Python's parser judge them
            pos = name.pos + error[0]
            raise FormulaError(f"cannot read the arguments of {name.text}() in {self.where}: "
                               f"{error[1]}", self.formula, pos, self.formula[pos:pos + 1])
        self.calls.append((name.text, name.pos))
        self.i = close + 1


def check_term(text: str, pos: int, formula: str, where: str) -> list[tuple[str, int]]:
    """Read one term (or the terms before ``|`` of a random-effects term) completely.

    ``pos`` is the term's position in ``formula`` (for the caret). Returns the functions it
    calls with their positions, for the data layer to check that each one exists.

    Raises
    ------
    FormulaError
        At the first token the grammar cannot use.

    Examples
    --------
    >>> check_term("x * scale(z)", 4, "y ~ x * scale(z)", "the fixed part")
    [('scale', 8)]
    >>> try:
    ...     check_term("x z", 4, "y ~ x z", "the fixed part")
    ... except FormulaError as err:
    ...     print(err.position)
    6
    """
    tokens = _tokenize(text, pos, formula)
    reader = _Reader(tokens, pos + len(text), formula, where)
    if tokens and tokens[0].text == "+":
        raise reader.fail("a term cannot start with '+'")
    reader.sum(None)
    return reader.calls


def term_calls(text: str) -> list[str]:
    """The functions a (checked) term calls, outermost first.

    Examples
    --------
    >>> term_calls("log(x) + poly(z, 2):f")
    ['log', 'poly']
    """
    return [name for name, _ in check_term(text, 0, text, "the term")]
