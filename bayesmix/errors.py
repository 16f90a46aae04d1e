"""Error and warning classes.

Every problem with user input is reported with a :class:`BayesmixError` subclass that names the
formula term, column or level at fault and says how to fix it, before any sampling starts. Most
subclasses are also ``ValueError``/``TypeError`` so that generic handlers keep working.
"""

from __future__ import annotations

import os
import warnings

# Warnings point at the first frame outside this package: the user's own line.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(message: str, category: type[Warning]) -> None:
    """Emit a bayesmix warning attributed to the caller's code, not to bayesmix internals."""
    warnings.warn(message, category, skip_file_prefixes=(_PACKAGE_DIR,))


class BayesmixError(Exception):
    """Base class of every error bayesmix raises on purpose."""


class FormulaError(BayesmixError, ValueError):
    """The formula text cannot be parsed; carries the offending token and its position.

    Examples
    --------
    >>> import bayesmix as bm
    >>> try:
    ...     bm.parse_formula("y ~ x + (1 | g")
    ... except bm.FormulaError as err:
    ...     print(err.position)
    8
    """

    def __init__(self, message: str, formula: str = "", position: int | None = None,
                 token: str | None = None) -> None:
        self.formula = formula
        self.position = position
        self.token = token
        text = message
        if formula and position is not None:
            text += f"\n  {formula}\n  {' ' * position}^"
        super().__init__(text)


class DataError(BayesmixError, ValueError):
    """The data do not fit the formula: unknown columns, missing values, too few levels."""


class ResponseError(DataError):
    """The response column is not valid for the chosen family (e.g. negative counts)."""


class FamilyError(BayesmixError, ValueError):
    """Unknown family or link, or a link the family does not support."""


class PriorError(BayesmixError, ValueError):
    """A prior override names no parameter of the model, or its distribution is invalid."""


class SamplerError(BayesmixError, ValueError):
    """Unknown sampler name, a sampler whose optional dependency is missing, or bad settings."""


class DatasetError(BayesmixError, ValueError):
    """A dataset name that bayesmix does not ship."""


class PersistError(BayesmixError, ValueError):
    """A saved fit that cannot be written or read (e.g. a newer format version)."""


class BatchError(BayesmixError, ValueError):
    """A batch of fits (``bm.fit_many``, ``bm.power``) that cannot run as asked: bad data
    sets or task ids, an output directory holding another batch's results, no Dask."""


class MissingDataWarning(UserWarning):
    """Rows were dropped because a column used by the model has missing values."""


class RankDeficiencyWarning(UserWarning):
    """Fixed-effect columns that are linear combinations of earlier ones were dropped (lme4's
    "fixed-effect model matrix is rank deficient so dropping ..."); the warning names them."""


class ConvergenceWarning(UserWarning):
    """Sampling diagnostics (R-hat, ESS, divergences) suggest the posterior is not trustworthy."""


class SingularFitWarning(UserWarning):
    """A variance component piles up at zero or a correlation at +-1 (lme4's singular fit);
    ``fit.check()`` explains which and what to do."""
