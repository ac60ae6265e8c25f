"""Scanning the distinct codes without numba: numpy's popcount, or FAISS when it is installed.

Both report candidate triples (query, code, distance) that :mod:`dnnh.index.expand` turns into
items. For k-NN the candidates must hold every code at distance <= the k-th item's distance.
Duplicated codes were grouped before the scan, so a learned code set scans a few thousand codes
however many items share them.
"""

from __future__ import annotations

import importlib.util
from typing import Iterator

import numpy as np

from dnnh.index.groups import Groups
from dnnh.index.layout import word_distances

SCAN_BLOCK = 1 << 22  # distance-matrix entries per block (16 MB of int32)
ROW_SCAN_FROM = 1 << 16  # from this many distinct codes, scan one query at a time in reused buffers



def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):  # e.g. blocked with sys.modules[name] = None
        return False


HAVE_FAISS = _installed("faiss")  # optional extra "faiss", imported when first used


def query_blocks(nq: int, m: int, nthreads: int) -> list[tuple[int, int]]:
    """Query row ranges small enough for a (rows, m) distance block, at least one per thread."""
    rows = max(1, min(SCAN_BLOCK // max(m, 1), -(-nq // max(nthreads, 1)), 64))
    return [(s, min(s + rows, nq)) for s in range(0, nq, rows)]


def _rows(codes: np.ndarray, queries: np.ndarray) -> Iterator[np.ndarray]:
    """Distances from each query to every code, one query at a time, in buffers reused across rows.

    Fresh (rows, m) temporaries cost more in page faults than the popcounts themselves for a
    million codes (7 ms against 1 ms a query measured here).
    """
    m, nw = codes.shape
    x = np.empty(m, np.uint64)
    d = np.empty(m, np.uint8 if nw * 64 < 256 else np.uint16)
    part = np.empty(m, np.uint8) if nw > 1 else d
    for q in queries:
        np.bitwise_xor(codes[:, 0], q[0], out=x)
        np.bitwise_count(x, out=d)
        for w in range(1, nw):
            np.bitwise_xor(codes[:, w], q[w], out=x)
            np.bitwise_count(x, out=part)
            np.add(d, part, out=d)
        yield d


def _kth_smallest(d: np.ndarray, kk: int, nbits: int) -> int:
    """Smallest t with at least kk distances <= t, by bisection over the few possible distances."""
    lo, hi = 0, nbits
    while lo < hi:
        mid = (lo + hi) // 2
        if np.count_nonzero(d <= mid) >= kk:
            hi = mid
        else:
            lo = mid + 1
    return lo


def knn_scan_block(groups: Groups, queries: np.ndarray, k: int, nbits: int, row0: int) -> tuple[np.ndarray, ...]:
    """Distances to every distinct code, keeping those up to the k-th nearest code's distance.

    Every code holds at least one item, so the k-th item is no farther than the k-th code: the
    codes within that distance include all the answer needs, with no weighted histogram.
    """
    kk = min(k, groups.ndistinct)
    if groups.ndistinct < ROW_SCAN_FROM:
        dist = word_distances(queries, groups.codes)
        kth = np.partition(dist, kk - 1, axis=1)[:, kk - 1]
        q, c = np.nonzero(dist <= kth[:, None])
        return q + row0, c, dist[q, c].astype(np.int64)
    qs, cs, ds = [], [], []
    for r, d in enumerate(_rows(groups.codes, queries)):
        c = np.flatnonzero(d <= _kth_smallest(d, kk, nbits))
        qs.append(np.full(len(c), row0 + r))
        cs.append(c)
        ds.append(d[c].astype(np.int64))
    return np.concatenate(qs), np.concatenate(cs), np.concatenate(ds)


def range_scan_block(groups: Groups, queries: np.ndarray, radius: int, row0: int) -> tuple[np.ndarray, ...]:
    if groups.ndistinct < ROW_SCAN_FROM:
        dist = word_distances(queries, groups.codes)
        q, c = np.nonzero(dist <= radius)
        return q + row0, c, dist[q, c].astype(np.int64)
    qs, cs, ds = [], [], []
    for r, d in enumerate(_rows(groups.codes, queries)):
        c = np.flatnonzero(d <= radius)
        qs.append(np.full(len(c), row0 + r))
        cs.append(c)
        ds.append(d[c].astype(np.int64))
    return np.concatenate(qs), np.concatenate(cs), np.concatenate(ds)


class FaissScan:
    """IndexBinaryFlat over the distinct codes (padded to whole 64-bit words, as FAISS wants d % 8 == 0).

    FAISS ranks codes, not items, and cuts ties at its last code arbitrarily. Asking for 2k codes
    usually leaves the k-th item's distance below the last distance returned, so that level is
    complete; where it is not, a range search at that distance completes it.
    """

    def __init__(self, groups: Groups) -> None:
        try:
            import faiss
        except ImportError as exc:
            raise ImportError(f"the FAISS kernel needs faiss-cpu (pip install 'dnnh[faiss]'): {exc}") from exc
        self.groups = groups
        self.index = faiss.IndexBinaryFlat(groups.codes.shape[1] * 64)
        self.index.add(np.ascontiguousarray(groups.codes).view(np.uint8))

    def nbytes(self) -> int:
        return int(self.groups.codes.nbytes)

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        g = self.groups
        qb = np.ascontiguousarray(queries).view(np.uint8)
        kk = min(2 * k, g.ndistinct)
        dist, code = self.index.search(qb, kk)
        sizes = g.sizes[code]
        reach = np.cumsum(sizes, axis=1) >= k
        complete = kk == g.ndistinct
        dstar = np.where(reach.any(axis=1), dist[np.arange(len(qb)), reach.argmax(axis=1)], np.iinfo(np.int32).max)
        redo = np.flatnonzero(~complete & (dstar >= dist[:, -1]))
        keep = dist <= dstar[:, None]
        keep[redo] = False
        q, j = np.nonzero(keep)
        parts = [(q, code[q, j].astype(np.int64), dist[q, j].astype(np.int64))]
        if len(redo):
            parts.append(self._range(qb[redo], dist[redo, -1].astype(np.int64), redo))
        return tuple(np.concatenate(p) for p in zip(*parts))

    def range(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, ...]:
        qb = np.ascontiguousarray(queries).view(np.uint8)
        return self._range(qb, np.full(len(qb), radius, np.int64), np.arange(len(qb)))

    def _range(self, qb: np.ndarray, radii: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        qs, cs, ds = [], [], []
        for r in np.unique(radii):  # FAISS's radius is strict: < r + 1 is our inclusive <= r
            sel = np.flatnonzero(radii == r)
            lims, dist, code = self.index.range_search(qb[sel], int(r) + 1)
            qs.append(rows[sel][np.repeat(np.arange(len(sel)), np.diff(lims.astype(np.int64)))])
            cs.append(code.astype(np.int64))
            ds.append(dist.astype(np.int64))
        return np.concatenate(qs), np.concatenate(cs), np.concatenate(ds)
