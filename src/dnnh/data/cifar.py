"""CIFAR-10 from the python-version tarball (``cifar-10-python.tar.gz``) or its extracted folder.

The archive holds ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` and ``batches.meta``:
Python 2 pickles of dicts with byte-string keys. ``b'data'`` is uint8 (10000, 3072), each row the
red plane, then green, then blue, each 32x32 row-major; ``b'labels'`` a list of class ids.
Getting that layout wrong (e.g. reshaping to (32, 32, 3)) yields plausible-looking noise, so the
conversion is explicit and tested pixel by pixel.

The pickles are read with an unpickler that only builds numpy arrays and plain containers:
a dataset file from the internet must not be able to run code.
The tarball is read in place (no extraction), so a user can keep just the published file.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from dnnh.data.dataset import ArrayDataset
from dnnh.data.download import default_root, ensure_file
from dnnh.errors import DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# What a CIFAR pickle may reference: numpy's array reconstruction (old and new module paths).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol-5 pickles
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2
}


class CifarFormatError(DataError):
    """A CIFAR batch that does not have the published structure; the message names it."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1) if hasattr(np, "_core") else module
        if module in ("copy_reg", "__builtin__"):
            module = {"copy_reg": "copyreg", "__builtin__": "builtins"}[module]
        return super().find_class(module, name)


def unpickle_batch(fh: BinaryIO, where: str) -> dict:
    """One CIFAR batch dict (byte-string keys kept), read without executing arbitrary code."""
    try:
        obj = _ArraysOnlyUnpickler(fh, encoding="bytes").load()
    except (MemoryError, OverflowError):
        # A length field far beyond the file (e.g. 2**60 bytes): the allocation fails before any read.
        raise CifarFormatError(f"{where}: not a readable CIFAR batch pickle (it declares an object larger than "
                               "memory; the file is corrupt or not a CIFAR batch)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CifarFormatError(f"{where}: not a readable CIFAR batch pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise CifarFormatError(f"{where}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _batch_arrays(batch: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows uint8 (N, 3072) as published, labels int64 (N,)) from one batch dict, checked."""
    if b"data" not in batch or b"labels" not in batch:
        keys = sorted(k.decode("latin1") if isinstance(k, bytes) else str(k) for k in batch)
        raise CifarFormatError(f"{where}: expected keys b'data' and b'labels' (CIFAR-10), found {keys}")
    data = np.asarray(batch[b"data"])
    labels = _labels(batch[b"labels"], where)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise CifarFormatError(f"{where}: b'data' must be uint8 rows of 3072 values (3 planes of 32x32), "
                               f"found {data.dtype} {data.shape}")
    if len(labels) != len(data):
        raise CifarFormatError(f"{where}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _labels(value: Any, where: str) -> np.ndarray:
    """b'labels' as int64 class ids, or an error naming the batch (floats are not truncated)."""
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raw = np.asarray([], dtype=object)
    if raw.ndim != 1 or (raw.size and raw.dtype.kind not in "iu") or (
            raw.size and raw.dtype.kind == "u" and int(raw.max()) > np.iinfo(np.int64).max):
        shown = repr(value)[:60]
        raise CifarFormatError(f"{where}: b'labels' must be a list of integer class ids, found {shown}")
    labels = raw.astype(np.int64)
    if labels.size and int(labels.min()) < 0:
        raise CifarFormatError(f"{where}: b'labels' holds the negative class id {int(labels.min())}")
    return labels


def rows_to_images(rows: np.ndarray) -> np.ndarray:
    """Published rows (N, 3072) = R plane | G plane | B plane, each 32x32 row-major -> (N, 32, 32, 3) view."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _members(source: Path) -> Iterator[tuple[str, BinaryIO]]:
    """(basename, open file) for every file of a CIFAR folder or tarball."""
    if source.is_dir():
        for p in sorted(source.iterdir()):
            if p.is_file():
                with open(p, "rb") as fh:
                    yield p.name, fh
        return
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    fh = tar.extractfile(member)
                    if fh is not None:
                        yield Path(member.name).name, io.BufferedReader(fh)  # type: ignore[arg-type]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CifarFormatError(f"{source}: not a readable tar archive ({exc}); expected {CIFAR10_TARBALL} "
                               f"as published") from exc


def find_cifar10(root: Path) -> Path | None:
    """The extracted folder or the tarball under ``root`` (or ``root`` itself if it is either)."""
    if root.is_file():
        return root
    if (root / TEST_BATCH).is_file() and (root / TRAIN_BATCHES[0]).is_file():
        return root
    if (root / CIFAR10_FOLDER / TEST_BATCH).is_file():
        return root / CIFAR10_FOLDER
    if (root / CIFAR10_TARBALL).is_file():
        return root / CIFAR10_TARBALL
    return None


def read_cifar10(source: str | Path) -> ArrayDataset:
    """Read the five training batches then the test batch from a folder or tarball."""
    source = Path(source)
    wanted = set(TRAIN_BATCHES) | {TEST_BATCH}
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    class_names = None
    for name, fh in _members(source):
        if name in wanted:
            parts[name] = _batch_arrays(unpickle_batch(fh, f"{source}:{name}"), f"{source}:{name}")
        elif name == "batches.meta":
            meta = unpickle_batch(fh, f"{source}:{name}")
            if b"label_names" in meta:
                class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]
    missing = [b for b in TRAIN_BATCHES + [TEST_BATCH] if b not in parts]
    if missing:
        raise CifarFormatError(f"{source}: missing batch file(s) {', '.join(missing)}; expected data_batch_1..5 and "
                               f"test_batch (the python version of CIFAR-10)")
    order = TRAIN_BATCHES + [TEST_BATCH]
    names = class_names or list(CIFAR10_CLASSES)
    for b in order:
        top = int(parts[b][1].max()) if len(parts[b][1]) else -1
        if top >= len(names):
            named_by = "batches.meta" if class_names else "CIFAR-10"
            raise CifarFormatError(f"{source}:{b}: class id {top} but there are {len(names)} class names "
                                   f"({named_by}); expected ids 0..{len(names) - 1}")
    sizes = [len(parts[b][1]) for b in order]
    images = np.empty((sum(sizes), 32, 32, 3), dtype=np.uint8)
    labels = np.empty(sum(sizes), dtype=np.int64)
    start = 0
    for b, size in zip(order, sizes):  # one copy, rows straight into place; each batch freed as it goes
        rows, labels[start:start + size] = parts.pop(b)
        images[start:start + size] = rows_to_images(rows)
        del rows
        start += size
    is_test = np.arange(len(labels)) >= sum(sizes[:-1])
    return ArrayDataset(images=images, labels=labels, name="cifar10", class_names=names, is_test=is_test)


def load_cifar10(root: str | Path | None = None, download: bool = True) -> ArrayDataset:
    """CIFAR-10 (50,000 training then 10,000 test images, 32x32 RGB) from ``root``.

    ``root`` may be the extracted ``cifar-10-batches-py`` folder, the tarball, or a folder holding
    either. When neither is there the tarball is downloaded into ``root`` (MD5-checked) if
    ``download`` is true.
    """
    folder = Path(root) if root is not None else default_root("cifar10")
    source = find_cifar10(folder)
    if source is None:
        if folder.suffix in (".gz", ".tgz") or folder.name == CIFAR10_FOLDER:
            raise FileNotFoundError(f"cifar10: {folder} does not exist")
        source = ensure_file(folder, CIFAR10_TARBALL, CIFAR10_URL, CIFAR10_MD5, download, "cifar10")
    return read_cifar10(source)
