"""``update()`` formulas: R's ``update.formula`` rules on lme4-style formula text.

In the new formula a ``.`` stands for the old formula's side: ``. ~ . + x`` adds a term,
``~ . - (1 | g) + (1 + x | g)`` swaps a random term, ``log(.) ~ .`` transforms the response,
``. ~ . - 1`` drops the intercept. Terms are matched as written (spaces ignored).
"""

from __future__ import annotations

from bayesmix.errors import FormulaError

__all__ = ["update_formula"]


def _signed_terms(text: str) -> list[tuple[str, str]]:
    """The top-level terms of a formula side with their signs ("+" or "-")."""
    terms, depth, start, sign = [], 0, 0, "+"
    for i, ch in enumerate(text + "+"):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch in "+-" and depth == 0 and (i == len(text) or not _exponent(text, i)):
            piece = text[start:i].strip()
            if piece:
                terms.append((sign, piece))
            elif i < len(text) and terms:  # two operators in a row: "x + - z"
                raise FormulaError(f"two operators in a row in {text.strip()!r}")
            sign, start = ch, i + 1
    return terms


def _exponent(text: str, i: int) -> bool:
    """A sign inside a number such as 1e-3."""
    return i >= 2 and text[i - 1] in "eE" and text[i - 2].isdigit()


def _key(term: str) -> str:
    return "".join(term.split())


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with each ``.`` replaced by the matching side of ``old``.

    Examples
    --------
    >>> update_formula("Reaction ~ Days + (Days | Subject)", ". ~ . - (Days | Subject) + (1 | Subject)")
    'Reaction ~ Days + (1 | Subject)'
    >>> update_formula("y ~ x + (1 | g)", "log(.) ~ . + z")
    'log(y) ~ x + (1 | g) + z'
    >>> update_formula("y ~ x + (1 | g)", "~ . - 1")
    'y ~ x + (1 | g) + 0'
    """
    if not isinstance(new, str) or "~" not in new:
        raise FormulaError(f"an update formula needs '~' ('. ~ . + x', '~ . - x'), not {new!r}")
    old_lhs, old_rhs = (part.strip() for part in old.split("~", 1))
    lhs, rhs = (part.strip() for part in new.split("~", 1))
    lhs = old_lhs if lhs in ("", ".") else _dot(lhs, old_lhs)
    terms: list[str] = []
    for sign, term in _signed_terms(rhs):
        if term == ".":
            expanded = [t for s, t in _signed_terms(old_rhs) if s == "+"]
            dropped = [t for s, t in _signed_terms(old_rhs) if s == "-"]
            terms += expanded + [f"- {t}" for t in dropped]
        elif sign == "+":
            terms.append(term)
        elif term in ("1", "0"):
            terms = [t for t in terms if _key(t) != "1"] + ["0"]
        else:
            kept = [t for t in terms if _key(t) != _key(term)]
            if len(kept) == len(terms):
                raise FormulaError(f"update: '- {term}' removes no term of "
                                   f"'{lhs} ~ {' + '.join(terms)}'; terms are matched as "
                                   "written (spaces ignored)")
            terms = kept
    if not terms:
        raise FormulaError(f"update: {new!r} leaves no terms in the formula")
    return f"{lhs} ~ " + " + ".join(terms).replace("+ - ", "- ")


def _dot(side: str, old: str) -> str:
    """``side`` with its standalone dots replaced by ``old`` (``log(.)`` -> ``log(y)``)."""
    out = []
    for i, ch in enumerate(side):
        prev = side[i - 1] if i else ""
        nxt = side[i + 1] if i + 1 < len(side) else ""
        standalone = ch == "." and not (prev.isalnum() or prev in "._" or nxt.isalnum()
                                        or nxt in "._")
        out.append(old if standalone else ch)
    return "".join(out)
