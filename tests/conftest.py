"""Test folders mirror the package's layers (tests/spec, tests/data, ... tests/api); shared
fits live in tests/_post_fits.py, importable from every folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
