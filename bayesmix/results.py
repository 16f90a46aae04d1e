""":class:`FitResult`: posterior summaries in lme4's vocabulary, on top of the ArviZ DataTree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayesmix.build import level_dim, term_dim
from bayesmix.diagnostics import SamplingReport, sampling_report
from bayesmix.errors import BayesmixError
from bayesmix.sample import SamplerSettings

if TYPE_CHECKING:
    from bayesmix.model import Model

__all__ = ["FitResult", "Summary"]

_SAMPLE_DIMS = ("chain", "draw")


def _interval_names(prob: float, interval: str) -> tuple[str, str]:
    pct = f"{100 * prob:g}"
    return f"{interval}{pct}_lb", f"{interval}{pct}_ub"


def posterior_stats(da: xr.DataArray, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
    """Mean, sd, interval, ESS, R-hat and MCSE of every element of a posterior variable.

    Rows follow the variable's non-sample dims in C order; the index is a MultiIndex of those
    coordinates (a plain index for one dim).
    """
    if interval not in ("eti", "hdi"):
        raise BayesmixError(f"interval must be 'eti' or 'hdi', not {interval!r}")
    if not 0 < prob < 1:
        raise BayesmixError(f"prob must be between 0 and 1, not {prob!r}")
    lb, ub = _interval_names(prob, interval)
    bounds = (az.hdi if interval == "hdi" else az.eti)(da, prob=prob)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {
            "mean": da.mean(_SAMPLE_DIMS),
            "sd": da.std(_SAMPLE_DIMS, ddof=1),
            lb: bounds.sel(ci_bound="lower"),
            ub: bounds.sel(ci_bound="upper"),
            "ess_bulk": az.ess(da, method="bulk"),
            "ess_tail": az.ess(da, method="tail"),
            "r_hat": az.rhat(da),
            "mcse_mean": az.mcse(da),
        }
    other = [d for d in da.dims if d not in _SAMPLE_DIMS]
    if not other:
        return pd.DataFrame({k: [float(v)] for k, v in columns.items()})
    index = pd.MultiIndex.from_product([da.coords[d].values for d in other], names=other) \
        if len(other) > 1 else pd.Index(da.coords[other[0]].values, name=other[0])
    return pd.DataFrame({k: np.asarray(v.transpose(*other)).ravel() for k, v in columns.items()},
                        index=index)


@dataclass(frozen=True)
class Summary:
    """lme4-style printed summary; ``str()``/``repr()`` give the text."""

    text: str

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted model: the ArviZ DataTree plus lme4-style accessors.

    Example
    -------
    >>> import bayesmix as bm
    >>> fit = bm.Model("Yield ~ 1 + (1 | Batch)", bm.datasets.load("dyestuff")).fit(
    ...     draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    >>> list(fit.varcorr()["group"])
    ['Batch', 'Residual']
    """

    model: "Model"
    idata: xr.DataTree
    settings: SamplerSettings
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    # -- tables ---------------------------------------------------------------------------------
    def fixef(self, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """Fixed effects: one row per coefficient (lme4 names).

        Columns: mean, sd, interval bounds (``eti95_lb``/``eti95_ub``, or ``hdi...``),
        ess_bulk, ess_tail, r_hat, mcse_mean.

        >>> fit.fixef().loc["Days", ["mean", "eti95_lb", "eti95_ub"]]  # doctest: +SKIP
        >>> fit.fixef(prob=0.9, interval="hdi")  # doctest: +SKIP
        """
        if "fixef" not in self.posterior:
            return pd.DataFrame(columns=["mean", "sd"])
        table = posterior_stats(self.posterior["fixef"], prob, interval)
        table.index.name = "term"
        return table

    def varcorr(self, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """Variance components: group SDs, correlations and the residual SD.

        Columns: group, term, term2, kind ("sd" | "cor"), mean, sd, interval bounds,
        ess_bulk, ess_tail, r_hat. The residual SD of a gaussian model is the row with
        group "Residual"; other families' parameters (student_t's scale ``sigma``, which is
        not the SD of the residuals, included) are in :meth:`family_params`.

        >>> vc = fit.varcorr()  # doctest: +SKIP
        >>> vc[vc.kind == "cor"]  # correlations, one row per pair  # doctest: +SKIP
        """
        rows = []
        post = self.posterior
        for block in self.model.design.blocks:
            stats = posterior_stats(post[f"sd_{block.name}"], prob, interval)
            for term, row in stats.iterrows():
                rows.append({"group": block.name, "term": term, "term2": "", "kind": "sd",
                             **row.to_dict()})
            if block.correlated:
                cor = posterior_stats(post[f"cor_{block.name}"], prob, interval)
                names = block.coef_names
                for i in range(len(names)):
                    for j in range(i + 1, len(names)):
                        row = cor.loc[(names[i], names[j])]
                        rows.append({"group": block.name, "term": names[i], "term2": names[j],
                                     "kind": "cor", **row.to_dict()})
        if "sigma" in post and self.model.family.name == "gaussian":
            row = posterior_stats(post["sigma"], prob, interval).iloc[0]
            rows.append({"group": "Residual", "term": "", "term2": "", "kind": "sd",
                         **row.to_dict()})
        return pd.DataFrame(rows)

    def ranef(self, summary: bool = False, prob: float = 0.95,
              interval: str = "eti") -> dict[str, pd.DataFrame]:
        """Level effects per grouping factor.

        ``summary=False``: levels x terms posterior means (lme4's ``ranef``);
        ``summary=True``: long format with level, term, mean, sd and interval bounds.
        Level labels are exactly those of the data.

        >>> fit.ranef()["Subject"].loc[308]  # doctest: +SKIP
        >>> fit.ranef(summary=True)["Subject"].head()  # doctest: +SKIP
        """
        out: dict[str, list[pd.DataFrame]] = {}
        for block in self.model.design.blocks:
            da = self.posterior[f"r_{block.name}"]
            if summary:
                table = posterior_stats(da, prob, interval).reset_index()
                table.columns = ["level", "term", *table.columns[2:]]
                out.setdefault(block.group, []).append(table)
            else:
                mean = da.mean(_SAMPLE_DIMS).transpose(level_dim(block), term_dim(block))
                out.setdefault(block.group, []).append(pd.DataFrame(
                    mean.values, index=pd.Index(block.levels, name=block.group),
                    columns=list(block.coef_names)))
        if summary:
            return {g: pd.concat(parts, ignore_index=True) for g, parts in out.items()}
        return {g: pd.concat(parts, axis=1) for g, parts in out.items()}

    def coef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``coef()``: fixed effects plus each level's random effects (posterior means).

        >>> fit.coef()["Subject"][["(Intercept)", "Days"]].head()  # doctest: +SKIP
        """
        fixed = self.fixef()["mean"] if "fixef" in self.posterior else pd.Series(dtype=float)
        out = {}
        for group, table in self.ranef().items():
            combined = pd.DataFrame(np.tile(fixed.values, (len(table), 1)),
                                    index=table.index, columns=list(fixed.index))
            for term in table.columns:
                combined[term] = combined[term] + table[term] if term in combined else table[term]
            out[group] = combined
        return out

    def family_params(self, prob: float = 0.95, interval: str = "eti") -> pd.DataFrame:
        """The family's parameters, one row each, with the columns of :meth:`fixef`.

        Rows are named as the posterior variables (``sigma``, ``nu``, ``shape``, ``phi``,
        ``theta``, ``zi``, ``hu``); an ordinal model has one row per cutpoint, named by the
        categories it separates (``"1|2"``, ``"2|3"``..., as R's ``ordinal::clm``).

        >>> fit.family_params().loc["theta", ["mean", "eti95_lb", "eti95_ub"]]  # doctest: +SKIP
        """
        tables = []
        for name in self.model.family.params:
            if name not in self.posterior:
                continue
            table = posterior_stats(self.posterior[name], prob, interval)
            table.index = [name] if self.posterior[name].ndim == 2 else \
                [str(label) for label in table.index]
            tables.append(table)
        if not tables:
            return pd.DataFrame(columns=["mean", "sd"])
        out = pd.concat(tables)
        out.index.name = "parameter"
        return out

    # -- diagnostics ----------------------------------------------------------------------------
    def sampling_report(self) -> SamplingReport:
        """Divergences, tree depth, worst R-hat and ESS over the non-level parameters."""
        return sampling_report(self.idata, self.model.design.blocks, self.settings)

    def summary(self, prob: float = 0.95, interval: str = "eti") -> Summary:
        """lme4-style summary: model, data, random effects, fixed effects, diagnostics."""
        from bayesmix.printing import render_summary

        return Summary(render_summary(self, prob, interval))

    # -- pictures -------------------------------------------------------------------------------
    def plot_caterpillar(self, group: str | None = None, prob: float = 0.95) -> Any:
        """Level effects with intervals; see :func:`bayesmix.plots.plot_caterpillar`."""
        from bayesmix.plots import plot_caterpillar

        return plot_caterpillar(self, group, prob)

    def plot_shrinkage(self, group: str | None = None) -> Any:
        """No pooling vs partial pooling per level; see :func:`bayesmix.plots.plot_shrinkage`."""
        from bayesmix.plots import plot_shrinkage

        return plot_shrinkage(self, group)

    def __repr__(self) -> str:
        return (f"<FitResult {self.model.spec.formula!r} ({self.model.family.name}), "
                f"{self.settings.chains} chains x {self.settings.draws} draws>")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(repr(self))
