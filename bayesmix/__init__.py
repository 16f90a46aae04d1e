"""bayesmix: Bayesian mixed-effects models with lme4 syntax, on PyMC and ArviZ.

Examples
--------
>>> import bayesmix as bm
>>> model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1)  # doctest: +SKIP
>>> fit.summary()  # doctest: +SKIP
"""

from __future__ import annotations

import warnings as _warnings

# PyTensor's C backend warns about BLAS on pip installs; nutpie compiles with numba instead.
_warnings.filterwarnings("ignore", message=".*could not link to a BLAS installation.*")

from bayesmix import datasets  # noqa: E402
from bayesmix.api.batch import BatchResult, fit_many  # noqa: E402
from bayesmix.api.fit import FitResult  # noqa: E402
from bayesmix.api.model import Model  # noqa: E402
from bayesmix.api.persist import load  # noqa: E402
from bayesmix.api.power import PowerResult, power  # noqa: E402
from bayesmix.data.design import Design, make_design  # noqa: E402
from bayesmix.data.structured import AR1  # noqa: E402
from bayesmix.errors import (  # noqa: E402
    BatchError,
    BayesmixError,
    ConvergenceWarning,
    DataError,
    DatasetError,
    FamilyError,
    FormulaError,
    MissingDataWarning,
    PersistError,
    PriorError,
    RankDeficiencyWarning,
    ResponseError,
    SamplerError,
    SingularFitWarning,
)
from bayesmix.families import Family, get_family  # noqa: E402
from bayesmix.inference.ml import LRTResult, MLResult, lrt  # noqa: E402
from bayesmix.priors import Prior  # noqa: E402
from bayesmix.spec.distributional import Formula, NonLinear  # noqa: E402
from bayesmix.spec.formula import FormulaSpec, parse_formula  # noqa: E402
from bayesmix.validation.compare import LooWarning, compare  # noqa: E402
from bayesmix.version import __version__ as __version__  # noqa: E402


def __getattr__(name: str):
    # bm.plots loads matplotlib and arviz-plots: only when a picture is asked for
    if name == "plots":
        import importlib

        return importlib.import_module("bayesmix.plots")
    raise AttributeError(f"module 'bayesmix' has no attribute {name!r}")


__all__ = [
    "Model", "FitResult", "AR1", "MLResult", "LRTResult", "lrt", "Prior", "Design",
    "FormulaSpec",
    "Family", "Formula", "NonLinear", "parse_formula", "make_design", "get_family",
    "datasets", "plots",
    "BayesmixError", "FormulaError", "DataError", "ResponseError", "FamilyError", "PriorError",
    "SamplerError", "DatasetError", "PersistError", "MissingDataWarning", "ConvergenceWarning",
    "SingularFitWarning", "RankDeficiencyWarning", "LooWarning", "compare", "load",
    "fit_many", "BatchResult", "BatchError", "power", "PowerResult",
]
