"""Which items are alike: label relevance (the ground truth) and distances between approximate codes.

Both miners and losses need them, so they live below both (pytorch-metric-learning keeps its
distances in a package of their own for the same reason): a miner is built with a distance and
mines with it, a loss is built with one and scores with it, and neither imports the other.

Relevance is the one every metric and loss uses (docs/METHOD.md §1): two single-label items are
similar when they share the class id, two multi-label items when they share at least one label.
A distance says whether larger means closer (``is_similarity``), so one triplet loss serves the
paper's squared-L2 form and the dot-product form unchanged.
"""

from __future__ import annotations

import numpy as np
import torch


def relevance(labels_a: torch.Tensor, labels_b: torch.Tensor) -> torch.Tensor:
    """Boolean (len(a), len(b)) matrix of similar pairs, for 1-D class ids or 2-D 0/1 labels."""
    if labels_a.ndim != labels_b.ndim:
        raise ValueError(f"labels must be of one kind, got {labels_a.ndim}-D and {labels_b.ndim}-D")
    if labels_a.ndim == 1:
        return labels_a[:, None] == labels_b[None, :]
    return (labels_a.float() @ labels_b.float().T) > 0


def similarity_pm1(Y: np.ndarray) -> np.ndarray:
    """(n, n) pairwise similarity in {-1, +1}: +1 where two rows of a 0/1 label matrix share a label."""
    return np.where(Y @ Y.T > 0, 1.0, -1.0)


def members_by_label(labels: np.ndarray) -> list[np.ndarray]:
    """For each class (or label column) the indices of the items that carry it."""
    if labels.ndim == 1:
        return [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)] if len(labels) else []
    return [np.flatnonzero(labels[:, j]) for j in range(labels.shape[1])]


class SquaredL2:
    """||a - b||^2 row by row; on 0/1 codes it equals the Hamming distance."""

    is_similarity = False

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) ** 2).sum(dim=-1)

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(len(x), len(y)) distances; y defaults to x."""
        y = x if y is None else y
        return ((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T).clamp_min(0)


class DotProduct:
    """a . b row by row: a similarity, larger means closer (the seed's Caffe sketch)."""

    is_similarity = True

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dim=-1)

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return x @ (x if y is None else y).T


Distance = SquaredL2 | DotProduct
DISTANCES: dict[str, type[SquaredL2] | type[DotProduct]] = {"l2": SquaredL2, "dot": DotProduct}


def make_distance(distance: Distance | str | None) -> Distance:
    """A distance object from itself, its name (``"l2"``, ``"dot"``) or None (squared L2)."""
    if distance is None:
        return SquaredL2()
    if isinstance(distance, str):
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {sorted(DISTANCES)}, got {distance!r}")
        return DISTANCES[distance]()
    return distance
