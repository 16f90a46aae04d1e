"""Posterior tables in lme4's vocabulary, the printed summary, and saving to disk."""
