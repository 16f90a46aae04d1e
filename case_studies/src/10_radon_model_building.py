# %% [markdown]
# # Model building: radon in Minnesota homes
#
# **Question.** Radon, a radioactive gas, enters homes from the ground. The EPA measured it in
# 919 Minnesota homes in 85 counties, in the basement (`floor = 0`) or on the first floor
# (`floor = 1`). How much radon should we expect in a house in a given county, including
# counties with one or two measurements, and in a county not measured at all? This is Gelman
# and Hill's (2007) running example of building a multilevel model step by step.
#
# We go from complete pooling and no pooling to varying intercepts, add the county-level
# predictor (soil uranium), try varying slopes, and compare the models with PSIS-LOO (a new
# home in a known county) and grouped k-fold cross-validation (a new county); the REML fit of
# lme4's model is shown next to the Bayesian one, and the last step predicts radon levels
# against the EPA's action level.
#
# Sampling settings: 4 chains x 1000 draws after 1000 tuning steps; k-fold refits use the same
# settings, 5 folds of whole counties.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmix as bm

radon = bm.datasets.load("radon")
county = radon.groupby("county", observed=True).agg(
    homes=("log_radon", "size"), mean=("log_radon", "mean"), uranium=("log_uranium", "first"))
print(f"{len(radon)} homes, {len(county)} counties; homes per county: median "
      f"{county['homes'].median():.0f}, min {county['homes'].min()}, "
      f"max {county['homes'].max()}; {(county['homes'] <= 2).sum()} counties with 1 or 2 homes")
print(f"first-floor measurements: {radon['floor'].mean():.0%}")
radon.head()

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
axes[0].hist(radon["log_radon"], bins=30)
axes[0].set_xlabel("log radon (log pCi/L)")
axes[0].set_ylabel("homes")
axes[0].set_title("919 measurements")
axes[1].scatter(county["homes"], county["mean"], s=15)
axes[1].set_xscale("log")
axes[1].set_xlabel("homes measured in the county (log scale)")
axes[1].set_ylabel("county mean log radon")
axes[1].set_title("Small counties have the most extreme means")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Step 1: complete pooling, no pooling, partial pooling
#
# Complete pooling ignores counties (`log_radon ~ floor`); no pooling estimates each county's
# level from its own homes alone, noisy for the many counties with a handful of homes. The
# multilevel model with varying intercepts, `log_radon ~ floor + (1 | county)`, lies between
# them: both are its special cases, with county SD 0 and county SD infinite.

# %%
settings = {"draws": 1000, "tune": 1000, "chains": 4, "random_seed": 2007,
            "progressbar": False}
pooled = bm.Model("log_radon ~ floor", radon).fit(**settings)
varying = bm.Model("log_radon ~ floor + (1 | county)", radon).fit(**settings)
varying.summary()

# %% [markdown]
# Basement measurements are higher: first-floor readings are about 0.66 lower on the log
# scale, i.e. exp(-0.66) = 0.52 times the basement level. Counties vary around the state's
# level with SD 0.32 on the log scale; the residual SD between homes in a county is 0.73.
#
# Each county's basement level under no pooling (least squares on the county's own homes,
# `bm.plots.no_pooling_estimates`) and under partial pooling (posterior mean and 95% interval
# of the expected basement log radon, `fit.predict`), against the number of homes:

# %%
raw = bm.plots.no_pooling_estimates(varying.idata, varying.model, "county")["(Intercept)"]
basement = pd.DataFrame({"floor": 0, "county": county.index})
partial = varying.predict(basement, kind="mean", summary=True).set_index(county.index)
state = varying.fixef().loc["(Intercept)", "mean"]
jitter = np.exp(np.random.default_rng(1).uniform(-0.08, 0.08, len(county)))
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
axes[0].scatter(county["homes"] * jitter, raw, s=12, color="C1")
axes[0].set_title("No pooling")
axes[1].errorbar(county["homes"] * jitter, partial["mean"],
                 yerr=[partial["mean"] - partial["eti95_lb"],
                       partial["eti95_ub"] - partial["mean"]],
                 fmt="o", ms=3, elinewidth=0.6, color="C0")
axes[1].set_title("Partial pooling (95% intervals)")
for ax in axes:
    ax.axhline(state, color="0.4", ls="--", lw=1, label="state average (complete pooling)")
    ax.set_xscale("log")
    ax.set_xlabel("homes measured in the county (log scale)")
axes[0].set_ylabel("county basement level (log radon)")
axes[0].legend(fontsize=8)
fig.suptitle("County estimates: partial pooling pulls small counties toward the state average")
plt.tight_layout()
plt.show()
small = county["homes"] <= 2
print(f"counties with 1 or 2 homes: no pooling {raw[small].min():.2f} to {raw[small].max():.2f}, "
      f"partial pooling {partial['mean'][small].min():.2f} to {partial['mean'][small].max():.2f}")

# %% [markdown]
# Under no pooling the counties with one or two homes produce some of the most extreme levels
# (printed above); partial pooling pulls them close to the state average, and their intervals
# say how little they tell us. Counties with dozens of homes keep their own level.
#
# ## Step 2: a county-level predictor
#
# Soil uranium is measured per county. As a fixed effect it explains part of the between-county
# variation, so the county SD shrinks and the estimate for a small county borrows from counties
# with similar uranium rather than from the state average.

# %%
uranium_model = bm.Model("log_radon ~ floor + log_uranium + (1 | county)", radon)
uranium = uranium_model.fit(**settings)
uranium.summary()

# %%
levels = uranium.predict(basement.assign(log_uranium=county["uranium"].to_numpy()),
                         kind="mean", summary=True)
fe = uranium.fixef()["mean"]
u = np.linspace(county["uranium"].min(), county["uranium"].max(), 2)
fig, ax = plt.subplots(figsize=(6.5, 4.2))
ax.errorbar(county["uranium"], levels["mean"],
            yerr=[levels["mean"] - levels["eti95_lb"], levels["eti95_ub"] - levels["mean"]],
            fmt="o", ms=3, elinewidth=0.6, label="county basement level (95% interval)")
ax.plot(u, fe["(Intercept)"] + fe["log_uranium"] * u, color="k",
        label="population line: (Intercept) + log_uranium x u")
ax.set_xlabel("county log soil uranium")
ax.set_ylabel("basement log radon")
ax.set_title("County levels follow soil uranium")
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# Counties scatter tightly around the uranium line: the county SD falls from 0.32 to 0.15 with
# uranium in the model (lme4's REML estimate: 0.148), so uranium accounts for about three
# quarters of the between-county variance (1 - 0.15² / 0.32²). One unit higher log uranium
# (2.7 times the uranium) goes with about 0.7 higher log radon (twice the radon).
#
# ### Diagnostics of the uranium model
#
# `check()` collects the sampling diagnostics (divergences, R-hat, effective sample sizes,
# tree depth, E-BFMI) and flags a county SD the data do not inform (counties pooled most of
# the way to their mean and an SD whose posterior reaches down to zero: the Bayesian analogue
# of lme4's singular fit), with remedies in the order to try them. The
# residual plots check the Gaussian part of the model: Pearson residuals against fitted
# values (no trend or funnel expected), their scale against fitted values (constant spread),
# a normal Q-Q plot, residuals against `floor` and `log_uranium`, and a box per county
# (ordered by median residual).
#
# The report is clean: no sampling problem and no county SD at the boundary. The residuals
# show no trend against the fitted values, `floor` or `log_uranium`, and their spread is
# about constant. The Q-Q plot is straight except for a handful of very low readings in the
# lower tail (Pearson residuals near -4), the kind of home that PSIS-LOO flags below. The
# county boxes drift from below to above zero at the two ends of the ordering, mostly narrow
# boxes of counties with few homes: partial pooling shrinks their effects toward the uranium
# line, so their residuals keep part of the county's deviation, as expected.

# %%
print(uranium.check())
fig = uranium.plot_residuals()
plt.show()

# %% [markdown]
# ## Step 3: varying slopes
#
# Does the basement-versus-first-floor difference vary by county? `(floor | county)` adds a
# county slope for `floor` and its correlation with the intercept.

# %%
slopes = bm.Model("log_radon ~ floor + log_uranium + (floor | county)", radon).fit(
    **settings, target_accept=0.9)
slopes.varcorr()[["group", "term", "term2", "kind", "mean", "eti95_lb", "eti95_ub",
                  "ess_bulk", "r_hat"]]

# %% [markdown]
# The floor slope's SD has a wide interval and the correlation is unidentified (its interval
# spans most of [-1, 1]): 83% of the homes were measured in the basement, so most counties
# have few first-floor measurements to estimate a slope from. The warning says the same for
# the floor slope: the counties' floor effects are pooled most of the way to their mean and
# its SD's posterior reaches down to zero (a boundary fit); the intercept SD is not flagged.
# Sampling itself is
# unproblematic (R-hat at most 1.004, every bulk ESS above 1 300): with a gaussian response
# and one grouping factor, bayesmix integrates the county effects out while sampling
# (`model.marginal`) and draws them exactly afterwards, so the SDs near zero form no funnel.
#
# ## Comparing the models: a new home in a known county
#
# PSIS-LOO estimates how well each model predicts a new home in a county we have data on.
# `bm.compare` ranks the models by their expected log predictive density (elpd).

# %%
fits = {"complete pooling": pooled, "varying intercepts": varying,
        "+ uranium": uranium, "+ varying floor slopes": slopes}
comparison = bm.compare(fits)
comparison[["rank", "elpd", "se", "p", "elpd_diff", "dse"]]

# %% [markdown]
# County effects improve the prediction of a new home by far (elpd 52 higher than complete
# pooling); uranium adds 10 more; the varying floor slopes add nothing (-2.5 ± 3.5). A few
# homes are influential in the models with county effects: row 106, a first-floor reading of
# 0.1 pCi/L (log -2.3, the lowest in the data) in a county with 6 homes, has a plain Pareto k
# of about 0.7, because leaving it out moves its county's effect. `loo()` integrates the
# county effect out of such rows' importance ratios, so no warning remains. WAIC, an older
# approximation, agrees with LOO here (its own warning flags six rows with a large p_waic,
# among them row 106 again and rows 144, 459 and 460: a first-floor reading of 0.1 pCi/L in a
# county with 4 homes, a reading of 25.5 pCi/L and one of 0.1 pCi/L in a county with 13):

# %%
print(uranium.waic())

# %% [markdown]
# Before drawing a conclusion from LOO with flagged rows, the exact version of the same
# question: 10-fold cross-validation over homes refits each model ten times without a tenth of
# the homes (the same folds for every model) and scores the held-out homes with their
# county's fitted effect. No approximation is involved, so the flagged rows are scored exactly.

# %%
row_cv = bm.compare({name: f.kfold(k=10, random_seed=2, draws=500, tune=500)
                     for name, f in fits.items()})
row_cv[["rank", "elpd", "se", "elpd_diff", "dse"]]

# %% [markdown]
# The exact refits rank the models as LOO did, with differences of the same size: uranium
# first, the varying floor slopes about 3 elpd behind within one standard error (nothing
# gained), varying intercepts about 12 behind, complete pooling about 60 behind. The flagged
# rows did not mislead LOO here, and its conclusions stand. The refits of the varying-slopes
# model, at 500 draws, warn that the chains of its two county SDs and their correlation agree
# only to R-hat 1.01-1.03: the floor slope's SD at the boundary discussed above and the
# parameters tied to it, whose posteriors are wide; the held-out densities average over them, and a model whose elpd is
# 3.5 ± 4.3 behind would not overtake the uranium model with longer refits.

# %% [markdown]
# ## A new county: grouped k-fold cross-validation
#
# LOO answers "a new home in a known county". For a **new county** we must leave out whole
# counties: grouped k-fold cross-validation refits each model five times, each time holding out
# a fifth of the counties, and scores the held-out homes with new county effects drawn from the
# fitted county distribution. The refits reuse the compiled models. The complete-pooling model
# has no county term, so it gets the same folds explicitly.

# %%
cv_varying = varying.kfold(k=5, group="county", random_seed=1)
cv_uranium = uranium.kfold(k=5, group="county", random_seed=1)
cv_pooled = pooled.kfold(folds=cv_varying.folds, random_seed=1)
cv_comparison = bm.compare({"complete pooling": cv_pooled, "varying intercepts": cv_varying,
                            "+ uranium": cv_uranium})
cv_comparison[["rank", "elpd", "se", "elpd_diff", "dse"]]

# %% [markdown]
# For a new county, the varying-intercepts model is no better than complete pooling (slightly
# worse): without data from the county, it can only draw the county's effect from the fitted
# distribution. Uranium, known for every county, is what makes a new county predictable: its
# model gains about 63 elpd over complete pooling and 69 over varying intercepts.
#
# The standard errors in this table treat the 919 homes as independent, but the held-out homes
# of one county share that county's unknown effect. A standard error of a difference that
# respects this sums each model's elpd over the homes of each county and uses the 85
# county-level differences:

# %%
by_county = pd.DataFrame({
    name: pd.Series(cv.elpd_i.values).groupby(cv_varying.groups).sum()
    for name, cv in [("complete pooling", cv_pooled), ("varying intercepts", cv_varying),
                     ("+ uranium", cv_uranium)]})
for other in ("complete pooling", "varying intercepts"):
    d = by_county["+ uranium"] - by_county[other]
    print(f"+ uranium vs {other}: elpd difference {d.sum():.1f}, "
          f"county-level se {np.sqrt(len(d) * d.var()):.1f}")

# %% [markdown]
# The county-level standard errors (24 and 33) are two to three times the row-level ones in
# the table (11): the uranium model's advantage for a new county is 2.6 and 2.1 standard errors,
# clear but less overwhelming than the row-level numbers suggest. For grouped cross-validation
# the county-level standard error is the honest one.

# %% [markdown]
# ## The frequentist fit, side by side
#
# lme4's REML estimates of the uranium model (reproduced by `model.fit_ml()`, checked against
# lme4 in bayesmix's tests) and the posterior means agree closely with this much data.

# %%
ml = uranium_model.fit_ml()
side = ml.fixef()[["estimate", "std_error"]].join(uranium.fixef()[["mean", "sd"]])
print(side.round(3))
ml.varcorr()[["group", "estimate"]].join(uranium.varcorr()[["mean", "eti95_lb", "eti95_ub"]])

# %% [markdown]
# ## Predictions for a house
#
# The EPA recommends action above 4 pCi/L (log 4 = 1.39). For a basement measurement in
# Hennepin county (Minneapolis, 105 homes measured), in Lac qui Parle (2 homes, the highest
# county mean) and in a new county with the state's median uranium level, predict the
# measurement itself (`kind="response"`: the county's level plus the home-to-home variation;
# a new county draws its effect from the county distribution) and the probability of
# exceeding the action level.

# %%
new = pd.DataFrame({
    "floor": 0, "county": ["HENNEPIN", "LACQUIPARLE", "a new county"],
    "log_uranium": [county.loc["HENNEPIN", "uranium"], county.loc["LACQUIPARLE", "uranium"],
                    county["uranium"].median()]})
draws = uranium.predict(new, kind="response", re="sample_new",
                        random_seed=1)["predictions"]["log_radon"].values.reshape(-1, len(new))
pci = np.exp(draws)
new.assign(homes=[county.loc["HENNEPIN", "homes"], county.loc["LACQUIPARLE", "homes"], 0],
           median_pCi_L=np.median(pci, axis=0), lower_95=np.quantile(pci, 0.025, axis=0),
           upper_95=np.quantile(pci, 0.975, axis=0),
           P_above_4=(pci > 4).mean(axis=0)).round(2)

# %% [markdown]
# A basement measurement in Hennepin has a predicted median of about 4 pCi/L and about a 50%
# chance of exceeding the action level; in Lac qui Parle (high uranium, and two high readings)
# about 6 pCi/L and 70%; in a new county of median uranium about 5 pCi/L and 60%. The intervals
# are wide (about 1 to 16 pCi/L in Hennepin) because homes differ a lot within a county: the
# residual SD of 0.73 on the log scale is a factor of 2.1. The county tells a homeowner the
# odds; only a measurement tells whether their own house needs action.

# %% [markdown]
# ## What we learned
#
# * Partial pooling gives sensible estimates for counties with one or two homes; their
#   intervals show how little such counties tell.
# * Soil uranium explains about three quarters of the between-county variance (county SD
#   0.32 → 0.15); one unit of log uranium goes with about 0.7 higher log radon.
# * For a new home in a known county, county effects improve prediction greatly and uranium
#   a little more; the varying floor slopes add nothing.
# * For a new county, only uranium helps (by about 2 county-level standard errors): the county
#   effects alone cannot predict a county without data.
# * The posterior means agree with lme4's REML estimates to within a small fraction of their
#   standard errors.
# * Whether a particular basement exceeds the EPA's action level is close to a coin toss in
#   most counties (about 50% in Hennepin, 70% in Lac qui Parle): home-to-home variation
#   dominates.

# %%
# Tolerances: Monte Carlo standard errors of the posterior means are about 0.002
# (coefficients) and 0.003 (county SDs); the bounds below leave many times that.
assert comparison.index[0] != "complete pooling" and comparison.index[-1] == "complete pooling"
assert row_cv.index[-1] == "complete pooling"  # exact 10-fold: the same conclusion as LOO
assert abs(row_cv.loc["+ varying floor slopes", "elpd"] - row_cv.loc["+ uranium", "elpd"]) \
    < 2 * row_cv["dse"].max() + 5
sd_varying = varying.varcorr().query("group == 'county'")["mean"].iloc[0]
sd_uranium = uranium.varcorr().query("group == 'county'")["mean"].iloc[0]
assert 0.28 < sd_varying < 0.36 and 0.09 < sd_uranium < 0.19, (sd_varying, sd_uranium)
ref = bm.datasets.reference_estimates("radon_intercepts")
fe_ml = ml.fixef()["estimate"]
for term in ("floor", "log_uranium"):
    assert abs(fe_ml[term] - ref["fixef"][term]) < 1e-3                    # REML = lme4
    assert abs(uranium.fixef().loc[term, "mean"] - ref["fixef"][term]) \
        < 0.2 * ref["fixef_se"][term]
assert cv_comparison.index[0] == "+ uranium"
for other in ("complete pooling", "varying intercepts"):    # with county-level se (2.6, 2.1)
    d = by_county["+ uranium"] - by_county[other]
    assert d.sum() > 1.5 * np.sqrt(len(d) * d.var()), other
# a new county: varying intercepts no better than complete pooling, judged with the
# county-level se the text argues for (the row-level dse of the table understates it)
d = by_county["varying intercepts"] - by_county["complete pooling"]
assert d.sum() < 2 * np.sqrt(len(d) * d.var()), d.sum()
for f in (pooled, varying, uranium, slopes):
    assert f.sampling_report().divergences == 0
print("checks passed")
