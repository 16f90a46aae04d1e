"""The PyMC model: the only layer (with :mod:`bayesmix.inference`) that imports PyMC or PyTensor."""
from bayesmix.model.model import ModelSpec

__all__ = ["ModelSpec"]
