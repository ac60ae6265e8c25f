"""Class-balanced batches: P classes times K images, so every batch holds valid triplets.

In-batch mining needs several images of a class and several classes in each batch; uniform
batches of a 10-class set would be fine, but of a 100-class set would hold almost no positives.
For multi-label data a "class" is a label column. The caller owns the random generator.
"""

from __future__ import annotations

import numpy as np

from dnnh.similarity import members_by_label


class ClassBalancedBatches:
    def __init__(self, labels: np.ndarray, batch_size: int, per_class: int = 10) -> None:
        self.members = [m for m in members_by_label(np.asarray(labels)) if len(m) > 0]
        if len(self.members) < 2:
            raise ValueError("class-balanced batches need at least 2 classes with items")
        if batch_size < 2 * per_class:
            raise ValueError(f"batch_size ({batch_size}) must hold at least 2 classes of {per_class}")
        self.n_items = len(labels)
        self.per_class = per_class
        self.classes_per_batch = min(batch_size // per_class, len(self.members))
        self.batch_size = self.classes_per_batch * per_class

    def __len__(self) -> int:
        """Batches in one epoch: about one pass over the items."""
        return max(1, self.n_items // self.batch_size)

    def epoch(self, rng: np.random.Generator) -> list[np.ndarray]:
        batches = []
        for _ in range(len(self)):
            classes = rng.choice(len(self.members), size=self.classes_per_batch, replace=False)
            parts = [rng.choice(self.members[c], size=self.per_class, replace=len(self.members[c]) < self.per_class)
                     for c in classes]
            batches.append(np.concatenate(parts))
        return batches
