"""A frozen backbone's pooled features, computed once and memory-mapped: what head training reads.

With the backbone frozen, every epoch of every method, seed and code length would push the same
images through the same network; on a CPU at 224 px that is nearly all of the time. The features
are a function of (backbone, weights file, preprocessing, data, arithmetic) alone, so they are
computed once per :class:`FeatureKey` and kept in a folder:

    <folder>/<entry>.json              the key, the items covered, shape, dtype, how long it took
    <folder>/<entry>.<items>.npy       float32 (or float16) rows, one per item, in item order

``<entry>`` names the data, backbone and input size and a digest of the key *without* the data's
fingerprint, so features of data that has since changed are found and refused in one line (the
fingerprint's own difference), not silently recomputed beside them. The .npy is written
(streamed, in bounded batches) to a temporary file and renamed; the .json, written last and
atomically, is what makes an entry exist, so a write killed at any point leaves nothing that
loads. Writers hold the folder's lock (:mod:`dnnh.locks`): a second process asking for the same
features waits for the first and then reads them. Readers need no lock.

The backbone runs in eval mode (its batch-norm statistics are the file's), on the centre crop
of the run's preprocessing, with no augmentation, on the same inference copy and forward
batches as ``dnnh encode``'s torch engine (:class:`dnnh.encoder.backends.TorchBackend`), so a
head applied to these features gives the codes ``dnnh encode`` gives on the raw images.

Default folder: ``$DNNH_FEATURES``, else ``~/.cache/dnnh/features`` (beside the datasets dnnh
fetches into ``~/.cache/dnnh``); ``--feature-cache DIR`` chooses another.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from dnnh.atomic import atomic_open, atomic_write_text, remove_leftovers
from dnnh.data.fingerprint import fingerprint_difference
from dnnh.data.progress import LINE_EVERY_S, Progress
from dnnh.data.pipeline import BatchSource, Preprocessing
from dnnh.encoder.backends import TorchBackend, TorchBf16Backend
from dnnh.errors import ChangedDataError, DataError, InputError, LockedError
from dnnh.locks import lock_folder
from dnnh.nn import DNNH

FEATURES_FORMAT = "dnnh-features/1"
#: How the rows are stored: float16 halves the file (measured to leave MAP unchanged, docs/BACKBONES.md).
STORAGE = ("float32", "float16")
#: The arithmetic the backbone runs in: fp32 (``dnnh encode``'s default engine) or bf16 (its torch-bf16 engine).
PRECISIONS = ("fp32", "bf16")
#: Images decoded, preprocessed and encoded per batch (the backend cuts them into its own forward batches).
EXTRACT_BATCH = 256
#: Seconds between progress lines when stderr is not a terminal (a log file gets lines, not bars).
PROGRESS_EVERY_S = LINE_EVERY_S
#: Seconds between attempts to take the folder's lock while another process computes features.
LOCK_POLL_S = 0.5


def default_folder() -> Path:
    """``$DNNH_FEATURES``, else ``~/.cache/dnnh/features``."""
    env = os.environ.get("DNNH_FEATURES")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dnnh" / "features"


def cache_folder(folder: str | Path | None) -> Path:
    """The folder features are kept in: ``folder`` as given, else :func:`default_folder`."""
    path = Path(folder).expanduser() if folder is not None else default_folder()
    if path.exists() and not path.is_dir():
        raise InputError(f"feature cache {path} is a file; give a folder")
    return path


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def items_digest(items: np.ndarray) -> str:
    """sha256 of a sorted int64 index array: which items an entry's rows are."""
    return hashlib.sha256(np.ascontiguousarray(items, dtype=np.int64).tobytes()).hexdigest()


@dataclass(frozen=True)
class FeatureKey:
    """What decides the features: backbone and weights, preprocessing, the data, arithmetic and storage.

    ``preprocessing`` is :meth:`Preprocessing.to_dict` with how the crop is taken (always the
    centre) and the augmentation (always none); ``data`` is ``dataset.fingerprint()``.
    """

    backbone: str
    weights_sha256: str
    preprocessing: dict
    data: dict
    precision: str = "fp32"
    storage: str = "float32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"feature precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.storage not in STORAGE:
            raise InputError(f"feature storage must be one of {STORAGE}, got {self.storage!r}")

    @classmethod
    def of(cls, backbone: str, weights_sha256: str, prep: Preprocessing, fingerprint: dict,
           precision: str = "fp32", storage: str = "float32") -> "FeatureKey":
        return cls(backbone, weights_sha256, {**prep.to_dict(), "crop": "centre", "augment": "none"},
                   dict(fingerprint), precision, storage)

    def identity(self) -> dict:
        """The key without the data's fingerprint: what the entry's file name stands for."""
        out = asdict(self)
        del out["data"]
        out["data_name"] = self.data.get("name")
        return out

    @property
    def name(self) -> str:
        """``fashion-mnist-efficientnet_lite0-224px-<digest>``: readable, and unique per :meth:`identity`."""
        data = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(self.data.get("name", "data")))[:40]
        size = self.preprocessing.get("input_size")
        return f"{data}-{self.backbone}-{size}px-{_digest(self.identity())[:16]}"


@dataclass
class FeatureTable:
    """Cached features of some items of a dataset: row i of ``features`` is item ``items[i]``."""

    features: np.ndarray  # (n_items, width), memory-mapped, float32 or float16
    items: np.ndarray  # sorted int64 dataset indices
    path: Path  # the entry's .json
    record: dict

    @property
    def width(self) -> int:
        return int(self.features.shape[1])

    def covers(self, indices: np.ndarray) -> bool:
        indices = np.asarray(indices, dtype=np.int64)
        pos = np.searchsorted(self.items, indices)
        return bool(np.all(pos < len(self.items)) and np.array_equal(self.items[np.minimum(pos, len(self.items) - 1)],
                                                                   indices))

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """float32 features of dataset items ``indices`` (in that order), read from the file."""
        indices = np.asarray(indices, dtype=np.int64)
        if not self.covers(indices):
            raise IndexError(f"{self.path} holds no features for some of the {len(indices)} items asked for")
        return np.asarray(self.features[np.searchsorted(self.items, indices)], dtype=np.float32)


class FeatureExtractor:
    """A backbone's pooled features of preprocessed batches, on ``dnnh encode``'s inference path.

    The backbone sits in a one-bit DNNH so that :meth:`TorchBackend.features` computes them: the
    same fused inference copy (batch norm folded with the file's statistics), channels-last
    input, forward batches and gray-to-RGB repeat as encoding a run, hence the same numbers.
    """

    def __init__(self, backbone: torch.nn.Module, name: str, channels: int, precision: str = "fp32",
                 device: str | torch.device = "cpu") -> None:
        model = DNNH(1, backbone=name, in_channels=channels, encoder="fc", eps=None)
        model.net.backbone = backbone
        model.eval().to(device)
        self.width = int(backbone.out_features)
        self.backend = TorchBackend(model) if precision == "fp32" else TorchBf16Backend(model, str(device))

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        return self.backend.features(batch)


@contextmanager
def _locked(folder: Path, log: Callable[[str], None] | None) -> Iterator[None]:
    """The folder's lock, waited for (another process computing features holds it for minutes)."""
    lock = lock_folder(folder, "feature cache")
    said = False
    while True:
        try:
            lock.acquire()
            break
        except LockedError as exc:
            if not said and log is not None:
                log(f"{exc}: waiting for it")
                said = True
            time.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        lock.release()


def read_entry(folder: Path, key: FeatureKey) -> FeatureTable | None:
    """The entry of ``key`` in ``folder`` (None when there is none); refused in one line when it does not match.

    Refused: features of other data under the same name (the data changed since), a record whose
    key differs otherwise, or a features file that is missing or not the array its record says.
    """
    path = folder / f"{key.name}.json"
    for attempt in range(3):  # a writer may replace the entry between reading the record and opening its rows
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"feature cache entry {path} cannot be read ({exc}); delete it to compute the "
                            "features again") from None
        if record.get("format") != FEATURES_FORMAT:
            raise DataError(f"{path} is not a feature cache entry (format {record.get('format')!r}); move it away")
        saved = record.get("key", {})
        difference = fingerprint_difference(saved.get("data"), key.data)
        if difference:
            raise ChangedDataError(f"features cached in {path} were computed from other data ({difference}); "
                                   f"delete {path.name} and its .npy to compute them again, or use another "
                                   "--feature-cache folder")
        wanted = asdict(key)
        other = sorted(k for k in wanted if k != "data" and saved.get(k) != wanted[k])
        if other:
            raise ChangedDataError(f"{path} holds features of another key ({', '.join(other)} differ); "
                                   "delete it to compute them again")
        rows = folder / record["file"]
        try:
            features = np.load(rows, mmap_mode="r")
        except FileNotFoundError:
            if attempt < 2:
                continue
            raise ChangedDataError(f"{path} names {rows.name}, which is missing; delete {path.name} to compute "
                                   "the features again") from None
        except ValueError as exc:
            raise ChangedDataError(f"{rows} is not a readable array ({exc}); delete {path.name} and it") from None
        if list(features.shape) != record["shape"] or str(features.dtype) != key.storage:
            raise ChangedDataError(f"{rows} holds a {features.dtype} array of shape {tuple(features.shape)}, its "
                                   f"record says {key.storage} {tuple(record['shape'])}; delete {path.name} and it")
        items = (np.arange(record["items"]["all"], dtype=np.int64) if "all" in record["items"]
                 else np.asarray(record["items"]["list"], dtype=np.int64))
        if len(items) != len(features) or items_digest(items) != record["items_sha256"]:
            raise ChangedDataError(f"{path} lists other items than its rows hold; delete it and {rows.name}")
        return FeatureTable(features, items, path, record)
    return None


def cached_features(key: FeatureKey, dataset: Any, prep: Preprocessing, items: np.ndarray,
                    make_backbone: Callable[[], torch.nn.Module], folder: str | Path | None = None, *,
                    device: str | torch.device = "cpu", num_workers: int = 0, batch_size: int = EXTRACT_BATCH,
                    progress: bool | None = None, log: Callable[[str], None] | None = None) -> FeatureTable:
    """The features of ``dataset``'s ``items`` under ``key``: read back, or computed once and kept.

    ``make_backbone`` builds the backbone (weights loaded) only when something must be computed.
    An entry that covers fewer items is extended (its rows copied, only the missing items
    computed) into a new file. ``progress``: a bar (default: when stderr is a terminal; else
    ``log`` gets a line every :data:`PROGRESS_EVERY_S` seconds and one when done).
    """
    folder = cache_folder(folder)
    items = np.unique(np.asarray(items, dtype=np.int64))
    found = read_entry(folder, key)
    if found is not None and found.covers(items):
        return found
    with _locked(folder, log):
        found = read_entry(folder, key)  # another process may have written it while we waited
        if found is not None and found.covers(items):
            return found
        return _compute(folder, key, dataset, prep, items, found, make_backbone, device, num_workers, batch_size,
                        sys.stderr.isatty() if progress is None else progress, log)


def _compute(folder: Path, key: FeatureKey, dataset: Any, prep: Preprocessing, items: np.ndarray,
             old: FeatureTable | None, make_backbone: Callable[[], torch.nn.Module], device: str | torch.device,
             num_workers: int, batch_size: int, progress: bool, log: Callable[[str], None] | None) -> FeatureTable:
    """Stream the rows of ``items`` (plus ``old``'s) into a new .npy, then write the record naming it."""
    union = items if old is None else np.union1d(old.items, items)
    todo = union if old is None else np.setdiff1d(union, old.items)
    extract = FeatureExtractor(make_backbone(), key.backbone, prep.channels, key.precision, device)
    source = BatchSource(dataset, prep, num_workers=num_workers, device=device)
    dtype = np.dtype(key.storage)
    digest = items_digest(union)
    rows_path = folder / f"{key.name}.{digest[:12]}.npy"
    if log is not None:
        log(f"features: {len(todo):,} images through {key.backbone} at {prep.input_size} px "
            f"({key.precision}) into {folder}" + (f", {len(old.items):,} already cached" if old is not None else ""))
    _remove_leftovers(folder, key)
    started = time.perf_counter()
    chunks = [union[i:i + batch_size] for i in range(0, len(union), batch_size)]
    computed = _computed_rows(source, chunks, old, extract)
    with atomic_open(rows_path) as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": dtype.str, "fortran_order": False,
                                                  "shape": (len(union), extract.width)})
        with Progress(len(todo), "features", shown=progress or log is not None, log=log, bar=progress) as bar:
            for rows, new in computed:
                fh.write(np.ascontiguousarray(rows, dtype=dtype).tobytes())
                bar.update(new, note=lambda: _minutes_left(bar.done, len(todo), time.perf_counter() - started))
    seconds = time.perf_counter() - started
    full = len(union) == len(dataset) and union[-1] == len(dataset) - 1
    record = {"format": FEATURES_FORMAT, "key": asdict(key), "file": rows_path.name,
              "shape": [len(union), extract.width], "dtype": key.storage,
              "items": {"all": len(union)} if full else {"list": union.tolist()}, "items_sha256": digest,
              "computed_images": int(len(todo)), "seconds": seconds,
              "images_per_s": len(todo) / seconds if seconds > 0 else None,
              "torch_threads": torch.get_num_threads(), "device": str(device)}
    atomic_write_text(folder / f"{key.name}.json", json.dumps(record, indent=1))
    if old is not None and (folder / old.record["file"]) != rows_path:
        (folder / old.record["file"]).unlink(missing_ok=True)
    if log is not None:
        size = rows_path.stat().st_size
        log(f"features: {len(todo):,} images in {seconds:.1f}s ({record['images_per_s'] or 0:.1f} img/s), "
            f"{size / 1e6:.1f} MB in {rows_path}")
    table = read_entry(folder, key)
    assert table is not None  # just written
    return table


def _remove_leftovers(folder: Path, key: FeatureKey) -> None:
    """Temporary files of this key's earlier writes that were killed (for any set of items: the next write
    of the same items would clean its own, :func:`dnnh.atomic.remove_leftovers`, but items change)."""
    pattern = re.compile(rf"\.({re.escape(key.name)}\.[0-9a-f]{{12}}\.npy)\.[a-z0-9_]{{8}}\.tmp")
    for target in {m.group(1) for m in map(pattern.fullmatch, os.listdir(folder)) if m}:
        remove_leftovers(folder / target)


def _computed_rows(source: BatchSource, chunks: list[np.ndarray], old: FeatureTable | None,
                   extract: FeatureExtractor) -> Iterator[tuple[np.ndarray, int]]:
    """(a chunk's rows, how many of them were computed) for each chunk: old rows copied, the others extracted."""
    wanted = [chunk if old is None else chunk[~np.isin(chunk, old.items)] for chunk in chunks]
    batches = source.batches([w for w in wanted if len(w)])
    for chunk, new in zip(chunks, wanted):
        rows = np.empty((len(chunk), extract.width), dtype=np.float32)
        if len(new):
            fresh = extract(next(batches))
            if old is None:
                rows[:] = fresh
            else:
                mask = np.isin(chunk, new)
                rows[mask] = fresh
                rows[~mask] = old.rows(chunk[~mask])
        else:
            rows[:] = old.rows(chunk)
        yield rows, len(new)


def _minutes_left(done: int, total: int, seconds: float) -> str:
    rate = done / max(seconds, 1e-9)
    return f"about {(total - done) / rate / 60:.0f} min left" if rate > 0 else "time left unknown"


__all__ = ["EXTRACT_BATCH", "FEATURES_FORMAT", "FeatureExtractor", "FeatureKey", "FeatureTable", "PRECISIONS",
           "STORAGE", "cache_folder", "cached_features", "default_folder", "items_digest", "read_entry"]
