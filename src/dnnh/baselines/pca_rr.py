"""PCA-RR: PCA to the code length, a seeded random orthogonal rotation, sign.

The training-free baseline of the frozen-feature setting ("Hashing-Baseline", 2025: hash a
pretrained network's features with PCA, a random rotation and sign, no learning). It is ITQ's
starting point without ITQ's iterations (:mod:`dnnh.baselines.itq`): PCA keeps the directions of
largest variance, but that variance is uneven across components, so PCAH's low-variance bits
are near noise while counting as much as the first in a Hamming distance. A random rotation of
the PCA scores spreads the variance over all bits; it keeps every distance between the scores
(it is orthogonal), so it loses nothing PCA kept. ITQ then learns the rotation; PCA-RR draws it.

The rotation is Haar-distributed: the Q of the QR decomposition of a Gaussian matrix, each
column's sign fixed by the sign of R's diagonal (without the fix, QR's sign convention makes Q
lean towards some orientations; Mezzadri 2007, "How to generate random matrices from the
classical compact groups").
"""

from __future__ import annotations

import numpy as np

from dnnh.baselines.pcah import PCAH


def random_rotation(n: int, rng: np.random.RandomState) -> np.ndarray:
    """A Haar-random (n, n) orthogonal matrix from ``rng``: QR of a Gaussian, signs fixed by R's diagonal."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.where(np.diag(r) >= 0, 1.0, -1.0)


class PCARR(PCAH):
    """Bit k is 1 where the k-th coordinate of the randomly rotated PCA scores is positive.

    Parameters
    ----------
    n_bits : int
        Code length; at most min(n_samples, n_features) (PCA to ``n_bits`` dimensions).
    random_state : int, RandomState or None
        Seed of the rotation (and of PCA's randomised solver, which scikit-learn picks for large inputs).

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
    rotation_ : ndarray (n_bits, n_bits)
        The random orthogonal rotation applied to the PCA scores.

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import PCARR
    >>> X = np.random.default_rng(0).normal(size=(200, 16))
    >>> model = PCARR(n_bits=8, random_state=0).fit(X)
    >>> bool(np.allclose(model.rotation_.T @ model.rotation_, np.eye(8)))
    True
    >>> model.transform(X[:3]).shape
    (3, 8)
    """

    # PCAH's parameters, its check (n_bits <= min(n_samples, n_features)) and its PCA; the rotation is added.

    def _fit(self, X: np.ndarray, Y: None, rng: np.random.RandomState) -> None:
        super()._fit(X, Y, rng)
        self.rotation_ = random_rotation(self.n_bits, rng)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return super()._project(X) @ self.rotation_
