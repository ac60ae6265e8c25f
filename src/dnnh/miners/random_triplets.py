"""The paper's triplets: drawn at random from the whole training set, three images each.

Single-label: the anchor uniformly, the positive uniformly among the other items of its class,
the negative uniformly among items of other classes. Multi-label: the positive shares at least one
label with the anchor (drawn via one of the anchor's labels), the negative shares none. The caller
owns the random generator, so its state can be checkpointed and a resumed run draws the same
triplets.
"""

from __future__ import annotations

import numpy as np

from dnnh.similarity import members_by_label


class RandomTripletSampler:
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = np.asarray(labels)
        self.members = members_by_label(self.labels)
        if self.labels.ndim == 1:
            sizes = np.array([len(m) for m in self.members])
            if (sizes >= 2).sum() < 1 or (sizes > 0).sum() < 2:
                raise ValueError("random triplets need a class with at least 2 items and at least 2 classes")
            self.anchor_pool = np.flatnonzero(sizes[self.labels] >= 2)
        else:
            self.anchor_pool = np.flatnonzero(self.labels.sum(1) > 0)

    def sample(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``count`` triplets as three index arrays into ``labels``."""
        anchors = rng.choice(self.anchor_pool, size=count)
        pos = np.empty(count, dtype=np.int64)
        neg = np.empty(count, dtype=np.int64)
        n = len(self.labels)
        for i, a in enumerate(anchors):
            if self.labels.ndim == 1:
                same = self.members[self.labels[a]]
                r = rng.integers(len(same) - 1)  # any class mate but a itself
                pos[i] = same[r + (r >= np.searchsorted(same, a))]
                neg[i] = self._nth_outside(same, int(rng.integers(n - len(same))))
            else:
                label_ids = np.flatnonzero(self.labels[a])
                same = self.members[label_ids[rng.integers(len(label_ids))]]
                if len(same) > 1:
                    r = rng.integers(len(same) - 1)
                    pos[i] = same[r + (r >= np.searchsorted(same, a))]
                else:
                    pos[i] = a  # a label no other item carries: a is its own (zero-distance) positive
                neg[i] = self._multilabel_negative(a, rng)
        return anchors.astype(np.int64), pos, neg

    @staticmethod
    def _nth_outside(sorted_members: np.ndarray, q: int) -> int:
        """The q-th (0-based) index not in ``sorted_members``."""
        lo, hi = q, q + len(sorted_members)
        while lo < hi:  # smallest x with x - (#members <= x) == q and x not a member
            mid = (lo + hi) // 2
            if mid - np.searchsorted(sorted_members, mid, side="right") < q:
                lo = mid + 1
            else:
                hi = mid
        return int(lo)

    def _multilabel_negative(self, a: int, rng: np.random.Generator) -> int:
        shares = self.labels @ self.labels[a] > 0
        candidates = np.flatnonzero(~shares)
        if len(candidates) == 0:
            raise ValueError(f"item {a} shares a label with every other item: no negative exists")
        return int(candidates[rng.integers(len(candidates))])


class RandomTripletBatches:
    """An epoch of three-stream batches: ``batch_size`` random triplets stacked as [anchors; pos; neg].

    About one anchor per item an epoch, as ``ClassBalancedBatches`` gives about one pass.
    """

    def __init__(self, labels: np.ndarray, batch_size: int) -> None:
        self.sampler = RandomTripletSampler(labels)
        self.batch_size = batch_size
        self.n_items = len(labels)

    def __len__(self) -> int:
        return max(1, self.n_items // self.batch_size)

    def epoch(self, rng: np.random.Generator) -> list[np.ndarray]:
        return [np.concatenate(self.sampler.sample(self.batch_size, rng)) for _ in range(len(self))]
