"""The two dataset shapes every loader returns.

A hashing run needs, for each item, an image and its label(s), and it needs all labels up front
(to split by class and to judge relevance) while images can stay on disk until a batch wants them.
So a dataset is a label array plus a way to fetch image i as uint8 (H, W, C):
:class:`ArrayDataset` for sets that fit in memory (digits, MNIST-family, CIFAR-10, SVHN) and
:class:`FileDataset` for image files decoded lazily (folders, manifests, NUS-WIDE).

Labels are either 1-D integer class ids (single-label) or a 2-D 0/1 matrix (multi-label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np


def check_labels(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Return labels as int64 class ids (1-D) or a uint8 0/1 matrix (2-D), or raise saying why not."""
    arr = np.asarray(labels)
    if arr.ndim == 1:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.mod(arr, 1) == 0):
                raise ValueError("single-label labels must be integer class ids")
        out = arr.astype(np.int64)
        if out.size and out.min() < 0:
            raise ValueError(f"class ids must be >= 0, found {out.min()}")
    elif arr.ndim == 2:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError("multi-label labels must be a 0/1 matrix of shape (n, num_labels)")
        out = arr.astype(np.uint8)
    else:
        raise ValueError(f"labels must be 1-D class ids or a 2-D 0/1 matrix, got shape {arr.shape}")
    if n is not None and len(out) != n:
        raise ValueError(f"expected {n} labels (one per image), got {len(out)}")
    return out


@dataclass
class ArrayDataset:
    """Images held in memory as uint8 (N, H, W, C) with their labels."""

    images: np.ndarray
    labels: np.ndarray
    name: str = "arrays"
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {images.shape}")
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8 (0..255), got {images.dtype}")
        self.images = images
        self.labels = check_labels(self.labels, len(images))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def load_image(self, i: int) -> np.ndarray:
        return self.images[i]

    def load_images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.images[np.asarray(indices, dtype=np.int64)]


@dataclass
class FileDataset:
    """Image files decoded on demand; ``channels`` fixes the mode every image is converted to.

    ``image_size`` is the (H, W) images are resized to on load, so a batch stacks; None keeps
    each file's size (for callers that resize later).
    """

    paths: list[Path]
    labels: np.ndarray
    name: str = "files"
    class_names: list[str] | None = None
    channels: int = 3
    image_size: tuple[int, int] | None = None
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        self.labels = check_labels(self.labels, len(self.paths))
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    def load_image(self, i: int) -> np.ndarray:
        from dnnh.data.images import read_image

        return read_image(self.paths[i], channels=self.channels, size=self.image_size)

    def load_images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.stack([self.load_image(int(i)) for i in indices])


Dataset = ArrayDataset | FileDataset
