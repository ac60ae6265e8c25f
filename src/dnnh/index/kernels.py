"""numba kernels for the index (the optional ``fast`` extra); import only when numba is installed.

Each kernel handles a block of queries and releases the GIL, so the index runs blocks on a thread
pool (one thread a core) without numba's own threading layer. The hot loops never reassign an
array: a loop-carried array variable made numba refcount it on every iteration (a 40x slowdown
measured here), so buffers that may grow are grown by the caller of the loop that fills them.

Inputs are the arrays of :mod:`dnnh.index.groups`: ``codes`` (m, nwords) uint64, ``offsets``
(m + 1, or empty where every code has one item: bucket c is then item slot c, see :func:`_bucket`)
and ``members`` (n) int32/int64; queries (nq, nwords) uint64. Exact lookups and ball probes go
through a ``directory`` over the sorted codes' top bits (:func:`dnnh.index.layout.directory`), so
every search path reads the one sorted copy of the codes.

Scans are vectorised by hand (see "vector popcounts" below) and skip whole blocks by their
common prefix; radius search runs in two kernels, :func:`range_candidates` (the codes within the
radius of each query, ordered by distance then code) and :func:`range_fill` (their items copied
once into the caller's final arrays).

All kernels live in this one file on purpose: numba's on-disk cache (``cache=True``, so a CLI
call does not recompile for ten seconds) checks only the source file of the cached function, so
a helper in another file could change without the cached kernels that inline it noticing.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

SCAN_BLOCK = 2048  # codes per database block in k-NN scans: 16 KB of one-word codes, L1-resident
LANES = 8          # codes per vector: 8 x 64-bit words, one AVX-512 register (two AVX2 ones)
CHUNK = 4 * LANES  # codes tested per branch: four vectors OR-ed into one hit mask
ROW_CAP = 2048     # candidate codes a query of a batched radius scan holds before it resumes alone
PREFIX_BLOCK = 64  # codes sharing one prefix bound (see prefix_bounds)
GROUP = LANES * PREFIX_BLOCK  # codes whose eight prefix bounds one vector tests


@intrinsic
def _popcnt(typingctx, x):
    """The CPU's popcount of a uint64 as int64 (LLVM ctpop; numba has no builtin)."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None
    sig = types.int64(x)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


# ---------------------------------------------------------------- vector popcounts
#
# numba has no vector types, so the vector work lives inside intrinsics that write LLVM IR: load 8
# codes, XOR with the query, ``llvm.ctpop.v8i64``, compare with the threshold, and return the 8
# comparison bits as an integer. numba compiles for the host CPU (``-mcpu=host``), so LLVM lowers
# this to VPOPCNTQ and a mask compare where the CPU has AVX-512 VPOPCNTDQ, to the nibble-lookup
# popcount (VPSHUFB) on AVX2, to NEON's CNT on ARM and to scalar code elsewhere: one source,
# exact everywhere, fast where the hardware is. LLVM does not vectorise a plain loop of scalar
# popcounts and threshold compares (it stays scalar), hence the explicit vectors. The scans test
# the minimum of four vectors first (one branch for 32 codes) and build the hit mask only for a
# chunk that has a hit. benchmarks/index_bench.py gives the speed against FAISS and against the
# CPU's popcount peak; NUMBA_CPU_NAME / NUMBA_CPU_FEATURES force another target (the tests use
# them to run the AVX2 and baseline x86-64 lowerings on an AVX-512 machine).

_V64 = ir.VectorType(ir.IntType(64), LANES)


def _splat(builder, value):
    undef = ir.Constant(_V64, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


def _vector_popcount(builder, x):
    name = f"llvm.ctpop.v{LANES}i64"
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(_V64, [_V64]), name)
    return builder.call(fn, [x])


def _lanes_within(builder, counts, thr):
    """The 8 lanes' ``counts <= thr`` as the low 8 bits of an int64."""
    within = builder.icmp_unsigned("<=", counts, _splat(builder, thr))
    return builder.zext(builder.bitcast(within, ir.IntType(LANES)), ir.IntType(64))


def _is_u64_array(ty, ndim):
    return isinstance(ty, types.Array) and ty.ndim == ndim and ty.layout == "C" and ty.dtype == types.uint64


def _word_counts(context, builder, planes_ty, planes, at, queries_ty, queries, qr):
    """Vector of the 8 distances from query row ``qr`` to codes at..at+7 of ``planes`` (nwords, m)."""
    pl = context.make_array(planes_ty)(context, builder, planes)
    qa = context.make_array(queries_ty)(context, builder, queries)
    nw, m = cgutils.unpack_tuple(builder, pl.shape, 2)

    def word(w):
        ptr = builder.gep(pl.data, [builder.add(builder.mul(w, m), at)])
        v = builder.load(builder.bitcast(ptr, _V64.as_pointer()), align=8)
        qw = builder.load(cgutils.get_item_pointer(context, builder, queries_ty, qa, [qr, w]))
        return _vector_popcount(builder, builder.xor(v, _splat(builder, qw)))

    acc = cgutils.alloca_once_value(builder, ir.Constant(_V64, None))
    two = ir.Constant(nw.type, 2)
    with builder.if_else(builder.icmp_signed("==", nw, two)) as (pair, other):
        with pair:  # 128-bit codes, the common long code: straight-line, no loop
            builder.store(builder.add(word(ir.Constant(nw.type, 0)), word(ir.Constant(nw.type, 1))), acc)
        with other:
            with cgutils.for_range(builder, nw) as loop:
                builder.store(builder.add(builder.load(acc), word(loop.index)), acc)
    return builder.load(acc)


def _one_word_counts(context, builder, codes1_ty, codes1, at, q0):
    arr = context.make_array(codes1_ty)(context, builder, codes1)
    ptr = builder.bitcast(builder.gep(arr.data, [at]), _V64.as_pointer())
    return _vector_popcount(builder, builder.xor(builder.load(ptr, align=8), _splat(builder, q0)))


def _vector_min(builder, a, b):
    return builder.select(builder.icmp_unsigned("<", a, b), a, b)


def _chunk_intrinsic(kind):
    """Intrinsics over a chunk of CHUNK codes from ``i`` (the caller keeps ``i + CHUNK <= m``).

    kind "any": whether any code is within ``thr`` (lane-wise minimum of the four vectors, one
    compare: the scan's fast path); kind "mask": bit j set when code i + j is within ``thr``.
    The one-word form reads ``codes1`` (m,) with the query's word ``q0``; the other reads
    ``planes`` (nwords, m) and query row ``qr`` of ``queries``.
    """
    def build(words):
        def typer(typingctx, codes, i, q, qr, thr):
            if words:
                ok = _is_u64_array(codes, 2) and isinstance(q, types.Array) and q.ndim == 2 and q.dtype == types.uint64
            else:
                ok = _is_u64_array(codes, 1) and isinstance(q, types.Integer)
            if not (ok and isinstance(i, types.Integer) and isinstance(qr, types.Integer) and isinstance(thr, types.Integer)):
                return None
            sig = (types.boolean if kind == "any" else types.int64)(codes, types.int64, q, types.int64, types.int64)

            def codegen(context, builder, signature, args):
                codes_ty, _, q_ty, _, _ = signature.args
                codes_v, i_v, q_v, qr_v, thr_v = args
                result = low = None
                for part in range(CHUNK // LANES):
                    at = builder.add(i_v, ir.Constant(ir.IntType(64), part * LANES))
                    counts = (_word_counts(context, builder, codes_ty, codes_v, at, q_ty, q_v, qr_v) if words
                              else _one_word_counts(context, builder, codes_ty, codes_v, at, q_v))
                    if kind == "any":
                        low = counts if low is None else _vector_min(builder, low, counts)
                    else:
                        bits = _lanes_within(builder, counts, thr_v)
                        if part:
                            bits = builder.shl(bits, ir.Constant(ir.IntType(64), part * LANES))
                        result = bits if result is None else builder.or_(result, bits)
                if kind == "any":
                    return builder.icmp_unsigned("!=", _lanes_within(builder, low, thr_v), ir.Constant(ir.IntType(64), 0))
                return result

            return sig, codegen
        return intrinsic(typer)
    return build(False), build(True)


_any_one, _any_words = _chunk_intrinsic("any")
_mask_one, _mask_words = _chunk_intrinsic("mask")


@intrinsic
def _lowest_bit(typingctx, x):
    """Index of the lowest set bit of a nonzero int64 (LLVM cttz: one TZCNT)."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@intrinsic
def _prefix8(typingctx, vals, masks, b, queries, qr, thr):
    """Bit j set when block b + j may hold a code within ``thr`` of query row ``qr``.

    A block of PREFIX_BLOCK consecutive (sorted) codes shares the bits ``masks[:, b]`` with value
    ``vals[:, b]`` (its common prefix); the distance from q to any of its codes is at least
    popcount((q ^ vals) & masks), so a block whose bound exceeds ``thr`` is skipped unread.
    ``vals`` and ``masks`` are (nwords, nblocks) with nblocks a multiple of 8.
    """
    if not (_is_u64_array(vals, 2) and _is_u64_array(masks, 2) and isinstance(b, types.Integer)
            and isinstance(queries, types.Array) and queries.ndim == 2 and queries.dtype == types.uint64
            and isinstance(qr, types.Integer) and isinstance(thr, types.Integer)):
        return None
    sig = types.int64(vals, masks, types.int64, queries, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        va = context.make_array(signature.args[0])(context, builder, args[0])
        ma = context.make_array(signature.args[1])(context, builder, args[1])
        qa = context.make_array(signature.args[3])(context, builder, args[3])
        nw, nb = cgutils.unpack_tuple(builder, va.shape, 2)
        acc = cgutils.alloca_once_value(builder, ir.Constant(_V64, None))
        with cgutils.for_range(builder, nw) as loop:
            at = builder.add(builder.mul(loop.index, nb), args[2])
            v = builder.load(builder.bitcast(builder.gep(va.data, [at]), _V64.as_pointer()), align=8)
            mk = builder.load(builder.bitcast(builder.gep(ma.data, [at]), _V64.as_pointer()), align=8)
            qw = builder.load(cgutils.get_item_pointer(context, builder, signature.args[3], qa, [args[4], loop.index]))
            counts = _vector_popcount(builder, builder.and_(builder.xor(v, _splat(builder, qw)), mk))
            builder.store(builder.add(builder.load(acc), counts), acc)
        return _lanes_within(builder, builder.load(acc), args[5])

    return sig, codegen


@njit(inline="always")
def _next_run(runs):
    """(first block, blocks) of the lowest run of set bits in ``runs`` (nonzero, < 256)."""
    first = _lowest_bit(runs)
    return first, _lowest_bit(~(runs >> first))


@njit(nogil=True)
def popcount_loop(block, q, reps):
    """XOR-and-popcount of an L1-resident ``block`` ``reps`` times, summed: the popcount ceiling.

    LLVM vectorises this plain reduction (VPOPCNTQ with AVX-512 VPOPCNTDQ), with no compare, no
    branch and no load beyond the first-level cache; benchmarks/index_bench.py times it to say how
    far a scan is from the popcount limit of the CPU it runs on.
    """
    total = 0
    for r in range(reps):
        qq = q ^ np.uint64(r)
        for i in range(block.shape[0]):
            total += _popcnt(block[i] ^ qq)
    return total


@njit(inline="always")
def _dist(q, codes, c):
    d = 0
    for w in range(q.shape[0]):
        d += _popcnt(q[w] ^ codes[c, w])
    return d


@njit(inline="always")
def _bucket(offsets, c):
    """Bounds (lo, hi) of code c's items in ``members``; empty ``offsets``: one item a code (c, c + 1)."""
    if offsets.shape[0] == 0:
        return np.int64(c), np.int64(c) + 1
    return np.int64(offsets[c]), np.int64(offsets[c + 1])


@njit(inline="always")
def _find(directory, shift, codes, probe):
    """Index of ``probe`` among the sorted distinct codes, or -1: its directory bucket, then bisection.

    ``directory[p]`` is the first code whose top bits (word 0 shifted right by ``shift``) are >= p,
    so the codes with the probe's top bits are ``[directory[p], directory[p + 1])`` (a few on
    random codes, a cache line), searched in the codes' lexicographic order.
    """
    p = np.int64(probe[0] >> shift)
    lo = np.int64(directory[p])
    hi = np.int64(directory[p + 1])
    nw = probe.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        order = 0
        for w in range(nw):
            a = codes[mid, w]
            b = probe[w]
            if a != b:
                order = -1 if a < b else 1
                break
        if order == 0:
            return mid
        if order < 0:
            lo = mid + 1
        else:
            hi = mid
    return np.int64(-1)


@njit(nogil=True)
def _probe_levels(q, codes, offsets, directory, shift, masks, lims, k, hist, cand_c, cand_d, probe):
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
            c = _find(directory, shift, codes, probe)
            if c >= 0:
                if nc == cand_c.shape[0]:
                    return -1
                cand_c[nc] = c
                cand_d[nc] = lev
                nc += 1
                lo, hi = _bucket(offsets, c)
                sz = hi - lo
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
            lo, hi = _bucket(offsets, c)
            sz = hi - lo
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
            lo, hi = _bucket(offsets, cand_c[t])
            sz = hi - lo
            total += sz if cand_d[t] < dstar else min(sz, need)
    keys = np.empty(total, np.int64)
    j = 0
    for t in range(nc):
        d = cand_d[t]
        if d <= dstar:
            c = cand_c[t]
            lo, hi = _bucket(offsets, c)
            if d >= dstar:
                hi = min(hi, lo + need)
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


@njit(inline="always")
def _compact_row(cand_c, cand_d, r, nc, thr):
    j = 0
    for t in range(nc):
        if cand_d[r, t] <= thr:
            cand_c[r, j] = cand_c[r, t]
            cand_d[r, j] = cand_d[r, t]
            j += 1
    return j


@njit(nogil=True)
def _scan_knn_rows(queries, rows, codes, codes1, planes, pre_vals, pre_masks, offsets, k, hist, thr, cum, nc,
                   cand_c, cand_d, alive):
    """The running-threshold scan for several queries at once, database block by block.

    Each block of SCAN_BLOCK codes stays in the first-level cache while every query of the batch
    passes over it. The threshold ``thr[r]`` is the smallest distance whose item count reaches k
    among the candidates so far: codes farther than it can never be in the answer. Two tests
    skip codes without reading them one by one: eight prefix bounds at once (:func:`_prefix8`:
    on clustered, learned codes most of the sorted array is far from a query's cluster), then
    chunks of 32 codes with vector popcounts (one compare of their lane-wise minimum). A chunk
    holding a code within the threshold appends those codes, and only then is the threshold
    refreshed, once for the chunk (rare once it has settled: about 1,000 chunks of 31,250 a query
    on a million random codes). A query whose candidates overflow its row even after compaction
    is marked not ``alive`` and rescanned alone by the caller.

    The loops are written out, not in helper functions: numba reference-counts the arrays passed
    to an inlined helper, which cost more than the popcounts. Rows are addressed by index, never
    as views, for the same reason.
    """
    m = codes.shape[0]
    nw = codes.shape[1]
    one = codes1.shape[0] > 0
    cap = cand_c.shape[1]
    for c0 in range(0, m, SCAN_BLOCK):
        c1 = min(c0 + SCAN_BLOCK, m)
        for r in range(rows.shape[0]):
            if not alive[r]:
                continue
            qr = rows[r]
            q0 = queries[qr, 0]
            t = thr[r]
            j = nc[r]
            cu = cum[r]
            for g0 in range(c0, c1, GROUP):
                runs = _prefix8(pre_vals, pre_masks, g0 // PREFIX_BLOCK, queries, qr, t)
                while runs != 0 and alive[r]:
                    lead, length = _next_run(runs)
                    runs &= ~(((1 << length) - 1) << lead)
                    i = g0 + lead * PREFIX_BLOCK
                    e = min(i + length * PREFIX_BLOCK, c1)
                    end = i + max(e - i, 0) // CHUNK * CHUNK
                    while True:
                        if one:  # the fast path: skip chunks with no code within t
                            while i < end and not _any_one(codes1, i, q0, qr, t):
                                i += CHUNK
                        else:
                            while i < end and not _any_words(planes, i, queries, qr, t):
                                i += CHUNK
                        if i >= e:
                            break
                        if j + CHUNK > cap:  # room for a chunk's hits: drop candidates beyond the threshold
                            j = _compact_row(cand_c, cand_d, r, j, t)
                            if j > cap // 2:  # still half full (many ties at the threshold): rescan alone
                                alive[r] = False
                                break
                        if i < end:
                            hits = _mask_one(codes1, i, q0, qr, t) if one else _mask_words(planes, i, queries, qr, t)
                            first = i
                            i += CHUNK
                        else:  # the tail of the code array, fewer than CHUNK codes
                            hits = 0
                            for c in range(i, e):
                                d = 0
                                for w in range(nw):
                                    d += _popcnt(queries[qr, w] ^ codes[c, w])
                                if d <= t:
                                    hits |= 1 << (c - i)
                            first = i
                            i = e
                        while hits != 0:
                            c = first + _lowest_bit(hits)
                            hits &= hits - 1
                            d = 0
                            for w in range(nw):
                                d += _popcnt(queries[qr, w] ^ codes[c, w])
                            cand_c[r, j] = c
                            cand_d[r, j] = d
                            j += 1
                            lo, hi = _bucket(offsets, c)
                            sz = hi - lo
                            hist[r, d] += sz
                            cu += sz
                        while t > 0 and cu - hist[r, t] >= k:  # the k-th item's distance bound moves down
                            cu -= hist[r, t]
                            t -= 1
                if not alive[r]:
                    break
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
def knn_block(codes, codes1, planes, pre_vals, pre_masks, offsets, members, directory, shift, masks, lims, queries, k,
              nbits, out_d, out_p):
    """Exact k nearest items for each query row; writes (distance, position) rows, -1 padded.

    Probes the small balls first when ``lims`` allows (learned queries usually sit next to stored
    codes); the queries that probing does not settle are scanned together, block by block.
    ``codes1`` is ``codes`` as a 1-D array for one-word codes, else empty; ``planes`` is ``codes``
    transposed, (nwords, m), for longer codes (unused for one word). Returns how many queries were
    scanned.
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
            nc = _probe_levels(queries[qi], codes, offsets, directory, shift, masks, lims, k, hist1, cand_c, cand_d,
                               probe)
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
    _scan_knn_rows(queries, rows, codes, codes1, planes, pre_vals, pre_masks, offsets, k, hist, thr, cum, nc, cand_c,
                   cand_d, alive)
    for r in range(nr):
        qi = rows[r]
        if alive[r]:
            _emit_knn(cand_c[r], cand_d[r], nc[r], hist[r], k, offsets, members, ntotal, out_d[qi], out_p[qi])
        else:
            _knn_alone(queries[qi], codes, offsets, k, nbits, hist[r], members, ntotal, out_d[qi], out_p[qi])
    return nr


# ---------------------------------------------------------------- range search


@njit(nogil=True)
def _scan_range_rows(queries, codes, codes1, planes, pre_vals, pre_masks, radius, rows_c, rows_d, nc, i0, stop):
    """Codes within ``radius`` of each query, in code order, from code ``i0[r]`` (a chunk start).

    Database block by block with the same two tests as :func:`_scan_knn_rows` (prefix bounds,
    then 32-code chunks), so a block stays in the first-level cache while every query passes
    over it. A row whose buffer cannot take another chunk stops before it: ``stop[r]`` is where
    to resume (``m`` once the row is complete). Called with one row and ``i0`` after a stop, it
    resumes that query alone in a larger buffer. Written out, as there.
    """
    m = codes.shape[0]
    nw = codes.shape[1]
    one = codes1.shape[0] > 0
    cap = rows_c.shape[1]
    start = (i0.min() // SCAN_BLOCK) * SCAN_BLOCK if i0.shape[0] else m
    for c0 in range(start, m, SCAN_BLOCK):
        c1 = min(c0 + SCAN_BLOCK, m)
        for r in range(rows_c.shape[0]):
            if stop[r] < m or i0[r] >= c1:
                continue
            q0 = queries[r, 0]
            j = nc[r]
            for g0 in range(c0, c1, GROUP):
                if g0 + GROUP <= i0[r]:
                    continue
                runs = _prefix8(pre_vals, pre_masks, g0 // PREFIX_BLOCK, queries, r, radius)
                while runs != 0 and stop[r] == m:
                    lead, length = _next_run(runs)
                    runs &= ~(((1 << length) - 1) << lead)
                    i = max(g0 + lead * PREFIX_BLOCK, i0[r])
                    e = min(g0 + (lead + length) * PREFIX_BLOCK, c1)
                    end = i + max(e - i, 0) // CHUNK * CHUNK
                    while True:
                        if one:
                            while i < end and not _any_one(codes1, i, q0, r, radius):
                                i += CHUNK
                        else:
                            while i < end and not _any_words(planes, i, queries, r, radius):
                                i += CHUNK
                        if i >= e:
                            break
                        if j + CHUNK > cap:
                            stop[r] = i
                            break
                        if i < end:
                            hits = _mask_one(codes1, i, q0, r, radius) if one else _mask_words(planes, i, queries, r, radius)
                            first = i
                            i += CHUNK
                        else:  # the tail of the code array, fewer than CHUNK codes
                            hits = 0
                            for c in range(i, e):
                                d = 0
                                for w in range(nw):
                                    d += _popcnt(queries[r, w] ^ codes[c, w])
                                if d <= radius:
                                    hits |= 1 << (c - i)
                            first = i
                            i = e
                        while hits != 0:
                            c = first + _lowest_bit(hits)
                            hits &= hits - 1
                            d = 0
                            for w in range(nw):
                                d += _popcnt(queries[r, w] ^ codes[c, w])
                            rows_c[r, j] = c
                            rows_d[r, j] = d
                            j += 1
                if stop[r] < m:
                    break
            nc[r] = j


@njit(nogil=True)
def _probe_range(q, codes, directory, shift, masks, lims, cand_c, cand_d, probe):
    nc = 0
    for lev in range(lims.shape[0] - 1):
        for p in range(lims[lev], lims[lev + 1]):
            for w in range(q.shape[0]):
                probe[w] = q[w] ^ masks[p, w]
            c = _find(directory, shift, codes, probe)
            if c >= 0:
                if nc == cand_c.shape[0]:
                    return -1
                cand_c[nc] = c
                cand_d[nc] = lev
                nc += 1
    return nc


@njit(nogil=True)
def _prefix_range(q, codes, directory, shift, masks, radius, cand_c, cand_d, los, his):
    """The codes within ``radius`` of q through the directory alone: probe the ball of its top bits.

    A code within ``radius`` has top bits (the directory's ``b``) within ``radius`` of the query's,
    so the buckets of those ball(b, radius) prefixes (``masks[:, 0]`` flips them) hold every
    answer; each bucket is a contiguous run of the sorted codes, checked in full. This needs no
    table beyond the directory (MIH needs s permuted copies of the code indices). All bucket
    bounds are read first (``los``, ``his``: independent loads the CPU overlaps, 27% faster than
    reading each bucket's codes right after its bounds, measured on 1M random 64-bit codes).
    """
    nc = 0
    top = np.int64(q[0] >> shift)
    for p in range(masks.shape[0]):
        b = top ^ np.int64(masks[p, 0])
        los[p] = directory[b]
        his[p] = directory[b + 1]
    for p in range(masks.shape[0]):
        for c in range(los[p], his[p]):
            d = _dist(q, codes, c)
            if d <= radius:
                if nc == cand_c.shape[0]:
                    return -1
                cand_c[nc] = c
                cand_d[nc] = d
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
def range_candidates(strategy, codes, codes1, planes, pre_vals, pre_masks, offsets, radius, queries, directory, shift,
                     masks, lims,
                     mih_start, mih_width, mih_radii, mih_masks, mih_mask_lims, ukeys, ukey_lims, uoffsets, ucodes):
    """The distinct codes within ``radius`` (inclusive) of each query, in the order results are given.

    Returns (cand_lims (nq + 1), codes, distances, items per query): query r's codes are
    ``[cand_lims[r]:cand_lims[r + 1]]``, by distance, then code index (the codes' sorted order).
    strategy 0 scans the distinct codes (already in code order: a stable counting sort by distance
    orders them), 1 probes the ball through the directory (level by level: only the codes met at one
    level are sorted), 2 uses the MIH tables, 3 probes the ball of the directory's prefixes
    (:func:`_prefix_range`; both counted by distance, each level's codes sorted). Only
    codes are ordered, never items: :func:`range_fill` then copies each code's bucket as it is.
    """
    m = codes.shape[0]
    nq = queries.shape[0]
    cand_lims = np.zeros(nq + 1, np.int64)
    items = np.zeros(nq, np.int64)
    out_c = np.empty(1024, np.int64)
    out_d = np.empty(1024, np.int64)
    cand_c = np.empty(min(m, 4096) + 1, np.int64)
    cand_d = np.empty(min(m, 4096) + 1, np.int64)
    probe = np.empty(codes.shape[1], np.uint64)
    level_end = np.zeros(radius + 2, np.int64)
    los = np.empty(masks.shape[0] if strategy == 3 else 0, np.int64)
    his = np.empty(los.shape[0], np.int64)
    if strategy == 0:  # all queries of the block scan together; a full row resumes alone below
        rows_c = np.empty((nq, ROW_CAP), np.int64)
        rows_d = np.empty((nq, ROW_CAP), np.int64)
        rows_n = np.zeros(nq, np.int64)
        stop = np.full(nq, m, np.int64)
        _scan_range_rows(queries, codes, codes1, planes, pre_vals, pre_masks, radius, rows_c, rows_d, rows_n,
                         np.zeros(nq, np.int64), stop)
    w = 0
    for qi in range(nq):
        q = queries[qi]
        while True:
            if strategy == 0:
                nc = rows_n[qi]
                if stop[qi] < m:  # resume this query alone, its buffer doubling until it is done
                    big_c = np.empty((1, max(2 * ROW_CAP, 2 * nc)), np.int64)
                    big_d = np.empty((1, big_c.shape[1]), np.int64)
                    big_c[0, :nc] = rows_c[qi, :nc]
                    big_d[0, :nc] = rows_d[qi, :nc]
                    one_n = np.full(1, nc, np.int64)
                    at = np.full(1, stop[qi], np.int64)
                    one_stop = np.full(1, m, np.int64)
                    while True:
                        _scan_range_rows(queries[qi:qi + 1], codes, codes1, planes, pre_vals, pre_masks, radius,
                                         big_c, big_d, one_n, at, one_stop)
                        if one_stop[0] >= m:
                            break
                        at[0] = one_stop[0]
                        one_stop[0] = m
                        grown_c = np.empty((1, 2 * big_c.shape[1]), np.int64)
                        grown_d = np.empty((1, grown_c.shape[1]), np.int64)
                        grown_c[0, :one_n[0]] = big_c[0, :one_n[0]]
                        grown_d[0, :one_n[0]] = big_d[0, :one_n[0]]
                        big_c = grown_c
                        big_d = grown_d
                    nc = one_n[0]
                    if nc > cand_c.shape[0]:
                        cand_c = np.empty(nc, np.int64)
                        cand_d = np.empty(nc, np.int64)
                    cand_c[:nc] = big_c[0, :nc]
                    cand_d[:nc] = big_d[0, :nc]
                else:
                    if nc > cand_c.shape[0]:
                        cand_c = np.empty(nc, np.int64)
                        cand_d = np.empty(nc, np.int64)
                    cand_c[:nc] = rows_c[qi, :nc]
                    cand_d[:nc] = rows_d[qi, :nc]
            elif strategy == 1:
                nc = _probe_range(q, codes, directory, shift, masks, lims, cand_c, cand_d, probe)
            elif strategy == 3:
                nc = _prefix_range(q, codes, directory, shift, masks, radius, cand_c, cand_d, los, his)
            else:
                nc = _mih_range(q, codes, radius, mih_start, mih_width, mih_radii, mih_masks, mih_mask_lims,
                                ukeys, ukey_lims, uoffsets, ucodes, cand_c, cand_d)
            if nc >= 0:
                break
            cand_c = np.empty(min(2 * cand_c.shape[0], m + 1), np.int64)
            cand_d = np.empty(cand_c.shape[0], np.int64)
        if w + nc > out_c.shape[0]:
            size = max(w + nc, 2 * out_c.shape[0])
            grown_c = np.empty(size, np.int64)
            grown_d = np.empty(size, np.int64)
            grown_c[:w] = out_c[:w]
            grown_d[:w] = out_d[:w]
            out_c = grown_c
            out_d = grown_d
        level_end[:] = 0
        total = 0
        for t in range(nc):
            level_end[cand_d[t] + 1] += 1
            lo, hi = _bucket(offsets, cand_c[t])
            total += hi - lo
        for d in range(radius + 1):
            level_end[d + 1] += level_end[d]
        for t in range(nc):  # stable: codes met in code order stay in code order within a distance
            d = cand_d[t]
            at = w + level_end[d]
            out_c[at] = cand_c[t]
            out_d[at] = d
            level_end[d] += 1
        if strategy != 0:
            lo = 0
            for d in range(radius + 1):
                if level_end[d] - lo > 1:
                    out_c[w + lo:w + level_end[d]].sort()
                lo = level_end[d]
        items[qi] = total
        w += nc
        cand_lims[qi + 1] = w
    return cand_lims, out_c[:w].copy(), out_d[:w].copy(), items


@njit(nogil=True, cache=True)
def range_fill(cand_lims, cand_c, cand_d, offsets, members, ids, starts, out_d, out_i):
    """Write every query's items straight into the final arrays: query r's from ``starts[r]``.

    Each candidate code's bucket is copied as it is (positions ascending: insertion order), as ids
    when ``ids`` is given (non-empty), else as positions: the one pass over the output. Unsigned
    indices spare numba's negative-index checks, which would keep these copy loops from vectorising.
    """
    use_ids = ids.shape[0] > 0
    for r in range(cand_lims.shape[0] - 1):
        w = np.uint64(starts[r])
        for t in range(cand_lims[r], cand_lims[r + 1]):
            lo_, hi_ = _bucket(offsets, cand_c[t])
            lo = np.uint64(lo_)
            n = np.uint64(hi_) - lo
            d = np.int32(cand_d[t])
            for u in range(n):
                out_d[w + u] = d
            if use_ids:
                for u in range(n):
                    out_i[w + u] = ids[np.uint64(members[lo + u])]
            else:
                for u in range(n):
                    out_i[w + u] = members[lo + u]
            w += n
