"""KSH: supervised hashing with kernels (Liu, Wang, Ji, Jiang & Chang, CVPR 2012).

Bit k is ``sgn(a_k . kbar(x))`` where ``kbar(x)`` is the RBF kernel from x to m anchors minus its
training mean, so the hash functions are non-linear yet cost O(m d) to evaluate. The coefficients
are fitted on l labelled samples so that code inner products match the pairwise similarity:
with H_l in {-1, 1}^(l x r) the codes and S in {-1, 1}^(l x l) (+1 for a pair sharing a label),

    min ||H_l H_l^T - r S||_F^2,

because the code inner product is r - 2 x Hamming distance, so matching it to r S pulls similar
pairs to distance 0 and pushes dissimilar ones to r. The paper solves it greedily, bit by bit, on
the residue R_{k-1} = r S - sum_{t<k} h_t h_t^T: maximise h^T R_{k-1} h with h = sgn(K_l a),

1. spectral relaxation (drop the sign): K_l^T R K_l a = lambda K_l^T K_l a, top eigenvector,
   scaled so that a^T K_l^T K_l a = l;
2. from there, replace sgn by the smooth phi(x) = 2 / (1 + exp(-x)) - 1 and minimise
   -phi(K_l a)^T R phi(K_l a) by gradient descent (here L-BFGS from ``scipy.optimize``);
3. keep whichever of the two gives the larger h^T R h after taking signs (as the reference code).

The labelled subset (``n_labeled``) is what keeps this fast: R is l x l and dense.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh
from scipy.optimize import minimize

from dnnh.baselines._kernel import ANCHOR_METHODS, anchor_features, auto_gamma, choose_anchors
from dnnh.baselines.base import ShallowHasher, check_choice_param, check_float_param, check_int_param
from dnnh.similarity import similarity_pm1


def _pm1(z: np.ndarray) -> np.ndarray:
    return np.where(z > 0, 1.0, -1.0)


def _smooth_objective(a: np.ndarray, K: np.ndarray, R: np.ndarray, scale: float) -> tuple[float, np.ndarray]:
    """-phi(K a)^T R phi(K a) * scale and its gradient; phi'(x) = (1 - phi(x)^2) / 2, R symmetric."""
    b = 2.0 / (1.0 + np.exp(-np.clip(K @ a, -50.0, 50.0))) - 1.0
    Rb = R @ b
    value = -(b @ Rb) * scale
    grad = -(K.T @ (Rb * (1.0 - b * b))) * scale
    return value, grad


def greedy_ksh(K: np.ndarray, S: np.ndarray, n_bits: int, max_iter: int,
               ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients A (m, n_bits) fitted bit by bit on centred labelled kernel rows K (l, m).

    Also returns the L-BFGS iteration count of each bit.
    """
    l, m = K.shape
    R = n_bits * np.asarray(S, dtype=np.float64)
    KtK = K.T @ K
    KtK_reg = KtK + ridge * (np.trace(KtK) / m + 1e-12) * np.eye(m)  # relative ridge: K^T K may be singular
    A = np.empty((m, n_bits))
    n_iter = np.zeros(n_bits, dtype=np.int64)
    scale = 1.0 / (l * l)
    KtRK = K.T @ R @ K  # kept current by rank-1 updates as R loses h h^T
    for k in range(n_bits):
        _, vec = eigh((KtRK + KtRK.T) / 2, KtK_reg, subset_by_index=[m - 1, m - 1])
        a0 = vec[:, 0] * np.sqrt(l / max(float(vec[:, 0] @ KtK @ vec[:, 0]), 1e-300))
        a, h = a0, _pm1(K @ a0)
        if max_iter > 0:
            res = minimize(_smooth_objective, a0, args=(K, R, scale), jac=True, method="L-BFGS-B",
                           options={"maxiter": max_iter})
            h1 = _pm1(K @ res.x)
            if h1 @ R @ h1 > h @ R @ h:
                a, h = res.x, h1
            n_iter[k] = res.nit
        A[:, k] = a
        R -= np.outer(h, h)
        Kth = K.T @ h
        KtRK -= np.outer(Kth, Kth)
    return A, n_iter


class KSH(ShallowHasher):
    """Kernel hash functions on anchors, fitted greedily to the pairwise label similarity.

    Parameters
    ----------
    n_bits : int
        Code length.
    n_anchors : int
        Anchors m (300 in the paper); at most n_samples (more is capped to n_samples).
    n_labeled : int
        Labelled samples l drawn at random to fit on (1,000 or 2,000 in the paper); capped to
        n_samples. Cost grows as l^2 m per bit.
    anchors : {"kmeans", "random"}
        k-means centres (default; even coverage) or random training samples (the reference code).
    gamma : float or None
        RBF exp(-gamma ||x - a||^2); None sets 1 / (2 mean squared sample-anchor distance) as the
        reference code does.
    max_iter : int
        L-BFGS iterations per bit for the smoothed problem (0: spectral relaxation only).
    random_state : int, RandomState or None
        Seed for the anchors and the labelled subset.

    Attributes
    ----------
    anchors_ : ndarray (m, n_features)
    gamma_ : float
    kernel_mean_ : ndarray (m,)
        Mean anchor-kernel row over the training samples (subtracted before projecting).
    coefs_ : ndarray (m, n_bits)
        The a_k, one column per bit.
    labeled_indices_ : ndarray (l,)
        Rows of X the coefficients were fitted on.
    n_iter_ : int
        L-BFGS iterations run, summed over the bits.
    bit_iterations_ : ndarray of int (n_bits,)
        L-BFGS iterations run for each bit.

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import KSH
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, size=200)
    >>> X = np.hstack([np.eye(3)[y] * 3, rng.normal(size=(200, 5))])
    >>> KSH(n_bits=4, n_anchors=20, n_labeled=100, random_state=0).fit(X, y).transform(X[:2]).shape
    (2, 4)
    """

    supervised = True

    def __init__(self, n_bits: int = 32, *, n_anchors: int = 300, n_labeled: int = 2000,
                 anchors: str = "kmeans", gamma: float | None = None, max_iter: int = 100,
                 random_state=None) -> None:
        self.n_bits = n_bits
        self.n_anchors = n_anchors
        self.n_labeled = n_labeled
        self.anchors = anchors
        self.gamma = gamma
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_params(self, n_samples: int, n_features: int) -> None:
        super()._check_params(n_samples, n_features)
        check_int_param(self, "n_anchors", 1)
        check_int_param(self, "n_labeled", 2)
        check_choice_param(self, "anchors", ANCHOR_METHODS)
        check_float_param(self, "gamma", 0.0, allow_none=True)
        check_int_param(self, "max_iter", 0)

    def _fit(self, X: np.ndarray, Y: np.ndarray, rng: np.random.RandomState) -> None:
        self.anchors_ = choose_anchors(X, self.n_anchors, self.anchors, rng)
        self.gamma_ = auto_gamma(X, self.anchors_, rng) if self.gamma is None else float(self.gamma)
        n = X.shape[0]
        self.labeled_indices_ = np.sort(rng.choice(n, size=min(self.n_labeled, n), replace=False))
        self.kernel_mean_ = np.zeros(self.anchors_.shape[0])
        for start in range(0, n, 4096):
            self.kernel_mean_ += anchor_features(X[start:start + 4096], self.anchors_, self.gamma_).sum(axis=0)
        self.kernel_mean_ /= n
        K = anchor_features(X[self.labeled_indices_], self.anchors_, self.gamma_) - self.kernel_mean_
        S = similarity_pm1(Y[self.labeled_indices_])
        self.coefs_, self.bit_iterations_ = greedy_ksh(K, S, self.n_bits, self.max_iter)
        self.n_iter_ = int(self.bit_iterations_.sum())

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (anchor_features(X, self.anchors_, self.gamma_) - self.kernel_mean_) @ self.coefs_
