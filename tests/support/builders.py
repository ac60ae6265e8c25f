"""Small files in exactly each dataset's published layout (IDX, CIFAR-10 pickles, SVHN .mat, image files),
so that loaders are tested on the formats their publishers ship, without downloading them."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


# ---------- IDX (MNIST / Fashion-MNIST) ----------

def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=dtype).tobytes()


def write_idx_set(folder: Path, rng: np.random.Generator, n_train: int = 12, n_test: int = 5,
                  gz: bool = True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    for key, name in names.items():
        raw = idx_bytes(data[key])
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return data


# ---------- CIFAR-10 python version ----------

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_row(image_hwc: np.ndarray) -> np.ndarray:
    """The published row layout: R plane, G plane, B plane, each 32x32 row-major."""
    return np.concatenate([image_hwc[:, :, c].reshape(-1) for c in range(3)])


def write_cifar(folder: Path, rng: np.random.Generator, per_batch: int = 6, tar: bool = True,
                protocol: int | None = None) -> dict:
    """cifar-10-batches-py with data_batch_1..5, test_batch and batches.meta; optionally as the tarball.

    Pickled as Python 2 wrote the published files, or (``protocol``) by Python 3's pickle, as a
    user's re-saved copy would be.
    """
    dump = py2_pickle if protocol is None else (lambda obj: pickle.dumps(obj, protocol=protocol))
    batches = {}
    images, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        imgs = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labs = [int(v) for v in rng.integers(0, 10, per_batch)]
        batches[name] = {b"batch_label": f"{name} of 6".encode(), b"labels": labs,
                         b"data": np.stack([cifar_row(im) for im in imgs]),
                         b"filenames": [f"img_{name}_{i}.png".encode() for i in range(per_batch)]}
        images.append(imgs)
        labels.extend(labs)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}
    folder.mkdir(parents=True, exist_ok=True)
    if tar:
        path = folder / "cifar-10-python.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            for name, obj in list(batches.items()) + [("batches.meta", meta)]:
                blob = dump(obj)
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
            readme = b"<html>cifar</html>"
            info = tarfile.TarInfo("cifar-10-batches-py/readme.html")
            info.size = len(readme)
            tf.addfile(info, io.BytesIO(readme))
    else:
        path = folder / "cifar-10-batches-py"
        path.mkdir()
        for name, obj in list(batches.items()) + [("batches.meta", meta)]:
            (path / name).write_bytes(dump(obj))
    return {"path": path, "images": np.concatenate(images), "labels": np.asarray(labels), "batches": batches}


# ---------- SVHN cropped digits ----------

def write_svhn_mat(path: Path, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A MATLAB v5 file with X (32, 32, 3, N) uint8 and y (N, 1) holding 1..10 (10 = digit 0)."""
    from scipy.io import savemat

    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"X": x, "y": y}, format="5")
    return x, y


# ---------- images ----------

def save_image(path: Path, pixels: np.ndarray, palette: list[int] | None = None) -> None:
    """PNG (lossless) from (H, W) L, (H, W, 3) RGB, (H, W, 4) RGBA, or (H, W) indices with a palette (P)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is not None:
        img = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), np.ascontiguousarray(pixels).tobytes())
        img.putpalette(palette)
    else:
        img = Image.fromarray(np.ascontiguousarray(pixels))
    img.save(path)


def py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2's cPickle wrote the published CIFAR batches.

    Python 2 strings (dict keys, the array's raw bytes) are BINSTRING opcodes, and numpy arrays
    reference ``numpy.core.multiarray._reconstruct``: the forms a Python 3 writer no longer makes.
    Supports dicts, lists, tuples, ints, None, bytes/str (as Python 2 str) and C-order numpy arrays.
    """
    out = bytearray(b"\x80\x02")

    def w(o) -> None:
        if o is None:
            out.extend(b"N")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, (int, np.integer)):
            o = int(o)
            out.extend(b"K" + bytes([o]) if 0 <= o < 256 else b"J" + struct.pack("<i", o))
        elif isinstance(o, (bytes, str)):
            raw = o.encode("latin1") if isinstance(o, str) else o
            out.extend(b"U" + bytes([len(raw)]) + raw if len(raw) < 256 else b"T" + struct.pack("<i", len(raw)) + raw)
        elif isinstance(o, tuple):
            out.extend(b"(")
            for v in o:
                w(v)
            out.extend(b"t")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                w(v)
            out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                w(k)
                w(v)
            out.extend(b"u")
        elif isinstance(o, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            w((0,))
            w("b")
            out.extend(b"\x87R(")  # TUPLE3, REDUCE, then the state tuple
            w(1)
            w(tuple(o.shape))
            out.extend(b"cnumpy\ndtype\n")
            w((o.dtype.str[1:], 0, 1))
            out.extend(b"R")
            w((3, "|" if o.dtype.itemsize == 1 else "<", None, None, None, -1, -1, 0))
            out.extend(b"b")  # BUILD the dtype
            w(False)
            w(np.ascontiguousarray(o).tobytes())
            out.extend(b"tb")  # TUPLE, BUILD the array
        else:
            raise TypeError(type(o))
    w(obj)
    out.extend(b".")
    return bytes(out)


def load_with_warnings(path, **options) -> tuple:
    """``load_dataset(path, **options)`` and the :class:`dnnh.data.DataWarning` it raised, recorded."""
    import warnings

    from dnnh.data import DataWarning, load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(path, **options)
    return dataset, [w for w in caught if issubclass(w.category, DataWarning)]


def png_bytes(image: np.ndarray) -> bytes:
    """The bytes of a PNG file holding ``image`` (uint8, (H, W), (H, W, 1) or (H, W, 3))."""
    arr = np.asarray(image, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in 60 bytes (its pixel data is missing): a pixel bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))
