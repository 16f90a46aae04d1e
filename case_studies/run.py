"""Build and execute the case-study notebooks (``make notebooks``).

Each notebook's source is a percent-format script in ``case_studies/src/`` (``# %%`` starts a
code cell, ``# %% [markdown]`` a text cell whose lines start with ``# ``): readable diffs, one
source of truth. This script turns each into ``case_studies/<name>.ipynb``, executes it top to
bottom with a real Jupyter kernel (nbclient) and saves the outputs, so the notebooks read well
on a code-hosting site. A failing cell (including the final cell's assertions on the key
numbers) fails the run.

    python case_studies/run.py            # all notebooks
    python case_studies/run.py 08_sports  # the ones whose name contains the argument
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 900  # per cell


def to_notebook(source: str) -> nbformat.NotebookNode:
    """Percent-format script -> notebook (cells split at ``# %%`` lines)."""
    cells: list[nbformat.NotebookNode] = []
    kind, lines = None, []

    def flush() -> None:
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in text.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text:
            cells.append(nbformat.v4.new_code_cell(text))

    for line in source.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def run(path: Path) -> float:
    nb = to_notebook(path.read_text())
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    out = HERE / f"{path.stem}.ipynb"
    nbformat.write(nb, out)
    return time.perf_counter() - t0


def main(argv: list[str]) -> int:
    sources = sorted((HERE / "src").glob("*.py"))
    if argv:
        sources = [s for s in sources if any(a in s.stem for a in argv)]
    for src in sources:
        print(f"{src.stem}: running ...", flush=True)
        print(f"{src.stem}: done in {run(src):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
