# %% [markdown]
# # Longitudinal data: reaction times under sleep deprivation
#
# **Question.** Eighteen truck drivers were restricted to three hours of sleep per night for
# nine nights (Belenky et al. 2003); their average reaction time was measured every day. How
# much does reaction time grow per day of sleep deprivation, and how much do people differ in
# their baseline and in their vulnerability?
#
# Steps: plot each subject; random intercepts versus correlated random intercepts and slopes;
# the shrinkage plot; AR(1) residuals for the day-to-day correlation within a subject; and model
# comparison with PSIS-LOO (new days of known subjects) and leave-one-subject-out
# cross-validation (new subjects).
#
# Sampling settings: 2 chains x 1000 draws after 1000 tuning steps; leave-one-subject-out
# refits 18 times with 2 x 300 draws.

# %%
import matplotlib.pyplot as plt
import numpy as np

import bayesmix as bm

sleep = bm.datasets.load("sleepstudy")
sleep.head()

# %%
fig, axes = plt.subplots(3, 6, figsize=(12, 6), sharex=True, sharey=True)
for ax, (subject, rows) in zip(axes.flat, sleep.groupby("Subject", observed=True)):
    ax.plot(rows["Days"], rows["Reaction"], "o-", ms=3)
    ax.set_title(str(subject), fontsize=9)
fig.supxlabel("days of sleep deprivation")
fig.supylabel("average reaction time (ms)")
plt.tight_layout()
plt.show()

# %% [markdown]
# Baselines differ and so do slopes: subject 309 barely changes, 308 and 337 climb steeply.
#
# ## Random intercepts only

# %%
settings = dict(draws=1000, tune=1000, chains=2, random_seed=2003, progressbar=False)
intercepts = bm.Model("Reaction ~ Days + (1 | Subject)", sleep).fit(**settings)
intercepts.summary()

# %% [markdown]
# ## Correlated random intercepts and slopes

# %%
slopes = bm.Model("Reaction ~ Days + (Days | Subject)", sleep).fit(**settings)
slopes.summary()

# %% [markdown]
# Reaction time grows by about 10.5 ms per day on average (lme4: 10.47), and subjects' slopes
# vary with SD about 6.5 ms per day: a subject one SD above average deteriorates 60% faster.
# The correlation of intercepts and slopes is weakly identified (its interval spans most of
# [-1, 1]); lme4's estimate of 0.07 has no uncertainty attached.
#
# ## Partial pooling, seen

# %%
fig = slopes.plot_shrinkage("Subject")
plt.show()

# %% [markdown]
# Each arrow goes from a subject's own least-squares line (no pooling) to the mixed model's
# estimate. Subject 330 and 331, whose own lines are flat or odd, are pulled most toward the
# population.
#
# ## Day-to-day correlation: AR(1) residuals
#
# Measurements on consecutive days of one subject may be more alike than the subject's line
# says. An AR(1) residual process within subject, ordered by `Days`, measures that.

# %%
ar1 = bm.Model("Reaction ~ Days + (Days | Subject)", sleep,
               autocor=bm.AR1(time="Days", group="Subject")).fit(**settings)
ar1.family_params()

# %% [markdown]
# ## Comparing the models
#
# PSIS-LOO estimates the expected log predictive density for a new day of a known subject.

# %%
comparison = bm.compare({"intercepts": intercepts, "slopes": slopes})
comparison

# %% [markdown]
# Random slopes predict new days of known subjects much better. For **new subjects** the
# right cross-validation leaves out one subject at a time and predicts their ten days with a
# new subject effect drawn from the fitted population:

# %%
logo_intercepts = intercepts.logo(group="Subject", draws=300, tune=300, random_seed=1)
logo_slopes = slopes.logo(group="Subject", draws=300, tune=300, random_seed=1)
print(logo_intercepts)
print(logo_slopes)

# %% [markdown]
# ## What we learned
#
# * Reaction time grows by about 10 ms per day of restricted sleep, with large individual
#   differences in both baseline (SD about 25 ms) and vulnerability (SD about 6 ms per day).
# * Random slopes are needed: they improve prediction for known subjects substantially.
# * For new subjects the gain is smaller: a new subject's slope is unknown, so the model can
#   only use the population's spread.

# %%
fe = slopes.fixef()["mean"]
assert abs(fe["Days"] - 10.47) < 1.5, fe
sd_days = slopes.varcorr().query("group == 'Subject' and term == 'Days' and kind == 'sd'")
assert 4 < float(sd_days["mean"].iloc[0]) < 10
assert comparison.index[0] == "slopes"
print("checks passed")
