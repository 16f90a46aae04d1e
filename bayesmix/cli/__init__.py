"""The command line: ``python -m bayesmix demo|fit|gallery``."""
