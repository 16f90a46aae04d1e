"""bambi's own virtual environment (``benchmarks/.bambi-venv``, git-ignored).

bambi pins an older ``formulae`` than bayesmix needs, so it never shares bayesmix's
environment. The venv is created on first use with the base interpreter of the running
Python (the one bayesmix's ``.venv`` was made from) and ``pip install <spec>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["DEFAULT_SPEC", "VENV", "ensure_bambi", "bambi_versions"]

DEFAULT_SPEC = "bambi==0.21.0"
VENV = Path(__file__).resolve().parent / ".bambi-venv"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _base_interpreter() -> str:
    """The interpreter the running venv was created from (``sys._base_executable``)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if os.path.exists(base) else sys.executable


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    out = subprocess.run([str(python), "-c", "import bambi"], capture_output=True)
    return out.returncode == 0


def ensure_bambi(spec: str = DEFAULT_SPEC, venv: Path = VENV, quiet: bool = False) -> str:
    """Path of a Python that imports bambi, creating ``venv`` when it is missing."""
    python = _python(venv)
    if _works(python):
        return str(python)
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    if not python.exists():
        base = _base_interpreter()
        log(f"creating bambi's virtual environment {venv} with {base}")
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    log(f"installing {spec} into {venv} (pip; a few minutes the first time)")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                   check=False)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", spec], check=True)
    if not _works(python):
        raise RuntimeError(f"{python} cannot import bambi after installing {spec}")
    return str(python)


def bambi_versions(python: str) -> dict[str, str]:
    code = ("import json, bambi, pymc, pytensor, formulae, numpy; print(json.dumps({m.__name__: "
            "m.__version__ for m in (bambi, pymc, pytensor, formulae, numpy)}))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    try:
        import json

        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001
        return {}
