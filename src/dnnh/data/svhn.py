"""SVHN cropped digits (format 2) from ``train_32x32.mat``, ``test_32x32.mat`` and optionally ``extra_32x32.mat``.

Each file is MATLAB v5 with ``X`` uint8 (32, 32, 3, N) (image index last, MATLAB's column-major
habit) and ``y`` (N, 1) with digits 1..9 and 10 for the digit 0. Both quirks are undone here:
images become (N, 32, 32, 3) and label 10 becomes class 0, so class c is the digit c.

Order: training images, then test, then extra (when asked); ``is_test`` marks the test file's
images. ``extra`` (531,131 images, 1.6 GB in memory) is off by default: the paper's protocol does
not use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnnh.data.dataset import ArrayDataset
from dnnh.data.download import default_root, ensure_file
from dnnh.errors import DataError

SVHN_BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_FILES = {
    "train": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    "extra": ("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),
}


class SvhnFormatError(DataError):
    """A .mat file without SVHN's X (32, 32, 3, N) and y (N, 1); the message names it."""


def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 32, 32, 3), labels int64 (N,) with 10 mapped to 0) from one SVHN .mat file."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except NotImplementedError as exc:  # scipy says so for v7.3 (HDF5) files
        raise SvhnFormatError(f"{path}: a MATLAB v7.3 file; the published SVHN files are MATLAB v5 ({exc})") from exc
    except (MatReadError, ValueError, OSError, TypeError, KeyError, IndexError, EOFError) as exc:
        raise SvhnFormatError(f"{path}: not a readable MATLAB .mat file ({exc})") from exc
    if "X" not in mat or "y" not in mat:
        raise SvhnFormatError(f"{path}: expected variables X and y, found {sorted(k for k in mat if not k.startswith('__'))}")
    x, y = mat["X"], np.asarray(mat["y"])
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise SvhnFormatError(f"{path}: X must be (32, 32, 3, N) (cropped digits), found {x.shape}")
    if x.dtype != np.uint8:
        if x.size and (x.min() < 0 or x.max() > 255 or not np.all(np.mod(x, 1) == 0)):
            raise SvhnFormatError(f"{path}: X must hold 0..255 pixel values, found {x.dtype} in [{x.min()}, {x.max()}]")
        x = x.astype(np.uint8)
    labels = y.reshape(-1)
    if len(labels) != x.shape[3] or (y.ndim == 2 and 1 not in y.shape):
        raise SvhnFormatError(f"{path}: y must be (N, 1) with N = {x.shape[3]} images, found {y.shape}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise SvhnFormatError(f"{path}: labels must be 1..10 (10 = digit 0), found values in "
                              f"[{labels.min()}, {labels.max()}]")
    labels[labels == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
    return images, labels


def load_svhn(root: str | Path | None = None, extra: bool = False, download: bool = True) -> ArrayDataset:
    """SVHN train (73,257) then test (26,032) [then extra] images, downloading missing files if allowed."""
    folder = Path(root) if root is not None else default_root("svhn")
    parts = ["train", "test"] + (["extra"] if extra else [])
    paths = {p: ensure_file(folder, SVHN_FILES[p][0], SVHN_BASE_URL + SVHN_FILES[p][0], SVHN_FILES[p][1],
                            download, "svhn") for p in parts}
    images, labels, test_mask = [], [], []
    for p in parts:
        imgs, labs = read_svhn_mat(paths[p])
        images.append(imgs)
        labels.append(labs)
        test_mask.append(np.full(len(labs), p == "test"))
    all_images = np.concatenate(images)
    del images
    return ArrayDataset(images=all_images, labels=np.concatenate(labels), name="svhn",
                        class_names=[str(c) for c in range(10)], is_test=np.concatenate(test_mask))
