"""Every diagnostic picture for classic fits of each kind of response, written to a folder
(``make gallery``).

sleepstudy (gaussian, correlated slope), radon (gaussian, 85 counties), mathachieve (gaussian,
7185 pupils in 160 schools: the large-data pictures), epilepsy and grouseticks (Poisson;
grouseticks with two crossed factors), epilepsy_nb (negative binomial), cbpp (binomial) and
inhaler (ordinal). Besides the PNGs, each fit's ``fit.check()`` report, residual tests and,
for counts, ``fit.overdispersion()`` go to ``<name>_checks.txt``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["GALLERY", "write_gallery"]

GALLERY: dict[str, tuple[str, str, str]] = {
    "sleepstudy": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian"),
    "radon": ("radon", "log_radon ~ floor + (1 | county)", "gaussian"),
    "epilepsy": ("epilepsy", "count ~ zAge + zBase * Trt + (1 | patient)", "poisson"),
    "grouseticks": ("grouseticks", "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)",
                    "poisson"),
    "mathachieve": ("mathachieve", "MathAch ~ SES + Sector + (SES | School)", "gaussian"),
    "epilepsy_nb": ("epilepsy", "count ~ zAge + zBase * Trt + (1 | patient)",
                    "negativebinomial"),
    "cbpp": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "inhaler": ("inhaler", "rating ~ treat + period + carry + (1 | subject)", "cumulative"),
}


def _effect_predictor(fit: Any) -> str | None:
    """The first column of the fixed part that is not the response (for the effects plot)."""
    from bayesmix.spec.formula import expression_variables

    response = set(expression_variables(fit.model.spec.response.expr))
    names = [v for v in expression_variables(fit.model.spec.fixed)
             if v in fit.model.data.columns and v not in response]
    return names[0] if names else None


def _figures(fit: Any, data: Any = None) -> dict[str, Any]:
    """Name -> function drawing one figure of ``fit`` (``data``: the user's data frame, whose
    columns the effects plot may take its units from)."""
    groups = list(dict.fromkeys(b.group for b in fit.model.design.blocks))
    out: dict[str, Any] = {
        "diagnostics": fit.plot_diagnostics,
        "residuals": fit.plot_residuals,
        "qq_residuals": fit.plot_qq,
        "qq_ranef": lambda: fit.plot_qq("ranef"),
        "simulated_residuals": fit.plot_simulated_residuals,
        "ppc": fit.plot_ppc,
        "ppc_loo_pit": lambda: fit.plot_ppc("loo_pit"),
        "fixef": fit.plot_fixef,
    }
    x = _effect_predictor(fit)
    if x is not None and fit.model.family.response != "ordinal":
        out[f"effects_{x}"] = lambda: fit.plot_effects(x, units_from=data)
    for group in groups:
        out[f"caterpillar_{group}"] = lambda g=group: fit.plot_caterpillar(g)
        out[f"influence_{group}"] = lambda g=group: fit.plot_influence(g)
        if fit.model.family.normal and fit.model.link == "identity":
            out[f"shrinkage_{group}"] = lambda g=group: fit.plot_shrinkage(g)
    return out


def write_gallery(out: str | Path, names: list[str] | None = None, draws: int = 500,
                  tune: int = 500, chains: int = 4, random_seed: int = 1) -> list[Path]:
    """Fit each gallery model and write its pictures and check reports under ``out``.

    Examples
    --------
    >>> paths = write_gallery("gallery", names=["sleepstudy"])  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    import bayesmix as bm

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in names or list(GALLERY):
        dataset, formula, family = GALLERY[name]
        t0 = time.perf_counter()
        print(f"{name}: fitting {formula} ({family}), {chains} x {draws} draws", flush=True)
        with warnings.catch_warnings():  # reported in <name>_checks.txt instead
            warnings.simplefilter("ignore", bm.ConvergenceWarning)
            warnings.simplefilter("ignore", bm.SingularFitWarning)
            data = bm.datasets.load(dataset)
            fit = bm.Model(formula, data, family=family).fit(
                draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                progressbar=False)
        lines = [str(fit.check()), "", "Simulated residuals:", fit.simulated_residuals().text(),
                 "", "Influence:", fit.influence().text()]
        if "dispersion" in fit.model.family.diagnostics:
            lines += ["", "Overdispersion:", fit.overdispersion().verdict]
        report = folder / f"{name}_checks.txt"
        report.write_text("\n".join(lines) + "\n")
        written.append(report)
        for label, draw in _figures(fit, data).items():
            fig = draw()
            path = folder / f"{name}_{label}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
        print(f"{name}: {len(written)} files so far, {time.perf_counter() - t0:.0f} s",
              flush=True)
    return written
