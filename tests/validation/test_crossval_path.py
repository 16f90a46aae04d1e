"""k-fold refits take the path every fit takes (ModelSpec.on_rows, then sample_model): the
fold's model is the fitted model on the training rows, weights, ordinal categories and
centring included, and models a fold cannot refit are refused before any refit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesmix as bm
from bayesmix.inference.sample import SamplerSettings
from bayesmix.validation.crossval import kfold


def _counts(n_groups: int = 8, per: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.4 * x + rng.normal(0, 0.5, n_groups)[g]))
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{i}" for i in g],
                         "w": rng.choice([0.5, 1.0, 2.0], g.size)})


def _point(model) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    pm_model = model.pymc_model
    point = pm_model.initial_point()
    return {k: v + 0.1 * rng.normal(size=np.shape(v)) for k, v in point.items()}


def test_a_fold_is_the_model_on_its_training_rows_with_weights_and_priors():
    df = _counts()
    full = bm.Model("y ~ x + (1 | g)", df, family="poisson", weights="w")
    train = np.flatnonzero(np.arange(len(df)) % 4 != 0)  # every group keeps rows
    fold = full.on_rows(train)
    direct = bm.Model("y ~ x + (1 | g)", df.iloc[train], family="poisson", weights="w",
                      priors=full.prior_dict,
                      centered={b.name: c for b, c in zip(full.design.blocks, full.centered)})
    point = _point(fold)
    assert fold.pymc_model.compile_logp()(point) == pytest.approx(
        direct.pymc_model.compile_logp()(point), rel=1e-12)
    # and the weights matter: the unweighted model on the same rows differs
    plain = bm.Model("y ~ x + (1 | g)", df.iloc[train], family="poisson",
                     priors=full.prior_dict, centered=dict(zip([b.name for b in full.design.blocks],
                                                              full.centered)))
    assert abs(plain.pymc_model.compile_logp()(point) - fold.pymc_model.compile_logp()(point)) > 1
    assert full.pymc_model is not fold.pymc_model and full.design.n == len(df)  # untouched


def test_an_ordinal_fold_keeps_the_categories_and_stores_the_cutpoints():
    df = bm.datasets.load("inhaler")
    full = bm.Model("rating ~ treat + period + (1 | subject)", df, family="cumulative")
    first = df.groupby("subject").cumcount().to_numpy() == 0
    third = df["subject"].astype("category").cat.codes.to_numpy() % 3 == 0
    train = np.flatnonzero(~(first & third))  # a third of the subjects lose one of two rows
    fold = full.on_rows(train)
    assert fold.categories == full.categories and "cutpoints" in fold.stored_names()
    assert list(fold.pymc_model.coords["cutpoint"]) == list(full.pymc_model.coords["cutpoint"])
    # the same model as bm.Model on the fold's rows with the full model's priors and centring
    direct = bm.Model("rating ~ treat + period + (1 | subject)", df.iloc[train],
                      family="cumulative", priors=full.prior_dict,
                      centered={b.name: c for b, c in zip(full.design.blocks, full.centered)})
    assert direct.design.blocks[0].n_levels == fold.design.blocks[0].n_levels  # all subjects
    point = _point(fold)
    assert fold.pymc_model.compile_logp()(point) == pytest.approx(
        direct.pymc_model.compile_logp()(point), rel=1e-12)


@pytest.mark.parametrize(("build", "what"), [
    (lambda: bm.Model("Reaction ~ Days + (1 | Subject)", bm.datasets.load("sleepstudy"),
                      autocor=bm.AR1(time="Days", group="Subject")), "AR\\(1\\) residuals"),
    (lambda: bm.Model(bm.Formula("Reaction ~ Days + (1 | Subject)", "sigma ~ Days"),
                      bm.datasets.load("sleepstudy")), "bm.Formula"),
    (lambda: bm.Model(bm.NonLinear("circumference ~ Asym / (1 + exp((xmid - age) / scal))",
                                   Asym="1 + (1 | Tree)", xmid="1", scal="1"),
                      bm.datasets.load("orange"),
                      priors={"Asym:(Intercept)": bm.Prior("Normal", mu=200, sigma=50),
                              "xmid:(Intercept)": bm.Prior("Normal", mu=700, sigma=200),
                              "scal:(Intercept)": bm.Prior("Normal", mu=350, sigma=100)}),
     "bm.NonLinear"),
])
def test_models_a_fold_cannot_refit_are_refused_before_any_refit(build, what):
    model = build()
    with pytest.raises(bm.BayesmixError, match=f"does not support models with {what}"):
        kfold(None, model, SamplerSettings(), k=3)  # no posterior needed: refused first
