"""Inputs whose right answers are known: random and clustered codes, separable and multi-label classes."""

from __future__ import annotations

import numpy as np


def random_bits(rng: np.random.Generator, n: int, nbits: int) -> np.ndarray:
    """(n, nbits) uniformly random 0/1 codes."""
    return rng.integers(0, 2, (n, nbits), dtype=np.uint8)


def clustered_bits(rng: np.random.Generator, n: int, nbits: int, centres: int = 6, flip: float = 0.03) -> np.ndarray:
    """Learned-code-like: a few centres, most items exact copies, some a bit or two away."""
    c = random_bits(rng, centres, nbits)
    bits = c[rng.integers(0, centres, n)]
    noise = rng.random((n, nbits)) < flip
    return (bits ^ noise).astype(np.uint8)


def separable_clusters(n_per_class: int, rng: np.random.Generator, n_classes: int = 5,
                       n_noise: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Classes at 3 * e_c in ``n_classes`` informative dimensions (within-class sd 0.3), plus
    ``n_noise`` pure-noise dimensions of sd 1. A linear or kernel map that ignores the noise
    dimensions separates the classes perfectly; random hyperplanes mostly cut noise."""
    y = np.repeat(np.arange(n_classes), n_per_class)
    informative = 3.0 * np.eye(n_classes)[y] + rng.normal(scale=0.3, size=(len(y), n_classes))
    X = np.hstack([informative, rng.normal(size=(len(y), n_noise))])
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def multilabel_clusters(n: int, rng: np.random.Generator, n_labels: int = 4,
                        n_noise: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Each item carries one or two of ``n_labels`` labels; its informative part is 3 times the sum of
    its labels' unit vectors (sd 0.3), plus ``n_noise`` noise dimensions of sd 1."""
    Y = np.zeros((n, n_labels), dtype=np.int64)
    for i in range(n):
        Y[i, rng.choice(n_labels, size=rng.integers(1, 3), replace=False)] = 1
    informative = 3.0 * Y + rng.normal(scale=0.3, size=(n, n_labels))
    return np.hstack([informative, rng.normal(size=(n, n_noise))]), Y
