# %% [markdown]
# # Model building: radon in Minnesota homes
#
# **Question.** Radon, a radioactive gas, enters homes from the ground. The EPA measured it in
# 919 Minnesota homes in 85 counties, in the basement (`floor = 0`) or on the first floor
# (`floor = 1`). How much radon should we expect in a house in a given county, including
# counties with one or two measurements? This is Gelman and Hill's (2007) running example of
# building a multilevel model step by step.
#
# We go from complete pooling to varying intercepts, add the county-level predictor (soil
# uranium), then varying slopes, and compare the models with PSIS-LOO, WAIC and grouped
# k-fold cross-validation; the REML fit of lme4's model is shown next to the Bayesian one.
#
# Sampling settings: 2 chains x 500 draws after 500 tuning steps for the comparisons (enough
# for LOO; the summaries' ESS is printed), k-fold with 5 folds of whole counties.

# %%
import matplotlib.pyplot as plt
import numpy as np

import bayesmix as bm

radon = bm.datasets.load("radon")
counts = radon.groupby("county", observed=True).size()
print(f"{len(radon)} homes, {radon['county'].nunique()} counties; "
      f"homes per county: median {counts.median():.0f}, min {counts.min()}, max {counts.max()}")
radon.head()

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].hist(radon["log_radon"], bins=30)
axes[0].set_xlabel("log radon (log pCi/L)")
axes[0].set_ylabel("homes")
county = radon.groupby("county", observed=True).agg(mean=("log_radon", "mean"),
                                                     n=("log_radon", "size"),
                                                     uranium=("log_uranium", "first"))
axes[1].scatter(county["n"], county["mean"])
axes[1].set_xscale("log")
axes[1].set_xlabel("homes measured in the county")
axes[1].set_ylabel("county mean log radon")
axes[1].set_title("Small counties have the most extreme means")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Step 1: complete pooling and no pooling
#
# Complete pooling ignores counties (`log_radon ~ floor`); no pooling fits a separate intercept
# per county (`log_radon ~ 0 + county + floor`), noisy for the many counties with a handful of
# homes. Both are special cases of the multilevel model: county SD 0 and county SD infinite.

# %%
settings = dict(draws=500, tune=500, chains=2, random_seed=2007, progressbar=False)
pooled = bm.Model("log_radon ~ floor", radon).fit(**settings)
varying = bm.Model("log_radon ~ floor + (1 | county)", radon).fit(**settings)
varying.summary()

# %%
fig = varying.plot_shrinkage("county")
plt.show()

# %% [markdown]
# The shrinkage plot shows every county's no-pooling estimate moving toward the population
# line; the counties with few homes move the most.
#
# ## Step 2: a county-level predictor
#
# Soil uranium is measured per county. As a fixed effect it explains part of the between-county
# variation, so the county SD shrinks and estimates for small counties borrow from counties
# with similar uranium rather than from the state average.

# %%
uranium = bm.Model("log_radon ~ floor + log_uranium + (1 | county)", radon).fit(**settings)
print(uranium.varcorr()[["group", "mean", "eti95_lb", "eti95_ub"]])
print(varying.varcorr()[["group", "mean", "eti95_lb", "eti95_ub"]])

# %% [markdown]
# The county SD falls from about 0.33 to about 0.15 once uranium is in the model.
#
# ## Step 3: varying slopes
#
# Does the basement-vs-first-floor difference vary by county? `(floor | county)` adds a county
# slope for `floor` and its correlation with the intercept.

# %%
slopes = bm.Model("log_radon ~ floor + log_uranium + (floor | county)", radon).fit(
    **settings, target_accept=0.9)
print(slopes.varcorr()[["group", "term", "term2", "kind", "mean", "eti95_lb", "eti95_ub"]])

# %% [markdown]
# ## Comparing the models
#
# PSIS-LOO estimates how well each model predicts a new home in a county we have data on.
# `bm.compare` ranks the models by their expected log predictive density (elpd).

# %%
fits = {"complete pooling": pooled, "varying intercepts": varying,
        "+ uranium": uranium, "+ varying floor slopes": slopes}
comparison = bm.compare(fits)
comparison

# %%
waic = uranium.waic()
loo = uranium.loo()
print(waic)
print(loo)

# %% [markdown]
# LOO answers "a new home in a known county". For a **new county** we need to leave out whole
# counties: grouped k-fold cross-validation refits the model five times, each time holding out
# a fifth of the counties, and scores the held-out homes with new county effects drawn from
# the fitted county distribution.

# %%
kfold_varying = varying.kfold(k=5, group="county", random_seed=1, draws=300, tune=300)
kfold_uranium = uranium.kfold(k=5, group="county", random_seed=1, draws=300, tune=300)
print(kfold_varying)
print(kfold_uranium)

# %% [markdown]
# ## The frequentist fit, side by side
#
# lme4's REML estimates of the uranium model (reproduced by `model.fit_ml()`, checked against
# lme4 in bayesmix's tests) and the posterior means agree closely with this much data.

# %%
ml = bm.Model("log_radon ~ floor + log_uranium + (1 | county)", radon).fit_ml()
side = ml.fixef()[["estimate", "std_error"]].join(uranium.fixef()[["mean", "sd"]])
side

# %% [markdown]
# ## Predictions for a house
#
# Expected log radon for a basement measurement in a county we know, and in a new county with
# the state's median uranium level (a new county draws its effect from the county
# distribution).

# %%
import pandas as pd

new = pd.DataFrame({"floor": [0, 0], "county": ["HENNEPIN", "a new county"],
                    "log_uranium": [county.loc["HENNEPIN", "uranium"],
                                    county["uranium"].median()]})
uranium.predict(new, kind="response", re="sample_new", random_seed=1, summary=True)

# %% [markdown]
# ## What we learned
#
# * Partial pooling gives sensible estimates for counties with one or two homes.
# * Soil uranium explains more than half of the between-county SD.
# * The models with county effects predict new homes much better than complete pooling; the
#   varying floor slopes add little.

# %%
elpd = comparison["elpd"] if "elpd" in comparison else comparison.iloc[:, 1]
assert comparison.index[0] != "complete pooling"
sd_varying = varying.varcorr().query("group == 'county'")["mean"].iloc[0]
sd_uranium = uranium.varcorr().query("group == 'county'")["mean"].iloc[0]
assert sd_uranium < 0.7 * sd_varying, (sd_uranium, sd_varying)
fe = ml.fixef()["estimate"]
assert abs(fe["log_uranium"] - 0.697) < 0.01 and abs(fe["floor"] + 0.639) < 0.01
assert abs(uranium.fixef().loc["log_uranium", "mean"] - 0.697) < 0.1
print("checks passed")
