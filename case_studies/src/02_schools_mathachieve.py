# %% [markdown]
# # Students in schools: math achievement, SES and school sector
#
# **Question.** The 1982 High School and Beyond survey measured math achievement of 7 185
# students in 160 US high schools, 70 Catholic and 90 public (Raudenbush and Bryk's classic
# example). How much of the variation in achievement lies between schools? Does a student's
# socio-economic status (SES) predict achievement equally in every school, and does the
# answer differ between Catholic and public schools?
#
# Steps: the empty model and its intraclass correlation (ICC); student SES with random slopes;
# school-level predictors (mean SES, sector) and the cross-level interaction; and centring SES
# within schools versus around the grand mean.
#
# Sampling settings: 2 chains x 500 draws after 500 tuning steps.

# %%
import matplotlib.pyplot as plt
import numpy as np

import bayesmix as bm

math = bm.datasets.load("mathachieve")
math["SES_within"] = math["SES"] - math["MEANSES"]          # centred within school
print(math.groupby("Sector", observed=True)["School"].nunique())
math[["School", "Sector", "SES", "MEANSES", "MathAch"]].head()

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for school, rows in list(math.groupby("School", observed=True))[:40]:
    slope, intercept = np.polyfit(rows["SES"], rows["MathAch"], 1)
    xs = np.array([rows["SES"].min(), rows["SES"].max()])
    color = "C0" if rows["Sector"].iloc[0] == "Catholic" else "C1"
    ax.plot(xs, intercept + slope * xs, color=color, alpha=0.6)
ax.plot([], [], color="C0", label="Catholic")
ax.plot([], [], color="C1", label="Public")
ax.set_xlabel("student SES")
ax.set_ylabel("math achievement")
ax.legend()
ax.set_title("Separate regressions in 40 schools: slopes differ")
plt.show()

# %% [markdown]
# ## The empty model: how much variation is between schools?

# %%
settings = dict(draws=500, tune=500, chains=2, random_seed=1982, progressbar=False)
empty = bm.Model("MathAch ~ 1 + (1 | School)", math).fit(**settings)
empty.icc()

# %% [markdown]
# About 18% of the variance in math achievement is between schools (Raudenbush and Bryk
# report 0.18 from the REML fit).
#
# ## Student SES, centred within schools, with random slopes

# %%
within = bm.Model("MathAch ~ SES_within + MEANSES + (SES_within | School)", math).fit(
    **settings)
within.summary()

# %% [markdown]
# Centring SES within schools splits its association in two: `SES_within` is the within-school
# slope (a student richer than their schoolmates), `MEANSES` the between-school slope (a school
# richer than other schools). The between-school slope is about twice the within-school one:
# a school's average SES matters beyond each student's own. With grand-mean-centred SES the
# single coefficient mixes the two:

# %%
grand = bm.Model("MathAch ~ SES + (SES | School)", math).fit(**settings)
print(grand.fixef()[["mean", "sd"]])
print(within.fixef()[["mean", "sd"]])

# %% [markdown]
# ## Sector and the cross-level interaction
#
# Is the SES slope flatter in Catholic schools (a more equitable sector)? The interaction of
# the student-level `SES_within` with the school-level `Sector` asks exactly that.

# %%
full = bm.Model("MathAch ~ SES_within * Sector + MEANSES + (SES_within | School)", math).fit(
    **settings)
full.fixef()[["mean", "sd", "eti95_lb", "eti95_ub"]]

# %%
full.hypothesis("SES_within:SectorCatholic < 0")

# %% [markdown]
# Public schools are the reference level (the data's category order, as in R), so
# `SES_within:SectorCatholic` is how much flatter the SES slope is in Catholic schools: about
# 1.3 points per SES unit, with posterior probability near 1. The remaining between-school variation of the slopes:

# %%
print(full.varcorr()[["group", "term", "term2", "kind", "mean", "eti95_lb", "eti95_ub"]])
print(full.r2())

# %%
fig = full.plot_caterpillar("School")
plt.show()

# %% [markdown]
# ## What we learned
#
# * 18% of the variation in achievement is between schools.
# * Within a school, one SES unit goes with about 2 points of achievement; between schools,
#   about 5 more points per unit of school mean SES.
# * In Catholic schools achievement depends less on SES than in public schools.

# %%
icc = empty.icc()
icc_value = float(icc["mean"].iloc[0])
assert 0.14 < icc_value < 0.22, icc_value
fe = within.fixef()["mean"]
assert fe["MEANSES"] > 1.5 * fe["SES_within"], fe
assert full.fixef().loc["SES_within:SectorCatholic", "eti95_ub"] < 0
print("checks passed")
