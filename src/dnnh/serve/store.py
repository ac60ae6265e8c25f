"""The service's durable item store: an index snapshot, a write-ahead log, and the added images.

A store is a folder that one process owns (``.dnnh.lock``, an OS file lock, as for run
directories; a second owner gets one line naming the holder's PID)::

    state.json          the commit point of the last snapshot: which index file, the last log
                        record it includes, the next id to give, the labels of added items
    index-<seq>.dhi     the index snapshot named by state.json (items sorted by id)
    wal.log             records appended since that snapshot, one line each:
                        ``<crc32 hex> <json>``, fsynced before a write is acknowledged
                        (format and recovery rules: :mod:`dnnh.serve.journal`)
    images/<id>.png     images of added items, named by their integer id only (an image whose
                        id no record or snapshot names is a leftover of a crash, removed on open)

**Durability.** ``add`` writes the images (fsynced), then appends and fsyncs one log
record, then applies it in memory, then returns: an acknowledged write survives ``kill -9`` and
power loss. On open, the snapshot is loaded and the records after it are replayed; a torn last
record (a crash mid-append, never acknowledged) is cut off, a damaged record before the end is
an error naming the file. A snapshot writes a new index file and then ``state.json`` (both
atomically; the second is the commit point), then empties the log: a crash at any step leaves
either the old snapshot with the whole log, or the new one with records it already includes,
which replay skips by sequence number.

**Readers never see a half-applied write.** The snapshot index (``main``) never changes between
snapshots: adds go to a small ``delta`` index and deletes of snapshot items to a tombstone set,
all changed under the write side of a readers-writer lock, and searches hold the read side while
they query both and merge. A snapshot compacts ``main``, ``delta`` and the tombstones into a new
index off to the side and swaps it in under the write lock, so searches on a million codes never
wait for a regrouping. Ids added are always larger than every id before them, so insertion order
is id order and results are ordered by distance, then id.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dnnh.atomic import atomic_write_text, fsync_dir
from dnnh.index import HammingIndex
from dnnh.locks import FileLock, RWLock, lock_folder
from dnnh.serve.journal import LOG, Journal, StoreError, read_records, write_durably

STORE_FORMAT = "dnnh-serve-store/1"
STATE = "state.json"
IMAGES = "images"

#: A snapshot is taken (in the background) once this many records are in the log, ...
SNAPSHOT_RECORDS = 1000
#: ... or the delta index or the tombstones hold this many items.
SNAPSHOT_ITEMS = 20000

_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class Hit:
    id: int
    distance: int


def sorted_by_id(codes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``codes`` and ``ids`` reordered by id (stable), as the snapshot index holds them."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return np.ascontiguousarray(np.asarray(codes)[order]), ids[order]


class Store:
    """Packed codes by integer id, searchable, durable; see the module docstring.

    Open with :meth:`open`; every public method is thread-safe. ``seed`` (called only when the
    folder holds no store yet) returns the first items as ``(packed codes, ids)``; added items get
    ids from ``first_id`` on (and always above every id held).
    """

    def __init__(self, path: Path, nbits: int, lock: FileLock, *, engine: str = "auto",
                 num_threads: int | None = None, snapshot_records: int = SNAPSHOT_RECORDS,
                 snapshot_items: int = SNAPSHOT_ITEMS) -> None:
        self.path, self.nbits, self._lock = path, int(nbits), lock
        self._index_kwargs = {"engine": engine, "num_threads": num_threads}
        self.snapshot_records, self.snapshot_items = int(snapshot_records), int(snapshot_items)
        self.images_dir = path / IMAGES
        self._rw = RWLock()
        self._writer = threading.Lock()     # one write (log append + apply) or snapshot at a time
        self._journal: Journal | None = None
        self._seq = 0                        # last record written
        self._snap_seq = 0                   # last record the snapshot includes
        self._next_id = 0
        self._labels: dict[int, str | None] = {}  # every alive added item (its image is on disk)
        self._main = HammingIndex(self.nbits, **self._index_kwargs)
        self._main_ids = np.zeros(0, np.int64)
        self._main_codes = np.zeros((0, (self.nbits + 7) // 8), np.uint8)
        self._index_name: str | None = None  # the snapshot file state.json names
        self._tomb: set[int] = set()
        self._tomb_ids = np.zeros(0, np.int64)  # the tombstones as an array, for searches to filter by
        self._delta = HammingIndex(self.nbits, **self._index_kwargs)
        self._delta_codes: dict[int, np.ndarray] = {}
        self._snapshot_wanted = threading.Event()
        self._closing = threading.Event()
        self._snapshot_thread: threading.Thread | None = None
        self.snapshot_error: str | None = None
        self.replayed = 0
        self._seed_name: str | None = None

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def open(cls, path: str | Path, *, nbits: int, seed: Callable[[], tuple[np.ndarray, np.ndarray]],
             first_id: int = 0, seed_name: str | None = None, background: bool = True,
             **kwargs: object) -> "Store":
        """Lock, load the snapshot and replay the log of the store at ``path`` (made from ``seed``
        when the folder holds none). ``seed_name`` is recorded, and a later open with another
        seed name is refused (the store already holds its items)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise StoreError(f"store {path} is a file; give a folder")
        lock = lock_folder(path, "serve store").acquire()
        try:
            store = cls(path, nbits, lock, **kwargs)  # type: ignore[arg-type]
            store._load(seed, int(first_id), seed_name)
        except BaseException:
            lock.release()
            raise
        if background:
            store._snapshot_thread = threading.Thread(target=store._snapshot_loop, name="dnnh-store-snapshot",
                                                      daemon=True)
            store._snapshot_thread.start()
        return store

    def close(self) -> None:
        """Snapshot what the log holds, stop the background thread, release the lock."""
        if self._lock is None:
            return
        self._closing.set()
        self._snapshot_wanted.set()
        if self._snapshot_thread is not None:
            self._snapshot_thread.join()
        try:
            if self._seq > self._snap_seq:
                self.snapshot()
        finally:
            if self._journal is not None:
                self._journal.close()
            self._lock.release()
            self._lock = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, seed: Callable[[], tuple[np.ndarray, np.ndarray]], first_id: int, seed_name: str | None) -> None:
        self.images_dir.mkdir(parents=True, exist_ok=True)
        state_path = self.path / STATE
        if not state_path.exists():
            codes, ids = sorted_by_id(*seed())
            index = self._build(codes, ids)
            top = int(ids.max()) + 1 if len(ids) else 0
            self._install_main(index, ids, codes)
            self._next_id = max(first_id, top)
            self._seed_name = seed_name
            if (self.path / LOG).exists():  # a log without a state: from a store whose first snapshot never landed
                os.truncate(self.path / LOG, 0)
            self._write_snapshot(index, 0)
        else:
            state = self._read_state(state_path)
            recorded = state.get("seed")
            if seed_name is not None and recorded is not None and recorded != seed_name:
                raise StoreError(f"store {self.path} was started from {recorded}, not {seed_name}; "
                                 "drop --index to reopen it, or choose a new --store")
            self._seed_name = recorded
            index_path = self.path / str(state["index"])
            if Path(state["index"]).name != state["index"]:
                raise StoreError(f"{state_path} names an index outside the store ({state['index']!r})")
            self._index_name = index_path.name
            try:
                index = HammingIndex.load(index_path, **self._index_kwargs)
            except FileNotFoundError:
                raise StoreError(f"{state_path} names {index_path.name}, which is missing; "
                                 "the store was damaged: restore it from a backup or choose a new --store") from None
            if index.nbits != self.nbits:
                raise StoreError(f"store {self.path} holds {index.nbits}-bit codes but the model makes "
                                 f"{self.nbits}-bit codes; choose a new --store for this run")
            ids = index.ids
            codes = index.codes() if index.ntotal else np.zeros((0, (self.nbits + 7) // 8), np.uint8)
            if len(ids) > 1 and bool((np.diff(ids) < 0).any()):  # written by hand or another tool: re-sort
                codes, ids = sorted_by_id(codes, ids)
                index = self._build(codes, ids)
            else:
                self._prepare(index, codes)
            self._install_main(index, ids, codes)
            self._snap_seq = self._seq = int(state["log_seq"])
            self._next_id = int(state["next_id"])
            self._labels = {int(k): v for k, v in state.get("labels", {}).items()}
        self.replayed = self._replay()
        self._remove_orphan_images()
        self._journal = Journal(self.path / LOG)
        if self.replayed:
            self.snapshot()
        self._cleanup_snapshots()

    def _read_state(self, path: Path) -> dict:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != STORE_FORMAT:
            raise StoreError(f"{path} is not a dnnh serve store of format {STORE_FORMAT!r}")
        if int(state.get("nbits", -1)) != self.nbits:
            raise StoreError(f"store {self.path} holds {state.get('nbits')}-bit codes but the model makes "
                             f"{self.nbits}-bit codes; choose a new --store for this run")
        for key in ("index", "log_seq", "next_id"):
            if key not in state:
                raise StoreError(f"{path} lacks {key!r}; was it edited?")
        return state

    @staticmethod
    def _prepare(index: HammingIndex, sample: np.ndarray) -> None:
        """Group the items and build the lookup tables now, before readers see the index: no search
        ever regroups (searches only read), and none pays for building the tables. ``sample``: any
        packed code (1, nbytes) to warm the tables with."""
        index.ndistinct
        if index.ntotal:
            index.search(sample[:1], 10)

    def _build(self, codes: np.ndarray, ids: np.ndarray) -> HammingIndex:
        """A new index of ``codes`` under ``ids``, prepared for readers."""
        index = HammingIndex(self.nbits, **self._index_kwargs)
        index.add(codes, ids=ids)
        self._prepare(index, codes)
        return index

    def _install_main(self, index: HammingIndex, ids: np.ndarray, codes: np.ndarray) -> None:
        self._main, self._main_ids, self._main_codes = index, np.asarray(ids, np.int64), np.asarray(codes, np.uint8)
        self._tomb = set()
        self._tomb_ids = np.zeros(0, np.int64)
        self._delta = HammingIndex(self.nbits, **self._index_kwargs)
        self._delta_codes = {}

    def _replay(self) -> int:
        """Apply the log's records that the snapshot does not include; how many."""
        applied = 0
        for record in read_records(self.path / LOG):
            if record["seq"] <= self._snap_seq:
                continue  # already in the snapshot
            self._apply(record)
            self._seq = record["seq"]
            applied += 1
        return applied

    def _remove_orphan_images(self) -> None:
        """Images written for an add whose log record never landed (a crash in between)."""
        for entry in os.scandir(self.images_dir):
            stem, dot, ext = entry.name.partition(".")
            if ext == "png" and stem.isdigit() and int(stem) not in self._labels:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass

    # ------------------------------------------------------------------ reading

    @property
    def ntotal(self) -> int:
        with self._rw.read():
            return len(self._main_ids) - len(self._tomb) + len(self._delta_codes)

    @property
    def num_threads(self) -> int:
        """Threads one search may use (the index's)."""
        return self._main.num_threads

    @property
    def next_id(self) -> int:
        return self._next_id

    def is_added(self, item_id: int) -> bool:
        """Whether ``item_id`` is an alive item added through the store (its image is in images/)."""
        return item_id in self._labels

    def label(self, item_id: int) -> str | None:
        return self._labels.get(item_id)

    def image_path(self, item_id: int) -> Path:
        """Where an added item's image lives: named by the integer id, nothing else."""
        return self.images_dir / f"{int(item_id)}.png"

    def code(self, item_id: int) -> np.ndarray | None:
        """The packed code (1, nbytes) of an alive item, or None when no item has that id."""
        if not 0 <= item_id <= _INT64_MAX:
            return None
        with self._rw.read():
            return self._code_locked(int(item_id))

    def _code_locked(self, item_id: int) -> np.ndarray | None:
        code = self._delta_codes.get(item_id)
        if code is not None:
            return code[None, :].copy()
        if item_id in self._tomb:
            return None
        pos = int(np.searchsorted(self._main_ids, item_id))
        if pos < len(self._main_ids) and int(self._main_ids[pos]) == item_id:
            return self._main_codes[pos:pos + 1].copy()
        return None

    def search(self, query: np.ndarray, k: int, radius: int | None = None) -> list[Hit]:
        """The ``k`` nearest alive items to one packed code (1, nbytes), by distance then id;
        with ``radius``, only those within it (inclusive)."""
        query = np.ascontiguousarray(query, dtype=np.uint8).reshape(1, -1)
        with self._rw.read():
            parts = []
            for index, tomb in ((self._main, self._tomb_ids), (self._delta, None)):
                if index.ntotal == 0:
                    continue
                if radius is None:
                    want = k + (len(tomb) if tomb is not None else 0)
                    dist, ids = index.search(query, min(want, index.ntotal))
                    dist, ids = dist[0], ids[0]
                    keep = ids >= 0
                else:
                    _, dist, ids = index.range_search(query, radius)
                    keep = np.ones(len(ids), bool)
                if tomb is not None and len(tomb):
                    keep &= ~np.isin(ids, tomb)
                parts.append((dist[keep].astype(np.int64), ids[keep].astype(np.int64)))
        if not parts:
            return []
        dist = np.concatenate([p[0] for p in parts])
        ids = np.concatenate([p[1] for p in parts])
        order = np.lexsort((ids, dist))[:k]
        return [Hit(int(ids[i]), int(dist[i])) for i in order]

    # ------------------------------------------------------------------ writing

    def add(self, codes: np.ndarray, images: list[bytes], label: str | None = None) -> list[int]:
        """Store items (packed codes, one PNG each) durably; returns their new ids."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or len(codes) != len(images) or not len(codes):
            raise ValueError(f"add needs one image per code, got {codes.shape} codes and {len(images)} images")
        with self._writer:
            self._check_open()
            ids = list(range(self._next_id, self._next_id + len(codes)))
            for item_id, png in zip(ids, images):
                write_durably(self.image_path(item_id), png)
            fsync_dir(self.images_dir)
            record = {"op": "add", "seq": self._seq + 1,
                      "items": [{"id": i, "code": c.tobytes().hex(), "label": label} for i, c in zip(ids, codes)]}
            self._append(record)
            self._apply(record)
            self._after_write()
        return ids

    def delete(self, item_id: int) -> bool:
        """Remove an item durably; False when no alive item has that id."""
        with self._writer:
            self._check_open()
            if self.code(item_id) is None:
                return False
            record = {"op": "delete", "seq": self._seq + 1, "id": int(item_id)}
            self._append(record)
            self._apply(record)
            self._after_write()
        return True

    def _check_open(self) -> None:
        if self._journal is None or self._journal.closed:
            raise StoreError(f"store {self.path} is closed")

    def _append(self, record: dict) -> None:
        self._journal.append(record)

    def _apply(self, record: dict) -> None:
        """Apply one log record in memory, idempotently (replay may meet records twice)."""
        op = record.get("op")
        if op == "add":
            items = [it for it in record["items"] if self._code_locked(int(it["id"])) is None]
            if items:
                ids = np.array([int(it["id"]) for it in items], np.int64)
                codes = np.stack([np.frombuffer(bytes.fromhex(it["code"]), np.uint8) for it in items])
                if codes.shape[1] != self._main_codes.shape[1]:
                    raise StoreError(f"{self.path / LOG} holds a code of {codes.shape[1]} bytes; the store's are "
                                     f"{self._main_codes.shape[1]}")
                delta = self._delta
                with self._rw.write():
                    delta.add(codes, ids=ids)
                    self._prepare(delta, codes)  # regroup now, under the lock: searches only read
                    for item_id, code, item in zip(ids, codes, items):
                        self._delta_codes[int(item_id)] = code
                        self._labels[int(item_id)] = item.get("label")
            top = max(int(it["id"]) for it in record["items"]) + 1 if record["items"] else 0
            self._next_id = max(self._next_id, top)
        elif op == "delete":
            item_id = int(record["id"])
            if self._code_locked(item_id) is not None:
                with self._rw.write():
                    if item_id in self._delta_codes:
                        self._delta.remove(item_id)
                        self._prepare(self._delta, self._delta_codes[item_id][None, :])
                        del self._delta_codes[item_id]
                    else:
                        self._tomb.add(item_id)
                        self._tomb_ids = np.append(self._tomb_ids, np.int64(item_id))
                    self._labels.pop(item_id, None)
            try:
                os.unlink(self.image_path(item_id))
            except OSError:
                pass
        else:
            raise StoreError(f"{self.path / LOG} holds a record of unknown kind {op!r}; "
                             "was it written by a newer dnnh?")

    def _after_write(self) -> None:
        self._seq += 1
        if (self._seq - self._snap_seq >= self.snapshot_records or len(self._delta_codes) >= self.snapshot_items
                or len(self._tomb) >= self.snapshot_items):
            self._snapshot_wanted.set()

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> None:
        """Fold the log into a new index snapshot (atomically), then empty the log."""
        with self._writer:
            if self._seq == self._snap_seq and (self.path / STATE).exists():
                return
            keep = ~np.isin(self._main_ids, self._tomb_ids)
            delta_ids = np.array(sorted(self._delta_codes), np.int64)
            ids = np.concatenate([self._main_ids[keep], delta_ids])
            codes = np.concatenate([self._main_codes[keep]] +
                                   ([np.stack([self._delta_codes[int(i)] for i in delta_ids])] if len(delta_ids) else []))
            index = self._build(codes, ids)  # off to the side: searches go on against the old index
            self._write_snapshot(index, self._seq)
            with self._rw.write():
                self._install_main(index, ids, codes)
            if self._journal is not None:
                self._journal.clear()
            self._cleanup_snapshots()

    def _write_snapshot(self, index: HammingIndex, seq: int) -> None:
        name = f"index-{seq:012d}.dhi"
        index.save(self.path / name)
        state = {"format": STORE_FORMAT, "nbits": self.nbits, "index": name, "log_seq": seq,
                 "next_id": self._next_id, "seed": self._seed_name,
                 "labels": {str(k): v for k, v in sorted(self._labels.items())}}
        atomic_write_text(self.path / STATE, json.dumps(state, indent=1))  # fsyncs the folder
        self._snap_seq, self._index_name = seq, name

    def _cleanup_snapshots(self) -> None:
        """Remove the snapshot files state.json no longer names."""
        for entry in os.scandir(self.path):
            if entry.name.startswith("index-") and entry.name.endswith(".dhi") and entry.name != self._index_name:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass

    def _snapshot_loop(self) -> None:
        while True:
            self._snapshot_wanted.wait()
            self._snapshot_wanted.clear()
            if self._closing.is_set():
                return
            try:
                self.snapshot()
                self.snapshot_error = None
            except Exception as exc:  # the log still holds every write: report it, try again later
                self.snapshot_error = f"{type(exc).__name__}: {exc}"
