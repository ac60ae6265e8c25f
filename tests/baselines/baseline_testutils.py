"""Slow, obvious references and synthetic problems for the baseline tests."""

from __future__ import annotations

import numpy as np


def brute_force_map(query_bits: np.ndarray, db_bits: np.ndarray, query_labels: np.ndarray,
                    db_labels: np.ndarray) -> float:
    """Mean over queries of whole-database AP; rank by Hamming distance, ties by database index.

    Relevant = same class (1-D labels) or at least one shared label (2-D 0/1). A query with no
    relevant item scores 0.
    """
    aps = []
    for q in range(len(query_bits)):
        dist = [int(np.sum(query_bits[q] != db_bits[i])) for i in range(len(db_bits))]
        order = sorted(range(len(db_bits)), key=lambda i: (dist[i], i))
        if query_labels.ndim == 1:
            rel = [query_labels[q] == db_labels[i] for i in order]
        else:
            rel = [bool(np.any(query_labels[q] * db_labels[i])) for i in order]
        hits, precisions = 0, []
        for rank, r in enumerate(rel, start=1):
            if r:
                hits += 1
                precisions.append(hits / rank)
        aps.append(sum(precisions) / hits if hits else 0.0)
    return float(np.mean(aps))


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
