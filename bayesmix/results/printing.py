"""Render :meth:`FitResult.summary` as text laid out like lme4's ``summary()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

from bayesmix.inference.convergence import SamplingReport
from bayesmix.inference.sample import SamplerSettings
from bayesmix.results import tables
from bayesmix.text import format_table

if TYPE_CHECKING:
    from bayesmix.model import ModelSpec

__all__ = ["render_summary"]



def render_summary(idata: xr.DataTree, model: "ModelSpec", settings: SamplerSettings,
                   timing: dict[str, float], report: SamplingReport, prob: float,
                   interval: str) -> str:
    """The text of ``fit.summary()``; ``report`` is the fit's sampling report."""
    design, s = model.design, settings
    lb, ub = f"{interval}{100 * prob:g}_lb", f"{interval}{100 * prob:g}_ub"
    kind = model.family.kind
    if model.nonlinear is not None:
        kind = "Nonlinear mixed model"
    blocks = model.all_blocks
    if not blocks:  # no random effects: say so rather than print an empty section
        kind = kind.replace(" mixed", "")
    formulas = model.formula_lines
    lines = [
        f"{kind} fit by NUTS ({s.sampler})",
        f" Family: {model.family.name} ( {model.link} )",
        f"Formula: {formulas[0]}",
        *(f"         {line}" for line in formulas[1:]),
        f"   Data: {design.n} observations"
        + (f" ({len(design.dropped)} rows with missing values dropped)" if len(design.dropped)
           else ""),
        f"  Draws: {s.chains} chains x {s.draws} draws ({s.tune} tuning), "
        f"{s.chains * s.draws} posterior draws",
        "",
    ]
    vc = tables.varcorr(idata, model, prob, interval)
    if len(vc):
        title = "Random effects" if blocks else "Residual"
        lines.append(f"{title} (posterior mean, sd and {100 * prob:g}% {interval.upper()}):")
        sds = vc[vc["kind"] == "sd"][["group", "term", "mean", "sd", lb, ub, "ess_bulk", "r_hat"]]
        sds = sds.rename(columns={"group": "Groups", "term": "Name", "mean": "Std.Dev.",
                                  "sd": "Est.Error", lb: "lower", ub: "upper"})
        sds["Groups"] = sds["Groups"].where(sds["Groups"] != sds["Groups"].shift(), "")
        lines.append(format_table(sds, index=False))
        cors = vc[vc["kind"] == "cor"]
        if len(cors):
            lines.append("Correlations:")
            for _, row in cors.iterrows():
                lines.append(f"  {row['group']}: cor({row['term']}, {row['term2']}) = "
                             f"{row['mean']:.2f}  [{row[lb]:.2f}, {row[ub]:.2f}]  "
                             f"ess_bulk {row['ess_bulk']:.0f}, r_hat {row['r_hat']:.3f}")
        for _, row in vc[vc["kind"] == "ar"].iterrows():
            auto = model.autocor_structure
            lines.append(f"Residual {auto.spec}: rho = {row['mean']:.2f}  [{row[lb]:.2f}, "
                         f"{row[ub]:.2f}]  ess_bulk {row['ess_bulk']:.0f}, r_hat "
                         f"{row['r_hat']:.3f}  (cor = rho^|time gap|, Residual SD is marginal)")
        groups = ";  ".join(f"{key}, {b.n_levels}" for key, b in
                            {b.dim or b.group: b for b in blocks}.items())
        lines.append(f"Number of obs: {design.n}" + (f", groups:  {groups}" if groups else ""))
        lines.append("")
    fe = tables.fixef(idata, model, prob, interval)
    dpars = [lp.name for lp in model.predictors if lp.role == "dpar"]
    if dpars:  # distributional parameters' coefficients, on their link scale
        parts = [tables.fixef(idata, model, prob, interval, name).rename(index=lambda c, n=name: f"{n}:{c}")
                 for name in dpars]
        fe = pd.concat([fe, *parts]) if len(fe) else pd.concat(parts)
    if len(fe):
        lines.append("Fixed effects:")
        fe = fe[["mean", "sd", lb, ub, "ess_bulk", "ess_tail", "r_hat"]].rename(
            columns={"mean": "Estimate", "sd": "Est.Error", lb: "lower", ub: "upper"})
        fe.index.name = None
        lines.append(format_table(fe))
        lines.append("")
    fp = tables.family_params(idata, model, prob, interval)
    if len(fp) and not model.family.normal:
        lines.append("Thresholds (cutpoints):" if model.family.ordinal else "Family parameters:")
        fp = fp[["mean", "sd", lb, ub, "ess_bulk", "r_hat"]].rename(
            columns={"mean": "Estimate", "sd": "Est.Error", lb: "lower", ub: "upper"})
        fp.index.name = None
        lines.append(format_table(fp))
        lines.append("")
    lines.append("Sampling: " + report.text())
    if report.problems:
        lines.append("  fit.check() names every parameter involved and the remedies, in order")
    total = sum(timing.values())
    lines.append(f"Time: {total:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in
                                                   timing.items()) + ")")
    user = [k for k, src in model.priors["source"].items() if src == "user"]
    lines.append("Priors: " + ("default, scaled to the data" if not user else
                              f"user-set for {', '.join(user)}; others default")
                 + " (see model.priors)")
    return "\n".join(lines)
