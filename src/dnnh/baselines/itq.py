"""ITQ: iterative quantisation (Gong & Lazebnik, "Iterative quantization: a Procrustean approach to
learning binary codes", CVPR 2011; PAMI 2013).

PCA gives the subspace, but the sign of each principal component loses much information when the
variance is uneven across components. Any orthogonal rotation R of the PCA scores V keeps their
distances, so ITQ chooses the R for which the rotated data sits closest to the vertices of the
hypercube: it minimises the quantisation loss ||B - V R||_F^2 over B in {-1, +1}^(n x c) and
orthogonal R by alternating

- B = sign(V R), the best codes for a fixed rotation, and
- R = the orthogonal Procrustes solution aligning V to B (SVD of V^T B), the best rotation for
  fixed codes.

Each step solves its sub-problem exactly, so the loss never increases.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from dnnh.baselines.base import ShallowHasher, check_int_param
from dnnh.baselines.pcah import fit_pca


def _signs(Z: np.ndarray) -> np.ndarray:
    """sign(Z) with 0 mapped to +1, matching the code rule ``bit = projection > 0`` up to ties."""
    return np.where(Z >= 0, 1.0, -1.0)


def itq_rotation(V: np.ndarray, n_iter: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Learn ITQ's rotation for centred scores ``V`` (n, c).

    Starts from a random orthogonal matrix (Haar-distributed, as the reference code's SVD of a
    Gaussian matrix) and returns (R, loss) where ``loss[t]`` is the mean per-sample quantisation
    loss ||B - V R||^2 / n after iteration t, with R that iteration's rotation and B = sign(V R)
    the codes it gives (so the last entry is the loss of the codes ``transform`` returns).
    """
    c = V.shape[1]
    R = ortho_group.rvs(c, random_state=rng) if c > 1 else np.ones((1, 1))
    loss = np.empty(n_iter)
    B = _signs(V @ R)
    for t in range(n_iter):
        R, _ = orthogonal_procrustes(V, B)
        VR = V @ R
        B = _signs(VR)
        loss[t] = np.sum((B - VR) ** 2) / V.shape[0]
    return R, loss


class ITQ(ShallowHasher):
    """PCA to ``n_bits`` dimensions, then the rotation that minimises quantisation loss.

    Parameters
    ----------
    n_bits : int
        Code length; at most min(n_samples, n_features).
    n_iter : int
        Alternating iterations (50 in the paper; the loss has usually flattened by then).
    random_state : int, RandomState or None
        Seed of the initial rotation (and of PCA's randomised solver on large inputs).

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
    rotation_ : ndarray (n_bits, n_bits)
        The learned orthogonal rotation R.
    quantization_loss_ : ndarray (n_iter,)
        ||B - V R||_F^2 / n_samples after each iteration, B = sign(V R); non-increasing.

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import ITQ
    >>> X = np.random.default_rng(0).normal(size=(200, 16))
    >>> itq = ITQ(n_bits=8, random_state=0).fit(X)
    >>> bool(np.allclose(itq.rotation_.T @ itq.rotation_, np.eye(8)))
    True
    >>> bool(np.all(np.diff(itq.quantization_loss_) <= 1e-9))
    True
    """

    supervised = False

    def __init__(self, n_bits: int = 32, *, n_iter: int = 50, random_state=None) -> None:
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.random_state = random_state

    def _check_params(self, n_samples: int, n_features: int) -> None:
        limit = min(n_samples, n_features)
        check_int_param(self, "n_bits", 1, limit, f" (min(n_samples, n_features) = {limit}: PCA to n_bits dimensions)")
        check_int_param(self, "n_iter", 1)

    def _fit(self, X: np.ndarray, Y: None, rng: np.random.RandomState) -> None:
        self.pca_ = fit_pca(X, self.n_bits, rng)
        self.rotation_, self.quantization_loss_ = itq_rotation(self.pca_.transform(X), self.n_iter, rng)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return self.pca_.transform(X) @ self.rotation_
