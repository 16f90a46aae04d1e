"""Response checks: each family's ``check(y, trials, name)`` validates the raw response (and the
binomial trials) and returns them as floats, or raises a :class:`~bayesmix.errors.ResponseError`
that names the column and says what to do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayesmix.errors import ResponseError

__all__ = ["numeric", "check_real", "check_positive", "check_count", "check_unit",
           "check_bernoulli", "check_binomial", "check_beta_binomial", "check_cumulative",
           "ordinal_levels"]


def numeric(y: np.ndarray, name: str, family: str) -> np.ndarray:
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ResponseError(f"the response {name!r} must be numeric for family {family!r}; "
                            f"it has values like {np.asarray(y)[0]!r}") from None
    if not np.all(np.isfinite(values)):
        raise ResponseError(f"the response {name!r} has infinite values")
    return values


def _counts(values: np.ndarray, what: str, family: str) -> None:
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        example = values[bad][0]
        raise ResponseError(f"{what} must be non-negative integers for family {family!r}; "
                            f"found {example:g} ({int(bad.sum())} such rows). "
                            "For continuous outcomes use family='gaussian' (or 'gamma', "
                            "'lognormal' for positive ones)")


def _no_trials(trials: np.ndarray | None, name: str, family: str) -> None:
    if trials is not None:
        raise ResponseError(f"the response {name!r} has cbind()/trials(), which needs "
                            f"family='binomial' or 'beta_binomial', not {family!r}")


def check_real(family: str):
    def check(y, trials, name):
        _no_trials(trials, name, family)
        return numeric(y, name, family), None
    return check


def check_positive(family: str):
    def check(y, trials, name):
        _no_trials(trials, name, family)
        values = numeric(y, name, family)
        bad = values <= 0
        if bad.any():
            raise ResponseError(
                f"the response {name!r} must be positive for family {family!r}; found "
                f"{values[bad][0]:g} in {int(bad.sum())} rows. Zeros and negative values "
                f"cannot come from a {family} distribution: check the column, model the "
                "zeros separately, or use family='gaussian'")
        return values, None
    return check


def check_count(family: str):
    def check(y, trials, name):
        _no_trials(trials, name, family)
        values = numeric(y, name, family)
        _counts(values, f"the response {name!r}", family)
        return values, None
    return check


def check_unit(y: np.ndarray, trials: np.ndarray | None, name: str):
    _no_trials(trials, name, "beta")
    values = numeric(y, name, "beta")
    outside = (values < 0) | (values > 1)
    if outside.any():
        raise ResponseError(f"the response {name!r} must be a proportion strictly between 0 "
                            f"and 1 for family 'beta'; found {values[outside][0]:g} "
                            f"({int(outside.sum())} rows). Rescale it to (0, 1) first")
    edge = (values == 0) | (values == 1)
    if edge.any():
        n = len(values)
        raise ResponseError(
            f"the response {name!r} has {int(edge.sum())} values of exactly 0 or 1 (first: "
            f"{values[edge][0]:g}); family 'beta' needs 0 < y < 1. Squeeze them inward, e.g. "
            f"(y * (n - 1) + 0.5) / n with n = {n} (Smithson & Verkuilen 2006), or use a "
            "zero-one-inflated beta model")
    return values, None


def check_bernoulli(y: np.ndarray, trials: np.ndarray | None, name: str):
    if trials is not None:
        raise ResponseError(f"family 'bernoulli' takes a 0/1 response; for {name!r} with "
                            "trials use family='binomial'")
    if y.dtype == object:  # labels: the second (last) level is the success, as in R's glm
        levels = sorted(set(y.tolist()), key=str)
        if len(levels) != 2:
            raise ResponseError(f"the response {name!r} must have two values for family "
                                f"'bernoulli'; it has {len(levels)}: {levels[:5]}")
        return (y == levels[1]).astype(float), None
    values = numeric(y, name, "bernoulli")
    if not np.isin(values, (0.0, 1.0)).all():
        bad = values[~np.isin(values, (0.0, 1.0))][0]
        raise ResponseError(f"the response {name!r} must be 0 or 1 for family 'bernoulli'; "
                            f"found {bad:g}. For counts out of n use "
                            f"'{name} | trials(n)' with family='binomial'")
    return values, None


def check_binomial(y: np.ndarray, trials: np.ndarray | None, name: str, family: str = "binomial"):
    if trials is None:
        values, _ = check_bernoulli(y, None, name)
        return values, np.ones_like(values)
    values = numeric(y, name, family)
    n = numeric(trials, "trials", family)
    _counts(values, f"the successes {name!r}", family)
    _counts(n, "the number of trials", family)
    over = values > n
    if over.any():
        i = int(np.argmax(over))
        raise ResponseError(f"successes exceed trials in {int(over.sum())} rows (first: "
                            f"{values[i]:g} successes of {n[i]:g} trials); check the response "
                            f"'{name}' and its trials (cbind(successes, failures) or "
                            "successes | trials(n))")
    if (n == 0).any():
        raise ResponseError(f"{int((n == 0).sum())} rows have zero trials; drop them")
    return values, n


def check_beta_binomial(y: np.ndarray, trials: np.ndarray | None, name: str):
    if trials is None or np.all(np.asarray(trials) == 1):
        raise ResponseError(
            f"family 'beta_binomial' needs counts out of n trials, e.g. '{name} | trials(n) ~ "
            "...' or cbind(successes, failures); with one trial per row its overdispersion "
            "phi cannot be estimated (use family='bernoulli')")
    return check_binomial(y, trials, name, "beta_binomial")


def ordinal_levels(y: Any, name: str) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Category index 1..K of each row and the K category labels of an ordinal response.

    Accepts an ordered pandas Categorical (its category order; unobserved categories are
    dropped) or integers (the sorted observed values). Unordered labels are refused, since
    their order would be a guess.

    Examples
    --------
    >>> codes, labels = ordinal_levels(pd.Categorical(["lo", "hi", "mid"],
    ...                                ["lo", "mid", "hi"], ordered=True), "rating")
    >>> codes.tolist(), labels
    ([1.0, 3.0, 2.0], ('lo', 'mid', 'hi'))
    """
    if isinstance(y, pd.Series):
        y = y.array
    if isinstance(y, pd.Categorical):
        if not y.ordered:
            raise ResponseError(
                f"the ordinal response {name!r} is an unordered categorical (categories "
                f"{list(y.categories)[:6]}); its order would be a guess. Pass an ordered "
                f"one: df[{name!r}] = pd.Categorical(df[{name!r}], categories=[lowest, ..., "
                "highest], ordered=True)")
        y = y.remove_unused_categories()
        return y.codes.astype(float) + 1.0, tuple(y.categories)
    values = np.asarray(y)
    if values.dtype == object or not np.issubdtype(values.dtype, np.number):
        raise ResponseError(
            f"the ordinal response {name!r} has text labels (e.g. {values[0]!r}) whose order "
            f"is unknown; pass an ordered Categorical: df[{name!r}] = pd.Categorical("
            f"df[{name!r}], categories=[lowest, ..., highest], ordered=True), or integers")
    values = numeric(values, name, "cumulative")
    if np.any(values != np.round(values)):
        raise ResponseError(f"the ordinal response {name!r} must hold integer ratings or an "
                            f"ordered Categorical; found {values[values != np.round(values)][0]:g}")
    labels, codes = np.unique(values, return_inverse=True)
    return codes.astype(float) + 1.0, tuple(int(v) for v in labels)


def check_cumulative(y: Any, trials: np.ndarray | None, name: str):
    _no_trials(trials, name, "cumulative")
    codes, labels = ordinal_levels(y, name)
    if len(labels) < 2:
        raise ResponseError(f"the ordinal response {name!r} has a single observed category "
                            f"({labels[0]!r}); an ordinal model needs at least two")
    return codes, None
