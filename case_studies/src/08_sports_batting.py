# %% [markdown]
# # Sports: early-season batting averages, shrunk toward the mean
#
# **Question.** After 45 at-bats early in the 1970 season, Roberto Clemente hit .400 and
# Jay Alvis .156. How well do these early averages predict each player's batting average over
# the *rest* of the season? Efron and Morris (1975) used these 18 players to show that
# shrinking every player's average toward the overall mean predicts better than the players'
# own averages. The data carry the answer: `RemainingAB` and `RemainingHits` are each player's
# at-bats and hits after the first 45.
#
# We fit a binomial model with a random intercept per player (partial pooling), check its
# sampling diagnostics, compare its estimates with the players' own averages (no pooling) and
# the overall average (complete pooling), judge all three against the rest of the season, and
# finally predict each player's rest-of-season hits with their uncertainty.
#
# Sampling settings: 4 chains x 1000 draws after 1000 tuning steps (a second or so of
# sampling, on bayesmix's precompiled kernel).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmix as bm

bball = bm.datasets.load("bball1970")
bball["early"] = bball["Hits"] / bball["AB"]
bball["rest"] = bball["RemainingHits"] / bball["RemainingAB"]
bball[["Player", "AB", "Hits", "early", "RemainingAB", "RemainingHits", "rest"]].round(3)

# %% [markdown]
# ## The data
#
# Early averages spread from .156 to .400; rest-of-season averages (70 to 591 more at-bats)
# lie between .200 and .346. Much of the early spread is luck: with 45 at-bats the binomial
# standard error of an average near .265 is sqrt(.265 x .735 / 45) = .066, about as large as
# the SD of the 18 early averages.

# %%
print(f"SD of the early averages: {bball['early'].std():.3f}; "
      f"binomial SE of one early average: {np.sqrt(0.265 * 0.735 / 45):.3f}")
fig, ax = plt.subplots(figsize=(6, 4))
for _, row in bball.iterrows():
    ax.plot([0, 1], [row["early"], row["rest"]], color="0.6", lw=1)
ax.scatter(np.zeros(len(bball)), bball["early"], label="first 45 at-bats")
ax.scatter(np.ones(len(bball)), bball["rest"], label="rest of season")
ax.set_xticks([0, 1], ["first 45 at-bats", "rest of season"])
ax.set_xlim(-0.3, 1.3)
ax.set_ylabel("batting average")
ax.set_title("Early averages spread more than the rest of the season")
plt.show()

# %% [markdown]
# ## Partial pooling: a binomial GLMM
#
# `Hits | trials(AB) ~ 1 + (1 | Player)`: each player's log-odds of a hit is the population
# log-odds plus a player effect drawn from Normal(0, sd). The SD, learned from the data, decides
# how far each early average is pulled toward the mean. The default priors (printed below) are
# scaled to the data: Normal(-1.02, 2.5) for the intercept, HalfNormal(1) for the SD.

# %%
model = bm.Model("Hits | trials(AB) ~ 1 + (1 | Player)", bball, family="binomial")
print(model.priors)
first = model.fit(draws=1000, tune=1000, chains=4, random_seed=1970, progressbar=False)
print(first.sampling_report().text())

# %% [markdown]
# ### Diagnostics: a borderline case
#
# No divergent transitions in 4 000 draws this time, but the case is borderline: other seeds
# can give one. With 18 players and a player SD that may be close to zero, the posterior has
# a mild funnel (when the SD is small, all player effects must be near zero), where the
# sampler's default step size is occasionally too large. The warning printed is of another
# kind: the player SD's posterior reaches down to zero, which bayesmix reports as a boundary
# (singular) fit; it describes what the data say (see below), not a sampling problem. Against
# the funnel we take the standard precaution: a higher `target_accept` makes the sampler take
# smaller steps. A second `fit()` of the same model reuses the compiled sampler, so this
# costs only the sampling time.

# %%
fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1970, target_accept=0.95,
                progressbar=False)
fit.summary()

# %% [markdown]
# No divergences and over 1 000 effective draws for every parameter; R-hat for the player SD
# sits at about the 1.01 threshold, a Monte Carlo detail at this many draws. The boundary
# warning repeats: it is about the posterior, not the sampler, and its advice is to keep the
# term (dropping it would pool the players completely, the very estimate this study improves
# on). The player SD on the
# log-odds scale has posterior mean 0.17 with a wide 95% interval (0.01 to 0.41): 45 at-bats
# per player say that true abilities differ much less than the early averages suggest, but not
# exactly how much. glmer's Laplace fit puts the SD at 0.08 (its maximum-likelihood
# estimate; lme4's `confint()` would give it a profile interval):

# %%
ml = model.fit_ml(reml=False)
ml.varcorr()[["group", "term", "estimate"]]

# %% [markdown]
# ## Each player's estimated ability
#
# The partial-pooling estimate of a player's batting ability is the posterior mean of
# inverse-logit(intercept + player effect). `fit.predict` without the `AB` column predicts
# per at-bat, i.e. the hit probability itself, with its 95% interval.

# %%
ability = fit.predict(bball[["Player"]], kind="mean", summary=True)
bball["partial"] = ability["mean"]
bball["partial_lb"], bball["partial_ub"] = ability["eti95_lb"], ability["eti95_ub"]
bball["no_pool"] = bball["early"]
bball["complete"] = bball["Hits"].sum() / bball["AB"].sum()
bball[["Player", "early", "partial", "partial_lb", "partial_ub", "complete", "rest"]].round(3)

# %% [markdown]
# Clemente's .400 becomes .294 and Alvis's .156 becomes .243: the 18 estimates span only .24
# to .29. Players with the same early record (10 hits for Petrocelli, Rodriguez, Scott, Unser
# and Williams) get the same estimate up to Monte Carlo error (±.002). On the log-odds scale
# the player effects all have 95% intervals that include zero:

# %%
fig = fit.plot_caterpillar("Player")
plt.show()

# %% [markdown]
# ## Judged against the rest of the season
#
# Squared error of each estimate against each player's rest-of-season average, summed over the
# 18 players.

# %%
errors = {name: float(((bball[name] - bball["rest"]) ** 2).sum())
          for name in ["no_pool", "partial", "complete"]}
for name, value in errors.items():
    print(f"{name:9s} sum of squared errors: {value:.4f}")
print(f"partial pooling's error is {errors['partial'] / errors['no_pool']:.0%} of no pooling's")

# %%
fig, ax = plt.subplots(figsize=(7, 6.2))
order = bball.sort_values("early").index
y = np.arange(len(order))
ax.hlines(y, bball.loc[order, "early"], bball.loc[order, "partial"], color="0.75", lw=1)
ax.errorbar(bball.loc[order, "partial"], y,
            xerr=[bball.loc[order, "partial"] - bball.loc[order, "partial_lb"],
                  bball.loc[order, "partial_ub"] - bball.loc[order, "partial"]],
            fmt="o", color="C1", ecolor="C1", elinewidth=0.8, alpha=0.9,
            label="partial pooling (95% interval)")
ax.scatter(bball.loc[order, "early"], y, color="C0", zorder=3,
           label="no pooling (first 45 at-bats)")
ax.scatter(bball.loc[order, "rest"], y, marker="x", color="k", zorder=4,
           label="actual: rest of season")
ax.axvline(bball["complete"].iloc[0], color="0.4", ls="--", lw=1,
           label="complete pooling (overall average)")
ax.set_yticks(y, bball.loc[order, "Player"])
ax.set_xlabel("batting average")
ax.set_title("Shrinkage toward the mean predicts the rest of the season")
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.45, -0.1), ncol=2, frameon=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# Partial pooling's squared error is 31% of that of the players' own averages. Complete
# pooling (everyone bats .265) does almost as well here, because true abilities really are
# close; partial pooling is slightly better still while leaving room for real differences.
#
# ## Predicting the rest of the season
#
# The model also predicts how many hits each player gets in his remaining at-bats: new data
# with `AB` set to the remaining at-bats, `kind="response"` (a binomial draw per posterior
# draw, so the interval includes both the uncertainty about the player's ability and the luck
# of the remaining at-bats).

# %%
rest_of_season = pd.DataFrame({"Player": bball["Player"], "AB": bball["RemainingAB"]})
predicted = fit.predict(rest_of_season, kind="response", random_seed=1, summary=True)
predicted.insert(0, "Player", bball["Player"])
predicted["actual"] = bball["RemainingHits"]
predicted["inside"] = predicted["actual"].between(predicted["eti95_lb"], predicted["eti95_ub"])
print(f"{predicted['inside'].sum()} of {len(predicted)} actual hit counts lie inside "
      "their 95% predictive interval")
predicted.round(1)

# %% [markdown]
# ## What we learned
#
# * The early averages overstate how different the players are: their SD (.070) is about the
#   size of the binomial noise of 45 at-bats (.066).
# * Partial pooling pulls every early average toward the league mean by an amount the data
#   choose (through the player SD). It predicts the rest of the season with 31% of the squared
#   error of the players' own averages, as Efron and Morris found with their James-Stein
#   estimator.
# * Both fits ran without divergent transitions; `target_accept=0.95` is a cheap precaution
#   against the mild funnel of a player SD whose posterior reaches down to zero.
# * The 95% predictive intervals for the remaining hits contain all 18 actual counts, about
#   what 95% intervals promise (one in twenty may fall outside); Williams's 195 hits sit at
#   his upper bound. The intervals are wide, mostly because 45 at-bats leave each player's ability
#   uncertain; a league table of early averages hides all of this.
#
# The final cell checks these numbers, so the notebook fails if they stop holding.

# %%
# Tolerances are several times the spread over six seeds (Clemente's estimate .292-.296, the
# player SD .16-.17, partial pooling's error sum .0264-.0269 against .0284 for complete pooling).
# R-hat of 4 x 1000 draws varies by about 0.005 between runs and seeds (1.002-1.010).
assert fit.sampling_report().divergences == 0 and fit.sampling_report().max_rhat < 1.015
assert 0.25 < errors["partial"] / errors["no_pool"] < 0.4, errors
assert errors["partial"] < errors["complete"], errors
sd = fit.varcorr().query("group == 'Player'")["mean"].iloc[0]
assert 0.1 < sd < 0.25, sd
assert abs(bball.loc[bball["Player"] == "Clemente", "partial"].iloc[0] - 0.29) < 0.01
assert predicted["inside"].sum() >= 16
print("checks passed")
