"""Formulas: lme4/brms syntax parsed into specification objects (no data, no PyMC)."""
