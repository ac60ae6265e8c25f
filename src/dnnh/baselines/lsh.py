"""LSH: sign random projections (Charikar 2002; the hyperplane family of Andoni & Indyk).

Bit k is ``[w_k . (x - mu) > 0]`` with ``w_k ~ N(0, I)``. For two vectors at angle theta the
probability that a bit differs is theta / pi, so the Hamming distance estimates the angle, and
the estimate sharpens with more bits whatever the data. It learns nothing from the data except,
when ``center=True``, the mean ``mu``: without it, on non-negative features such as pixels, all
vectors sit in one orthant and most hyperplanes through the origin cut none of them apart.
"""

from __future__ import annotations

import numpy as np

from dnnh.baselines.base import ShallowHasher


class LSH(ShallowHasher):
    """Random Gaussian hyperplanes through the (optionally centred) origin.

    Parameters
    ----------
    n_bits : int
        Code length.
    center : bool
        Subtract the training mean before projecting (default True).
    random_state : int, RandomState or None
        Seed of the projections.

    Attributes
    ----------
    mean_ : ndarray (n_features,)
        Subtracted mean (zeros when ``center=False``).
    projections_ : ndarray (n_features, n_bits)
        The hyperplane normals, one column per bit.

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import LSH
    >>> X = np.random.default_rng(0).normal(size=(100, 16))
    >>> codes = LSH(n_bits=8, random_state=0).fit_transform(X)
    >>> codes.shape, codes.dtype, set(np.unique(codes)) <= {0, 1}
    ((100, 8), dtype('uint8'), True)
    """

    supervised = False

    def __init__(self, n_bits: int = 32, *, center: bool = True, random_state=None) -> None:
        self.n_bits = n_bits
        self.center = center
        self.random_state = random_state

    def _fit(self, X: np.ndarray, Y: None, rng: np.random.RandomState) -> None:
        self.mean_ = X.mean(axis=0) if self.center else np.zeros(X.shape[1])
        self.projections_ = rng.standard_normal((X.shape[1], self.n_bits))

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.projections_
