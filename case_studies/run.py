"""Build and execute the case-study notebooks (``make notebooks``).

Each notebook's source is a percent-format script in ``case_studies/src/`` (``# %%`` starts a
code cell, ``# %% [markdown]`` a text cell whose lines start with ``# ``): readable diffs, one
source of truth. This script turns each into ``case_studies/<name>.ipynb``, executes it top to
bottom with a real Jupyter kernel (nbclient) and saves the outputs, so the notebooks read well
on a code-hosting site. A failing cell (including the final cell's assertions on the key
numbers) fails the run.

    python case_studies/run.py            # all notebooks
    python case_studies/run.py 08_sports  # the ones whose name contains the argument
    python case_studies/run.py --text-only  # new prose, same code: keep the saved outputs
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


def refresh_text(path: Path) -> bool:
    """Rewrite ``path``'s notebook with the source's text cells and the saved outputs, without
    executing, when its code cells are unchanged (False, nothing written, otherwise)."""
    nb, out = to_notebook(path.read_text()), HERE / f"{path.stem}.ipynb"
    if not out.exists():
        return False
    old = nbformat.read(out, as_version=4)
    new_code = [c for c in nb.cells if c.cell_type == "code"]
    old_code = [c for c in old.cells if c.cell_type == "code"]
    if [c.source for c in new_code] != [c.source for c in old_code]:
        return False
    for new_cell, old_cell in zip(new_code, old_code):
        new_cell.outputs, new_cell.execution_count = old_cell.outputs, old_cell.execution_count
    nbformat.write(nb, out)
    return True


def main(argv: list[str]) -> int:
    text_only = "--text-only" in argv  # prose edits: keep the executed outputs
    argv = [a for a in argv if a != "--text-only"]
    sources = sorted((HERE / "src").glob("*.py"))
    if argv:
        sources = [s for s in sources if any(a in s.stem for a in argv)]
    if text_only:
        for src in sources:
            done = refresh_text(src)
            print(f"{src.stem}: {'text refreshed' if done else 'code changed: run it'}")
        return 0
    for src in sources:
        print(f"{src.stem}: running ...", flush=True)
        print(f"{src.stem}: done in {run(src):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
