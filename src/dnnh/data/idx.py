"""MNIST and Fashion-MNIST from their four IDX files (gzipped or not).

IDX: a 4-byte magic number (two zero bytes, a type code, the number of dimensions), then one
big-endian uint32 per dimension, then the values in row-major order. Images are type 0x08
(unsigned byte) with 3 dimensions (magic 2051), labels type 0x08 with 1 (magic 2049). The magic
is checked rather than trusted from file names, because a mislabelled or truncated download is the
usual way these loads go wrong, and a wrong shape would silently scramble every image.

The payload is read straight into a preallocated buffer (no second copy), so loading the 70,000
Fashion-MNIST images peaks near their own 55 MB.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dnnh.data.dataset import ArrayDataset
from dnnh.errors import DataError

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension
CHUNK = 1 << 20

# The four files of each set; the published names use dashes, some mirrors a dot before "idx".
PARTS = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_SYSTEM_ROOT = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


class IdxFormatError(DataError):
    """A file that is not a well-formed IDX file; the message names it and what was wrong."""


def _open(path: Path) -> BinaryIO:
    """Open plain or gzip by content (the first two bytes), not by the name, which may be wrong."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")  # type: ignore[return-value]


def _read_header(fh: BinaryIO, path: Path, expect_magic: int | None) -> tuple[tuple[int, ...], np.dtype]:
    header = fh.read(4)
    if len(header) < 4:
        raise IdxFormatError(f"{path}: truncated IDX file ({len(header)} bytes, a header needs 4)")
    zero, type_code, ndim = int.from_bytes(header[:2], "big"), header[2], header[3]
    magic = int.from_bytes(header, "big")
    if zero != 0 or type_code not in IDX_TYPES or ndim == 0:
        raise IdxFormatError(f"{path}: not an IDX file: magic number 0x{magic:08x}, expected "
                             "0x0000TTDD with type TT in 08/09/0B/0C/0D/0E and DD dimensions")
    if expect_magic is not None and magic != expect_magic:
        raise IdxFormatError(f"{path}: magic number {magic} (0x{magic:08x}), expected {expect_magic} "
                             f"(0x{expect_magic:08x}); is this the right file of the four?")
    dims_raw = fh.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise IdxFormatError(f"{path}: truncated IDX header: {ndim} dimensions declared, "
                             f"{len(dims_raw) // 4} sizes present")
    shape = tuple(int.from_bytes(dims_raw[4 * i:4 * i + 4], "big") for i in range(ndim))
    return shape, IDX_TYPES[type_code]


def idx_header(path: str | Path, expect_magic: int | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """The declared shape and element type of an IDX file, reading only its header."""
    path = Path(path)
    try:
        with _open(path) as fh:
            return _read_header(fh, path, expect_magic)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise IdxFormatError(f"{path}: cannot read IDX file: {exc}") from exc


def read_idx(path: str | Path, expect_magic: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Read one IDX file into an array of its declared type and shape (native byte order).

    ``expect_magic`` (e.g. :data:`IMAGES_MAGIC`) additionally requires that exact type and rank.
    ``out``, a C-contiguous array of exactly the declared shape and a one-byte type, receives the
    values in place (how two files are concatenated without a second copy).
    Raises :class:`IdxFormatError` on a bad magic, a truncated header or payload, or trailing data.
    """
    path = Path(path)
    try:
        with _open(path) as fh:
            shape, dtype = _read_header(fh, path, expect_magic)
            if out is not None:
                if out.shape != shape or out.dtype.itemsize != 1 or not out.flags.c_contiguous:
                    raise ValueError(f"{path}: out has shape {out.shape}/{out.dtype}, the file declares {shape}/{dtype}")
                target = out
            else:
                target = np.empty(shape, dtype=dtype)
            view = memoryview(target.reshape(-1).view(np.uint8))
            expected = len(view)
            got = 0
            while got < expected:  # chunks: gzip's readinto would otherwise build a full-size temporary
                more = fh.readinto(view[got:got + CHUNK])
                if not more:
                    break
                got += more
            if got < expected:
                raise IdxFormatError(f"{path}: truncated IDX data: shape {shape} needs {expected} bytes, "
                                     f"the file holds {got}")
            if fh.read(1):
                raise IdxFormatError(f"{path}: more data than the header's shape {shape} declares "
                                     f"({expected} bytes); the file is damaged or not IDX")
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise IdxFormatError(f"{path}: cannot read IDX file: {exc}") from exc
    if out is not None:
        return out
    return target if dtype.isnative or dtype.itemsize == 1 else target.astype(dtype.newbyteorder("="))


def find_idx_file(root: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``root`` (or a torchvision-style ``raw/`` below it), gz or plain."""
    dotted = stem.replace("-idx", ".idx")
    for folder in (root, root / "raw"):
        for name in (stem + ".gz", stem, dotted + ".gz", dotted):
            if (folder / name).is_file():
                return folder / name
    return None


def load_idx_set(root: str | Path, name: str, class_names: list[str] | None = None) -> ArrayDataset:
    """Training then test images of an MNIST-format set in ``root``; ``is_test`` marks the test part."""
    root = Path(root)
    found = {part: find_idx_file(root, stem) for part, stem in PARTS.items()}
    missing = [PARTS[p] for p, f in found.items() if f is None]
    if missing:
        raise FileNotFoundError(f"{name}: {root} lacks {', '.join(m + '[.gz]' for m in missing)}; expected the four "
                                f"IDX files {', '.join(PARTS.values())} (gzipped or not)")
    # Headers first, so training and test images land in one preallocated array (no concatenation copy).
    img_shapes = {split: idx_header(found[f"{split}_images"], IMAGES_MAGIC)[0] for split in ("train", "test")}
    if img_shapes["train"][1:] != img_shapes["test"][1:]:
        raise IdxFormatError(f"{name}: training images are {img_shapes['train'][1:]} but test images "
                             f"{img_shapes['test'][1:]}")
    n_train, n_test = img_shapes["train"][0], img_shapes["test"][0]
    all_images = np.empty((n_train + n_test, *img_shapes["train"][1:]), dtype=np.uint8)
    labels = []
    for split, rows in (("train", slice(0, n_train)), ("test", slice(n_train, n_train + n_test))):
        read_idx(found[f"{split}_images"], IMAGES_MAGIC, out=all_images[rows])
        lab = read_idx(found[f"{split}_labels"], LABELS_MAGIC)
        if len(lab) != rows.stop - rows.start:
            raise IdxFormatError(f"{name}: {found[f'{split}_images']} holds {rows.stop - rows.start} images but "
                                 f"{found[f'{split}_labels']} holds {len(lab)} labels")
        labels.append(lab)
    all_labels = np.concatenate(labels).astype(np.int64)
    is_test = np.arange(len(all_labels)) >= n_train
    return ArrayDataset(images=all_images, labels=all_labels, name=name,
                        class_names=class_names or [str(c) for c in range(int(all_labels.max(initial=0)) + 1)],
                        is_test=is_test)


def load_mnist(root: str | Path) -> ArrayDataset:
    """MNIST (70,000 28x28 grayscale digits) from the four IDX files in ``root``."""
    return load_idx_set(root, "mnist", [str(c) for c in range(10)])


def load_fashion_mnist(root: str | Path | None = None) -> ArrayDataset:
    """Fashion-MNIST from ``root``, or without one from Debian's ``/usr/share/datasets/fashion-mnist``."""
    if root is None:
        if not FASHION_SYSTEM_ROOT.is_dir():
            raise FileNotFoundError(f"fashion-mnist: no root given and {FASHION_SYSTEM_ROOT} does not exist; install "
                                    "Debian's dataset-fashion-mnist or pass root= the folder of the four IDX files")
        root = FASHION_SYSTEM_ROOT
    return load_idx_set(root, "fashion-mnist", FASHION_CLASSES)
