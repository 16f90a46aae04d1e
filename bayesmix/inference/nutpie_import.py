"""Import nutpie without the plotting stack.

nutpie's ``sample`` module does ``import arviz``; ArviZ 1's umbrella package imports
``arviz_plots`` and with it matplotlib's pyplot (0.7-1 s of a fresh process, and a plotting
library a script that only fits never asked for). nutpie uses two functions of it,
``from_dict`` and ``dict_to_dataset``, both ``arviz_base``'s. When ``arviz`` is not yet
imported, :func:`import_nutpie` lets nutpie bind a stand-in module that forwards every name to
``arviz_base``, then removes the stand-in from ``sys.modules``, so a later ``import arviz``
(the user's) loads the real package. Anything unexpected: nutpie is imported plainly.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["import_nutpie"]


def import_nutpie() -> Any:
    """``import nutpie`` (and its ``compile_pymc`` module), without importing matplotlib."""
    if "nutpie.sample" in sys.modules or "arviz" in sys.modules:
        import nutpie
        import nutpie.compile_pymc  # noqa: F401

        return nutpie
    import arviz_base

    stand_in = types.ModuleType("arviz")
    stand_in.__getattr__ = lambda name: getattr(arviz_base, name)  # type: ignore[attr-defined]
    sys.modules["arviz"] = stand_in
    try:
        import nutpie
        import nutpie.compile_pymc  # noqa: F401
    finally:
        if sys.modules.get("arviz") is stand_in:
            del sys.modules["arviz"]
    return nutpie
