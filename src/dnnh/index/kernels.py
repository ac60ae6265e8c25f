"""numba kernels for the index (the optional ``fast`` extra); import only when numba is installed.

Each kernel handles a block of queries and releases the GIL, so the index runs blocks on a thread
pool (one thread a core) without numba's own threading layer. The hot loops never reassign an
array: a loop-carried array variable made numba refcount it on every iteration (a 40x slowdown
measured here), so buffers that may grow are grown by the caller of the loop that fills them.

Inputs are the arrays of :mod:`dnnh.index.groups`: ``codes`` (m, nwords) uint64, ``offsets``
(m + 1) and ``members`` (n) int32/int64; queries (nq, nwords) uint64.

All kernels live in this one file on purpose: numba's on-disk cache (``cache=True``, so a CLI
call does not recompile for ten seconds) checks only the source file of the cached function, so
a helper in another file could change without the cached kernels that inline it noticing.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import types
from numba.extending import intrinsic

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_S29 = np.uint64(29)
EMPTY = np.int32(-1)
SCAN_BLOCK = 512  # codes per database block in scans: 4 KB of one-word codes, L1-resident


@intrinsic
def _popcnt(typingctx, x):
    """The CPU's popcount of a uint64 as int64 (LLVM ctpop; numba has no builtin)."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None
    sig = types.int64(x)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(inline="always")
def _dist(q, codes, c):
    d = 0
    for w in range(q.shape[0]):
        d += _popcnt(q[w] ^ codes[c, w])
    return d


@njit(inline="always")
def _hash(q):
    h = np.uint64(0)
    for w in range(q.shape[0]):
        h = (h ^ q[w]) * _GOLD
        h ^= h >> _S29
    return h


@njit(cache=True, nogil=True)
def build_table(codes, logcap):
    """Open-addressing hash table (linear probing) over the distinct codes: slot -> code index."""
    cap = 1 << logcap
    slots = np.full(cap, EMPTY, np.int32)
    shift = np.uint64(64 - logcap)
    mask = cap - 1
    for i in range(codes.shape[0]):
        s = np.int64(_hash(codes[i]) >> shift)
        while slots[s] != -1:
            s = (s + 1) & mask
        slots[s] = i
    return slots


@njit(inline="always")
def _find(slots, shift, codes, probe):
    mask = slots.shape[0] - 1
    s = np.int64(_hash(probe) >> shift)
    while True:
        i = slots[s]
        if i < 0:
            return -1
        same = True
        for w in range(probe.shape[0]):
            if codes[i, w] != probe[w]:
                same = False
                break
        if same:
            return np.int64(i)
        s = (s + 1) & mask


@njit(nogil=True)
def _probe_levels(q, codes, offsets, slots, shift, masks, lims, k, hist, cand_c, cand_d, probe):
    """Look up the ball around q level by level until the items found reach k.

    Returns the number of candidates, or -1 when every level was probed without reaching k or the
    buffer filled; the caller then scans. Each level is complete before the check, so when k items
    are found every code at distance <= the k-th item's distance is among the candidates.
    """
    nc = 0
    found = 0
    for lev in range(lims.shape[0] - 1):
        for p in range(lims[lev], lims[lev + 1]):
            for w in range(q.shape[0]):
                probe[w] = q[w] ^ masks[p, w]
            c = _find(slots, shift, codes, probe)
            if c >= 0:
                if nc == cand_c.shape[0]:
                    return -1
                cand_c[nc] = c
                cand_d[nc] = lev
                nc += 1
                sz = offsets[c + 1] - offsets[c]
                hist[lev] += sz
                found += sz
        if found >= k:
            return nc
    return -1


@njit(nogil=True)
def _scan_knn(q, codes, offsets, k, hist, cand_c, cand_d, start, nc, thr, cum):
    """Scan distinct codes from ``start`` keeping every code within the running threshold.

    ``thr`` is the smallest distance whose cumulative item count reaches k so far; a code farther
    than it can never be in the answer. Returns where it stopped (< m when the buffer filled).
    """
    m = codes.shape[0]
    cap = cand_c.shape[0]
    for c in range(start, m):
        d = _dist(q, codes, c)
        if d <= thr:
            if nc == cap:
                return c, nc, thr, cum
            cand_c[nc] = c
            cand_d[nc] = d
            nc += 1
            sz = offsets[c + 1] - offsets[c]
            hist[d] += sz
            cum += sz
            while thr > 0 and cum - hist[thr] >= k:
                cum -= hist[thr]
                thr -= 1
    return m, nc, thr, cum


@njit(nogil=True)
def _compact(cand_c, cand_d, nc, thr):
    j = 0
    for t in range(nc):
        if cand_d[t] <= thr:
            cand_c[j] = cand_c[t]
            cand_d[j] = cand_d[t]
            j += 1
    return j


@njit(nogil=True)
def _emit_knn(cand_c, cand_d, nc, hist, k, offsets, members, ntotal, out_d, out_p):
    """Turn candidate codes into the k nearest items ordered by (distance, position)."""
    nb = hist.shape[0]
    cum = 0
    dstar = -1
    for d in range(nb):
        if cum + hist[d] >= k:
            dstar = d
            break
        cum += hist[d]
    if dstar < 0:  # fewer than k items in all: take every candidate
        dstar = nb - 1
        need = k
    else:
        need = k - cum  # items wanted from distance dstar (cum counts the closer ones)
    total = 0
    for t in range(nc):
        if cand_d[t] <= dstar:
            sz = offsets[cand_c[t] + 1] - offsets[cand_c[t]]
            total += sz if cand_d[t] < dstar else min(sz, need)
    keys = np.empty(total, np.int64)
    j = 0
    for t in range(nc):
        d = cand_d[t]
        if d <= dstar:
            c = cand_c[t]
            lo = offsets[c]
            hi = offsets[c + 1] if d < dstar else min(offsets[c + 1], lo + need)
            for i in range(lo, hi):
                keys[j] = d * ntotal + members[i]
                j += 1
    keys.sort()
    got = min(k, total)
    for t in range(got):
        out_d[t] = keys[t] // ntotal
        out_p[t] = keys[t] % ntotal
    for t in range(got, k):
        out_d[t] = -1
        out_p[t] = -1


@njit(nogil=True)
def _block_distances(q, codes, codes1, c0, n, buf, thr):
    """Distances from q to codes[c0:c0 + n] into buf; returns how many are <= thr.

    One-word codes come as the contiguous 1-D ``codes1``, a loop LLVM turns into vector popcounts
    (about twice the speed of the 2-D loop); longer codes take the general loop.
    """
    hits = 0
    if codes1.shape[0] > 0:
        qq = q[0]
        for i in range(n):
            d = _popcnt(qq ^ codes1[c0 + i])
            buf[i] = d
            hits += d <= thr
    else:
        for i in range(n):
            d = 0
            for w in range(q.shape[0]):
                d += _popcnt(q[w] ^ codes[c0 + i, w])
            buf[i] = d
            hits += d <= thr
    return hits


@njit(nogil=True)
def _scan_knn_rows(queries, rows, codes, codes1, offsets, k, hist, thr, cum, nc, cand_c, cand_d, alive):
    """The running-threshold scan for several queries at once, database block by block.

    Each block of SCAN_BLOCK codes stays in the first-level cache while every query of the batch
    passes over it; a block with no code within a query's threshold costs that query one vector loop.
    A query whose candidates overflow its row even after compaction is marked not ``alive`` and
    rescanned alone by the caller.
    """
    m = codes.shape[0]
    cap = cand_c.shape[1]
    buf = np.empty(SCAN_BLOCK, np.int64)
    for c0 in range(0, m, SCAN_BLOCK):
        n = min(SCAN_BLOCK, m - c0)
        for r in range(rows.shape[0]):
            if not alive[r]:
                continue
            q = queries[rows[r]]
            t = thr[r]
            if _block_distances(q, codes, codes1, c0, n, buf, t) == 0:
                continue
            j = nc[r]
            cu = cum[r]
            for i in range(n):
                d = buf[i]
                if d <= t:
                    if j == cap:
                        j = _compact(cand_c[r], cand_d[r], j, t)
                        if j > cap // 2:
                            alive[r] = False
                            break
                    c = c0 + i
                    cand_c[r, j] = c
                    cand_d[r, j] = d
                    j += 1
                    sz = offsets[c + 1] - offsets[c]
                    hist[r, d] += sz
                    cu += sz
                    while t > 0 and cu - hist[r, t] >= k:
                        cu -= hist[r, t]
                        t -= 1
            nc[r] = j
            cum[r] = cu
            thr[r] = t


@njit(nogil=True)
def _knn_alone(q, codes, offsets, k, nbits, hist, members, ntotal, out_d, out_p):
    """One query's scan with candidate buffers that grow as needed (many codes tie at the threshold)."""
    cand_c = np.empty(max(4096, 8 * k), np.int64)
    cand_d = np.empty(cand_c.shape[0], np.int64)
    hist[:] = 0
    nc, thr, cum, c = 0, hist.shape[0] - 1, 0, 0
    while True:
        c, nc, thr, cum = _scan_knn(q, codes, offsets, k, hist, cand_c, cand_d, c, nc, thr, cum)
        if c >= codes.shape[0]:
            break
        nc = _compact(cand_c, cand_d, nc, thr)
        if nc > cand_c.shape[0] // 2:
            cand_c = np.concatenate((cand_c, np.empty_like(cand_c)))
            cand_d = np.concatenate((cand_d, np.empty_like(cand_d)))
    _emit_knn(cand_c, cand_d, nc, hist, k, offsets, members, ntotal, out_d, out_p)


@njit(nogil=True, cache=True)
def knn_block(codes, codes1, offsets, members, slots, shift, masks, lims, queries, k, nbits, out_d, out_p):
    """Exact k nearest items for each query row; writes (distance, position) rows, -1 padded.

    Probes the small balls first when ``lims`` allows (learned queries usually sit next to stored
    codes); the queries that probing does not settle are scanned together, block by block.
    ``codes1`` is ``codes`` as a 1-D array for one-word codes, else empty. Returns how many
    queries were scanned.
    """
    nq = queries.shape[0]
    ntotal = members.shape[0]
    nb = nbits + 1
    rows = np.empty(nq, np.int64)
    nr = 0
    if lims.shape[0] > 1:
        hist1 = np.zeros(nb, np.int64)
        cap = max(1024, 2 * k)
        cand_c = np.empty(cap, np.int64)
        cand_d = np.empty(cap, np.int64)
        probe = np.empty(codes.shape[1], np.uint64)
        for qi in range(nq):
            hist1[:] = 0
            nc = _probe_levels(queries[qi], codes, offsets, slots, shift, masks, lims, k, hist1, cand_c, cand_d, probe)
            if nc >= 0:
                _emit_knn(cand_c, cand_d, nc, hist1, k, offsets, members, ntotal, out_d[qi], out_p[qi])
            else:
                rows[nr] = qi
                nr += 1
    else:
        for qi in range(nq):
            rows[qi] = qi
        nr = nq
    if nr == 0:
        return 0
    rows = rows[:nr]
    cap = max(1024, 2 * k)
    hist = np.zeros((nr, nb), np.int64)
    thr = np.full(nr, nbits, np.int64)
    cum = np.zeros(nr, np.int64)
    nc = np.zeros(nr, np.int64)
    cand_c = np.empty((nr, cap), np.int64)
    cand_d = np.empty((nr, cap), np.int64)
    alive = np.ones(nr, np.bool_)
    _scan_knn_rows(queries, rows, codes, codes1, offsets, k, hist, thr, cum, nc, cand_c, cand_d, alive)
    for r in range(nr):
        qi = rows[r]
        if alive[r]:
            _emit_knn(cand_c[r], cand_d[r], nc[r], hist[r], k, offsets, members, ntotal, out_d[qi], out_p[qi])
        else:
            _knn_alone(queries[qi], codes, offsets, k, nbits, hist[r], members, ntotal, out_d[qi], out_p[qi])
    return nr


# ---------------------------------------------------------------- range search


@njit(nogil=True)
def _emit_range(cand_c, cand_d, nc, radius, offsets, members, out_d, out_p, w):
    """Append the items of the candidate codes ordered by (distance, position); returns the new end.

    Candidates are counted by distance first; a level with one code copies its bucket as is (already
    in position order), a level with several is sorted.
    """
    count = np.zeros(radius + 2, np.int64)
    for t in range(nc):
        count[cand_d[t] + 1] += 1
    for d in range(radius + 1):
        count[d + 1] += count[d]
    order = np.empty(nc, np.int64)
    fill = count[:-1].copy()
    for t in range(nc):
        order[fill[cand_d[t]]] = t
        fill[cand_d[t]] += 1
    for d in range(radius + 1):
        start = w
        for u in range(count[d], count[d + 1]):
            c = cand_c[order[u]]
            for i in range(offsets[c], offsets[c + 1]):
                out_p[w] = members[i]
                out_d[w] = d
                w += 1
        if count[d + 1] - count[d] > 1:
            out_p[start:w].sort()
    return w


@njit(nogil=True)
def _items_of(cand_c, nc, offsets):
    total = 0
    for t in range(nc):
        total += offsets[cand_c[t] + 1] - offsets[cand_c[t]]
    return total


@njit(nogil=True)
def _scan_range(q, codes, codes1, radius, cand_c, cand_d, buf):
    nc = 0
    m = codes.shape[0]
    for c0 in range(0, m, SCAN_BLOCK):
        n = min(SCAN_BLOCK, m - c0)
        if _block_distances(q, codes, codes1, c0, n, buf, radius) == 0:
            continue
        for i in range(n):
            if buf[i] <= radius:
                if nc == cand_c.shape[0]:
                    return -1
                cand_c[nc] = c0 + i
                cand_d[nc] = buf[i]
                nc += 1
    return nc


@njit(nogil=True)
def _probe_range(q, codes, slots, shift, masks, lims, cand_c, cand_d, probe):
    nc = 0
    for lev in range(lims.shape[0] - 1):
        for p in range(lims[lev], lims[lev + 1]):
            for w in range(q.shape[0]):
                probe[w] = q[w] ^ masks[p, w]
            c = _find(slots, shift, codes, probe)
            if c >= 0:
                if nc == cand_c.shape[0]:
                    return -1
                cand_c[nc] = c
                cand_d[nc] = lev
                nc += 1
    return nc


@njit(inline="always")
def _substring(q, start, width):
    w0 = start >> 6
    off = start & 63
    v = q[w0] >> np.uint64(off)
    if off > 0 and off + width > 64:
        v |= q[w0 + 1] << np.uint64(64 - off)
    if width < 64:
        v &= (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    return v


@njit(inline="always")
def _xor_substring(q, codes, c, start, width):
    """Bits [start, start + width) of q XOR codes[c]: that substring's differences."""
    w0 = start >> 6
    off = start & 63
    v = (q[w0] ^ codes[c, w0]) >> np.uint64(off)
    if off > 0 and off + width > 64:
        v |= (q[w0 + 1] ^ codes[c, w0 + 1]) << np.uint64(64 - off)
    if width < 64:
        v &= (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    return v


@njit(nogil=True)
def _mih_range(q, codes, radius, mih_start, mih_width, mih_radii, mih_masks, mih_mask_lims, ukeys,
               ukey_lims, uoffsets, ucodes, cand_c, cand_d):
    """Multi-index hashing: a code within ``radius`` is within the table radius on some substring.

    A code met in several tables is kept only from the first table whose test it passes, which
    removes duplicates without a per-query marker array.
    """
    nc = 0
    m = codes.shape[0]
    for j in range(mih_start.shape[0]):
        sub = _substring(q, mih_start[j], mih_width[j])
        k0 = ukey_lims[j]
        keys = ukeys[k0:ukey_lims[j + 1]]
        for p in range(mih_mask_lims[j], mih_mask_lims[j + 1]):
            key = sub ^ mih_masks[p]
            u = np.searchsorted(keys, key)
            if u < keys.shape[0] and keys[u] == key:
                for t in range(uoffsets[k0 + j + u], uoffsets[k0 + j + u + 1]):
                    c = ucodes[j * m + t]
                    d = _dist(q, codes, c)
                    if d <= radius:
                        first = True
                        for e in range(j):
                            if _popcnt(_xor_substring(q, codes, c, mih_start[e], mih_width[e])) <= mih_radii[e]:
                                first = False
                                break
                        if first:
                            if nc == cand_c.shape[0]:
                                return -1
                            cand_c[nc] = c
                            cand_d[nc] = d
                            nc += 1
    return nc


@njit(nogil=True, cache=True)
def range_block(strategy, codes, codes1, offsets, members, radius, queries, slots, shift, masks, lims,
                mih_start, mih_width, mih_radii, mih_masks, mih_mask_lims, ukeys, ukey_lims, uoffsets, ucodes):
    """All items within ``radius`` (inclusive) of each query: (counts per query, distances, positions).

    strategy 0 scans the distinct codes, 1 probes the ball in the hash table, 2 uses MIH tables.
    """
    m = codes.shape[0]
    counts = np.zeros(queries.shape[0], np.int64)
    out_d = np.empty(1024, np.int32)
    out_p = np.empty(1024, members.dtype)
    cand_c = np.empty(min(m, 4096) + 1, np.int64)
    cand_d = np.empty(min(m, 4096) + 1, np.int64)
    probe = np.empty(codes.shape[1], np.uint64)
    buf = np.empty(SCAN_BLOCK, np.int64)
    w = 0
    for qi in range(queries.shape[0]):
        q = queries[qi]
        while True:
            if strategy == 0:
                nc = _scan_range(q, codes, codes1, radius, cand_c, cand_d, buf)
            elif strategy == 1:
                nc = _probe_range(q, codes, slots, shift, masks, lims, cand_c, cand_d, probe)
            else:
                nc = _mih_range(q, codes, radius, mih_start, mih_width, mih_radii, mih_masks, mih_mask_lims,
                                ukeys, ukey_lims, uoffsets, ucodes, cand_c, cand_d)
            if nc >= 0:
                break
            cand_c = np.empty(min(2 * cand_c.shape[0], m + 1), np.int64)
            cand_d = np.empty(cand_c.shape[0], np.int64)
        need = w + _items_of(cand_c, nc, offsets)
        if need > out_p.shape[0]:
            size = max(need, 2 * out_p.shape[0])
            grown_d = np.empty(size, np.int32)
            grown_p = np.empty(size, members.dtype)
            grown_d[:w] = out_d[:w]
            grown_p[:w] = out_p[:w]
            out_d = grown_d
            out_p = grown_p
        w_new = _emit_range(cand_c, cand_d, nc, radius, offsets, members, out_d, out_p, w)
        counts[qi] = w_new - w
        w = w_new
    return counts, out_d[:w].copy(), out_p[:w].copy()
