"""Every ```python block of the user guide and references runs (so the docs cannot drift).

Blocks of one page run in order in one namespace, in a temporary directory, with the Agg
backend; a page's blocks are one test. Plots are closed after each page.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def code_blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text())


PAGES = sorted(p for p in DOCS.rglob("*.md") if code_blocks(p))


def test_pages_have_examples():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"guide/lmm.md", "guide/glmm.md", "guide/interpretation.md",
            "guide/convergence.md", "reference/families.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_code_runs(page: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, block in enumerate(code_blocks(page)):
            try:
                exec(compile(block, f"{page.name}[block {i + 1}]", "exec"), namespace)
            except Exception as err:  # name the block in the failure
                raise AssertionError(f"{page.name}, code block {i + 1} failed: "
                                     f"{type(err).__name__}: {err}\n{block}") from err
    plt.close("all")
