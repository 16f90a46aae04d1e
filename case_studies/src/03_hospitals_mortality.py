# %% [markdown]
# # Patients in hospitals: surgical mortality with partial pooling
#
# **Question.** Twelve hospitals performed cardiac surgery on babies; the number of operations
# and deaths per hospital are below (the "surgical" example of the BUGS manual, Spiegelhalter
# et al. 1996). Which hospitals have unusually high mortality, and how sure can we be when a
# hospital operated on only 47 babies?
#
# Raw death rates (no pooling) make small hospitals look extreme in both directions; a single
# overall rate (complete pooling) denies that hospitals differ at all. We start from complete
# pooling, let a posterior predictive check show that it is wrong, then fit a binomial model
# with a random intercept per hospital: it estimates how much hospitals really differ and
# shrinks each hospital's rate toward the overall rate by an amount that depends on its
# caseload. We compare the two models by how well they predict a new hospital, rank the
# hospitals with honest uncertainty, and set the Bayesian fit next to glmer's.
#
# Sampling settings: 4 chains x 1000 draws after 1000 tuning steps; leave-one-hospital-out
# cross-validation refits each model 12 times with the same settings.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmix as bm

hosp = bm.datasets.load("mortality")
hosp["raw_rate"] = hosp["deaths"] / hosp["patients"]
overall = hosp["deaths"].sum() / hosp["patients"].sum()
print(f"{hosp['patients'].sum()} operations, {hosp['deaths'].sum()} deaths, "
      f"overall rate {overall:.3f}")
print(f"P(0 deaths in 47 operations | rate {overall:.3f}) = {(1 - overall) ** 47:.3f}")
hosp

# %% [markdown]
# Hospital A had no deaths in 47 operations; hospital H had 31 in 215 (14%). At the overall
# rate of 7.4%, zero deaths in 47 operations has probability 0.027: unusual, but not
# impossible.

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.scatter(hosp["patients"], hosp["raw_rate"])
for _, row in hosp.iterrows():
    ax.annotate(row["hospital"], (row["patients"], row["raw_rate"]), xytext=(4, 3),
                textcoords="offset points")
ax.axhline(overall, color="0.5", ls="--", label=f"overall rate {overall:.3f}")
ax.set_xlabel("operations")
ax.set_ylabel("death rate (deaths / operations)")
ax.legend()
ax.set_title("Raw death rates: the extremes are small hospitals")
plt.show()

# %% [markdown]
# ## A first model: one rate for all hospitals
#
# `deaths | trials(patients) ~ 1` says every operation has the same death probability. If that
# were true, each hospital's deaths would be a binomial draw around the overall rate. The
# posterior predictive check draws replicated death counts for each hospital from the fitted
# model and asks whether the observed counts look like them.

# %%
settings = {"draws": 1000, "tune": 1000, "chains": 4, "random_seed": 12,
            "progressbar": False}
pooled = bm.Model("deaths | trials(patients) ~ 1", hosp, family="binomial").fit(**settings)
check = pooled.predict(kind="response", random_seed=1, summary=True)
check = check.assign(hospital=hosp["hospital"], observed=hosp["deaths"])
check["outside"] = ~check["observed"].between(check["eti95_lb"], check["eti95_ub"])
print(f"{check['outside'].sum()} of 12 hospitals outside their 95% predictive interval "
      "(0.6 expected by chance)")
check[["hospital", "observed", "mean", "eti95_lb", "eti95_ub", "outside"]]

# %%
def interval_check(intervals: dict, colors, title: str) -> None:
    """Each model's 95% predictive interval of each hospital's rate, and the observed rates."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(hosp))
    shifts = np.linspace(-0.15, 0.15, len(intervals)) if len(intervals) > 1 else [0.0]
    for shift, (label, (table, color)) in zip(shifts, intervals.items()):
        ax.vlines(x + shift, table["eti95_lb"] / hosp["patients"],
                  table["eti95_ub"] / hosp["patients"], color=color, lw=5, alpha=0.6,
                  label=f"95% predictive interval, {label}")
    ax.scatter(x, hosp["raw_rate"], color=colors, zorder=3, label="observed")
    ax.set_xticks(x, hosp["hospital"])
    ax.set_xlabel("hospital")
    ax.set_ylabel("death rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    plt.tight_layout()
    plt.show()


interval_check({"one rate for all": (check, "0.6")}, np.where(check["outside"], "C3", "C0"),
               "Posterior predictive check of complete pooling (red: outside)")

# %% [markdown]
# H and K had more deaths than a common rate allows; B (18 deaths) and E (8) sit on the upper
# and lower edges of their intervals (whether just inside or just outside depends on the Monte
# Carlo draws). One summary of the whole picture: the spread of the 12 death rates. Under
# complete pooling, how often would replicated data spread as much as the observed rates?

# %%
replicated = pooled.predict(kind="response", random_seed=1)["predictions"]["deaths"].values
spread_rep = (replicated / hosp["patients"].to_numpy()).std(axis=-1)
spread_obs = hosp["raw_rate"].std(ddof=0)
p_spread = float((spread_rep >= spread_obs).mean())
print(f"SD of the observed rates {spread_obs:.4f}; replicated: median "
      f"{np.median(spread_rep):.4f}, 99th percentile {np.quantile(spread_rep, 0.99):.4f}; "
      f"posterior predictive p = {p_spread:.4f}")

# %% [markdown]
# Almost never (p below 0.01): the hospitals differ by more than binomial noise. That points to
# the multilevel model.
#
# ## Partial pooling: a random intercept per hospital
#
# `deaths | trials(patients) ~ 1 + (1 | hospital)`: logit(rate of hospital j) = intercept +
# u_j, u_j ~ Normal(0, sd). With 12 hospitals the SD is weakly identified and the posterior
# has a funnel near sd = 0, so we ask for smaller steps (`target_accept=0.95`) from the start.

# %%
model = bm.Model("deaths | trials(patients) ~ 1 + (1 | hospital)", hosp, family="binomial")
fit = model.fit(target_accept=0.95, **settings)
fit.summary()

# %% [markdown]
# No divergences, R-hat at most 1.01 and over 1 000 effective draws for every parameter.
#
# ### Diagnostics of the partial-pooling model
#
# `check()` collects the sampling diagnostics (divergences, R-hat, effective sample sizes,
# tree depth, E-BFMI) and flags variance components the data do not inform (levels pooled
# most of the way to their mean and an SD whose posterior reaches down to zero: the Bayesian
# analogue of lme4's singular fit), with remedies in the order to try them.
#
# The posterior predictive check is the per-hospital one used for complete pooling above:
# each hospital's 95% predictive interval of its death count (now with its own effect) against
# its observed count. With one row per hospital, a bar chart of how often each count occurs
# would compare 12 numbers scattered over 0 to 46 deaths; per hospital the check asks the
# question that matters, whether the model reproduces each hospital.

# %%
print(fit.check())
check_partial = fit.predict(kind="response", random_seed=1, summary=True)
check_partial["outside"] = ~hosp["deaths"].between(check_partial["eti95_lb"],
                                                   check_partial["eti95_ub"])
print(f"{check_partial['outside'].sum()} of 12 hospitals outside their 95% predictive interval")
interval_check({"one rate for all": (check, "0.6"), "a rate per hospital": (check_partial, "C0")},
               "black", "Posterior predictive check per hospital")

# %% [markdown]
# `check()` has nothing to flag: no sampling problem, and the hospital SD is clear of zero.
# Every hospital's observed rate lies inside its interval under partial pooling, H and K
# included, whose counts complete pooling could not produce. This check is in-sample (each
# hospital's own deaths inform its effect), so it shows that the model can describe the
# hospitals, not that it predicts new ones; the cross-validation below asks that.

# %% [markdown]
# The frequentist fit (glmer's Laplace approximation, reproduced by `model.fit_ml()`):

# %%
ml = model.fit_ml(reml=False)
ml.summary()

# %% [markdown]
# The hospital SD on the log-odds scale has posterior mean 0.45 (95% interval 0.21 to 0.85);
# glmer's maximum-likelihood estimate is 0.36. The posterior mean lies above the estimate
# because with 12 hospitals the SD's posterior is right-skewed. An SD of 0.45 means that a
# hospital one SD above the typical one has exp(2 x 0.45) = 2.5 times the odds of death of a
# hospital one SD below.
#
# ## Which model predicts a new hospital better?
#
# Each hospital is a single row, so leaving a row out leaves its hospital out. Plain PSIS-LOO
# is unreliable here (with ArviZ's `loo`, 6 of the 12 rows have Pareto k above 0.7: the
# left-out row takes its own hospital effect with it). `fit.loo()` integrates each
# high-k row's hospital effect out of the importance ratios, so for a one-row hospital it
# estimates the prediction of a new hospital drawn from the fitted distribution:

# %%
loo_partial = fit.loo()
with warnings.catch_warnings():  # plain PSIS warns about those six rows, as said
    warnings.simplefilter("ignore")
    loo_plain = fit.loo(integrate=False)
print(f"rows with plain Pareto k > 0.7: {int((loo_partial.influence_pareto_k > 0.7).sum())}, "
      f"after integration: {int((loo_partial.pareto_k > 0.7).sum())}")
print(f"elpd: plain PSIS-LOO {loo_plain.elpd:.1f}, integrated {loo_partial.elpd:.1f}")

# %% [markdown]
# After integration every k is below 0.7. Exact cross-validation by refitting checks this:
# leaving out one hospital at a time asks how well each model predicts the deaths of a
# hospital it has not seen:
# complete pooling predicts the overall rate, partial pooling a rate drawn from the fitted
# distribution of hospitals. `fit.logo("hospital")` makes one fold per hospital; the
# complete-pooling model has no hospital term, so we give it the same folds explicitly (one
# row per hospital). The refits reuse the compiled models.

# %%
cv_partial = fit.logo("hospital", random_seed=1)
cv_pooled = pooled.kfold(folds=hosp["hospital"].cat.codes.to_numpy(), random_seed=1)
comparison = bm.compare({"complete pooling": cv_pooled, "partial pooling": cv_partial})
comparison[["rank", "elpd", "se", "elpd_diff", "dse"]]

# %% [markdown]
# Partial pooling predicts held-out hospitals better, by 5.8 elpd points (about 1.3 standard
# errors of the difference): with 12 hospitals the evidence that they differ, judged by
# prediction of a new hospital, is moderate. The exact elpd of partial pooling, -40.8, is
# within 0.6 of the integrated LOO estimate above (-40.3); plain PSIS-LOO gave -39.1. Four
# of the twelve partial-pooling refits report one or two divergent transitions (of 4 000
# draws), although they inherit `target_accept=0.95` from the fit: with one hospital fewer,
# the funnel near sd = 0 is a little sharper. So few divergences barely move a held-out log
# density; the ranking does not hinge on them.
#
# ## Partial-pooling estimates of each hospital's rate
#
# `fit.predict` without the `patients` column predicts per operation, i.e. each hospital's
# death probability, with its 95% interval.

# %%
rates = fit.predict(hosp[["hospital"]], kind="mean", summary=True)
hosp["partial_rate"] = rates["mean"]
hosp["lower"], hosp["upper"] = rates["eti95_lb"], rates["eti95_ub"]
hosp[["hospital", "patients", "deaths", "raw_rate", "partial_rate", "lower", "upper"]].round(3)

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.8))
order = hosp.sort_values("partial_rate").index
y = np.arange(len(order))
ax.hlines(y, hosp.loc[order, "raw_rate"], hosp.loc[order, "partial_rate"], color="0.75")
ax.errorbar(hosp.loc[order, "partial_rate"], y,
            xerr=[hosp.loc[order, "partial_rate"] - hosp.loc[order, "lower"],
                  hosp.loc[order, "upper"] - hosp.loc[order, "partial_rate"]],
            fmt="o", label="partial pooling (95% interval)")
ax.scatter(hosp.loc[order, "raw_rate"], y, marker="x", color="C3", zorder=3,
           label="no pooling (raw rate)")
ax.axvline(overall, color="0.5", ls="--", label="complete pooling (overall rate)")
ax.set_yticks(y, [f"{h} (n={n})" for h, n in zip(hosp.loc[order, "hospital"],
                                                   hosp.loc[order, "patients"])])
ax.set_xlabel("death rate")
ax.set_title("Small hospitals are pulled furthest toward the overall rate")
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.45, -0.12), ncol=2, frameon=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Ranking hospitals, with uncertainty
#
# League tables rank hospitals by their point estimates. The posterior gives the distribution
# of each hospital's rank: rank the hospitals in every posterior draw of their log-odds
# (`kind="linear"`), and count how often each is above the typical hospital (effect > 0).

# %%
draws = fit.predict(hosp[["hospital"]], kind="linear")["predictions"]["deaths"].values
ranks = draws.reshape(-1, len(hosp)).argsort(axis=1).argsort(axis=1) + 1  # 1 = lowest rate
effects = fit.posterior["r_hospital"].sel(hospital__term="(Intercept)")
rank_table = pd.DataFrame({
    "hospital": hosp["hospital"],
    "median rank": np.median(ranks, axis=0),
    "rank 2.5%": np.percentile(ranks, 2.5, axis=0),
    "rank 97.5%": np.percentile(ranks, 97.5, axis=0),
    "P(worst)": (ranks == len(hosp)).mean(axis=0),
    "P(above typical)": (effects > 0).mean(("chain", "draw")).sel(
        hospital=hosp["hospital"].to_numpy()).values,
}).sort_values("median rank")
rank_table.round(3)

# %% [markdown]
# Hospital H has the highest rate in about 64% of the draws, and its rate is above that of a
# typical hospital with probability near 1; B and K follow. The ranks of the middle hospitals
# are almost unidentified: their 95% rank intervals span most of the table, which is the
# honest answer to "is hospital F better than hospital G?".
#
# ## Shrinkage grows as caseload falls
#
# The share of the distance between a hospital's raw rate and the overall rate that partial
# pooling removes:

# %%
hosp["shrinkage"] = (hosp["raw_rate"] - hosp["partial_rate"]).abs() / \
    (hosp["raw_rate"] - overall).abs()
hosp[["hospital", "patients", "raw_rate", "partial_rate", "shrinkage"]] \
    .sort_values("patients").round(3)

# %% [markdown]
# Hospital A (47 operations) loses 68% of its distance to the overall rate, hospital D (810
# operations) 11%. (For hospitals whose raw rate is close to the overall rate, such as C, F,
# I and L, the ratio divides two small numbers and is noisy.)
#
# ## What we learned
#
# * A single death rate for all hospitals fails the posterior predictive check: H and K had
#   more deaths than it allows, and the rates spread more than it allows.
# * Hospitals differ (SD 0.45 on the log-odds scale, 95% interval 0.21 to 0.85), and partial
#   pooling predicts a held-out hospital better than complete pooling.
# * Hospital A's zero deaths become an estimated rate of 5.0% (95% interval 1.6% to 9.3%), not
#   0%: 47 operations are not enough to claim a perfect record. Hospital H's high rate
#   survives shrinkage (12.7%, interval 8.5% to 17.7%).
# * Rankings carry much more uncertainty than league tables show.

# %%
# Tolerances: over five seeds the posterior means below moved by under 0.001 (rates) and 0.011
# (SD); the bounds leave several times that. B and E sit on the edges of their predictive
# intervals, so only H and K are checked.
h = hosp.set_index("hospital")
assert {"H", "K"} <= set(check.loc[check["outside"], "hospital"])
assert p_spread < 0.01, p_spread
assert fit.sampling_report().divergences == 0
assert 0.035 < h.loc["A", "partial_rate"] < 0.065              # zero deaths shrunk upward
assert h.loc["H", "lower"] > overall                            # H stays above the mean
assert rank_table.iloc[-1]["hospital"] == "H"
assert h.loc["A", "shrinkage"] > 0.5 and h.loc["D", "shrinkage"] < 0.2
sd = fit.varcorr().query("group == 'hospital'")["mean"].iloc[0]
assert 0.35 < sd < 0.55, sd
assert abs(ml.varcorr()["estimate"].iloc[0] - 0.3567) < 0.002  # glmer's estimate
assert comparison.index[0] == "partial pooling"
assert (loo_partial.pareto_k <= 0.7).all()
# Integrated LOO and the exact refits estimate the same elpd (they differ by 0.5 here; the
# margin allows for Monte-Carlo error and the importance-sampling approximation):
assert abs(loo_partial.elpd - comparison.loc["partial pooling", "elpd"]) < 1.5
print("checks passed")
