"""Plain-text output shared by every layer: the printed-summary type and table formatting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Summary", "format_table", "format_number"]


@dataclass(frozen=True)
class Summary:
    """lme4-style printed summary; ``str()``/``repr()`` give the text.

    Examples
    --------
    >>> Summary("Linear mixed model")
    Linear mixed model
    """

    text: str

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def format_number(x: float, digits: int = 4) -> str:
    if not np.isfinite(x):
        return "NA"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:#.{digits}g}" if abs(x) >= 1 else f"{x:.{digits - 1}f}"


def format_table(table: pd.DataFrame, index: bool = True) -> str:
    """Plain-text table: text left-aligned, numbers right-aligned to 4 significant digits."""
    cols: list[tuple[str, list[str], bool]] = []
    if index:
        cols.append(("", [str(v) for v in table.index], False))
    for col in table.columns:
        values = table[col]
        if pd.api.types.is_float_dtype(values):
            if str(col).startswith("ess"):
                cells = ["NA" if not np.isfinite(v) else f"{v:.0f}" for v in values]
            elif col == "r_hat":
                cells = ["NA" if not np.isfinite(v) else f"{v:.3f}" for v in values]
            else:
                cells = [format_number(v) for v in values]
            cols.append((str(col), cells, True))
        else:
            cols.append((str(col), [str(v) for v in values], False))
    widths = [max(len(name), *(len(c) for c in cells)) if cells else len(name)
              for name, cells, _ in cols]
    lines = []
    for row in range(-1, len(table)):
        parts = []
        for (name, cells, right), width in zip(cols, widths):
            cell = name if row < 0 else cells[row]
            parts.append(cell.rjust(width) if right else cell.ljust(width))
        lines.append(" ".join(parts).rstrip())
    return "\n".join(lines)
