"""``bm.load``: a saved fit back as a :class:`~bayesmix.FitResult` (format:
:mod:`bayesmix.results.persist`)."""

from __future__ import annotations

import warnings
from pathlib import Path

from bayesmix.api.fit import FitResult
from bayesmix.api.model import Model
from bayesmix.errors import MissingDataWarning, PersistError
from bayesmix.results.persist import design_fingerprint, read

__all__ = ["load"]


def load(path: str | Path) -> FitResult:
    """Read a fit written by :meth:`FitResult.save`.

    The model is rebuilt from its saved arguments and data through the same
    :class:`~bayesmix.Model` path as any other, and checked against the saved design's
    fingerprint: a different design (another formulae or pandas version) would predict
    differently, so loading refuses it.

    Examples
    --------
    >>> fit = bm.load("sleep.bayesmix")  # doctest: +SKIP
    """
    saved = read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)  # warned when first built
        model = Model(**saved.model_args)
    if design_fingerprint(model) != saved.fingerprint:
        raise PersistError(f"the design rebuilt from {str(path)!r} differs from the saved one "
                           "(different formulae or pandas version?): its predictions would "
                           "differ, so it is not loaded")
    return FitResult(model=model, idata=saved.idata, settings=saved.settings,
                     timing=saved.timing)
