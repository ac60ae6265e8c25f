"""Seeded query / database / train / validation splits, saved beside a run so every method shares one.

The paper's protocol: per class (per concept for multi-label data) draw ``queries_per_class``
queries and ``train_per_class`` training images; every non-query item is the database, and the
training images are drawn from the database. A validation set for model selection is carved out
of the training images (it stays in the database), so the query set is never looked at while
training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnnh.atomic import atomic_write_text

SPLIT_FORMAT = "dnnh-split/1"


@dataclass(frozen=True)
class Split:
    """Index arrays into one dataset. ``train`` and ``val`` are disjoint subsets of ``database``."""

    query: np.ndarray
    database: np.ndarray
    train: np.ndarray
    val: np.ndarray
    protocol: str = "paper"
    seed: int = 0

    def summary(self) -> str:
        return (f"{self.protocol} split (seed {self.seed}): {len(self.query)} queries, "
                f"{len(self.database)} database, {len(self.train)} train, {len(self.val)} validation")

    def save(self, path: str | Path) -> None:
        """Write the split as JSON, atomically (temporary file renamed into place)."""
        payload = {
            "format": SPLIT_FORMAT, "protocol": self.protocol, "seed": self.seed,
            **{k: getattr(self, k).tolist() for k in ("query", "database", "train", "val")},
        }
        atomic_write_text(Path(path), json.dumps(payload))

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read split file {path}: {exc}") from exc
        if payload.get("format") != SPLIT_FORMAT:
            raise ValueError(f"{path} is not a dnnh split file (expected format {SPLIT_FORMAT!r})")
        arrays = {k: np.asarray(payload[k], dtype=np.int64) for k in ("query", "database", "train", "val")}
        return cls(protocol=payload["protocol"], seed=int(payload["seed"]), **arrays)

    def check_fits(self, n_items: int) -> None:
        """Raise if the split indexes items a dataset of ``n_items`` does not have."""
        for k in ("query", "database", "train", "val"):
            arr = getattr(self, k)
            if arr.size and (arr.min() < 0 or arr.max() >= n_items):
                raise ValueError(f"split's {k} indexes item {arr.max()} but the dataset has {n_items} items; "
                                 "was the split made for another dataset?")


def _carve_validation(train: np.ndarray, labels: np.ndarray, val_fraction: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if val_fraction <= 0:
        return train, np.empty(0, dtype=np.int64)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    val_parts = []
    if labels.ndim == 1:
        for c in np.unique(labels[train]):
            members = train[labels[train] == c]
            n_val = max(1, int(round(len(members) * val_fraction))) if len(members) > 1 else 0
            val_parts.append(rng.permutation(members)[:n_val])
    else:
        n_val = max(1, int(round(len(train) * val_fraction)))
        val_parts.append(rng.permutation(train)[:n_val])
    val = np.sort(np.concatenate(val_parts)).astype(np.int64)
    return np.setdiff1d(train, val), val


def paper_split(labels: np.ndarray, queries_per_class: int = 100, train_per_class: int = 500,
                val_fraction: float = 0.1, seed: int = 0, protocol: str = "paper") -> Split:
    """The paper's protocol for single-label (1-D) or multi-label (2-D 0/1) labels.

    Multi-label: for each label column in turn, queries (then training images) are drawn among the
    not-yet-drawn items carrying that label; items with no label at all are dropped.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    if labels.ndim == 1:
        classes, counts = np.unique(labels, return_counts=True)
        need = queries_per_class + train_per_class
        short = [(int(c), int(k)) for c, k in zip(classes, counts) if k < need]
        if short:
            raise ValueError(f"the paper protocol needs {need} images per class ({queries_per_class} queries + "
                             f"{train_per_class} train); classes short of that (class, count): {short[:5]}")
        query, train = [], []
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            query.append(members[:queries_per_class])
            train.append(members[queries_per_class:need])
        query_idx = np.sort(np.concatenate(query))
        train_idx = np.sort(np.concatenate(train))
        universe = np.arange(n)
    else:
        universe = np.flatnonzero(labels.sum(axis=1) > 0)
        taken = np.zeros(n, dtype=bool)
        taken[np.setdiff1d(np.arange(n), universe)] = True
        query_l, train_l = [], []
        for count, out in ((queries_per_class, query_l), (train_per_class, train_l)):
            for j in range(labels.shape[1]):
                free = np.flatnonzero((labels[:, j] == 1) & ~taken)
                if len(free) < count:
                    raise ValueError(f"label {j} has only {len(free)} unused items, {count} needed")
                pick = rng.choice(free, size=count, replace=False)
                taken[pick] = True
                out.append(pick)
        query_idx = np.sort(np.concatenate(query_l))
        train_idx = np.sort(np.concatenate(train_l))
    database = np.setdiff1d(universe, query_idx)
    train_idx, val_idx = _carve_validation(train_idx, labels, val_fraction, rng)
    return Split(query=query_idx.astype(np.int64), database=database.astype(np.int64),
                 train=train_idx.astype(np.int64), val=val_idx, protocol=protocol, seed=seed)
