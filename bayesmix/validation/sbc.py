"""Simulation-based calibration (Talts et al. 2018): ``python -m bayesmix.validation.sbc``.

For one family and random-effects design, each simulation draws every parameter from the
prior, a response from the model given them, refits the model to that response with the same
priors, and records the *rank* of each true value among ``L`` thinned posterior draws. When
the sampler and the model's code are right, each rank is uniform on ``0..L``; a skew shows a
biased parameter, a U shape a posterior too narrow, a hump one too wide.

**Stated priors.** bayesmix's default priors are scaled by the data, so a data set simulated
from them would not be a draw from the prior of its own fit. SBC therefore uses fixed priors:
``Normal(0, 1)`` for the fixed effects, ``HalfNormal(1)`` for the SDs (``HalfNormal(0.5)`` for
count and binary families), ``LKJ(2)`` for correlations, ``Normal(0, 1)`` for ordinal
cutpoints (with the default ``Normal(0, 5)`` most simulated data sets of 72 rows leave a
category empty, which changes the model; such data sets are excluded) and, for other family
parameters, the
family's default computed once on a placeholder response and then held fixed (see
:func:`stated_priors`, written to the results).

Ranks are written per simulation to ``sbc_ranks.csv`` with a uniformity test per parameter
(chi-square over ``bins`` bins, and the p-values adjusted by Holm across parameters) in
``sbc_summary.json``; :func:`plot_ranks` draws the rank histograms with the 99% band of
a uniform histogram. Simulations run in ``processes`` worker processes.

Examples
--------
.. code-block:: console

    python -m bayesmix.validation.sbc --families gaussian poisson --designs intercept \\
        --n-sims 100 --out sbc_results
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["DESIGNS", "SBCConfig", "design_data", "stated_priors", "simulate_ranks",
           "run_sbc", "summarize", "plot_ranks", "scalar_draws", "main"]

DESIGNS = {
    "intercept": "y ~ x + (1 | g)",
    "slopes": "y ~ x + (x | g)",
    "crossed": "y ~ x + (1 | g) + (1 | h)",
    "nested": "y ~ x + (1 | g / h)",
}


@dataclass(frozen=True)
class SBCConfig:
    """One SBC run: families x designs, ``n_sims`` simulations each."""

    families: tuple[str, ...] = ("gaussian", "bernoulli", "poisson")
    designs: tuple[str, ...] = ("intercept",)
    n_sims: int = 100
    n_groups: int = 12
    n_per_group: int = 6
    draws: int = 400
    tune: int = 400
    chains: int = 2
    thin: int = 8
    processes: int = 2
    seed: int = 2024


def _placeholder(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A response that passes the family's checks, used only to set up the model."""
    from bayesmix.families import get_family

    kind = get_family(family).response
    if kind == "binary":
        return np.arange(n) % 2
    if kind in ("count", "successes"):
        return rng.poisson(3.0, n) % 5
    if kind == "positive":
        return np.exp(rng.normal(size=n))
    if kind == "unit":
        return rng.uniform(0.1, 0.9, n)
    if kind == "ordinal":
        return np.arange(n) % 4 + 1
    return rng.normal(size=n)


def design_data(design: str, family: str, config: SBCConfig, seed: int) -> tuple[str, pd.DataFrame]:
    """The formula and covariates of a design (response: a placeholder).

    Examples
    --------
    >>> formula, df = design_data("crossed", "gaussian", SBCConfig(n_groups=4), 0)
    >>> formula, sorted(df.columns)
    ('y ~ x + (1 | g) + (1 | h)', ['g', 'h', 'n', 'x', 'y'])
    """
    rng = np.random.default_rng(seed)
    J, m = config.n_groups, config.n_per_group
    n = J * m
    g = np.repeat(np.arange(J), m)
    if design == "crossed":
        h = np.tile(np.arange(m), J)  # every g level meets every h level once
    else:  # nested: h levels within g (2 per g); otherwise unused
        h = g * 2 + np.arange(n) % 2
    df = pd.DataFrame({"x": rng.normal(size=n), "g": [f"g{k:02d}" for k in g],
                       "h": [f"h{k:02d}" for k in h], "n": np.full(n, 10)})
    df["y"] = _placeholder(family, n, rng)
    formula = DESIGNS[design]
    from bayesmix.families import get_family

    if get_family(family).response == "successes":
        formula = formula.replace("y ~", "y | trials(n) ~")
    return formula, df


def stated_priors(formula: str, df: pd.DataFrame, family: str) -> dict[str, Any]:
    """Fixed priors for every parameter (module docstring), keyed as ``model.priors``.

    Examples
    --------
    >>> formula, df = design_data("intercept", "poisson", SBCConfig(), 0)
    >>> {k: repr(v) for k, v in stated_priors(formula, df, "poisson").items()}["1|g"]
    'HalfNormal(sigma=0.5)'
    """
    from bayesmix.families import get_family
    from bayesmix.model import ModelSpec
    from bayesmix.priors.prior import Prior

    base = ModelSpec(formula, df, family=family)
    narrow = get_family(family).response in ("binary", "count", "successes", "ordinal")
    out = {}
    for spec in base.prior_specs:
        if spec.kind == "fixed":
            out[spec.key] = Prior("Normal", mu=0.0, sigma=1.0)
        elif spec.kind == "sd":
            out[spec.key] = Prior("HalfNormal", sigma=0.5 if narrow else 1.0)
        elif spec.kind == "cor":
            out[spec.key] = Prior("LKJ", eta=2.0)
        elif spec.key == "cutpoints":  # the default N(0, 5) leaves categories empty in 72 rows
            out[spec.key] = Prior("Normal", mu=0.0, sigma=1.0)
        else:
            out[spec.key] = spec.prior
    return out


def scalar_draws(ds: Any) -> dict[str, np.ndarray]:
    """Every scalar parameter of a posterior-like Dataset, (chain, draw) flattened, by name;
    level effects (``r_*``) are left out, correlations kept once (upper triangle)."""
    out = {}
    for name, da in ds.data_vars.items():
        if name.startswith(("r_", "_")) or "obs" in "".join(map(str, da.dims)):
            continue
        values = da.transpose("chain", "draw", ...).values
        values = values.reshape(-1, *values.shape[2:])
        extra = da.dims[2:] if da.dims[:2] == ("chain", "draw") else ()
        if not extra:
            out[name] = values
        elif name.startswith("cor_"):
            labels = [str(v) for v in da[extra[0]].values]
            for i in range(len(labels)):
                for j in range(i + 1, len(labels)):
                    out[f"{name}[{labels[i]},{labels[j]}]"] = values[:, i, j]
        elif len(extra) == 1:
            for i, label in enumerate(da[extra[0]].values):
                out[f"{name}[{label}]"] = values[:, i]
    return out


def simulate_ranks(family: str, design: str, config: SBCConfig, sims: list[int]) -> list[dict[str, Any]]:
    """Rank rows (one per simulation and parameter) of the simulations numbered ``sims``.

    Examples
    --------
    >>> rows = simulate_ranks("gaussian", "intercept", SBCConfig(), [0])  # doctest: +SKIP
    >>> rows[0]["rank"] <= rows[0]["L"]  # doctest: +SKIP
    True
    """
    from bayesmix.inference.sample import SamplerSettings, sample_model
    from bayesmix.model import ModelSpec

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    formula, df = design_data(design, family, config, config.seed)
    priors = stated_priors(formula, df, family)
    setup = ModelSpec(formula, df, family=family, priors=priors)
    rows: list[dict[str, Any]] = []
    for sim in sims:
        seed = int(np.random.SeedSequence([config.seed, sim]).generate_state(1)[0] % 2**31)
        t0 = time.perf_counter()
        try:
            prior = setup.prior_predictive(draws=1, random_seed=seed)
            truth = scalar_draws(prior["prior"].to_dataset())
            y = prior["prior_predictive"].to_dataset()[setup.response_name].values.ravel()
            if setup.family.ordinal:  # drawn as 0-based category codes: back to the labels
                y = np.asarray(setup.categories)[y.astype(int)]
            if setup.family.ordinal and len(np.unique(y)) < len(setup.categories):
                # a category nobody drew has no cutpoint to estimate: a different model
                raise ValueError("a category of the response was not drawn (simulation "
                                 "excluded)")
            data = df.assign(y=y)
            model = ModelSpec(formula, data, family=family, priors=priors)
            settings = SamplerSettings(draws=config.draws, tune=config.tune,
                                       chains=config.chains, random_seed=seed,
                                       progressbar=False)
            idata, _, _ = sample_model(model, settings)
            post = scalar_draws(idata["posterior"].to_dataset())
            divergent = int(idata["sample_stats"]["diverging"].values.sum())
        except Exception as error:  # noqa: BLE001  (recorded: the summary counts them)
            rows.append({"family": family, "design": design, "sim": sim, "parameter": "",
                         "rank": -1, "L": 0, "error": f"{type(error).__name__}: {error}"[:200]})
            continue
        for name, true in truth.items():
            draws = post[name][:: config.thin]
            rows.append({"family": family, "design": design, "sim": sim, "parameter": name,
                         "rank": int(np.sum(draws < true[0])), "L": int(draws.size),
                         "divergent": divergent, "seconds": time.perf_counter() - t0,
                         "error": ""})
    return rows


def _job(args: tuple[str, str, SBCConfig, list[int]]) -> list[dict[str, Any]]:
    return simulate_ranks(*args)


def run_sbc(config: SBCConfig, out: Path) -> pd.DataFrame:
    """Every family x design of ``config``; ranks to ``out/sbc_ranks.csv``, the summary to
    ``out/sbc_summary.json`` (with the stated priors and the configuration).

    Examples
    --------
    >>> run_sbc(SBCConfig(families=("gaussian",), n_sims=20), Path("sbc"))  # doctest: +SKIP
    """
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(f, d, config, list(range(k, config.n_sims, config.processes)))
            for f in config.families for d in config.designs for k in range(config.processes)]
    t0 = time.perf_counter()
    if config.processes > 1:
        with get_context("spawn").Pool(config.processes) as pool:
            parts = pool.map(_job, jobs, chunksize=1)
    else:
        parts = [_job(job) for job in jobs]
    ranks = pd.DataFrame([row for part in parts for row in part])
    ranks.to_csv(out / "sbc_ranks.csv", index=False)
    summary = summarize(ranks, bins=10)
    priors = {}
    for family in config.families:
        for design in config.designs:
            formula, df = design_data(design, family, config, config.seed)
            priors[f"{family}/{design}"] = {k: repr(v) for k, v in
                                            stated_priors(formula, df, family).items()}
    (out / "sbc_summary.json").write_text(json.dumps(
        {"config": config.__dict__, "wall_seconds": time.perf_counter() - t0,
         "priors": priors, "parameters": summary.to_dict(orient="records")}, indent=1,
        default=str))
    return summary


def summarize(ranks: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Per family, design and parameter: simulations, failed simulations, chi-square p-value
    of the rank histogram over ``bins`` equal bins, and its Holm-adjusted p-value.

    Examples
    --------
    >>> r = pd.DataFrame({"family": "f", "design": "d", "sim": range(200), "parameter": "a",
    ...                   "rank": np.arange(200) % 101, "L": 100, "error": ""})
    >>> bool(summarize(r).loc[0, "p_value"] > 0.5)
    True
    """
    ok = ranks[ranks["error"].fillna("") == ""]
    failed = ranks[ranks["error"].fillna("") != ""].groupby(["family", "design"])["sim"].nunique()
    rows = []
    for (family, design, name), part in ok.groupby(["family", "design", "parameter"]):
        L = int(part["L"].iloc[0])
        counts = np.bincount(np.minimum(part["rank"].to_numpy() * bins // (L + 1), bins - 1),
                             minlength=bins)
        p = float(stats.chisquare(counts).pvalue)
        rows.append({"family": family, "design": design, "parameter": name,
                     "n_sims": int(len(part)), "failed": int(failed.get((family, design), 0)),
                     "mean_rank_fraction": float(np.mean(part["rank"] / L)), "p_value": p})
    table = pd.DataFrame(rows)
    if len(table):
        order = np.argsort(table["p_value"].to_numpy())
        m = len(table)
        adjusted = np.maximum.accumulate(np.minimum(1, table["p_value"].to_numpy()[order]
                                                    * (m - np.arange(m))))
        table.loc[table.index[order], "p_holm"] = adjusted
    return table


def plot_ranks(ranks: pd.DataFrame, path: Path, bins: int = 10) -> Path:
    """Rank histograms, one panel per parameter, rows per family/design, with the 99% band
    of each bin's count under uniform ranks; saved as a PNG.

    Examples
    --------
    >>> plot_ranks(pd.read_csv("sbc/sbc_ranks.csv"), Path("sbc.png"))  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = ranks[ranks["error"].fillna("") == ""]
    groups = list(ok.groupby(["family", "design"]))
    ncol = max(part["parameter"].nunique() for _, part in groups)
    fig, axes = plt.subplots(len(groups), ncol, figsize=(2.1 * ncol, 1.7 * len(groups)),
                             squeeze=False)
    for r, ((family, design), part) in enumerate(groups):
        for c in range(ncol):
            axes[r, c].axis("off")
        for c, (name, sub) in enumerate(part.groupby("parameter")):
            ax = axes[r, c]
            ax.axis("on")
            L = int(sub["L"].iloc[0])
            frac = np.minimum(sub["rank"].to_numpy() * bins // (L + 1), bins - 1)
            n = len(frac)
            lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
            ax.axhspan(lo, hi, color="0.85")
            ax.axhline(n / bins, color="0.5", lw=0.8)
            ax.bar(np.arange(bins), np.bincount(frac, minlength=bins), width=0.9,
                   color="tab:blue")
            ax.set_title(f"{family}/{design}\n{name}", fontsize=7)
            ax.set_xticks([])
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m bayesmix.validation.sbc --help``."""
    parser = argparse.ArgumentParser(prog="python -m bayesmix.validation.sbc",
                                     description=__doc__.split("\n\n")[0])
    d = SBCConfig()
    parser.add_argument("--families", nargs="+", default=list(d.families))
    parser.add_argument("--designs", nargs="+", default=list(d.designs), choices=list(DESIGNS))
    for name in ("n_sims", "n_groups", "n_per_group", "draws", "tune", "chains", "thin",
                 "processes", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    parser.add_argument("--out", type=Path, default=Path("sbc_results"))
    args = parser.parse_args(argv)
    config = SBCConfig(families=tuple(args.families), designs=tuple(args.designs),
                       **{k: getattr(args, k) for k in ("n_sims", "n_groups", "n_per_group",
                                                         "draws", "tune", "chains", "thin",
                                                         "processes", "seed")})
    summary = run_sbc(config, args.out)
    plot_ranks(pd.read_csv(args.out / "sbc_ranks.csv", keep_default_na=False),
               args.out / "sbc_ranks.png")
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
