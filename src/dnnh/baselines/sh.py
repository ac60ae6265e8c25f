"""SH: spectral hashing (Weiss, Torralba & Fergus, "Spectral hashing", NIPS 2008).

Good codes are balanced, uncorrelated, and give neighbours (in a Gaussian affinity) close codes;
that is a graph-partitioning problem. Spectral hashing relaxes it and assumes the data is uniform
in a box after PCA, where the eigenfunctions of the weighted Laplacian are known in closed form:
along PCA direction j with range [a_j, b_j], the k-th one is
``sin(pi/2 + k*pi/(b_j - a_j) * (x_j - a_j))`` with eigenvalue growing with (k / (b_j - a_j))^2.
SH takes the ``n_bits`` smoothest (smallest-eigenvalue) non-constant single-direction
eigenfunctions over all directions and thresholds them at zero. Wide directions thus get several
bits at increasing frequencies, narrow ones none. This follows the authors' reference code
(trainSH.m / compressSH.m), including the tiny margin added to the range.
"""

from __future__ import annotations

import numpy as np

from dnnh.baselines.base import ShallowHasher, check_int_param
from dnnh.baselines.pcah import fit_pca

_EPS = np.finfo(np.float64).eps


class SH(ShallowHasher):
    """PCA, then the ``n_bits`` lowest-frequency 1-D box eigenfunctions, thresholded by sin.

    Parameters
    ----------
    n_bits : int
        Code length. PCA keeps min(n_bits, n_features, n_samples) directions.
    random_state : int, RandomState or None
        Seed of PCA's randomised solver on large inputs (the rest is deterministic).

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
    min_, range_ : ndarray (n_components,)
        The box: lower end and width of each PCA direction on the training data.
    modes_ : ndarray of int (n_bits, n_components)
        Bit b uses direction ``argmax(modes_[b])`` at frequency ``max(modes_[b])``; one non-zero a row.
    eigenvalues_ : ndarray (n_bits,)
        sum_j (modes_[b, j] * pi / range_[j])^2, ascending (the selection order).

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import SH
    >>> X = np.random.default_rng(0).uniform(size=(500, 4)) * [4.0, 1.5, 0.5, 0.2]
    >>> sh = SH(n_bits=3).fit(X)
    >>> sh.modes_[:, :2].tolist()   # direction 0 twice (k = 1, 2), then direction 1 (k = 1)
    [[1, 0], [2, 0], [0, 1]]
    """

    supervised = False

    def __init__(self, n_bits: int = 32, *, random_state=None) -> None:
        self.n_bits = n_bits
        self.random_state = random_state

    def _check_params(self, n_samples: int, n_features: int) -> None:
        check_int_param(self, "n_bits", 1)

    def _fit(self, X: np.ndarray, Y: None, rng: np.random.RandomState) -> None:
        n_comp = min(self.n_bits, X.shape[1], X.shape[0])
        self.pca_ = fit_pca(X, n_comp, rng)
        Z = self.pca_.transform(X)
        self.min_ = Z.min(axis=0) - _EPS
        self.range_ = Z.max(axis=0) + _EPS - self.min_
        if not np.all(self.range_ > 0):
            raise ValueError("SH needs data that varies along every kept PCA direction; "
                             f"ranges {self.range_.tolist()} (duplicate samples?)")
        # Candidate modes: for direction j, frequencies 1..max_mode[j]-1 (reference code's bound),
        # enough that the widest direction alone could supply all n_bits.
        max_mode = np.ceil((self.n_bits + 1) * self.range_ / self.range_.max()).astype(int)
        dims = np.concatenate([np.full(m - 1, j) for j, m in enumerate(max_mode)])
        freqs = np.concatenate([np.arange(1, m) for m in max_mode])
        eig = (freqs * np.pi / self.range_[dims]) ** 2
        order = np.argsort(eig, kind="stable")[: self.n_bits]
        self.modes_ = np.zeros((self.n_bits, n_comp), dtype=np.int64)
        self.modes_[np.arange(self.n_bits), dims[order]] = freqs[order]
        self.eigenvalues_ = eig[order]

    def _project(self, X: np.ndarray) -> np.ndarray:
        Z = self.pca_.transform(X) - self.min_
        dims = self.modes_.argmax(axis=1)
        omega = self.modes_.max(axis=1) * np.pi / self.range_[dims]
        # sin(pi/2 + w z) = cos(w z): the reference code's eigenfunction, one direction per bit.
        return np.cos(Z[:, dims] * omega)
