"""``LiveIndex``: a searchable set of codes that changes while it is searched, readers never waiting long.

A :class:`~dnnh.index.HammingIndex` is fast to search but not safe to change while another thread
searches it, and regrouping a million codes for every add would stall every search. A live index
keeps three parts behind one readers-writer lock:

- ``main``: a prepared ``HammingIndex`` that never changes between compactions (items sorted by id);
- ``delta``: a small ``HammingIndex`` of the items added since, re-prepared on every add (cheap:
  it is small);
- tombstones: ids of ``main`` items removed since (searches filter them out).

A search holds the read side while it queries ``main`` and ``delta`` and merges the two answers
by (distance, id). :meth:`compact` builds the folded index off to the side (searches go on
against the old parts), hands it to a ``persist`` callback (a store writes its snapshot there)
and swaps it in under the write side, so a search never sees a half-applied change and never
waits for a regrouping. Writers (add, remove, compact) are serialized by a second lock.

Ids added must be larger than every id held (insertion order is id order), as a store that hands
out increasing ids guarantees; results are then ordered by distance, then id.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dnnh.index.index import HammingIndex
from dnnh.index.search import kernel_argument
from dnnh.locks import RWLock

_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class Hit:
    id: int
    distance: int


def sorted_by_id(codes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``codes`` and ``ids`` reordered by id (stable), as ``main`` holds them."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return np.ascontiguousarray(np.asarray(codes)[order]), ids[order]


class LiveIndex:
    """Packed ``nbits``-bit codes by integer id: search, add, remove and compact from any thread."""

    def __init__(self, nbits: int, *, kernel: str = "auto", num_threads: int | None = None,
                 engine: str | None = None) -> None:
        """``kernel`` as :class:`HammingIndex` takes it (``engine=``, its old name, too)."""
        self.nbits = int(nbits)
        self.nbytes = (self.nbits + 7) // 8
        self._index_kwargs = {"kernel": kernel_argument(kernel, engine), "num_threads": num_threads}
        self._rw = RWLock()
        self._writer = threading.Lock()
        self._install(self.new_index(), np.zeros(0, np.int64), np.zeros((0, self.nbytes), np.uint8))

    # ------------------------------------------------------------------ building

    def new_index(self, codes: np.ndarray | None = None, ids: np.ndarray | None = None) -> HammingIndex:
        """A prepared ``HammingIndex`` of ``codes`` under ``ids`` (empty without them)."""
        index = HammingIndex(self.nbits, **self._index_kwargs)
        if codes is not None and len(codes):
            index.add(codes, ids=ids)
        return index.prepare()

    def load(self, index: HammingIndex) -> None:
        """Replace everything by ``index``'s items (re-sorted by id when they are not)."""
        if index.nbits != self.nbits:
            raise ValueError(f"the index holds {index.nbits}-bit codes, this live index {self.nbits}-bit ones")
        ids = index.ids
        codes = index.codes() if index.ntotal else np.zeros((0, self.nbytes), np.uint8)
        if len(ids) > 1 and bool((np.diff(ids) < 0).any()):  # written by hand or another tool: re-sort
            codes, ids = sorted_by_id(codes, ids)
            index = self.new_index(codes, ids)
        else:
            index.prepare()
        with self._writer, self._rw.write():
            self._install(index, ids, codes)

    def _install(self, main: HammingIndex, ids: np.ndarray, codes: np.ndarray) -> None:
        self._main, self._main_ids = main, np.asarray(ids, np.int64)
        self._main_codes = np.asarray(codes, np.uint8).reshape(-1, self.nbytes)
        self._tomb: set[int] = set()
        self._tomb_ids = np.zeros(0, np.int64)  # the tombstones as an array, for searches to filter by
        self._delta = self.new_index()
        self._delta_codes: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ reading

    @property
    def ntotal(self) -> int:
        with self._rw.read():
            return len(self._main_ids) - len(self._tomb) + len(self._delta_codes)

    @property
    def num_threads(self) -> int:
        return self._main.num_threads

    @property
    def pending(self) -> tuple[int, int]:
        """``(items in delta, tombstones)``: how much a compaction would fold."""
        return len(self._delta_codes), len(self._tomb)

    def code(self, item_id: int) -> np.ndarray | None:
        """The packed code (1, nbytes) of an alive item, or None when no item has that id."""
        if not 0 <= item_id <= _INT64_MAX:
            return None
        with self._rw.read():
            return self._code_locked(int(item_id))

    def __contains__(self, item_id: int) -> bool:
        return self.code(item_id) is not None

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

    def add(self, codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Add items not held yet (ids already alive are skipped: replaying a log is idempotent);
        returns the ids added."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        ids = np.asarray(ids, np.int64)
        if codes.ndim != 2 or codes.shape[1] != self.nbytes or len(codes) != len(ids):
            raise ValueError(f"add needs ({len(ids)}, {self.nbytes}) packed codes, one per id; got {codes.shape}")
        with self._writer:
            new = np.array([self._code_locked(int(i)) is None for i in ids], bool)
            codes, ids = codes[new], ids[new]
            if len(ids):
                with self._rw.write():
                    self._delta.add(codes, ids=ids)
                    self._delta.prepare()  # regroup now, under the lock: searches only read
                    for item_id, code in zip(ids, codes):
                        self._delta_codes[int(item_id)] = code
        return ids

    def remove(self, item_id: int) -> bool:
        """Remove one item; False when no alive item has that id."""
        item_id = int(item_id)
        with self._writer:
            if self._code_locked(item_id) is None:
                return False
            with self._rw.write():
                if item_id in self._delta_codes:
                    self._delta.remove(item_id)
                    self._delta.prepare()
                    del self._delta_codes[item_id]
                else:
                    self._tomb.add(item_id)
                    self._tomb_ids = np.append(self._tomb_ids, np.int64(item_id))
        return True

    def compact(self, persist: Callable[[HammingIndex], None] | None = None) -> HammingIndex:
        """Fold ``delta`` and the tombstones into a new ``main``, built off to the side; ``persist``
        (if given) is called with it before it is swapped in (an error there leaves everything as
        it was). Returns the new ``main``."""
        with self._writer:
            keep = ~np.isin(self._main_ids, self._tomb_ids)
            delta_ids = np.array(sorted(self._delta_codes), np.int64)
            ids = np.concatenate([self._main_ids[keep], delta_ids])
            delta = [np.stack([self._delta_codes[int(i)] for i in delta_ids])] if len(delta_ids) else []
            codes = np.concatenate([self._main_codes[keep], *delta])
            if len(ids) > 1 and bool((np.diff(ids) < 0).any()):
                codes, ids = sorted_by_id(codes, ids)
            index = self.new_index(codes, ids)
            if persist is not None:
                persist(index)
            with self._rw.write():
                self._install(index, ids, codes)
        return index
