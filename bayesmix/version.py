"""The package version (read by the package and by saved fits)."""

__version__ = "0.1.0"
