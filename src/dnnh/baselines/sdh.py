"""SDH: supervised discrete hashing (Shen, Shen, Liu & Shen, CVPR 2015).

Most hashing methods relax the binary constraint, solve a continuous problem and take signs at the
end, which loses quality as codes grow. SDH keeps the training codes B in {-1, 1}^(n x L) discrete
and asks them to be good for classification, while a kernel map F(x) = phi(x) P learns to predict
them:

    min_{B, W, P} ||Y - B W||^2 + lam ||W||^2 + nu (||B - phi(X) P||^2 + delta ||P||^2),

with phi(x) the RBF kernel to m anchors plus a constant 1 (the reference code's bias). Alternating:

- W-step (linear classifier): ridge regression, W = (B^T B + lam I)^-1 B^T Y;
- P-step (hash function): ridge regression, P = (phi^T phi + delta I)^-1 phi^T B;
- B-step: discrete cyclic coordinate descent. With Q = Y W^T + nu F, the objective in one bit
  column z of B (others fixed) is linear, so z = sgn(q - B' W' w) exactly (q the column of Q,
  w that bit's row of W, B' and W' the rest); sweep the bits a few times.

Every step solves its sub-problem exactly, so the objective never increases (``objective_``).
A new item's code is sgn(phi(x) P). Defaults follow the authors' demo: 1,000 random anchors,
lam = 1, nu = 1e-5, delta = 1e-2, 5 outer iterations, random sign initialisation of B.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve

from dnnh.baselines._kernel import ANCHOR_METHODS, anchor_features, auto_gamma, choose_anchors
from dnnh.baselines.base import ShallowHasher, check_choice_param, check_float_param, check_int_param


def _with_bias(Phi: np.ndarray) -> np.ndarray:
    return np.hstack([Phi, np.ones((Phi.shape[0], 1))])


def dcc_bits(B: np.ndarray, Q: np.ndarray, W: np.ndarray, n_sweeps: int) -> np.ndarray:
    """Discrete cyclic coordinate descent on B (n, L) for min ||Y - B W||^2 + nu ||B - F||^2.

    ``Q = Y W^T + nu F``. A bit whose optimal value is a tie (argument 0) keeps its old value, so
    no step raises the objective.
    """
    B = B.copy()
    WWt = W @ W.T
    for _ in range(n_sweeps):
        before = B.copy()
        for k in range(B.shape[1]):
            v = WWt[:, k]
            arg = Q[:, k] - (B @ v - B[:, k] * v[k])
            B[:, k] = np.where(arg > 0, 1.0, np.where(arg < 0, -1.0, B[:, k]))
        if np.array_equal(B, before):
            break
    return B


class SDH(ShallowHasher):
    """Discrete codes learned jointly with a linear classifier and an RBF-anchor hash map.

    Parameters
    ----------
    n_bits : int
        Code length.
    n_anchors : int
        Anchors m (1,000 in the paper); capped to n_samples.
    anchors : {"random", "kmeans"}
        Random training samples (default, the paper's choice) or k-means centres.
    gamma : float or None
        RBF exp(-gamma ||x - a||^2); None sets 1 / (2 mean squared sample-anchor distance).
    lam : float
        Ridge on the classifier W.
    nu : float
        Weight of the hash-map fit ||B - F(X)||^2 against the classification loss.
    delta : float
        Ridge on the projection P.
    n_iter : int
        Outer alternating iterations.
    n_sweeps : int
        Coordinate-descent sweeps over the bits per B-step (stops early once B is unchanged).
    random_state : int, RandomState or None
        Seed for anchors and the initial codes.

    Attributes
    ----------
    anchors_ : ndarray (m, n_features)
    gamma_ : float
    projection_ : ndarray (m + 1, n_bits)
        P, refitted to the final training codes; the last row acts on the constant feature.
    classifier_ : ndarray (n_bits, n_labels)
        W, refitted to the final training codes.
    objective_ : ndarray (n_iter,)
        The full objective after each outer iteration, divided by n_samples; non-increasing.

    Examples
    --------
    >>> import numpy as np
    >>> from dnnh.baselines import SDH
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, size=200)
    >>> X = np.hstack([np.eye(3)[y] * 3, rng.normal(size=(200, 5))])
    >>> sdh = SDH(n_bits=8, n_anchors=50, random_state=0).fit(X, y)
    >>> sdh.transform(X).shape, bool(np.all(np.diff(sdh.objective_) <= 1e-9))
    ((200, 8), True)
    """

    supervised = True

    def __init__(self, n_bits: int = 32, *, n_anchors: int = 1000, anchors: str = "random",
                 gamma: float | None = None, lam: float = 1.0, nu: float = 1e-5, delta: float = 1e-2,
                 n_iter: int = 5, n_sweeps: int = 10, random_state=None) -> None:
        self.n_bits = n_bits
        self.n_anchors = n_anchors
        self.anchors = anchors
        self.gamma = gamma
        self.lam = lam
        self.nu = nu
        self.delta = delta
        self.n_iter = n_iter
        self.n_sweeps = n_sweeps
        self.random_state = random_state

    def _check_params(self, n_samples: int, n_features: int) -> None:
        super()._check_params(n_samples, n_features)
        check_int_param(self, "n_anchors", 1)
        check_choice_param(self, "anchors", ANCHOR_METHODS)
        check_float_param(self, "gamma", 0.0, allow_none=True)
        check_float_param(self, "lam", 0.0)
        check_float_param(self, "nu", 0.0, strict=False)
        check_float_param(self, "delta", 0.0)
        check_int_param(self, "n_iter", 1)
        check_int_param(self, "n_sweeps", 1)

    def _fit(self, X: np.ndarray, Y: np.ndarray, rng: np.random.RandomState) -> None:
        self.anchors_ = choose_anchors(X, self.n_anchors, self.anchors, rng)
        self.gamma_ = auto_gamma(X, self.anchors_, rng) if self.gamma is None else float(self.gamma)
        Phi = _with_bias(anchor_features(X, self.anchors_, self.gamma_))
        n, L = X.shape[0], self.n_bits
        lam, nu, delta = float(self.lam), float(self.nu), float(self.delta)
        gram = Phi.T @ Phi + delta * np.eye(Phi.shape[1])
        B = np.where(rng.standard_normal((n, L)) >= 0, 1.0, -1.0)
        history = []
        for _ in range(self.n_iter):
            W = solve(B.T @ B + lam * np.eye(L), B.T @ Y, assume_a="pos")
            P = solve(gram, Phi.T @ B, assume_a="pos")
            F = Phi @ P
            B = dcc_bits(B, Y @ W.T + nu * F, W, self.n_sweeps)
            history.append((np.sum((Y - B @ W) ** 2) + lam * np.sum(W**2)
                            + nu * (np.sum((B - F) ** 2) + delta * np.sum(P**2))) / n)
        # The last B-step moved the codes: refit the hash map and the classifier to them (exact
        # minimisers again, so the objective can only drop further).
        self.projection_ = solve(gram, Phi.T @ B, assume_a="pos")
        self.classifier_ = solve(B.T @ B + lam * np.eye(L), B.T @ Y, assume_a="pos")
        self.objective_ = np.asarray(history)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return _with_bias(anchor_features(X, self.anchors_, self.gamma_)) @ self.projection_
