"""PCAH: the signs of the top principal components (as used as a baseline by Wang, Kumar & Chang,
"Semi-supervised hashing", CVPR 2010, and Gong & Lazebnik 2011).

The top ``n_bits`` directions of largest variance keep the most of the data's spread, and each
centred projection splits the data roughly in half. Its weakness, which ITQ fixes: variance is
spread unevenly over the components, so the low-variance bits are close to noise while counting
as much as the first one in a Hamming distance.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from dnnh.baselines.base import ShallowHasher, check_int_param


def fit_pca(X: np.ndarray, n_components: int, rng: np.random.RandomState) -> PCA:
    """sklearn's PCA with a seed taken from ``rng`` (its solver may be randomised on large data)."""
    return PCA(n_components=n_components, random_state=rng.randint(2**31 - 1)).fit(X)


class PCAH(ShallowHasher):
    """Bit k is 1 where the k-th principal component score is positive.

    Parameters
    ----------
    n_bits : int
        Code length; at most min(n_samples, n_features).
    random_state : int, RandomState or None
        Seed for PCA's randomised solver, which scikit-learn picks for large inputs.

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
        The fitted PCA; ``pca_.components_`` are the bit directions (sign fixed by scikit-learn).

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import PCAH
    >>> X = np.random.default_rng(0).normal(size=(100, 16))
    >>> PCAH(n_bits=4, random_state=0).fit(X).transform(X[:3]).shape
    (3, 4)
    """

    supervised = False

    def __init__(self, n_bits: int = 32, *, random_state=None) -> None:
        self.n_bits = n_bits
        self.random_state = random_state

    def _check_params(self, n_samples: int, n_features: int) -> None:
        limit = min(n_samples, n_features)
        check_int_param(self, "n_bits", 1, limit,
                        f" (min(n_samples, n_features) = {limit}: one bit a principal component)")

    def _fit(self, X: np.ndarray, Y: None, rng: np.random.RandomState) -> None:
        self.pca_ = fit_pca(X, self.n_bits, rng)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return self.pca_.transform(X)
