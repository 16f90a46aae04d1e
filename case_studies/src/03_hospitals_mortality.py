# %% [markdown]
# # Patients in hospitals: surgical mortality with partial pooling
#
# **Question.** Twelve hospitals performed cardiac surgery on babies; the number of deaths and
# operations per hospital are below (Spiegelhalter et al., the "Bristol" data as used in the
# BUGS examples). Which hospitals have unusually high mortality, and how sure can we be when a
# hospital operated on 47 patients?
#
# Raw death rates (no pooling) make small hospitals look extreme in both directions; a single
# overall rate (complete pooling) denies that hospitals differ at all. A binomial model with a
# random intercept per hospital estimates how much hospitals really differ and shrinks each
# hospital's rate toward the overall rate by an amount that depends on its caseload.
#
# Sampling settings: 4 chains x 1000 draws after 1000 tuning steps.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmix as bm

hosp = bm.datasets.load("mortality")
hosp["raw_rate"] = hosp["deaths"] / hosp["patients"]
hosp

# %% [markdown]
# Hospital A had no deaths in 47 operations; hospital H had 31 in 215 (14%). With 47
# operations, a true rate of 7% would give zero deaths with probability 0.93^47 = 3%:
# unusual, but not impossible.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.scatter(hosp["patients"], hosp["raw_rate"])
for _, row in hosp.iterrows():
    ax.annotate(row["hospital"], (row["patients"], row["raw_rate"]), xytext=(3, 3),
                textcoords="offset points")
overall = hosp["deaths"].sum() / hosp["patients"].sum()
ax.axhline(overall, color="0.5", ls="--", label=f"overall rate {overall:.3f}")
ax.set_xlabel("operations")
ax.set_ylabel("death rate")
ax.legend()
ax.set_title("Raw death rates: the small hospitals are the extreme ones")
plt.show()

# %% [markdown]
# ## The model
#
# `deaths | trials(patients) ~ 1 + (1 | hospital)`: logit(rate of hospital j) = intercept + u_j,
# u_j ~ Normal(0, sd). The frequentist fit (Laplace approximation, as `glmer`) is shown next to
# the Bayesian one.

# %%
model = bm.Model("deaths | trials(patients) ~ 1 + (1 | hospital)", hosp, family="binomial")
fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=12, target_accept=0.95,
                progressbar=False)
fit.summary()

# %%
ml = model.fit_ml(reml=False)
print(ml.varcorr()[["group", "term", "estimate"]])
print(ml.fixef())

# %% [markdown]
# The hospital SD on the log-odds scale is about 0.4 (glmer: 0.36), so true rates vary by a
# factor of roughly exp(2 x 0.4) = 2.2 between a typical low and a typical high hospital.
#
# ## Partial-pooling estimates of each hospital's rate

# %%
rates = fit.predict(hosp, kind="mean", summary=True)   # expected deaths of each hospital
hosp["partial_rate"] = rates["mean"].to_numpy() / hosp["patients"].to_numpy()
hosp["lower"] = rates["eti95_lb"].to_numpy() / hosp["patients"].to_numpy()
hosp["upper"] = rates["eti95_ub"].to_numpy() / hosp["patients"].to_numpy()
hosp["complete_rate"] = overall
hosp[["hospital", "patients", "raw_rate", "partial_rate", "lower", "upper"]].round(3)

# %%
fig, ax = plt.subplots(figsize=(6, 4))
order = hosp.sort_values("partial_rate").index
y = np.arange(len(order))
ax.errorbar(hosp.loc[order, "partial_rate"], y,
            xerr=[hosp.loc[order, "partial_rate"] - hosp.loc[order, "lower"],
                  hosp.loc[order, "upper"] - hosp.loc[order, "partial_rate"]],
            fmt="o", label="partial pooling (95% interval)")
ax.scatter(hosp.loc[order, "raw_rate"], y, marker="x", color="C3", label="no pooling")
ax.axvline(overall, color="0.5", ls="--", label="complete pooling")
ax.set_yticks(y, [f"{h} (n={n})" for h, n in zip(hosp.loc[order, "hospital"],
                                                   hosp.loc[order, "patients"])])
ax.set_xlabel("death rate")
ax.legend(fontsize=8)
ax.set_title("Small hospitals are pulled furthest toward the overall rate")
plt.show()

# %% [markdown]
# ## Ranking hospitals, with uncertainty
#
# League tables rank hospitals by their point estimates. The posterior gives the distribution
# of each hospital's rank: compute the rank of every hospital in every posterior draw.

# %%
from bayesmix.predict import linear_predictor

draws = linear_predictor(fit)            # posterior draws (chain, draw, hospital), log-odds
ranks = draws.reshape(-1, len(hosp)).argsort(axis=1).argsort(axis=1) + 1   # 1 = lowest rate
rank_table = pd.DataFrame({
    "hospital": hosp["hospital"],
    "median rank": np.median(ranks, axis=0),
    "rank 2.5%": np.percentile(ranks, 2.5, axis=0),
    "rank 97.5%": np.percentile(ranks, 97.5, axis=0),
    "P(worst)": (ranks == len(hosp)).mean(axis=0),
}).sort_values("median rank")
rank_table

# %% [markdown]
# Only hospital H stands out: it has the highest rate in most draws. The ranks of the middle
# hospitals are almost unidentified: their 95% rank intervals span most of the table, which is
# the honest answer to "is hospital F better than hospital G?".
#
# ## Shrinkage grows as caseload falls

# %%
hosp["shrinkage"] = (hosp["raw_rate"] - hosp["partial_rate"]).abs() / \
    (hosp["raw_rate"] - overall).abs().clip(lower=1e-9)
hosp[["hospital", "patients", "shrinkage"]].sort_values("patients").round(2)

# %% [markdown]
# ## What we learned
#
# * Hospitals differ (SD about 0.4 on the log-odds scale), but less than raw rates suggest.
# * Hospital A's zero deaths become an estimated rate near 5%, not 0%: 47 operations are not
#   enough to claim a perfect record. Hospital H's high rate survives shrinkage.
# * Rankings carry much more uncertainty than league tables show.

# %%
h = hosp.set_index("hospital")
assert h.loc["A", "partial_rate"] > 0.02                      # zero deaths shrunk upward
assert h.loc["H", "partial_rate"] > overall                   # H stays above the mean
assert rank_table.iloc[-1]["hospital"] == "H"
small, large = h.loc["A", "shrinkage"], h.loc["D", "shrinkage"]
assert small > large, (small, large)                          # small hospital shrinks more
sd = fit.varcorr().query("group == 'hospital'")["mean"].iloc[0]
assert 0.15 < sd < 0.8, sd
print("checks passed")
