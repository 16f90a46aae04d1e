"""Sampling diagnostics, the fit check, residuals and influence."""
