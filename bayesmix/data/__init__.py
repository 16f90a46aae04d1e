"""Designs: a formula evaluated on a DataFrame into arrays, replayable on new data."""
