"""Estimation: NUTS samplers, the compile cache, and maximum likelihood (REML, Laplace)."""
