"""Which pairs count as similar: same class id, or (multi-label) at least one shared label."""

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


def members_by_label(labels: np.ndarray) -> list[np.ndarray]:
    """For each class (or label column) the indices of the items that carry it."""
    if labels.ndim == 1:
        return [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)] if len(labels) else []
    return [np.flatnonzero(labels[:, j]) for j in range(labels.shape[1])]
