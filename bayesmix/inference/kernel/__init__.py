"""One precompiled log density and gradient for the standard class of mixed models.

The PyTensor path compiles a new numba program for every model structure (15-30 s on two
cores, once per structure and machine). The models of the standard class
(:mod:`bayesmix.model.kernel_plan`: gaussian, bernoulli, binomial, Poisson and negative
binomial responses, uncorrelated blocks) differ only in the arrays the kernel reads, so this
package's two C entry points (nutpie's log density with gradient, and its "expand" function
that returns the stored variables) are compiled once per machine, cached by numba next to
these files, and serve every formula of the class. ``python -m bayesmix.inference.kernel``
compiles them ahead of time (``make`` does it when it installs).

The code reads the model from two flat arrays (float64 ``F`` and int64 ``I``) whose layout
:mod:`bayesmix.model.kernel_plan` writes; the slot numbers in the code are the same numbers
(``tests/model/test_kernel.py`` checks it), written out because numba's cache is keyed by
each file's own source.

Modules: :mod:`.numerics` (slot access, priors, special functions, small linear algebra, the
vectorized logistic rows), :mod:`.marginal` (the integrated gaussian likelihood),
:mod:`.conditional` (level coefficients sampled), :mod:`.entry` (the entry points and the
nutpie model).

Set ``BAYESMIX_KERNEL=0`` to use the PyTensor path for every model.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

_LOADING = time.perf_counter()  # the entry points compile (or load) while the package loads
_HERE = Path(__file__).parent
_SOURCES = ("numerics.py", "marginal.py", "conditional.py", "entry.py")


def _drop_stale_cache() -> None:
    """Numba keys a cached function by its own file only, so a change to a helper in another
    of these files would leave the callers' cached machine code stale: the cache next to the
    files is dropped whenever any of their sources changed."""
    digest = hashlib.sha256(b"".join((_HERE / s).read_bytes() for s in _SOURCES)).hexdigest()
    cache = _HERE / "__pycache__"
    stamp = cache / "kernel_sources.sha256"
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
        for f in (*cache.glob("*.nbi"), *cache.glob("*.nbc")):
            f.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: numba keeps its cache elsewhere, keyed per install
        pass


_drop_stale_cache()

from bayesmix.inference.kernel.entry import expand, kernel_model, logp_and_grad  # noqa: E402
from bayesmix.inference.kernel.numerics import _BF, _N_F, _N_I, _N_META  # noqa: E402,F401

__all__ = ["kernel_model", "logp_and_grad", "expand", "precompile"]


def precompile() -> None:
    """Compile (or load from numba's cache) the kernel's entry points now.

    Examples
    --------
    >>> from bayesmix.inference.kernel import precompile
    >>> precompile()
    """
    from bayesmix.inference.kernel.entry import _expand_c, _logp_c

    _ = _logp_c.address, _expand_c.address
