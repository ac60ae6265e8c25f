"""The two dataset shapes every loader returns.

A hashing run needs, for each item, an image and its label(s), and it needs all labels up front
(to split by class and to judge relevance) while images can stay on disk until a batch wants them.
So a dataset is a label array plus a way to fetch image i as uint8 (H, W, C):
:class:`ArrayDataset` for sets that fit in memory (digits, MNIST-family, CIFAR-10, SVHN) and
:class:`FileDataset` for image files decoded lazily (folders, manifests, NUS-WIDE).

Labels are either 1-D integer class ids (single-label) or a 2-D 0/1 matrix (multi-label).

Both shapes offer ``fingerprint()`` (what a run records so that changed data is refused later,
see :mod:`dnnh.data.fingerprint`) and ``verify()`` (the files that cannot be used, found before
training rather than after it).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from dnnh.errors import InputTypeError


class DataWarning(UserWarning):
    """Something a loader fixed or dropped (duplicate rows merged, unreadable images skipped).

    A category of its own so a program that reports these itself (the CLI) can silence them with
    ``warnings.simplefilter("ignore", DataWarning)`` and nothing else.
    """


def warn_data(message: str) -> None:
    """Warn once, attributed to the first caller outside ``dnnh.data`` (not to a loader's internals)."""
    package = os.path.dirname(os.path.abspath(__file__))
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package:
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    warnings.warn(message, DataWarning, stacklevel=level)


def label_text(labels: np.ndarray, class_names: Sequence[str] | None, i: int) -> str:
    """Item ``i``'s label as people read it: its class name (or number); for multi-label data the
    names of its classes joined by ", " (the service and ``dnnh search`` show the same words)."""
    names = list(class_names or [])
    value = labels[i]
    if np.ndim(value) == 0:
        value = int(value)
        return names[value] if 0 <= value < len(names) else str(value)
    return ", ".join(names[c] if c < len(names) else str(c) for c in np.flatnonzero(value))


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


def check_is_test(is_test: np.ndarray | None, n: int) -> np.ndarray | None:
    """Return the official-test-set mask as bool (n,), or None; raise if it does not fit."""
    if is_test is None:
        return None
    arr = np.asarray(is_test)
    if arr.shape != (n,):
        raise ValueError(f"is_test must be a boolean mask with one entry per image ({n},), got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError("is_test must hold booleans (or 0/1)")
        arr = arr.astype(bool)
    return arr


@dataclass
class ArrayDataset:
    """Images held in memory as uint8 (N, H, W, C) with their labels.

    ``is_test`` marks the items of the publisher's official test set (CIFAR-10, SVHN, MNIST
    families concatenate training then test images); protocols such as ``cifar10-2`` need it to
    reproduce splits that other libraries make from the official partition. None when the source
    has no official partition.
    """

    images: np.ndarray
    labels: np.ndarray
    name: str = "arrays"
    class_names: list[str] | None = None
    is_test: np.ndarray | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {images.shape}")
        if images.dtype != np.uint8:
            raise InputTypeError(f"images must be uint8 (0..255), got {images.dtype}")
        self.images = images
        self.labels = check_labels(self.labels, len(images))
        self.is_test = check_is_test(self.is_test, len(images))

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

    def fingerprint(self) -> dict[str, Any]:
        """``{"kind": "array", "name", "n", "sha256", ...}``: hashes of the labels and the pixels."""
        from dnnh.data.fingerprint import array_fingerprint

        return array_fingerprint(self)

    def verify(self, indices: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Images in memory are always readable: nothing to report (same interface as FileDataset)."""
        return []


@dataclass
class FileDataset:
    """Image files decoded on demand; ``channels`` fixes the mode every image is converted to.

    ``image_size`` is the (H, W) images are resized to on load, so a batch stacks; None keeps
    each file's size (for callers that resize later).

    ``skipped`` lists the files a loader dropped because they were missing or could not be decoded
    (only with ``skip_corrupt=True``); ``skip_reasons`` maps each of them to why, so a user can fix
    or delete them.

    ``root`` is the folder the paths were listed from (the image folder, the manifest's folder);
    the fingerprint records paths relative to it, so a moved copy of the same data still matches.
    """

    paths: list[Path]
    labels: np.ndarray
    name: str = "files"
    class_names: list[str] | None = None
    channels: int = 3
    image_size: tuple[int, int] | None = None
    skipped: list[str] = field(default_factory=list)
    skip_reasons: dict[str, str] = field(default_factory=dict)
    root: Path | None = None

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        self.root = Path(self.root) if self.root is not None else None
        self.labels = check_labels(self.labels, len(self.paths))
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.image_size is not None:
            self.image_size = normalize_size(self.image_size)

    @property
    def is_test(self) -> None:
        """File sets carry no official test partition (same interface as :class:`ArrayDataset`)."""
        return None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    def load_image(self, i: int) -> np.ndarray:
        from dnnh.data.images import read_image

        return read_image(self.paths[i], channels=self.channels, size=self.image_size)

    def load_images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        images = [self.load_image(int(i)) for i in indices]
        if not images:
            h, w = self.image_size or (0, 0)
            return np.empty((0, h, w, self.channels), dtype=np.uint8)
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            # Without a target size a batch of mixed sizes cannot stack; say which and what to do.
            sizes = sorted(f"{s[0]}x{s[1]}" for s in shapes)
            raise ValueError(f"images of dataset {self.name!r} differ in size ({', '.join(sizes[:4])}); "
                             "pass image_size=(H, W) when loading it so they are resized on load")
        return np.stack(images)

    def fingerprint(self) -> dict[str, Any]:
        """``{"kind": "files", "n", "sha256", ...}`` over each file's relative path, size, mtime and label."""
        from dnnh.data.fingerprint import files_fingerprint

        return files_fingerprint(self)

    def verify(self, indices: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Paths (of ``indices``, default all) that are missing or whose header does not parse.

        A fast check (Pillow opens the file and runs ``verify()``: PNG chunk checksums, the header
        of other formats; nothing is decoded), so a split's every part can be checked before
        training instead of failing when a batch reaches a bad file. :meth:`verify_reasons` says why.
        """
        return list(self.verify_reasons(indices))

    def verify_reasons(self, indices: Sequence[int] | np.ndarray | None = None) -> dict[str, str]:
        """Like :meth:`verify`, as ``{path: why}`` in dataset order."""
        from dnnh.data.images import check_headers

        chosen = range(len(self.paths)) if indices is None else [int(i) for i in np.asarray(indices).reshape(-1)]
        paths = [self.paths[i] for i in chosen]
        return {str(p): why for p, why in zip(paths, check_headers(paths)) if why is not None}


def normalize_size(size: int | Sequence[int]) -> tuple[int, int]:
    """An image size as (H, W) from an int (square) or a pair; raise on anything else."""
    if isinstance(size, (int, np.integer)):
        pair = (int(size), int(size))
    else:
        try:
            pair = tuple(int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"image_size must be an int or a pair (H, W), got {size!r}") from None
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"image_size must be an int or a pair (H, W) of positive ints, got {size!r}")
    return pair  # type: ignore[return-value]


Dataset = ArrayDataset | FileDataset
