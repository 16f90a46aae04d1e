# %% [markdown]
# # Students in schools: math achievement, SES and school sector
#
# **Question.** The 1982 High School and Beyond survey measured the math achievement of 7 185
# students in 160 US high schools, 70 Catholic and 90 public (Raudenbush and Bryk's classic
# example). How much of the variation in achievement lies between schools? Does a student's
# socio-economic status (SES) predict achievement equally in every school, and does the
# answer differ between Catholic and public schools?
#
# Steps: the empty model and its intraclass correlation (ICC); a first model with student SES
# and random slopes; its school effects plotted against school characteristics, which point to
# the improvements: separating the within-school and between-school parts of SES, then school
# sector and the cross-level interactions; comparison with PSIS-LOO; the REML fit alongside;
# interpretation; predictions for students in a new school.
#
# Sampling settings: 4 chains x 1000 draws after 1000 tuning steps per model. Each model
# has one grouping factor and a gaussian response, so bayesmix integrates the school effects
# out while sampling and draws them exactly afterwards (`model.marginal`); the summaries print
# each parameter's ESS and R-hat.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import bayesmix as bm

math = bm.datasets.load("mathachieve")
# SES splits into the school's mean SES and the student's deviation from it
math["SES_within"] = math["SES"] - math.groupby("School", observed=True)["SES"].transform("mean")
schools = math.groupby("School", observed=True).agg(
    Sector=("Sector", "first"), MEANSES=("MEANSES", "first"), students=("MathAch", "size"),
    mean_math=("MathAch", "mean"))
print(schools.groupby("Sector", observed=True).agg(
    schools=("students", "size"), students=("students", "sum"),
    mean_SES=("MEANSES", "mean"), mean_math=("mean_math", "mean")).round(2))
math[["School", "Sector", "SES", "MEANSES", "SES_within", "MathAch"]].head()

# %% [markdown]
# Catholic schools score higher on average (14.2 against 11.4) and their students are somewhat
# richer (mean school SES 0.17 against -0.13 in public schools), so a raw comparison of sectors
# mixes the two.

# %%
rng = np.random.default_rng(1)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for ax, (sector, part) in zip(axes, schools.groupby("Sector", observed=True)):
    for school in rng.choice(part.index, size=25, replace=False):
        rows = math[math["School"] == school]
        slope, intercept = np.polyfit(rows["SES"], rows["MathAch"], 1)
        xs = np.array([rows["SES"].min(), rows["SES"].max()])
        ax.plot(xs, intercept + slope * xs, color="C0" if sector == "Catholic" else "C1",
                alpha=0.6)
    ax.set_title(f"{sector} schools (25 of {len(part)})")
    ax.set_xlabel("student SES")
axes[0].set_ylabel("math achievement (least-squares line per school)")
fig.suptitle("Separate regressions per school: levels and slopes differ")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The empty model: how much variation is between schools?

# %%
settings = {"draws": 1000, "tune": 1000, "chains": 4, "random_seed": 1982,
            "progressbar": False}
empty = bm.Model("MathAch ~ 1 + (1 | School)", math).fit(**settings)
empty.icc()

# %% [markdown]
# 18% of the variance in math achievement lies between schools (Raudenbush and Bryk report
# 0.18 from their fit of this model).
#
# ## A first model: student SES with random slopes
#
# The model most people write first: achievement on SES, with a random intercept and SES slope
# per school, `MathAch ~ SES + (SES | School)`.

# %%
first = bm.Model("MathAch ~ SES + (SES | School)", math).fit(**settings)
first.summary()

# %% [markdown]
# The sampler is content (no divergences, R-hat at most 1.01, at least 900 effective draws
# for every parameter). The SD of the school SES slopes is small (posterior mean 0.52, 95%
# interval 0.07 to 0.94), and the fit warns of a boundary (singular) fit for it: each school's
# slope rests on about 45 students, so the schools' slopes are pooled about 86% of the way to
# their mean, and the SD's posterior reaches down toward zero. The data barely show whether
# the slopes vary; the warning's advice is to keep the term, and we come back to the slopes
# below. The model's assumptions are another matter: the school effects are
# supposed to be unrelated to anything we could have put in the model. Plotting the estimated
# school effects against what we know about the schools is the multilevel analogue of a
# residual plot.

# %%
effects = first.ranef()["School"].join(schools)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for sector, part in effects.groupby("Sector", observed=True):
    color = "C0" if sector == "Catholic" else "C1"
    axes[0].scatter(part["MEANSES"], part["(Intercept)"], s=12, color=color, label=sector)
axes[0].set_xlabel("school mean SES")
axes[0].set_ylabel("school intercept effect")
axes[0].set_title("Intercept effects rise with school mean SES")
axes[0].legend()
groups = [part["SES"].to_numpy() for _, part in effects.groupby("Sector", observed=True)]
labels = [str(s) for s, _ in effects.groupby("Sector", observed=True)]
axes[1].boxplot(groups, tick_labels=labels)
axes[1].axhline(0, color="0.5", lw=0.8)
axes[1].set_ylabel("school SES-slope effect")
axes[1].set_title("SES slopes are flatter in Catholic schools")
plt.tight_layout()
plt.show()
print(effects[["(Intercept)", "MEANSES"]].corr().iloc[0, 1].round(2),
      effects.groupby("Sector", observed=True)["SES"].mean().round(2).to_dict())

# %% [markdown]
# Both panels show structure the model says should not be there. Schools with richer students
# score higher *beyond* what their students' own SES predicts (the intercept effects correlate
# 0.6 with school mean SES: a contextual effect), and the SES slope is flatter in Catholic
# schools. Both point to school-level predictors.
#
# ## Within-school and between-school SES
#
# Centring SES within schools splits it in two: `SES_within` is the within-school slope (a
# student richer than their schoolmates), `MEANSES` the between-school slope (a school richer
# than other schools).

# %%
within = bm.Model("MathAch ~ SES_within + MEANSES + (SES_within | School)", math).fit(
    **settings)
within.fixef()[["mean", "sd", "eti95_lb", "eti95_ub", "ess_bulk", "r_hat"]]

# %% [markdown]
# The within-school slope is about 2.2 points per SES unit, the between-school slope about 5.9:
# two students with the same SES score about 3.7 points apart if one attends a school whose
# mean SES is one unit higher. The first model's single SES coefficient (2.4) mixed the two.
#
# ## Sector and the cross-level interactions
#
# Raudenbush and Bryk's "intercepts- and slopes-as-outcomes" model lets both school-level
# predictors, mean SES and sector, shift the school's mean achievement and its SES slope:
# `SES_within * (MEANSES + Sector)`.

# %%
full_model = bm.Model("MathAch ~ SES_within * (MEANSES + Sector) + (SES_within | School)", math)
full = full_model.fit(**settings)
full.summary()

# %% [markdown]
# ### Diagnostics of the full model
#
# `check()` collects the sampling diagnostics (divergences, R-hat, effective sample sizes,
# tree depth, E-BFMI) and flags variance components the data do not inform (levels pooled
# most of the way to their mean, an SD whose posterior reaches down to zero) or correlations
# piled up at +-1 (the Bayesian analogue of lme4's singular fit), each with the remedies
# in the order to try them. The residual plots check the Gaussian part of the model: Pearson
# residuals against fitted values (no trend or funnel expected), their scale against fitted
# values (constant spread), a normal Q-Q plot, residuals against each predictor, and a box
# for the schools whose residuals depart most from zero.
#
# The report finds no sampling problem and one boundary estimate, the one the warning at the
# fit announced: the SD of the school `SES_within` slopes (posterior mean about 0.29, 95%
# interval 0.03 to 0.70). Once the school-level predictors explain part of the slopes'
# variation, the schools' remaining slope differences are pooled over 90% of the way to their
# mean and the SD's posterior reaches down to zero: the data cannot tell it from zero. The
# report's advice is to keep the term unless there is a reason beyond the flag, because
# dropping it would make the interval of the `SES_within` effects too narrow if the slopes do
# vary (REML, below, puts the SD at about 0.3, and a likelihood-ratio test finds no evidence
# that the slopes vary); the REML comparison below takes the question up. The residuals show no
# trend against the fitted values or any predictor, and the school boxes sit around zero. The
# two mild departures come from the test itself: its maximum score cuts off large positive
# residuals at high fitted values (the falling upper edge in the first panel, the short upper
# tail in the Q-Q plot), and the spread is a little smaller at both ends of the fitted range.
# With 7 185 students neither matters for the coefficients.

# %%
print(full.check())
fig = full.plot_residuals()
plt.show()

# %% [markdown]
# The same model by REML (lme4's estimator, `fit_ml()`), side by side with the posterior:

# %%
reml = full_model.fit_ml()
side = reml.fixef()[["estimate", "std_error"]].join(full.fixef()[["mean", "sd"]])
side.round(3)

# %%
vc = reml.varcorr()[["group", "term", "term2", "kind", "estimate"]]
vc.join(full.varcorr()[["mean", "eti95_lb", "eti95_ub"]]).round(3)

# %% [markdown]
# With 7 185 students the posterior means of the fixed effects agree with REML to within a
# tenth of a standard error, and the intercept SD and residual SD agree closely too. The slope
# SD is where the posterior adds information: REML puts it at 0.32, the posterior mean is 0.29
# with a 95% interval from 0.03 to 0.70. After sector and mean SES, little between-school
# variation in the SES slope is left, and the data cannot say how little (nor the correlation,
# whose interval spans most of [-1, 1]). The likelihood-ratio test of the slope variance and
# correlation (maximum likelihood, as lme4's `anova`; the p value corrected for the variance's
# boundary) agrees with the flag: a point estimate of 0.3 is not evidence that the slopes vary.

# %%
intercepts_only = bm.Model("MathAch ~ SES_within * (MEANSES + Sector) + (1 | School)", math)
slope_test = bm.lrt(intercepts_only.fit_ml(reml=False), full_model.fit_ml(reml=False))
print(f"LRT statistic {slope_test.statistic:.2f} on {slope_test.df} df, "
      f"p = {slope_test.p_value_boundary:.2f} (boundary-corrected)")

# %% [markdown]
# ## Is the SES slope really flatter in Catholic schools?

# %%
full.hypothesis(["SES_within:SectorCatholic < 0",
                 "SES_within + SES_within:SectorCatholic > 0",
                 "SectorCatholic > 0"])

# %% [markdown]
# In public schools of average SES the slope is about 2.9 points per SES unit; in Catholic
# schools it is about 1.6 points flatter (posterior probability essentially 1), but still
# positive. At equal school mean SES, Catholic schools score about 1.2 points higher for a
# student of average SES in their school. The picture, for schools of average mean SES:

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for k, sector in enumerate(["Public", "Catholic"]):
    curve = full.conditional_effects("SES_within", at={"Sector": sector, "MEANSES": 0.0})
    ax.plot(curve["SES_within"], curve["mean"], color=f"C{1 - k}", label=f"{sector} school")
    ax.fill_between(curve["SES_within"], curve["eti95_lb"], curve["eti95_ub"],
                    color=f"C{1 - k}", alpha=0.25)
ax.set_xlabel("student SES relative to the school mean")
ax.set_ylabel("expected math achievement")
ax.set_title("SES gradient by sector (school mean SES = 0, 95% bands)")
ax.legend()
plt.show()

# %% [markdown]
# The lines cross near SES_within = 0.75: for a student well above their school's mean SES
# the sector makes little difference; for a student well below it, a Catholic school of the
# same mean SES goes with higher expected achievement. (An observational survey: families
# choose schools, so this is an association, not the effect of sending a child to a Catholic
# school.)
#
# ## How much does each step explain?

# %%
fits = {"SES (first model)": first, "SES within + between": within,
        "+ sector, cross-level": full}
comparison = bm.compare(fits)
comparison[["rank", "elpd", "se", "elpd_diff", "dse"]]

# %%
r2 = pd.concat({name: f.r2()[["mean", "eti95_lb", "eti95_ub"]] for name, f in fits.items()})
r2.round(3)

# %% [markdown]
# Each step improves the expected log predictive density: by about 12 for the within/between
# split and by about 18 more (3 standard errors of that difference) for sector and the
# cross-level interactions. The R² tell what kind of improvement this is. The marginal R²
# (fixed effects only) more than doubles, from 0.08 to 0.18, as school-level predictors take
# over variation that the first model left to the school effects. The conditional R² (fixed
# plus school effects) rises only from 0.19 to 0.23, and the Bayesian R² stays at 0.22: for
# students of *known* schools, the school effects had already captured most of it. The
# school-level predictors explain *why* schools differ, and they pay off for schools we have
# not seen:
#
# ## Predictions for a new school
#
# A student at the school mean, one SD (0.66) below it and one above, in a new Catholic school
# and a new public school of average mean SES: `re="sample_new"` draws the new school's
# effects from the fitted distribution, `kind="response"` adds the student-level noise.

# %%
sd_within = math["SES_within"].std()
new = pd.DataFrame({
    "School": ["new public"] * 3 + ["new Catholic"] * 3,
    "Sector": ["Public"] * 3 + ["Catholic"] * 3,
    "MEANSES": 0.0, "SES_within": [-sd_within, 0.0, sd_within] * 2})
school_mean = full.predict(new, kind="mean", re="sample_new", random_seed=1, summary=True)
student = full.predict(new, kind="response", re="sample_new", random_seed=1, summary=True)
new.assign(expected=school_mean["mean"], expected_lb=school_mean["eti95_lb"],
           expected_ub=school_mean["eti95_ub"], student_lb=student["eti95_lb"],
           student_ub=student["eti95_ub"]).round(2)

# %% [markdown]
# The expected achievement of such a student in a new school is known to within about ±3
# points (the uncertainty about the new school's effect); a single student's score varies far
# more (about ±12 points), because 80% of the variation is between students within schools.
#
# ## The school effects, seen
#
# Each arrow goes from a school's own least-squares intercept and slope (no pooling) to its
# partial-pooling estimate. The slopes shrink almost all the way to the population lines: the
# within-school data of 14 to 67 students cannot support 160 separate slopes.

# %%
fig = full.plot_shrinkage("School")
ax = fig.axes[0]
ax.set_xlabel("school intercept, adjusted to a public school of mean SES 0")
ax.set_ylabel("school SES_within slope, adjusted likewise")
plt.show()

# %% [markdown]
# ## What we learned
#
# * 18% of the variation in achievement lies between schools.
# * Within a school, one SES unit goes with about 2.2 points of achievement; between schools,
#   one unit of school mean SES goes with about 5.9 points: a contextual effect of about 3.7
#   points beyond the students' own SES.
# * The SES gradient is about 1.6 points flatter in Catholic schools (2.9 in public schools of
#   average SES), and Catholic schools score about 1.2 points higher at equal school SES.
# * School effects plotted against school characteristics showed what the first model missed;
#   PSIS-LOO confirms each step, and REML agrees with the posterior means.

# %%
# Tolerances: Monte Carlo standard errors of these posterior means are below 0.01 (ICC) and
# 0.02 (coefficients); the bounds leave many times that, and the REML checks compare against
# lme4-equivalent estimates computed above.
icc_value = float(empty.icc()["mean"].iloc[0])
assert 0.16 < icc_value < 0.20, icc_value
fe = within.fixef()["mean"]
assert 2.0 < fe["SES_within"] < 2.4 and 5.4 < fe["MEANSES"] < 6.4, fe
assert effects[["(Intercept)", "MEANSES"]].corr().iloc[0, 1] > 0.4
ff = full.fixef()
assert ff.loc["SES_within:SectorCatholic", "eti95_ub"] < 0
assert (abs(ff["mean"] - reml.fixef()["estimate"]) < 0.5 * reml.fixef()["std_error"]).all()
assert list(comparison.index) == ["+ sector, cross-level", "SES within + between",
                                  "SES (first model)"]
for f in (empty, first, within, full):
    assert f.sampling_report().divergences == 0
# The flagged slope SD is one the likelihood-ratio test finds no evidence for (p = 0.46 by
# ML, deterministic up to the optimizer's tolerance), and only it is flagged.
assert slope_test.p_value_boundary > 0.2, slope_test
assert [(flag.kind, flag.term) for flag in full.check().boundary] == [("sd", "SES_within")]
print("checks passed")
