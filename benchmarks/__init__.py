"""Benchmarks of bayesmix against bambi (``python -m benchmarks``; see ``runner.py``)."""
