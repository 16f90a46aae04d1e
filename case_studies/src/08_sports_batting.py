# %% [markdown]
# # Sports: early-season batting averages, shrunk toward the mean
#
# **Question.** After 45 at-bats early in the 1970 season, Roberto Clemente hit .400 and
# others hit .156. How well do these early averages predict each player's batting average over
# the *rest* of the season? Efron and Morris (1975) used these 18 players to show that
# shrinking every player's average toward the overall mean predicts better than the players'
# own averages. The data carry the answer: `RemainingAB` and `RemainingHits` are each player's
# at-bats and hits after the first 45.
#
# We fit a binomial model with a random intercept per player (partial pooling), compare it with
# the players' own averages (no pooling) and the overall average (complete pooling), and judge
# all three by their squared error against the rest of the season.
#
# Sampling settings: 4 chains x 1000 draws after 1000 tuning steps (a few seconds of sampling).

# %%
import matplotlib.pyplot as plt
import numpy as np

import bayesmix as bm

bball = bm.datasets.load("bball1970")
bball["early"] = bball["Hits"] / bball["AB"]
bball["rest"] = bball["RemainingHits"] / bball["RemainingAB"]
bball[["Player", "AB", "Hits", "early", "RemainingAB", "rest"]].round(3)

# %% [markdown]
# ## The data
#
# Early averages spread from .156 to .400; rest-of-season averages are much closer together.
# Part of the early spread is luck: with 45 at-bats the binomial standard error of an average
# near .27 is about sqrt(.27 x .73 / 45) = .066.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for _, row in bball.iterrows():
    ax.plot([0, 1], [row["early"], row["rest"]], color="0.6", lw=1)
ax.scatter(np.zeros(len(bball)), bball["early"], label="first 45 at-bats")
ax.scatter(np.ones(len(bball)), bball["rest"], label="rest of season")
ax.set_xticks([0, 1], ["early season", "rest of season"])
ax.set_ylabel("batting average")
ax.legend(loc="upper right")
ax.set_title("Early averages spread more than the rest of the season")
plt.show()

# %% [markdown]
# ## Partial pooling: a binomial GLMM
#
# `Hits | trials(AB) ~ 1 + (1 | Player)`: each player's log-odds of a hit is the population
# log-odds plus a player effect drawn from Normal(0, sd). The SD, learned from the data, decides
# how far each early average is pulled toward the mean.

# %%
model = bm.Model("Hits | trials(AB) ~ 1 + (1 | Player)", bball, family="binomial")
# With 18 players and a small SD the posterior has a mild funnel; a higher target_accept
# (smaller steps) avoids the odd divergent transition that the default 0.8 gives here.
fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1970, target_accept=0.95,
                progressbar=False)
fit.summary()

# %% [markdown]
# The player SD on the log-odds scale is small (about 0.15-0.2 with a wide interval): the early
# data say that true abilities differ much less than the early averages suggest.
#
# ## Each player's estimated ability
#
# The partial-pooling estimate of a player's batting ability is the posterior mean of
# inverse-logit(intercept + player effect), computed per draw.

# %%
ability = fit.predict(bball, kind="mean", summary=True)  # expected hits out of AB
bball["partial"] = ability["mean"].to_numpy() / bball["AB"].to_numpy()
bball["no_pool"] = bball["early"]
bball["complete"] = bball["Hits"].sum() / bball["AB"].sum()
bball[["Player", "early", "partial", "complete", "rest"]].round(3)

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
fig, ax = plt.subplots(figsize=(6, 5))
order = bball.sort_values("early").index
ax.scatter(bball.loc[order, "early"], range(len(order)), label="no pooling (early average)")
ax.scatter(bball.loc[order, "partial"], range(len(order)), label="partial pooling")
ax.scatter(bball.loc[order, "rest"], range(len(order)), marker="x", color="k",
           label="rest of season")
ax.axvline(bball["complete"].iloc[0], color="0.5", ls="--", label="complete pooling")
ax.set_yticks(range(len(order)), bball.loc[order, "Player"])
ax.set_xlabel("batting average")
ax.legend(fontsize=8, loc="lower right")
ax.set_title("Shrinkage toward the mean predicts the rest of the season")
plt.show()

# %% [markdown]
# ## What we learned
#
# * The early averages overstate how different the players are: most of their spread is
#   binomial noise from 45 at-bats.
# * Partial pooling pulls every early average toward the league mean by an amount the data
#   choose (through the player SD). It predicts the rest of the season with a much smaller
#   squared error than the players' own averages, as Efron and Morris found.
# * Complete pooling is also better than no pooling here, because abilities truly are close;
#   partial pooling matches it while still allowing real differences.
#
# The final cell checks these numbers, so the notebook fails if they stop holding.

# %%
assert errors["partial"] < 0.6 * errors["no_pool"], errors
assert fit.sampling_report().divergences == 0
sd = fit.varcorr().query("group == 'Player'")["mean"].iloc[0]
assert 0.05 < sd < 0.4, sd
print("checks passed")
