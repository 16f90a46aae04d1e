"""Known-covariance random effects (gr(g, cov=A)) and AR(1) residuals, without sampling:
parsing, design, input errors, and the model's log density against scipy's multivariate normal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import bayesmix as bm
from bayesmix.data.structured import (
    AR1,
    ar1_covariance,
    ar1_loglik,
    ar1_simulate,
    ar1_structure,
    relationship_matrix,
)
from bayesmix.model.level_effects import derive_level_effects
from bayesmix.varnames import level_dim

# -- pedigrees and gr() -----------------------------------------------------------------------

def small_pedigree() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two sires x two dams x three offspring; parents have no records."""
    rows = [(f"o{s}{d}{k}", f"s{s}", f"d{s}{d}") for s in range(2) for d in range(2)
            for k in range(3)]
    ped = pd.DataFrame(rows, columns=["id", "sire", "dam"])
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"animal": ped["id"], "x": rng.normal(size=len(ped)),
                         "y": rng.normal(size=len(ped))})
    return ped, data


def test_gr_parses_group_and_cov_and_prints_like_brms():
    spec = bm.parse_formula("y ~ 1 + (1 | gr(animal, cov=A)) + (1 | animal)")
    gr, pe = spec.random
    assert (gr.group, gr.factors, gr.cov, str(gr)) == ("animal", ("animal",), "A",
                                                       "(1 | gr(animal, cov=A))")
    assert (pe.cov, str(pe)) == (None, "(1 | animal)")
    assert bm.parse_formula("y ~ (x || gr( g ))").random[0].cov is None
    assert spec.variables == ("y", "animal")


@pytest.mark.parametrize("formula, message, position", [
    ("y ~ (1 | gr(animal, by=A))", "gr\\(\\) has no argument 'by'", 20),
    ("y ~ (1 | gr(animal, A))", "pass 'A' as a keyword", 20),
    ("y ~ (1 | gr(a:b, cov=A))", "one grouping column first, not 'a:b'", 12),
    ("y ~ (1 | gr(animal, cov=A)) + (1 | gr(animal, cov=A))", "appears twice", 30),
])
def test_gr_syntax_errors_point_at_the_token(formula, message, position):
    with pytest.raises(bm.FormulaError, match=message) as err:
        bm.parse_formula(formula)
    assert err.value.position == position


def test_relationship_matrix_has_textbook_coefficients():
    ped = pd.DataFrame({"id": ["c", "d", "e", "f"], "sire": ["a", "a", "a", "c"],
                        "dam": ["b", "b", None, "e"]})
    A = relationship_matrix(ped)
    assert list(A.index[:2]) == ["a", "b"]  # parents without rows come first, as founders
    assert A.loc["c", "d"] == 0.5  # full sibs
    assert A.loc["c", "e"] == 0.25  # half sibs
    assert A.loc["a", "c"] == 0.5  # parent and offspring
    assert A.loc["f", "f"] == 1.125  # offspring of half sibs: inbreeding 1/8
    assert np.allclose(A, A.T)
    with pytest.raises(bm.DataError, match="cycle"):
        relationship_matrix(pd.DataFrame({"id": ["a", "b"], "sire": ["b", "a"],
                                          "dam": [None, None]}))


def test_gr_block_spans_relatives_without_records_in_the_matrix_order():
    ped, data = small_pedigree()
    A = relationship_matrix(ped)
    model = bm.Model("y ~ 1 + (1 | gr(animal, cov=A))", data, data2={"A": A})
    block = model.design.blocks[0]
    assert block.levels == tuple(A.index) and block.n_levels == 18  # 6 parents + 12 offspring
    np.testing.assert_allclose(block.cov_chol @ block.cov_chol.T, A.to_numpy(), atol=1e-12)
    assert [block.levels[i] for i in block.index] == list(data["animal"])
    assert model.centered == (False,)
    assert block.counts()[:6].tolist() == [0] * 6
    # The graph holds the levels x levels factor, nothing n x levels.
    shapes = {v.name: v.get_value().shape for v in model.pymc_model.data_vars}
    assert shapes["_data_covchol_animal"] == (18, 18)


def test_gr_matrix_forms_and_label_spellings():
    ped, data = small_pedigree()
    A = relationship_matrix(ped)
    shuffled = A.iloc[::-1, ::-1].loc[:, list(A.columns)]  # rows reversed, columns not
    block = bm.Model("y ~ (1 | gr(animal, cov=A))", data,
                     data2={"A": shuffled}).design.blocks[0]
    L = block.cov_chol
    assert list(block.levels) == list(shuffled.index)
    np.testing.assert_allclose(L @ L.T, A.loc[list(block.levels), list(block.levels)],
                               atol=1e-12)
    # A plain array: levels x levels in the factor's (sorted) order.
    offspring = sorted(data["animal"])
    arr = A.loc[offspring, offspring].to_numpy()
    block = bm.Model("y ~ (1 | gr(animal, cov=A))", data, data2={"A": arr}).design.blocks[0]
    assert list(block.levels) == offspring
    # Integer ids in the data, string labels in A: matched by their text, the data's spelling.
    ints = data.assign(animal=np.arange(12))
    A_txt = pd.DataFrame(np.eye(12) + 0.1, index=[str(i) for i in range(12)],
                         columns=[str(i) for i in range(12)])
    block = bm.Model("y ~ (1 | gr(animal, cov=A))", ints, data2={"A": A_txt}).design.blocks[0]
    assert list(block.levels) == list(range(12))


def test_gr_input_errors_name_the_problem():
    ped, data = small_pedigree()
    A = relationship_matrix(ped)
    formula = "y ~ (1 | gr(animal, cov=A))"
    with pytest.raises(bm.DataError, match="needs the matrix 'A': pass data2"):
        bm.Model(formula, data)
    with pytest.raises(bm.DataError, match="'A', which is not in data2 \\(keys: 'K'\\)"):
        bm.Model(formula, data, data2={"K": A})
    with pytest.raises(bm.DataError, match="2 level\\(s\\) of 'animal' are not in 'A': "
                                           "'o000', 'o001'"):
        bm.Model(formula, data, data2={"A": A.drop(index=["o000", "o001"],
                                                    columns=["o000", "o001"])})
    bad = A.copy()
    bad.iloc[0, 1] = 0.3
    with pytest.raises(bm.DataError, match="not symmetric"):
        bm.Model(formula, data, data2={"A": bad})
    indefinite = A.copy()
    indefinite.loc["o000", "o001"] = indefinite.loc["o001", "o000"] = 1.2  # "correlation" > 1
    with pytest.raises(bm.DataError, match="not positive definite \\(smallest eigenvalue "
                                           "-0.2.*ridge.*nearPD"):
        bm.Model(formula, data, data2={"A": indefinite})
    with pytest.raises(bm.DataError, match="\\(5, 5\\) array but 'animal' has 12 levels"):
        bm.Model(formula, data, data2={"A": np.eye(5)})
    with pytest.raises(bm.DataError, match="always sampled non-centred"):
        bm.Model(formula, data, data2={"A": A}, centered={"animal": True})


def test_gr_and_plain_block_of_one_factor_get_separate_level_dimensions():
    ped, data = small_pedigree()
    A = relationship_matrix(ped)
    data = pd.concat([data, data.iloc[:4].assign(y=1.0)], ignore_index=True)
    model = bm.Model("y ~ 1 + (1 | gr(animal, cov=A)) + (1 | animal)", data, data2={"A": A})
    gr, pe = model.design.blocks
    assert (gr.name, level_dim(gr), gr.n_levels) == ("animal", "animal__A", 18)
    assert (pe.name, level_dim(pe), pe.n_levels) == ("animal.1", "animal", 12)
    point = model.pymc_model.initial_point()
    assert point["_z_animal"].shape == (18, 1) and point["_z_animal.1"].shape == (12, 1)


def _point(model, seed):
    rng = np.random.default_rng(seed)
    point = model.pymc_model.initial_point()
    return {k: v + 0.5 * rng.normal(size=np.shape(v)) for k, v in point.items()}


def test_gr_level_effects_have_density_mvn_sd2_A_and_enter_the_likelihood():
    ped, data = small_pedigree()
    A = relationship_matrix(ped)
    model = bm.Model("y ~ 1 + (1 | gr(animal, cov=A))", data, data2={"A": A})
    pm_model, block = model.pymc_model, model.design.blocks[0]
    point = _point(model, 1)
    sd = float(np.exp(point["sd_animal_log__"][0]))
    z = point["_z_animal"]
    draws = xr.Dataset({"_z_animal": (("chain", "draw", "animal", "animal__term"), z[None, None]),
                        "sd_animal": (("chain", "draw", "animal__term"), [[[sd]]])})
    r = derive_level_effects(draws, model.design, model.centered)["r_animal"].values[0, 0, :, 0]
    # z ~ N(0, I) and r = sd L_A z: the density of r is that of z over |det(sd L_A)|.
    logp_z = pm_model.compile_logp(vars=[pm_model["_z_animal"]], jacobian=False)(point)
    log_det = len(r) * np.log(sd) + np.sum(np.log(np.diag(block.cov_chol)))
    expected = stats.multivariate_normal(np.zeros(len(r)), sd ** 2 * A.to_numpy()).logpdf(r)
    assert logp_z - log_det == pytest.approx(expected, rel=1e-10)
    # The likelihood sees exactly these r (build and derive_level_effects agree).
    loglik = pm_model.compile_logp(vars=[pm_model["y"]], jacobian=False)(point)
    sigma = float(np.exp(point["sigma_log__"]))
    mu = float(point["_intercept_c"]) + r[block.index]
    assert loglik == pytest.approx(stats.norm.logpdf(data["y"], mu, sigma).sum(), rel=1e-10)


def test_gr_correlated_slopes_are_matrix_normal_L_A_z_L_sigma():
    ped, data = small_pedigree()
    A = relationship_matrix(ped)
    model = bm.Model("y ~ x + (x | gr(animal, cov=A))", data, data2={"A": A})
    pm_model, block = model.pymc_model, model.design.blocks[0]
    point = _point(model, 2)
    outputs = pm_model.replace_rvs_by_values(
        [pm_model["sd_animal"], pm_model["cor_animal"], pm_model["fixef"]])
    fn = pm_model.compile_fn(outputs, inputs=pm_model.value_vars, on_unused_input="ignore",
                             point_fn=True)
    sd, cor, fixef = fn(point)
    z = point["_z_animal"]
    dims = ("chain", "draw", "animal", "animal__term")
    draws = xr.Dataset({"_z_animal": (dims, z[None, None]),
                        "sd_animal": (dims[:2] + dims[3:], sd[None, None]),
                        "cor_animal": (dims[:2] + ("animal__term", "animal__term2"),
                                       cor[None, None])})
    r = derive_level_effects(draws, model.design, model.centered)["r_animal"].values[0, 0]
    L_sigma = np.diag(sd) @ np.linalg.cholesky(cor)
    np.testing.assert_allclose(r, block.cov_chol @ z @ L_sigma.T, rtol=1e-10)
    loglik = pm_model.compile_logp(vars=[pm_model["y"]], jacobian=False)(point)
    x = data["x"].to_numpy()
    mu = fixef[0] + fixef[1] * x + r[block.index, 0] + r[block.index, 1] * x
    sigma = float(np.exp(point["sigma_log__"]))
    assert loglik == pytest.approx(stats.norm.logpdf(data["y"], mu, sigma).sum(), rel=1e-10)


# -- AR(1) residuals --------------------------------------------------------------------------

def ar_frame(seed: int = 0, fractional: bool = False) -> pd.DataFrame:
    """Four series with unequal spacing, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(4):
        times = np.sort(rng.choice(15, size=5 + g, replace=False)).astype(float)
        if fractional:
            times = times * 0.7
        rows += [(f"s{g}", t, rng.normal()) for t in times]
    df = pd.DataFrame(rows, columns=["g", "t", "x"])
    df["y"] = 1 + 0.5 * df["x"] + rng.normal(size=len(df))
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_ar1_structure_links_rows_to_their_predecessor_without_reordering():
    df = pd.DataFrame({"t": [3, 0, 1, 0, 5], "g": ["a", "a", "a", "b", "b"]})
    s = ar1_structure(AR1("t", "g"), df)
    assert s.prev.tolist() == [2, -1, 1, -1, 3]
    assert s.gap.tolist() == [2.0, 1.0, 1.0, 1.0, 5.0]
    assert s.rank.tolist() == [2, 0, 1, 0, 1]
    assert (s.integer_gaps, s.n_series, s.bounds) == (True, 2, (-1.0, 1.0))
    frac = ar1_structure(AR1("t"), pd.DataFrame({"t": [0.0, 0.5, 2.0]}))
    assert (frac.integer_gaps, frac.bounds, frac.prev.tolist()) == (False, (0.0, 1.0), [-1, 0, 1])


@pytest.mark.parametrize("fractional, rho_raw", [(False, -1.2), (False, 0.8), (True, 0.4)])
def test_ar1_log_density_equals_multivariate_normal_per_series(fractional, rho_raw):
    df = ar_frame(3, fractional)
    model = bm.Model("y ~ x", df, autocor=bm.AR1(time="t", group="g"))
    pm_model = model.pymc_model
    point = _point(model, 4)
    point["ar_interval__"] = np.array(rho_raw)
    lo, hi = model.autocor_structure.bounds
    rho = lo + (hi - lo) / (1 + np.exp(-rho_raw))
    sigma = float(np.exp(point["sigma_log__"]))
    x = df["x"].to_numpy()
    mu = float(point["_intercept_c"]) + float(point["_beta"][0]) * (x - x.mean())
    expected = 0.0
    for rows in df.groupby("g").indices.values():
        cov = ar1_covariance(sigma, rho, df["t"].to_numpy()[rows])
        expected += stats.multivariate_normal(mu[rows], cov).logpdf(df["y"].to_numpy()[rows])
    logp = pm_model.compile_logp(vars=[pm_model["y"]], jacobian=False)(point)
    assert logp == pytest.approx(expected, rel=1e-10)
    # The numpy one-step-ahead densities (LOO, predict) sum to the same joint density.
    pointwise = ar1_loglik(df["y"].to_numpy(), mu, sigma, rho, model.autocor_structure)
    assert pointwise.sum() == pytest.approx(expected, rel=1e-10)


def test_ar1_simulation_has_the_ar1_covariance():
    df = pd.DataFrame({"t": [0, 1, 2, 4, 0, 3], "g": list("aaaabb")})
    s = ar1_structure(AR1("t", "g"), df)
    n_sim, rho, sigma = 40_000, -0.6, 2.0
    y = ar1_simulate(np.random.default_rng(5), np.zeros((n_sim, 6)), sigma, rho, s)
    emp = np.cov(y.T)
    rows_a = [0, 1, 2, 3]
    expected = ar1_covariance(sigma, rho, df["t"].to_numpy()[rows_a])
    # Sample covariances of 40000 draws: SE <= sigma^2 sqrt(2 / n) ~ 0.03; allow 5 SE.
    np.testing.assert_allclose(emp[np.ix_(rows_a, rows_a)], expected, atol=0.15)
    assert abs(emp[0, 4]) < 0.15 and abs(emp[4, 5] - sigma ** 2 * rho ** 3) < 0.15


def test_ar1_priors_defaults_and_checks():
    df = ar_frame()
    model = bm.Model("y ~ x", df, autocor=bm.AR1("t", "g"))
    assert model.priors.loc["ar", "prior"] == "Uniform(lower=-1, upper=1)"
    frac = bm.Model("y ~ x", ar_frame(fractional=True), autocor=bm.AR1("t", "g"))
    assert frac.priors.loc["ar", "prior"] == "Uniform(lower=0, upper=1)"
    narrow = bm.Model("y ~ x", df, autocor=bm.AR1("t", "g"),
                      priors={"ar": bm.Prior("Uniform", lower=0, upper=0.9)})
    assert narrow.priors.loc["ar", "source"] == "user"
    with pytest.raises(bm.PriorError, match="Uniform prior inside \\(-1, 1\\)"):
        bm.Model("y ~ x", df, autocor=bm.AR1("t", "g"),
                 priors={"ar": bm.Prior("Normal", mu=0, sigma=0.5)})
    with pytest.raises(bm.PriorError, match="inside \\(0, 1\\) \\(fractional"):
        bm.Model("y ~ x", ar_frame(fractional=True), autocor=bm.AR1("t", "g"),
                 priors={"ar": bm.Prior("Uniform", lower=-1, upper=1)})


def test_ar1_input_errors():
    df = ar_frame()
    with pytest.raises(bm.DataError, match="time column 'tt' is not in the data. Did you mean 't'"):
        bm.Model("y ~ x", df, autocor=bm.AR1("tt", "g"))
    with pytest.raises(bm.DataError, match="group column 'G' is not in the data"):
        bm.Model("y ~ x", df, autocor=bm.AR1("t", "G"))
    dup = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    g, t = df.loc[0, "g"], df.loc[0, "t"]
    with pytest.raises(bm.DataError, match=f"1 rows repeat a time in group '{g}' "
                                           f"\\(e.g. t = {t:g}\\)"):
        bm.Model("y ~ x", dup, autocor=bm.AR1("t", "g"))
    with pytest.raises(bm.DataError, match="time column 'g' must be numeric"):
        bm.Model("y ~ x", df, autocor=bm.AR1("g"))
    with pytest.raises(bm.DataError, match="AR1 time column 't' has 1 missing"):
        bm.Model("y ~ x", df.assign(t=df["t"].where(df.index != 2)), autocor=bm.AR1("t", "g"))
    with pytest.raises(bm.FamilyError, match="AR1 is available for gaussian models; latent "
                                             "AR1 for family 'poisson' is not implemented"):
        bm.Model("n ~ x", df.assign(n=1), family="poisson", autocor=bm.AR1("t", "g"))
    with pytest.raises(bm.DataError, match="autocor must be bm.AR1"):
        bm.Model("y ~ x", df, autocor="ar1")


def test_ar1_follows_the_rows_kept_after_missing_values():
    df = ar_frame()
    df.loc[[1, 5], "x"] = np.nan
    with pytest.warns(bm.MissingDataWarning):
        model = bm.Model("y ~ x", df, autocor=bm.AR1("t", "g"))
    kept = df.drop(index=[1, 5])
    s = model.autocor_structure
    assert len(s.prev) == model.design.n == len(kept)
    expected = ar1_structure(AR1("t", "g"), kept.reset_index(drop=True))
    assert s.prev.tolist() == expected.prev.tolist()
    assert s.gap.tolist() == expected.gap.tolist()


def test_ar1_prior_predictive_draws_keep_row_order():
    df = ar_frame()
    model = bm.Model("y ~ x", df, autocor=bm.AR1("t", "g"))
    pp = model.prior_predictive(draws=30, random_seed=1)
    assert pp["prior_predictive"]["y"].shape == (1, 30, len(df))
    assert pp["prior"]["ar"].shape == (1, 30)


def test_gr_and_plain_block_tables_stay_apart_in_ranef_and_summary():
    from bayesmix.api.fit import FitResult
    from bayesmix.inference.sample import SamplerSettings

    ped, data = small_pedigree()
    A = relationship_matrix(ped)
    data = pd.concat([data, data.iloc[:4].assign(y=0.5)], ignore_index=True)
    model = bm.Model("y ~ 1 + (1 | gr(animal, cov=A)) + (1 | animal)", data, data2={"A": A})
    prior = model.prior_predictive(draws=40, random_seed=2)
    idata = xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()})
    fit = FitResult(model, idata, SamplerSettings(draws=40, chains=1))  # prior draws as a stand-in
    tables = fit.ranef()
    assert {k: v.shape for k, v in tables.items()} == {"animal__A": (18, 1), "animal": (12, 1)}
    assert list(tables["animal__A"].index) == list(A.index)
    assert "groups:  animal__A, 18;  animal, 12" in str(fit.summary())
