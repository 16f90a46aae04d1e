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

from bayesmix import datasets, plots  # noqa: E402
from bayesmix.design import Design, make_design  # noqa: E402
from bayesmix.errors import (  # noqa: E402
    BayesmixError,
    ConvergenceWarning,
    DataError,
    DatasetError,
    FamilyError,
    FormulaError,
    MissingDataWarning,
    PersistError,
    PriorError,
    ResponseError,
    SamplerError,
    SingularFitWarning,
)
from bayesmix.families import Family, get_family  # noqa: E402
from bayesmix.formula import FormulaSpec, parse_formula  # noqa: E402
from bayesmix.formulas import Formula, NonLinear  # noqa: E402
from bayesmix.ml import LRTResult, MLResult, lrt  # noqa: E402
from bayesmix.model import Model  # noqa: E402
from bayesmix.priors import Prior  # noqa: E402
from bayesmix.structured import AR1  # noqa: E402
from bayesmix.results import FitResult  # noqa: E402
from bayesmix.compare import LooWarning, compare  # noqa: E402
from bayesmix.persist import load  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Model", "FitResult", "AR1", "MLResult", "LRTResult", "lrt", "Prior", "Design",
    "FormulaSpec",
    "Family", "Formula", "NonLinear", "parse_formula", "make_design", "get_family",
    "datasets", "plots",
    "BayesmixError", "FormulaError", "DataError", "ResponseError", "FamilyError", "PriorError",
    "SamplerError", "DatasetError", "PersistError", "MissingDataWarning", "ConvergenceWarning",
    "SingularFitWarning", "LooWarning", "compare", "load",
]
