"""Scanning the distinct codes without numba: numpy's popcount, or FAISS when it is installed.

Both report candidate triples (query, code, distance) that :mod:`dnnh.index.expand` turns into
items. For k-NN the candidates must hold every code at distance <= the k-th item's distance.
Duplicated codes were grouped before the scan, so a learned code set scans a few thousand codes
however many items share them.
"""

from __future__ import annotations

import numpy as np

from dnnh.index.groups import Groups
from dnnh.index.layout import word_distances

SCAN_BLOCK = 1 << 22  # distance-matrix entries per block (16 MB of int32)

try:  # optional extra "faiss"
    import faiss as _faiss
except ImportError:  # pragma: no cover - depends on the environment
    _faiss = None

HAVE_FAISS = _faiss is not None


def query_blocks(nq: int, m: int, nthreads: int) -> list[tuple[int, int]]:
    """Query row ranges small enough for a (rows, m) distance block, at least one per thread."""
    rows = max(1, min(SCAN_BLOCK // max(m, 1), -(-nq // max(nthreads, 1))))
    return [(s, min(s + rows, nq)) for s in range(0, nq, rows)]


def knn_scan_block(groups: Groups, queries: np.ndarray, k: int, nbits: int, row0: int) -> tuple[np.ndarray, ...]:
    """Distances to every distinct code, then keep the codes up to the k-th item's distance."""
    dist = word_distances(queries, groups.codes).astype(np.int64)
    nb = nbits + 1
    rows = np.arange(len(queries))
    hist = np.bincount((rows[:, None] * nb + dist).ravel(), weights=np.tile(groups.sizes, len(queries)),
                       minlength=len(queries) * nb).reshape(len(queries), nb)
    reach = np.cumsum(hist, axis=1) >= k
    dstar = np.where(reach.any(axis=1), reach.argmax(axis=1), nbits)
    q, c = np.nonzero(dist <= dstar[:, None])
    return q + row0, c, dist[q, c]


def range_scan_block(groups: Groups, queries: np.ndarray, radius: int, row0: int) -> tuple[np.ndarray, ...]:
    dist = word_distances(queries, groups.codes)
    q, c = np.nonzero(dist <= radius)
    return q + row0, c, dist[q, c].astype(np.int64)


class FaissScan:
    """IndexBinaryFlat over the distinct codes (padded to whole 64-bit words, as FAISS wants d % 8 == 0).

    FAISS ranks codes, not items, and cuts ties at the k-th code arbitrarily, so where the k-th
    item's distance equals the last code returned, a range search at that distance completes the level.
    """

    def __init__(self, groups: Groups) -> None:
        if _faiss is None:
            raise ImportError("the FAISS engine needs faiss-cpu (pip install 'dnnh[faiss]')")
        self.groups = groups
        self.index = _faiss.IndexBinaryFlat(groups.codes.shape[1] * 64)
        self.index.add(np.ascontiguousarray(groups.codes).view(np.uint8))

    def nbytes(self) -> int:
        return int(self.groups.codes.nbytes)

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        g = self.groups
        qb = np.ascontiguousarray(queries).view(np.uint8)
        kk = min(k, g.ndistinct)
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
