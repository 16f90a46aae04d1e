"""Re-draw the figures of docs/guide/diagnostics.md (about a minute and a half on two cores):

    python docs/figures/make_figures.py
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

import bayesmix as bm  # noqa: E402

HERE = Path(__file__).parent
SETTINGS = {"draws": 300, "tune": 300, "chains": 2, "random_seed": 1, "progressbar": False}


def save(fig, name: str, dpi: int = 72) -> None:
    """A 256-colour PNG: small enough to commit (< 150 KB)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi)
    plt.close(fig)
    Image.open(buffer).convert("RGB").quantize(256).save(HERE / f"{name}.png", optimize=True)
    print(name, (HERE / f"{name}.png").stat().st_size // 1024, "KB")


def main() -> None:
    warnings.simplefilter("ignore")
    math = bm.datasets.load("mathachieve")
    fit = bm.Model("MathAch ~ SES + Sector + (SES | School)", math).fit(**SETTINGS)
    save(fit.plot_residuals(), "residuals_mathachieve", dpi=64)
    save(fit.plot_effects("SES"), "effects_mathachieve_SES")
    epi = bm.datasets.load("epilepsy")
    fit = bm.Model("count ~ zAge + zBase * Trt + (1 | patient)", epi, family="poisson").fit(
        **SETTINGS)
    save(fit.plot_ppc(), "rootogram_epilepsy")
    save(fit.plot_effects("zAge", units_from=epi), "effects_epilepsy_zAge")
    cbpp = bm.datasets.load("cbpp")
    fit = bm.Model("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                   family="binomial").fit(**SETTINGS)
    save(fit.plot_effects("period", kind="both"), "effects_cbpp_period")


if __name__ == "__main__":
    main()
