"""``HammingIndex``: exact Hamming-distance search over packed binary codes, FAISS-shaped.

It answers exactly what a flat scan answers (same distances, same ids, ties broken by insertion
order) but does far less work on learned codes: items with identical codes are grouped, only the
distinct codes are scanned or looked up, and small Hamming balls are probed in a hash table or
through multi-index hashing instead of scanning at all. See :mod:`dnnh.index.cost` for how the
strategy is chosen and :mod:`dnnh.index.fileformat` for the file.

>>> import numpy as np
>>> from dnnh.codes import pack_bits
>>> index = HammingIndex(12)
>>> index.add(pack_bits(np.array([[0] * 12, [1] + [0] * 11, [0] * 12])), ids=np.array([7, 8, 9]))
>>> distances, ids = index.search(pack_bits(np.array([[0] * 12])), k=4)
>>> distances.tolist(), ids.tolist()
([[0, 0, 1, -1]], [[7, 9, 8, -1]])
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from dnnh.index import fileformat, search
from dnnh.index.cost import KNN_STRATEGIES, STRATEGIES, RangePlan
from dnnh.index.groups import TRIM_FROM, Groups, drop, merge, release_scratch
from dnnh.index.layout import check_nbits, check_packed, n_words, to_bytes, to_words

_I32 = np.iinfo(np.int32).max
TRIM_QUERIES = 256  # a batch from which a search hands its scratch memory back (see _after_batch)
_INT64_MAX = int(np.iinfo(np.int64).max)


def _as_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_default_ids(start: int, n: int) -> None:
    """Raise unless ``n`` default ids from ``start`` on fit int64 (after an explicit id near 2**63-1 they do not)."""
    if start + n - 1 > _INT64_MAX:
        raise ValueError(f"cannot give {n} items default ids: they would continue after the largest id held "
                         f"so far ({start - 1}) past 2**63-1, the largest int64 id; pass ids= explicitly, "
                         "or reset() the index")


class HammingIndex:
    """Exact k-NN and radius search over ``nbits``-bit codes packed by :func:`dnnh.codes.pack_bits`.

    ``kernel`` picks the scan kernel ("auto": numba if installed, else FAISS, else numpy; all give
    identical answers); ``engine=`` is its old name, still accepted, and :attr:`engine` still reads
    it (the encoder's backends are "engines"; the index's scan kernels are not). ``num_threads``
    bounds the threads a batch of queries uses (default: the CPUs this process may run on, or
    ``DNNH_NUM_THREADS``).

    Not safe to modify (add, remove, reset) while another thread searches the same index.
    """

    def __init__(self, nbits: int, *, kernel: str = "auto", num_threads: int | None = None,
                 engine: str | None = None) -> None:
        self.nbits = check_nbits(nbits)
        kernel = search.kernel_argument(kernel, engine)
        self.kernel = search.resolve_kernel(kernel)
        self._kernel_auto = kernel == "auto"
        self.num_threads = search.default_threads() if num_threads is None else _as_int(num_threads, "num_threads", 1)
        self.reset()

    # ------------------------------------------------------------------ contents

    def reset(self) -> None:
        """Remove every item; default ids start again from 0."""
        self._groups = Groups.empty(n_words(self.nbits))
        self._pending: list[np.ndarray] = []
        self._ids: np.ndarray | None = None       # None: ids equal positions 0..ntotal-1
        self._pending_ids: list[np.ndarray] = []
        self._next_id = 0
        self._tables: search.Tables | None = None

    @property
    def ntotal(self) -> int:
        """Items stored."""
        return self._groups.ntotal + sum(len(p) for p in self._pending)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def ndistinct(self) -> int:
        """Distinct codes among the items, the size of what a scan walks."""
        return self._commit().ndistinct

    @property
    def ids(self) -> np.ndarray:
        """Ids of all items in insertion order (int64, a copy)."""
        self._commit()
        return np.arange(self.ntotal, dtype=np.int64) if self._ids is None else self._ids.astype(np.int64)

    def add(self, codes: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Append items. ``codes``: (n, ceil(nbits/8)) uint8 as ``pack_bits`` makes them, nothing else.

        ``ids`` (n non-negative integers; -1 marks missing results) default to insertion order:
        0, 1, 2, ... continuing after the largest id the index has held since the last reset, so a
        default id is never reused after a remove. Ids need not be unique; ``remove`` drops every
        item with a given id.
        Grouping is deferred to the next search, so many small adds cost one regrouping.
        """
        codes = check_packed(codes, self.nbits, "codes")
        n = len(codes)
        if ids is None and n:
            check_default_ids(self._next_id, n)
        if n == 0:
            if ids is not None:
                self._check_ids(ids, n)
            return
        new_ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64) if ids is None else self._check_ids(ids, n)
        ntotal = self.ntotal
        identity = self._ids is None and not self._pending_ids
        if not (identity and new_ids[0] == ntotal and bool((np.diff(new_ids) == 1).all())):
            if identity:  # ids stop being the positions: store them from now on
                self._pending_ids.append(np.arange(ntotal, dtype=np.int64))
            self._pending_ids.append(new_ids)
        self._next_id = max(self._next_id + (n if ids is None else 0), int(new_ids.max()) + 1)
        self._pending.append(to_words(codes, self.nbits))
        self._tables = None

    def remove(self, ids: object) -> int:
        """Drop every item whose id is in ``ids`` (an int or a 1-D integer array); returns how many."""
        arr = np.atleast_1d(np.asarray(ids))
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise TypeError(f"ids to remove must be an integer or a 1-D integer array, got {arr.dtype} shape {arr.shape}")
        self._commit()
        item_ids = self.ids
        alive = ~np.isin(item_ids, arr)
        removed = int((~alive).sum())
        if removed:
            self._groups = drop(self._groups, alive)
            self._ids = self._narrow(item_ids[alive])
            self._tables = None
        return removed

    @classmethod
    def from_codeset(cls, codeset: object, **kwargs: object) -> "HammingIndex":
        """An index over a :class:`dnnh.codes.CodeSet`, searching returns its ``ids``."""
        index = cls(codeset.nbits, **kwargs)  # type: ignore[attr-defined]
        index.add(codeset.codes, ids=codeset.ids)  # type: ignore[attr-defined]
        return index

    # ------------------------------------------------------------------ search

    def search(self, queries: np.ndarray, k: int, *, strategy: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """The k nearest items of each query: ``(distances, ids)``, int32 and int64 of shape (nq, k).

        Rows ascend by distance; equal distances keep insertion order (FAISS's flat order). Where
        fewer than k items exist the row is padded with id -1 and distance -1. ``strategy``: "auto"
        probes the nearest Hamming balls first when that is cheap, "scan" always scans.
        """
        k = _as_int(k, "k", 1)
        if strategy not in KNN_STRATEGIES:
            raise ValueError(f"strategy must be one of {KNN_STRATEGIES} for search, got {strategy!r}")
        q = self._check_queries(queries)
        g = self._commit()
        if g.ntotal == 0 or len(q) == 0:
            return np.full((len(q), k), -1, np.int32), np.full((len(q), k), -1, np.int64)
        dist, pos = search.knn(self._prepared(), q, k, self._kernel_now(), strategy, self.num_threads)
        ids = self._to_ids(pos)
        del pos
        self._after_batch(len(q))
        return dist, ids

    def range_search(self, queries: np.ndarray, radius: int, *, strategy: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every item within ``radius`` of each query, INCLUSIVE (distance <= radius).

        FAISS's binary range search is strict (distance < radius): ours at r equals FAISS's at r + 1.
        Returns FAISS's layout ``(lims, distances, ids)``: query i's results are
        ``distances[lims[i]:lims[i+1]]`` (int32) and ``ids[...]`` (int64), ordered by distance,
        then by code, then insertion order: within one distance the items sharing a code are
        adjacent and in insertion order, and codes come in ascending order (a code's 64-bit words
        compared in turn, the first word, bits 0-63, first; a code of up to 64 bits is its packed
        bytes read as one little-endian unsigned integer). Every kernel and strategy gives this
        order; it is what a scan of the distinct codes meets, so results are written straight into
        place and no item is ever sorted (sort by ``(distance, id)`` yourself if you need that).
        ``strategy``: "auto" (cheapest by estimated cost), "scan", "probe" (look up every code in
        the ball) or "mih" (multi-index hashing); all give the same answer.
        """
        radius = _as_int(radius, "radius", 0)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        q = self._check_queries(queries)
        g = self._commit()
        if g.ntotal == 0 or len(q) == 0:
            return np.zeros(len(q) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        out = search.range_search(self._prepared(), q, min(radius, self.nbits), self._kernel_now(), strategy,
                                  self.num_threads, self._ids)
        self._after_batch(len(q))
        return out

    def plan_range(self, radius: int) -> RangePlan:
        """The strategy ``range_search(..., strategy="auto")`` would use, with the estimated costs."""
        radius = _as_int(radius, "radius", 0)
        if self._commit().ntotal == 0:
            return RangePlan("scan")
        return search.range_plan(self._prepared(), min(radius, self.nbits), self._kernel_now())

    def prepare(self) -> "HammingIndex":
        """Group pending items and build the lookup tables a k-NN search needs, now; returns self.

        Searches build these lazily on first need; call this before handing the index to
        concurrent readers (:class:`dnnh.index.live.LiveIndex` does), so no search regroups or
        pays for the tables.
        """
        if self._commit().ntotal:
            t = self._prepared()
            if self._kernel_now() == "numba":
                search.kernels()
                t.directory(), t.planes(), t.prefixes()
            elif self.kernel == "faiss":
                t.faiss()
            else:
                t.sorted()
        return self

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` atomically (temporary file renamed into place)."""
        g = self._commit()
        # The header holds an int64; "exhausted" (2**63) is stored as 2**63-1 and recovered on load.
        fileformat.save(path, fileformat.Stored(self.nbits, g, self._ids, min(self._next_id, _INT64_MAX)))

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False, verify: bool = True, **kwargs: object) -> "HammingIndex":
        """Read an index written by :meth:`save`; ``mmap=True`` maps the file instead of reading it.

        A memory-mapped index pages codes in on demand (copy-on-write: the file never changes), so
        an index larger than RAM can be searched. Raises :class:`IndexFormatError` (a ValueError)
        for a truncated, corrupt or wrong-version file.
        """
        stored = fileformat.load(path, use_mmap=mmap, verify=verify)
        index = cls(stored.nbits, **kwargs)  # type: ignore[arg-type]
        index._groups = stored.groups
        index._ids = stored.ids
        index._next_id = stored.next_id
        if stored.next_id == _INT64_MAX and stored.ids is not None and len(stored.ids) \
                and int(stored.ids.max()) == _INT64_MAX:
            index._next_id = _INT64_MAX + 1  # see save: the largest id is held, no default id is left
        return index

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held, by structure: what the items need and every lookup table built so far.

        ``codes`` (the one sorted copy of the distinct codes), ``offsets`` (bucket bounds; 0 where
        every code has one item), ``members`` (positions, int32 below 2**31 items), ``ids`` (0 where
        ids are the positions, int32 where they fit), then the lazy tables: ``directory`` (lookups
        and prefix-ball radius search), ``prefix_bounds`` (the scan's block bounds), ``planes``
        (multi-word codes transposed for the vector scan), ``mih``, ``sorted_keys`` (numpy kernel),
        ``faiss`` (FAISS kernel's copy) and ``masks``; ``total`` sums them.
        """
        g = self._commit()
        parts = {"codes": int(g.codes.nbytes), "offsets": int(g.bucket_offsets.nbytes),
                 "members": int(g.members.nbytes), "ids": 0 if self._ids is None else int(self._ids.nbytes)}
        parts.update(self._tables.memory_bytes() if self._tables is not None else {})
        parts["total"] = sum(parts.values())
        return parts

    def memory_usage(self) -> dict[str, int]:
        """:meth:`memory_bytes`, with the lazy tables summed as ``tables`` (the older breakdown)."""
        parts = self.memory_bytes()
        out = {key: parts[key] for key in ("codes", "offsets", "members", "ids")}
        out["tables"] = parts["total"] - sum(out.values())
        out["total"] = parts["total"]
        return out

    def codes(self) -> np.ndarray:
        """Packed codes of all items in insertion order (what ``add`` received)."""
        return to_bytes(self._commit().item_codes(), self.nbits)

    @property
    def engine(self) -> str:
        """The old name of :attr:`kernel`, for code written before the rename."""
        return self.kernel

    def __repr__(self) -> str:
        return f"HammingIndex(nbits={self.nbits}, ntotal={self.ntotal}, kernel={self.kernel!r})"

    # ------------------------------------------------------------------ internals

    def _commit(self) -> Groups:
        regrouped = 0
        if self._pending:
            self._groups = merge(self._groups, self._pending)
            self._pending = []
            self._tables = None
            regrouped = self._groups.ntotal
        if self._pending_ids:
            base = [] if self._ids is None else [self._ids]
            self._ids = self._narrow(np.concatenate(base + self._pending_ids))
            self._pending_ids = []
        if regrouped >= TRIM_FROM:
            release_scratch()
        return self._groups

    def _after_batch(self, nq: int) -> None:
        """After a large batch on a large index, hand the search's freed buffers back to the OS.

        The scan threads' candidate buffers (about 1 MB a block of queries) stay resident in
        glibc's per-thread arenas otherwise: 5 bytes a code on 1M codes, measured here. Trimming
        costs about 0.2 ms, nothing next to a batch of hundreds of queries; single queries skip it.
        """
        if nq >= TRIM_QUERIES and self._groups.ndistinct >= TRIM_FROM:
            release_scratch()

    def _kernel_now(self) -> str:
        """The kernel to run; an "auto" index whose numba fails to import moves to the next kernel."""
        if self.kernel == "numba":
            try:
                search.kernels()
            except ImportError:
                if not self._kernel_auto:
                    raise
                self.kernel = search.available_kernels()[0]
        return self.kernel

    def _prepared(self) -> search.Tables:
        if self._tables is None:
            ids = 0 if self._ids is None else int(self._ids.nbytes)
            self._tables = search.Tables(self._groups, self.nbits, self._groups.nbytes() + ids)
        return self._tables

    def _to_ids(self, pos: np.ndarray) -> np.ndarray:
        if self._ids is None:
            return pos
        return np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1).astype(np.int64, copy=False)

    @staticmethod
    def _narrow(ids: np.ndarray) -> np.ndarray:
        """Ids are kept as int32 when they fit: half the memory for the usual dataset indices."""
        if len(ids) and int(ids.max()) <= _I32:
            return ids.astype(np.int32, copy=False)
        return ids.astype(np.int64, copy=False)

    @staticmethod
    def _check_ids(ids: object, n: int) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1 or len(arr) != n:
            raise ValueError(f"ids must be a 1-D array with one id per code ({n}), got shape {arr.shape}")
        if n and arr.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        if n and arr.dtype.kind == "u" and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValueError("ids must fit in int64")
        arr = arr.astype(np.int64)
        if n and int(arr.min()) < 0:
            raise ValueError(f"ids must be >= 0 (-1 marks a missing result), got {int(arr.min())}")
        return arr

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        return to_words(check_packed(queries, self.nbits, "queries"), self.nbits)
