"""``python -m bayesmix.inference.kernel``: compile the kernel ahead of time."""

import time

from bayesmix.inference.kernel import _LOADING, precompile

precompile()
print(f"bayesmix kernel ready ({time.perf_counter() - _LOADING:.1f} s)")
