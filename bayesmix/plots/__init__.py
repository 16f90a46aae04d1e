"""Pictures of a fit (matplotlib and arviz-plots; loaded only when a plot is asked for).

Every picture is reachable as ``bayesmix.plots.<name>`` and as a ``fit.plot_...`` method.
"""

from bayesmix.plots.power import plot_power
from bayesmix.plots.ppc import plot_diagnostics, plot_influence, plot_ppc, predictive_datatree
from bayesmix.plots.random_effects import (
    no_pooling_estimates,
    plot_caterpillar,
    plot_fixef,
    plot_forest,
    plot_shrinkage,
    shrinkage_table,
)
from bayesmix.plots.residuals import plot_qq, plot_residuals, plot_simulated_residuals
from bayesmix.plots.rootogram import plot_rootogram

__all__ = ["plot_caterpillar", "plot_shrinkage", "no_pooling_estimates", "shrinkage_table",
           "plot_fixef", "plot_forest", "plot_residuals", "plot_qq", "plot_simulated_residuals",
           "plot_ppc", "plot_influence", "plot_diagnostics", "predictive_datatree", "plot_power",
           "plot_rootogram"]
