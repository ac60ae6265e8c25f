"""CCA-ITQ: supervised ITQ (Gong, Lazebnik, Gordo & Perronnin, "Iterative quantization: a
Procrustean approach to learning binary codes for large-scale image retrieval", PAMI 2013, Sec. 5).

Replace PCA, which keeps the directions of largest variance, by canonical correlation analysis
against the labels, which keeps the directions of X most correlated with the label matrix Y
(one-hot, or multi-hot for multi-label data). As in the authors' code, each direction is scaled
by its canonical correlation, so weakly label-related directions weigh little, and then ITQ's
rotation is learned on the scaled projections.

CCA is solved here as the regularised generalised symmetric eigenproblem of the paper,

    C_xy (C_yy + r I)^-1 C_yx w = rho^2 (C_xx + r I) w,

with ``scipy.linalg.eigh``, not with ``sklearn.cross_decomposition.CCA``, because:

- sklearn's CCA caps ``n_components`` at min(n_samples, n_features, n_labels), 10 for a 10-class
  set, while codes of 12-64 bits are wanted (the paper's codes are longer than the label count);
- sklearn's CCA is NIPALS, iterative per component, with no ridge term; the eigenproblem is one
  dense d x d solve with the reference code's ridge (1e-4), which also copes with constant pixels.

The eigenproblem has at most rank(Y) non-zero correlations (c - 1 for one-hot labels: centring
removes one). Further directions get a correlation near 0 and so contribute almost nothing; with
more bits than that rank, ITQ's rotation spreads the informative subspace over all the bits, so
every bit is a different hyperplane through the label-correlated subspace.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh, solve

from dnnh.baselines.base import ShallowHasher, check_float_param, check_int_param
from dnnh.baselines.itq import itq_rotation


def cca_directions(X: np.ndarray, Y: np.ndarray, n_components: int, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """Top canonical directions of centred ``X`` against centred ``Y``: (W (d, k), correlations (k,)).

    ``W`` is normalised so that W^T (C_xx + reg I) W = I; correlations are in decreasing order.
    """
    n, d = X.shape
    Cxx = X.T @ X / (n - 1) + reg * np.eye(d)
    Cxy = X.T @ Y / (n - 1)
    Cyy = Y.T @ Y / (n - 1) + reg * np.eye(Y.shape[1])
    A = Cxy @ solve(Cyy, Cxy.T, assume_a="pos")
    A = (A + A.T) / 2  # exact symmetry for eigh
    vals, vecs = eigh(A, Cxx, subset_by_index=[d - n_components, d - 1])
    vals, vecs = vals[::-1], vecs[:, ::-1]
    return vecs, np.sqrt(np.clip(vals, 0.0, None))


class CCAITQ(ShallowHasher):
    """CCA against the labels, directions scaled by their correlation, then an ITQ rotation.

    Parameters
    ----------
    n_bits : int
        Code length; at most n_features.
    reg : float
        Ridge added to both covariance matrices (1e-4 in the reference code). It is absolute, so it
        suits features of unit-ish scale such as pixels in [0, 1].
    n_iter : int
        ITQ iterations.
    random_state : int, RandomState or None
        Seed of ITQ's initial rotation.

    Attributes
    ----------
    mean_ : ndarray (n_features,)
    projections_ : ndarray (n_features, n_bits)
        Canonical directions times their correlations.
    correlations_ : ndarray (n_bits,)
        Canonical correlations, decreasing.
    rotation_, quantization_loss_ : as in ITQ.

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import CCAITQ
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 4, size=300)
    >>> X = np.hstack([np.eye(4)[y] * 3, np.zeros((300, 4))]) + rng.normal(size=(300, 8))
    >>> codes = CCAITQ(n_bits=6, random_state=0).fit(X, y).transform(X)
    >>> codes.shape
    (300, 6)
    """

    supervised = True

    def __init__(self, n_bits: int = 32, *, reg: float = 1e-4, n_iter: int = 50, random_state=None) -> None:
        self.n_bits = n_bits
        self.reg = reg
        self.n_iter = n_iter
        self.random_state = random_state

    def _check_params(self, n_samples: int, n_features: int) -> None:
        check_int_param(self, "n_bits", 1, n_features, f" (n_features = {n_features}: one canonical direction a bit)")
        check_float_param(self, "reg", 0.0)
        check_int_param(self, "n_iter", 1)

    def _fit(self, X: np.ndarray, Y: np.ndarray, rng: np.random.RandomState) -> None:
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        W, corr = cca_directions(Xc, Y - Y.mean(axis=0), self.n_bits, float(self.reg))
        self.correlations_ = corr
        self.projections_ = W * corr
        self.rotation_, self.quantization_loss_ = itq_rotation(Xc @ self.projections_, self.n_iter, rng)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.projections_ @ self.rotation_
