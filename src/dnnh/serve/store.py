"""The service's durable item store: an index snapshot, a write-ahead log, and the added images.

A store is a folder that one process owns (``.dnnh.lock``, an OS file lock, as for run
directories; a second owner gets one line naming the holder's PID)::

    .dnnh-store         written first when dnnh makes the store: the proof that dnnh owns the folder
    state.json          the commit point of the last snapshot: which index file, the last log
                        record it includes, the next id to give, the labels of added items, the
                        digest of the weights that made its codes
    index-<seq>.dhi     the index snapshot named by state.json (items sorted by id)
    wal.log             records appended since that snapshot, one line each:
                        ``<crc32 hex> <json>``, fsynced before a write is acknowledged
                        (format and recovery rules: :mod:`dnnh.serve.journal`)
    images/<id>.png     images of added items, named by their integer id only (an image whose
                        id no record or snapshot names is a leftover of a crash, removed on open)

This module owns only durability; the searchable items live in a
:class:`~dnnh.index.live.LiveIndex` (main + delta + tombstones, compacted by each snapshot).

**What is durable when.** ``add`` writes the images (fsynced), then appends and fsyncs one log
record, then applies it in memory, then returns: an acknowledged write survives ``kill -9`` and
power loss. A write the disk refuses (full: 507; other errors: 503) is rolled back: its images
are removed and its log bytes cut, nothing of it is replayed, and its sequence number and ids are
never given to another write. A snapshot writes a new index file and then ``state.json`` (both
atomically; the second is the commit point), and only then empties the log: a crash at any step
leaves either the old snapshot with the whole log, or the new one with records it already
includes, which replay skips by sequence number. A final snapshot that fails at shutdown is one
line; the log still holds every write, replayed on the next start.

**Which model made the codes.** A store's codes are only comparable with uploads encoded by the
same weights. ``state.json`` records their digest (``weights``: the bytes the service's encoder
loaded); a start with other weights (the run retrained or resumed since) is refused in one line, as
is a start with known weights on a store that does not record its own (made before it did). With
``reseed`` (``dnnh serve --reseed``) the store instead encodes every alive item again: the run's
database items from the seed, items added through the server from their stored images (their
thumbnails: the uploads are not kept, so their codes may differ a little from an encode of the
original), deletions, ids and labels kept, then commits a snapshot as a write does.

**What a damaged folder does.** On open, a torn last append (bytes after the log's last newline:
never acknowledged) is cut; a complete record whose checksum fails, anywhere, stops the start
with one line; so does a ``state.json`` that is missing while the store holds a log, images or
snapshots, or one that is malformed. A non-empty folder dnnh did not make (no ``.dnnh-store`` and
no ``state.json``) is refused, and nothing in it is removed: dnnh removes only files it can
prove it wrote (its own snapshots, its crash leftovers in ``images/`` of its own store).
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from dnnh.atomic import atomic_write_text, fsync_dir
from dnnh.index import HammingIndex
from dnnh.index.live import Hit, LiveIndex, sorted_by_id
from dnnh.locks import LOCK_NAME, FileLock, lock_folder
from dnnh.serve.journal import LOG, Journal, StoreError, StoreWriteError, read_records, write_durably, write_failure

STORE_FORMAT = "dnnh-serve-store/1"
STATE = "state.json"
IMAGES = "images"
MARKER = ".dnnh-store"
FIRST_SNAPSHOT = "index-000000000000.dhi"

#: A snapshot is taken (in the background) once this many records are in the log, ...
SNAPSHOT_RECORDS = 1000
#: ... or the delta index or the tombstones hold this many items.
SNAPSHOT_ITEMS = 20000

_INT64_MAX = int(np.iinfo(np.int64).max)


class Store:
    """Packed codes by integer id, searchable, durable; see the module docstring.

    Open with :meth:`open`; every public method is thread-safe. ``seed`` (called only when the
    folder holds no store yet) returns the first items as ``(packed codes, ids)``; added items get
    ids from ``first_id`` on (and always above every id held).
    """

    def __init__(self, path: Path, nbits: int, lock: FileLock, *, engine: str = "auto",
                 num_threads: int | None = None, snapshot_records: int = SNAPSHOT_RECORDS,
                 snapshot_items: int = SNAPSHOT_ITEMS, weights: str | None = None) -> None:
        self.path, self.nbits, self._lock = path, int(nbits), lock
        self.snapshot_records, self.snapshot_items = int(snapshot_records), int(snapshot_items)
        self.images_dir = path / IMAGES
        self.live = LiveIndex(self.nbits, engine=engine, num_threads=num_threads)
        self._writer = threading.Lock()     # one write (log append + apply) or snapshot at a time
        self._journal: Journal | None = None
        self._seq = 0                        # last sequence number given (written, or burnt by a failed write)
        self._snap_seq = 0                   # last record the snapshot includes
        self._next_id = 0
        self._labels: dict[int, str | None] = {}  # every alive added item (its image is on disk)
        self._index_name: str | None = None  # the snapshot file state.json names
        self._snapshot_wanted = threading.Event()
        self._closing = threading.Event()
        self._snapshot_thread: threading.Thread | None = None
        self.snapshot_error: str | None = None
        self.close_error: str | None = None  # why the final snapshot was not written (the log holds it all)
        self.replayed = 0
        self._seed_name: str | None = None
        self.weights = weights               # the digest of the weights that made the codes (None: unknown)
        #: (run database items, added items) encoded again by a reseed at open; None when none was asked for.
        self.reseeded: tuple[int, int] | None = None

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def open(cls, path: str | Path, *, nbits: int, seed: Callable[[], tuple[np.ndarray, np.ndarray]],
             first_id: int = 0, seed_name: str | None = None, background: bool = True, weights: str | None = None,
             reseed: bool = False, reencode: Callable[[list[Path]], np.ndarray] | None = None,
             **kwargs: object) -> "Store":
        """Lock, load the snapshot and replay the log of the store at ``path`` (made from ``seed``
        when the folder is new or empty). ``seed_name`` is recorded, and a later open with another
        seed name is refused (the store already holds its items).

        ``weights``: the digest of the weights that encode for this store (None: unknown, not
        checked), recorded by a new store; a store of other (or unrecorded) weights is refused,
        or with ``reseed`` encoded again: ``seed`` gives the run's items, ``reencode(paths)`` the
        packed codes of added items' stored images (see the module docstring)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise StoreError(f"store {path} is a file; give a folder")
        _classify(path)  # before the lock file is made: a folder that is not a store is left untouched
        lock = lock_folder(path, "serve store").acquire()
        store = None
        try:
            store = cls(path, nbits, lock, weights=weights, **kwargs)  # type: ignore[arg-type]
            store._load(seed, int(first_id), seed_name, reseed, reencode)
        except BaseException:
            if store is not None and store._journal is not None:
                store._journal.close()
            lock.release()
            raise
        if background:
            store._snapshot_thread = threading.Thread(target=store._snapshot_loop, name="dnnh-store-snapshot",
                                                      daemon=True)
            store._snapshot_thread.start()
        return store

    def close(self) -> None:
        """Snapshot what the log holds, stop the background thread, release the lock.

        A final snapshot that cannot be written (a full disk) loses nothing, since the log holds
        every write: ``close_error`` says so in one line and the next open replays the log."""
        if self._lock is None:
            return
        self._closing.set()
        self._snapshot_wanted.set()
        if self._snapshot_thread is not None:
            self._snapshot_thread.join()
        try:
            if self._seq > self._snap_seq:
                self.snapshot()
        except (OSError, StoreError) as exc:
            self.close_error = (f"the final snapshot of {self.path} was not written ({_one_line(exc)}); nothing is "
                                f"lost: {LOG} holds every write and the next start replays it")
        finally:
            if self._journal is not None:
                self._journal.close()
            self._lock.release()
            self._lock = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, seed: Callable[[], tuple[np.ndarray, np.ndarray]], first_id: int, seed_name: str | None,
              reseed: bool = False, reencode: Callable[[list[Path]], np.ndarray] | None = None) -> None:
        kind = _classify(self.path)  # again, under the lock
        if kind == "new":
            self._create(seed, first_id, seed_name)
            reseed = False  # just encoded
        else:
            recorded = self._open_existing(seed_name)
            if self.weights is None:  # unknown weights: nothing to check, the record stays
                self.weights = recorded
            elif recorded != self.weights and not reseed:
                raise StoreError(self._other_weights(recorded))
        self._replay_log()
        self._remove_orphan_images()
        if reseed:
            self._reseed(seed, reencode)
        self._journal = Journal(self.path / LOG)
        if reseed:
            self._journal.clear()  # the reseed's snapshot holds every record
        elif self.replayed:
            try:
                self.snapshot()
            except (OSError, StoreError) as exc:  # the log still holds the replayed writes
                self.snapshot_error = _one_line(exc)
        self._cleanup_snapshots()

    def _other_weights(self, recorded: str | None) -> str:
        """Why a store whose codes were made by the weights ``recorded`` is not opened with ``self.weights``."""
        made = ("does not record which weights made its codes (it was made before dnnh recorded them)"
                if recorded is None else f"holds codes made by weights {recorded}")
        return (f"store {self.path} {made}, but the model that encodes uploads now has weights {self.weights} (was the "
                "run retrained or resumed?): searches would compare codes of two models; start with --reseed to "
                "encode the store's items again with this model, or give a new --store")

    def _reseed(self, seed: Callable[[], tuple[np.ndarray, np.ndarray]],
                reencode: Callable[[list[Path]], np.ndarray] | None) -> None:
        """Encode every alive item again (see the module docstring) and commit it as a snapshot."""
        if self._seed_name is not None:
            raise StoreError(f"store {self.path} was started from {self._seed_name}, whose codes dnnh cannot encode "
                             "again; give a new --store (and --index built with the run's weights now)")
        alive = self.live.compact().ids
        added = np.array(sorted(self._labels), np.int64)
        seed_codes, seed_ids = seed()
        seed_codes = np.asarray(seed_codes, np.uint8).reshape(-1, self.live.nbytes)
        seed_ids = np.asarray(seed_ids, np.int64)
        keep = np.isin(seed_ids, alive) & ~np.isin(seed_ids, added)
        lost = np.setdiff1d(alive, np.concatenate([seed_ids[keep], added]))
        if len(lost):
            raise StoreError(f"store {self.path} holds {len(lost)} items neither in the run's database nor added with "
                             f"an image (ids such as {lost[:3].tolist()}), which cannot be encoded again; give a new "
                             "--store")
        added_codes = np.zeros((0, self.live.nbytes), np.uint8)
        if len(added):
            if reencode is None:
                raise StoreError(f"store {self.path} holds {len(added)} added items and nothing was given to encode "
                                 "their images again")
            try:
                added_codes = np.asarray(reencode([self.image_path(i) for i in added]), np.uint8)
            except OSError as exc:
                raise StoreError(f"store {self.path}: an added item's image cannot be read ({_one_line(exc)}); "
                                 "restore images/ from a backup or give a new --store") from None
        codes, ids = sorted_by_id(np.concatenate([seed_codes[keep], added_codes.reshape(-1, self.live.nbytes)]),
                                  np.concatenate([seed_ids[keep], added]))
        index = self.live.new_index(codes, ids)
        self._seq += 1  # a snapshot file of its own (never the one state.json names now), as a write takes a number
        try:
            self._write_snapshot(index, self._seq)  # state.json, with the new weights, is the commit point
        except OSError as exc:
            raise write_failure(self.path, exc, f"the reseed of {self.path} was not written (the store is as it "
                                                "was)") from None
        self.live.load(index)
        self.reseeded = (int(keep.sum()), len(added))

    def _create(self, seed: Callable[[], tuple[np.ndarray, np.ndarray]], first_id: int, seed_name: str | None) -> None:
        """A new store: the marker first (dnnh owns the folder from here on), then the first snapshot."""
        codes, ids = sorted_by_id(*seed())
        try:
            atomic_write_text(self.path / MARKER, json.dumps({"format": STORE_FORMAT}) + "\n")
            self.images_dir.mkdir(exist_ok=True)
            fsync_dir(self.path)
            index = self.live.new_index(codes, ids)
            self.live.load(index)
            self._next_id = max(first_id, int(ids.max()) + 1 if len(ids) else 0)
            self._seed_name = seed_name
            self._write_snapshot(index, 0)
        except OSError as exc:
            raise write_failure(self.path, exc, f"the new store {self.path} was not made") from None

    def _open_existing(self, seed_name: str | None) -> str | None:
        """Load the snapshot state.json names; returns the weights it records (None: none)."""
        state_path = self.path / STATE
        state = self._read_state(state_path)
        recorded = state.get("seed")
        if seed_name is not None and recorded is not None and recorded != seed_name:
            raise StoreError(f"store {self.path} was started from {recorded}, not {seed_name}; "
                             "drop --index to reopen it, or choose a new --store")
        self._seed_name = recorded
        index_path = self.path / state["index"]
        self._index_name = index_path.name
        try:
            index = HammingIndex.load(index_path, **self.live._index_kwargs)
        except FileNotFoundError:
            raise StoreError(f"{state_path} names {index_path.name}, which is missing; "
                             "the store was damaged: restore it from a backup or choose a new --store") from None
        if index.nbits != self.nbits:
            raise StoreError(f"store {self.path} holds {index.nbits}-bit codes but the model makes "
                             f"{self.nbits}-bit codes; choose a new --store for this run")
        self.live.load(index)
        self._snap_seq = self._seq = state["log_seq"]
        self._next_id = state["next_id"]
        self._labels = {int(k): v for k, v in state["labels"].items()}
        self.images_dir.mkdir(exist_ok=True)
        if not (self.path / MARKER).exists():  # a store made before the marker: state.json proves it ours
            atomic_write_text(self.path / MARKER, json.dumps({"format": STORE_FORMAT}) + "\n")
        return state.get("weights")

    def _read_state(self, path: Path) -> dict:
        """state.json, checked field by field: a damaged or edited one is one line, never a crash later."""
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {path}: {_one_line(exc)}") from None
        if not isinstance(state, dict) or state.get("format") != STORE_FORMAT:
            raise StoreError(f"{path} is not a dnnh serve store of format {STORE_FORMAT!r}")
        if state.get("nbits") != self.nbits:
            raise StoreError(f"store {self.path} holds {state.get('nbits')}-bit codes but the model makes "
                             f"{self.nbits}-bit codes; choose a new --store for this run")
        for key in ("index", "log_seq", "next_id"):
            if key not in state:
                raise StoreError(f"{path} lacks {key!r}; was it edited?")
        name = state["index"]
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".dhi"):
            raise StoreError(f"{path} names an index outside the store ({name!r}); was it edited?")
        for key in ("log_seq", "next_id"):
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
                raise StoreError(f"{path}: {key!r} must be an integer 0..2**63-1, got {value!r}; was it edited?")
        labels = state.setdefault("labels", {})
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and k.isdigit() and (v is None or isinstance(v, str)) for k, v in labels.items()):
            raise StoreError(f"{path}: 'labels' must map item ids to a label or null, got "
                             f"{type(labels).__name__ if not isinstance(labels, dict) else 'other values'}; was it edited?")
        if state.get("seed") is not None and not isinstance(state["seed"], str):
            raise StoreError(f"{path}: 'seed' must be a path or null, got {state['seed']!r}; was it edited?")
        if state.get("weights") is not None and not isinstance(state["weights"], str):
            raise StoreError(f"{path}: 'weights' must be a digest or null, got {state['weights']!r}; was it edited?")
        return state

    def _replay_log(self) -> None:
        """Apply the log's records that the snapshot does not include."""
        applied = 0
        for record in read_records(self.path / LOG):
            if record["seq"] <= self._snap_seq:
                continue  # already in the snapshot
            try:
                self._apply(record)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"{self.path / LOG}: record {record['seq']} is not a valid {record.get('op')!r} "
                                 f"record ({_one_line(exc)}); restore the store from a backup") from None
            self._seq = max(self._seq, record["seq"])
            applied += 1
        self.replayed = applied

    def _remove_orphan_images(self) -> None:
        """Images written for an add whose log record never landed (a crash in between)."""
        for entry in os.scandir(self.images_dir):
            stem, dot, ext = entry.name.partition(".")
            if ext == "png" and stem.isdigit() and int(stem) not in self._labels and entry.is_file():
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass

    # ------------------------------------------------------------------ reading

    @property
    def ntotal(self) -> int:
        return self.live.ntotal

    @property
    def num_threads(self) -> int:
        """Threads one search may use (the index's)."""
        return self.live.num_threads

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
        return self.live.code(item_id)

    def search(self, query: np.ndarray, k: int, radius: int | None = None) -> list[Hit]:
        """The ``k`` nearest alive items to one packed code (1, nbytes), by distance then id;
        with ``radius``, only those within it (inclusive)."""
        return self.live.search(query, k, radius)

    # ------------------------------------------------------------------ writing

    def add(self, codes: np.ndarray, images: list[bytes], label: str | None = None) -> list[int]:
        """Store items (packed codes, one PNG each) durably; returns their new ids.

        :class:`StoreWriteError` when the disk refuses: nothing of the add is kept, and its ids and
        sequence number are never given again."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or len(codes) != len(images) or not len(codes):
            raise ValueError(f"add needs one image per code, got {codes.shape} codes and {len(images)} images")
        with self._writer:
            self._check_open()
            ids = list(range(self._next_id, self._next_id + len(codes)))
            self._seq += 1  # taken now: a failed add burns its number and its ids
            self._next_id += len(codes)
            record = {"op": "add", "seq": self._seq,
                      "items": [{"id": i, "code": c.tobytes().hex(), "label": label} for i, c in zip(ids, codes)]}
            what = f"the add of {len(ids)} image{'s' if len(ids) > 1 else ''} was not stored (nothing of it was kept)"
            written: list[Path] = []
            try:
                for item_id, png in zip(ids, images):
                    written.append(self.image_path(item_id))
                    write_durably(written[-1], png)
                fsync_dir(self.images_dir)
                self._journal.append(record, what)  # type: ignore[union-attr]
            except OSError as exc:
                _unlink_all(written)
                raise write_failure(written[-1] if written else self.images_dir, exc, what) from None
            except StoreWriteError:
                _unlink_all(written)
                raise
            self._apply(record)
            self._after_write()
        return ids

    def delete(self, item_id: int) -> bool:
        """Remove an item durably; False when no alive item has that id."""
        with self._writer:
            self._check_open()
            if self.code(item_id) is None:
                return False
            self._seq += 1
            record = {"op": "delete", "seq": self._seq, "id": int(item_id)}
            self._journal.append(record, f"the delete of item {int(item_id)} was not stored")  # type: ignore[union-attr]
            self._apply(record)
            self._after_write()
        return True

    def _check_open(self) -> None:
        if self._journal is None or self._journal.closed:
            if self._journal is not None and self._journal.broken:
                raise StoreWriteError(self._journal.broken)
            raise StoreError(f"store {self.path} is closed")

    def _apply(self, record: dict) -> None:
        """Apply one log record in memory, idempotently (replay may meet records twice)."""
        op = record.get("op")
        if op == "add":
            items = record["items"]
            if items:
                ids = np.array([int(it["id"]) for it in items], np.int64)
                codes = np.stack([np.frombuffer(bytes.fromhex(it["code"]), np.uint8) for it in items])
                if codes.shape[1] != self.live.nbytes:
                    raise StoreError(f"{self.path / LOG} holds a code of {codes.shape[1]} bytes; the store's are "
                                     f"{self.live.nbytes}")
                labels = {int(it["id"]): it.get("label") for it in items}
                for item_id in self.live.add(codes, ids):
                    self._labels[int(item_id)] = labels[int(item_id)]
                self._next_id = max(self._next_id, int(ids.max()) + 1)
        elif op == "delete":
            item_id = int(record["id"])
            self.live.remove(item_id)
            self._labels.pop(item_id, None)
            try:
                os.unlink(self.image_path(item_id))
            except OSError:
                pass
        else:
            raise StoreError(f"{self.path / LOG} holds a record of unknown kind {op!r}; "
                             "was it written by a newer dnnh?")

    def _after_write(self) -> None:
        delta, tombs = self.live.pending
        if (self._seq - self._snap_seq >= self.snapshot_records or delta >= self.snapshot_items
                or tombs >= self.snapshot_items):
            self._snapshot_wanted.set()

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> None:
        """Fold the log into a new index snapshot (atomically, durably), then empty the log."""
        with self._writer:
            if self._seq == self._snap_seq and (self.path / STATE).exists():
                return
            seq = self._seq
            # built off to the side (searches go on against the old parts), written, then swapped in
            self.live.compact(persist=lambda index: self._write_snapshot(index, seq))
            if self._journal is not None:
                self._journal.clear()  # only now: the snapshot holding these records is durable
            self._cleanup_snapshots()

    def _write_snapshot(self, index: HammingIndex, seq: int) -> None:
        name = f"index-{seq:012d}.dhi"
        index.save(self.path / name)
        state = {"format": STORE_FORMAT, "nbits": self.nbits, "index": name, "log_seq": seq,
                 "next_id": self._next_id, "seed": self._seed_name, "weights": self.weights,
                 "labels": {str(k): v for k, v in sorted(self._labels.items())}}
        atomic_write_text(self.path / STATE, json.dumps(state, indent=1))  # fsyncs the folder
        self._snap_seq, self._index_name = seq, name

    def _cleanup_snapshots(self) -> None:
        """Remove the snapshot files state.json no longer names."""
        for entry in os.scandir(self.path):
            if _SNAPSHOT_NAME.fullmatch(entry.name) and entry.name != self._index_name:
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
                self.snapshot_error = _one_line(exc)


_SNAPSHOT_NAME = re.compile(r"index-\d{12}\.dhi")


def _classify(path: Path) -> str:
    """"new" (missing or empty: make a store) or "store" (dnnh's own); else one line refusing it.

    A folder is dnnh's when it holds ``state.json`` or the ``.dnnh-store`` marker. A marked folder
    without ``state.json`` is a store whose creation was cut short (made again) unless it holds
    anything written after creation: then state.json was lost, and starting over would drop
    acknowledged writes."""
    try:
        names = set(os.listdir(path)) - {LOCK_NAME}
    except FileNotFoundError:
        return "new"
    if STATE in names:
        return "store"
    if MARKER not in names:
        if not names:
            return "new"
        raise StoreError(f"{path} is not empty and is not a dnnh store (it has neither {STATE} nor {MARKER}); "
                         "dnnh never writes into or removes files it did not make: give an empty or new --store"
                         + (f", or restore {STATE} from a backup" if names & {LOG, IMAGES} else ""))
    held = []
    if (path / LOG).exists() and (path / LOG).stat().st_size:
        held.append(f"a log of {(path / LOG).stat().st_size:,} bytes")
    if (path / IMAGES).is_dir() and any(os.scandir(path / IMAGES)):
        held.append("added images")
    if any(_SNAPSHOT_NAME.fullmatch(n) and n != FIRST_SNAPSHOT for n in names):
        held.append("snapshots")
    if held:
        raise StoreError(f"store {path} has lost its {STATE} but holds {' and '.join(held)}: starting over would "
                         f"drop acknowledged writes; restore {STATE} from a backup or give a new --store")
    return "new"


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and not isinstance(exc, StoreError) else (text[0] if text else type(exc).__name__)
