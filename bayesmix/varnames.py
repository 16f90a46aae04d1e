"""The names of posterior variables and their dimensions, spelled in one place.

Every module that reads or writes ``fit.idata`` asks this module for a name instead of
formatting it by hand. ``block`` is a random-effects block (anything with ``name``,
``group`` and ``dim``, see :class:`bayesmix.data.design.RandomBlock`); ``lp`` names a further
linear predictor (``"sigma"``, ``"Asym"``; ``""`` for the mean).

============================  ===============================  =============================
variable                      name                             dims (after chain, draw)
============================  ===============================  =============================
fixed effects                 ``fixef`` / ``fixef_<lp>``       ``coef`` / ``coef_<lp>``
group SDs                     ``sd_<block>``                   ``<block>__term``
group correlations            ``cor_<block>``                  ``<block>__term``, ``__term2``
level effects                 ``r_<block>``                    ``<group>``, ``<block>__term``
pointwise data and draws      ``<response>``                   ``<response>_dim_0``
============================  ===============================  =============================

Examples
--------
>>> from types import SimpleNamespace
>>> block = SimpleNamespace(name="Subject", group="Subject", dim=None)
>>> sd(block), term_dim(block), level_dim(block), fixef("sigma")
('sd_Subject', 'Subject__term', 'Subject', 'fixef_sigma')
"""

from __future__ import annotations

from typing import Any

__all__ = ["SAMPLE_DIMS", "suffix", "fixef", "coef_dim", "sd", "cor", "ranef", "term_dim",
           "term2_dim", "level_dim", "obs_dim", "z", "gamma", "is_internal"]

SAMPLE_DIMS = ("chain", "draw")
_RESERVED_DIMS = {"chain", "draw", "sample"}  # ArviZ's sample dims


def suffix(lp: str = "") -> str:
    """Suffix of a further linear predictor's variables (``fixef_sigma``); none for the mean."""
    return f"_{lp}" if lp else ""


def fixef(lp: str = "") -> str:
    return f"fixef{suffix(lp)}"


def coef_dim(lp: str = "") -> str:
    return f"coef{suffix(lp)}"


def sd(block: Any) -> str:
    return f"sd_{block.name}"


def cor(block: Any) -> str:
    return f"cor_{block.name}"


def ranef(block: Any) -> str:
    return f"r_{block.name}"


def z(block: Any) -> str:
    """The standardised level effects of a non-centred block (a sampler internal)."""
    return f"_z_{block.name}"


def gamma(block: Any) -> str:
    """The level effects (plus absorbed means) of a centred block (a sampler internal)."""
    return f"_gamma_{block.name}"


def term_dim(block: Any) -> str:
    return f"{block.name}__term"


def term2_dim(block: Any) -> str:
    """The second term dimension of a correlation matrix."""
    return f"{block.name}__term2"


def level_dim(block: Any) -> str:
    """The levels' dimension: the grouping factor's name (``<name>__level`` if ArviZ reserves it)."""
    if block.dim:  # a gr() block whose levels differ from another block's of its factor
        return block.dim
    return f"{block.group}__level" if block.group in _RESERVED_DIMS else block.group


def obs_dim(response: str) -> str:
    """The rows' dimension of the observed data, log-likelihood and predictive draws."""
    return f"{response}_dim_0"


def is_internal(name: str) -> bool:
    """Sampler internals start with ``_`` and are dropped from the results."""
    return name.startswith("_")
