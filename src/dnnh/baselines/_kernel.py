"""Anchor-based RBF features shared by the kernel methods (KSH, SDH).

Both papers replace a full n x n kernel by the kernel to m anchors, m << n, so training and
encoding cost O(n m d) instead of O(n^2 d) (Liu et al. 2012, Sec. 3; Shen et al. 2015, Sec. 2.1).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel

ANCHOR_METHODS = ("kmeans", "random")


def choose_anchors(X: np.ndarray, n_anchors: int, method: str, rng: np.random.RandomState,
                   kmeans_iter: int = 20) -> np.ndarray:
    """``min(n_anchors, len(X))`` anchor points: k-means centres, or training samples drawn at random.

    The KSH and SDH reference codes draw random samples; k-means centres cover the data more evenly
    for the same m, which matters when m is kept small for speed. With as many anchors as samples
    the samples themselves are the anchors.
    """
    m = min(int(n_anchors), X.shape[0])
    if m == X.shape[0]:
        return np.array(X, dtype=np.float64, copy=True)
    if method == "random":
        return np.asarray(X[rng.choice(X.shape[0], size=m, replace=False)], dtype=np.float64)
    km = KMeans(n_clusters=m, n_init=1, max_iter=kmeans_iter, random_state=rng.randint(2**31 - 1))
    return km.fit(X).cluster_centers_.astype(np.float64)


def auto_gamma(X: np.ndarray, anchors: np.ndarray, rng: np.random.RandomState, max_rows: int = 2000) -> float:
    """gamma = 1 / (2 * mean squared sample-anchor distance), the bandwidth of the KSH reference code.

    Estimated on at most ``max_rows`` samples; it only sets the kernel's scale.
    """
    rows = X if X.shape[0] <= max_rows else X[rng.choice(X.shape[0], size=max_rows, replace=False)]
    mean_sq = float(euclidean_distances(rows, anchors, squared=True).mean())
    if not mean_sq > 0:
        raise ValueError("all samples coincide with the anchors; an RBF bandwidth cannot be set from the data")
    return 1.0 / (2.0 * mean_sq)


def anchor_features(X: np.ndarray, anchors: np.ndarray, gamma: float) -> np.ndarray:
    """RBF kernel to the anchors, exp(-gamma * ||x - a||^2), shape (n, m), float64."""
    return rbf_kernel(np.asarray(X, dtype=np.float64), anchors, gamma=gamma)
