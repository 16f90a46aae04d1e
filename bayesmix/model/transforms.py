"""Sampler-side transforms of the model's parameters (the model itself is unchanged).

:class:`QRTransform` lets NUTS sample the fixed-effect slopes ``beta`` in the coordinates
``theta = R beta / sqrt(n - 1)``, where ``X_c = Q R`` is the thin QR decomposition of the
centred fixed-effect design. The likelihood's curvature in ``theta`` is close to diagonal
even when the predictors are correlated (an interaction with its main effect, polynomial
terms), which a diagonal mass matrix cannot otherwise absorb: epilepsy's
``count ~ zAge + zBase * Trt`` (Poisson) mixed with bulk ESS 37-71 (of 2 000 draws) for
``zBase`` and ``zBase:Trt1`` without it. The priors stay on ``beta`` (the transform's
Jacobian is constant), so prior predictive draws and the posterior are those of the same
model; only the sampler's coordinates change.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

__all__ = ["QRTransform", "qr_transform", "REAL_PRIORS"]

# Priors with support on the whole real line (a linear map keeps them valid).
REAL_PRIORS = frozenset({"Normal", "StudentT", "Cauchy", "Laplace", "Logistic", "Flat",
                         "Gumbel", "SkewNormal"})


class QRTransform(Transform):
    """``theta = R beta`` for an upper-triangular ``R`` (constant), elementwise Jacobian."""

    name = "qr"
    ndim_supp = 0

    def __init__(self, R: np.ndarray) -> None:
        R = np.asarray(R, dtype=np.float64)
        self.R = R
        self.R_inv = np.linalg.inv(R)
        self._log_diag = -np.log(np.abs(np.diag(R)))

    def forward(self, value, *inputs):
        return pt.dot(pt.as_tensor(self.R), value)

    def backward(self, value, *inputs):
        return pt.dot(pt.as_tensor(self.R_inv), value)

    def log_jac_det(self, value, *inputs):
        # log |d beta / d theta| = -log |det R| = -sum(log |R_ii|), spread over the entries
        return pt.as_tensor(self._log_diag) + pt.zeros_like(value)


def qr_transform(Xc: np.ndarray, prior_dists: list[str]) -> QRTransform | None:
    """The QR transform for the centred slope columns ``Xc``, or None where it does not
    apply or cannot help: fewer than two slopes, a prior with bounded support, or a design
    that is not of full column rank."""
    n, p = Xc.shape
    if p < 2 or n <= p or any(d not in REAL_PRIORS for d in prior_dists):
        return None
    R = np.linalg.qr(Xc, mode="r") / np.sqrt(n - 1)
    d = np.abs(np.diag(R))
    if not np.all(np.isfinite(R)) or d.min() <= 1e-8 * d.max():
        return None
    signs = np.where(np.diag(R) < 0, -1.0, 1.0)  # positive diagonal: theta_j ~ +beta_j sd(x_j)
    return QRTransform(signs[:, None] * R)
