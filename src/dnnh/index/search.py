"""Running k-NN and radius searches over grouped codes on one of three kernels.

- ``numba`` (a core dependency): compiled kernels for scan, probe and MIH, one query block a thread.
  Scans test 8 codes a vector popcount (VPOPCNTQ with AVX-512 VPOPCNTDQ; LLVM lowers the same
  vectors to AVX2, SSE or scalar code elsewhere) and skip 64-code blocks whose common prefix is
  already too far; radius results are counted first, then written once into arrays of their
  final size.
- ``faiss`` (extra ``faiss``): FAISS's flat binary scan over the distinct codes; probing and MIH in numpy.
- ``numpy``: everything vectorised with ``np.bitwise_count``; exact and threaded, several times slower.

numba is preferred when it imports, then FAISS; numpy always works. Query blocks go to a thread
pool (numba kernels and numpy ufuncs release the GIL), so a batch uses every core it is given;
FAISS's own scans use its OpenMP threads (``faiss.omp_set_num_threads``).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dnnh.errors import InputError
from dnnh.index import cost
from dnnh.index.expand import expand_knn, expand_range
from dnnh.index.groups import TRIM_FROM, Groups, release_scratch
from dnnh.index.layout import directory, flip_masks, prefix_bounds
from dnnh.index.mih import MihTables
from dnnh.index.probe import SortedKeys, prefix_candidates, probe_candidates
from dnnh.index.scan import HAVE_FAISS, FaissScan, _installed, knn_scan_block, query_blocks, range_scan_block

log = logging.getLogger(__name__)


HAVE_NUMBA = _installed("numba")  # imported on first use: numba's import takes half a second
KERNELS = ("auto", "numba", "faiss", "numpy")
ENGINES = KERNELS  # the old name (the encoder's backends are its "engines"; the index's are kernels)
_kernels: Any = None


def kernels() -> Any:
    """The numba kernel module, imported on first use (numba's import takes half a second)."""
    global _kernels, HAVE_NUMBA
    if _kernels is None:
        try:
            from dnnh.index import kernels as mod
        except Exception as exc:  # installed but broken (e.g. built for another numpy): say so once
            HAVE_NUMBA = False
            log.warning("numba did not import (%s); the Hamming index falls back to %s",
                        exc, available_kernels()[0])
            raise ImportError(f"the numba kernel is unavailable: {exc}") from exc
        _kernels = mod
    return _kernels


def available_kernels() -> list[str]:
    """Kernels usable here, fastest first."""
    return [e for e, ok in (("numba", HAVE_NUMBA), ("faiss", HAVE_FAISS), ("numpy", True)) if ok]


#: The old name of :func:`available_kernels`, kept for code written before the rename.
available_engines = available_kernels


def kernel_argument(kernel: str, engine: str | None) -> str:
    """``kernel=``, or ``engine=``, its old spelling, where a caller still passes that (not both)."""
    if engine is None:
        return kernel
    if kernel != "auto" and kernel != engine:
        raise InputError(f"give kernel= only (engine= is its old name), got kernel={kernel!r} and engine={engine!r}")
    return engine


def resolve_kernel(kernel: str) -> str:
    """The kernel ``kernel`` names ("auto": the fastest installed); raises if it is not installed."""
    if kernel not in KERNELS:
        raise InputError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel == "auto":
        return available_kernels()[0]
    if kernel == "numba" and not HAVE_NUMBA:
        raise ImportError("kernel='numba' needs numba, a dependency of dnnh that did not import (pip install numba)")
    if kernel == "faiss" and not HAVE_FAISS:
        raise ImportError("kernel='faiss' needs faiss-cpu (pip install 'dnnh[faiss]')")
    return kernel


def default_threads() -> int:
    env = os.environ.get("DNNH_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def run_blocks(fn: Callable[[int, int], Any], blocks: list[tuple[int, int]], threads: int) -> list[Any]:
    """Run ``fn`` over query blocks on a shared pool (keyed by pid: a forked child gets its own)."""
    if threads <= 1 or len(blocks) <= 1:
        return [fn(a, b) for a, b in blocks]
    key = (os.getpid(), threads)
    with _pool_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="dnnh-index")
    return list(pool.map(lambda ab: fn(*ab), blocks))


def _small_blocks(nq: int, threads: int, most: int, per_thread: int = 4) -> list[tuple[int, int]]:
    """Query row ranges of at most ``most`` rows, about ``per_thread`` a thread (for balance under load)."""
    rows = max(1, min(most, -(-nq // (per_thread * max(threads, 1)))))
    return [(s, min(s + rows, nq)) for s in range(0, nq, rows)]


@dataclass
class Tables:
    """Lookup structures derived from the groups, built on first need and dropped on any change.

    With numba every strategy reads the groups' one sorted copy of the codes: lookups and the
    prefix-ball radius search go through :meth:`directory` (1-2 bytes a distinct code), scans
    skip blocks by :meth:`prefixes` (a quarter of a byte a code at 64 bits). MIH tables (16 bytes
    a distinct code per substring) are built only for a forced ``strategy="mih"`` or where they
    stay small next to the items (:data:`dnnh.index.cost.MIH_SHARE`).
    """
    groups: Groups
    nbits: int
    item_bytes: int | None = None  # what the items take (groups and ids), the yardstick of MIH's tables
    _directory: tuple[np.ndarray, np.uint64] | None = None
    _sorted: SortedKeys | None = None
    _faiss: FaissScan | None = None
    _planes: np.ndarray | None = None
    _prefixes: tuple[np.ndarray, np.ndarray] | None = None
    _shares: dict[int, float] = field(default_factory=dict)
    _mih: dict[int, MihTables] = field(default_factory=dict)
    _masks: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    knn_tried: int = 0    # k-NN queries that probed first, and how many probing settled
    knn_settled: int = 0

    def directory(self) -> tuple[np.ndarray, np.uint64]:
        """Start of each top-bits value in the sorted codes, and the shift that gives those bits."""
        if self._directory is None:
            self._directory = directory(self.groups.codes, self.nbits)
            self._scratch_done()
        return self._directory

    def _scratch_done(self) -> None:
        """After building a table of a large index, hand its scratch memory back (see release_scratch)."""
        if self.groups.ndistinct >= TRIM_FROM:
            release_scratch()

    def prefix_masks(self, radius: int) -> np.ndarray:
        """Flip masks (P, 1) of the directory's prefix ball at ``radius`` (distance order)."""
        key = -1 - radius  # kept beside the full-code masks, under negative keys
        if key not in self._masks:
            start, shift = self.directory()
            b = min(self.nbits, 64) - int(shift)
            self._masks[key] = flip_masks(b, min(radius, b))
        return self._masks[key][0]

    def sorted(self) -> SortedKeys:
        if self._sorted is None:
            self._sorted = SortedKeys.build(self.groups.codes)
        return self._sorted

    def faiss(self) -> FaissScan:
        if self._faiss is None:
            self._faiss = FaissScan(self.groups)
        return self._faiss

    def planes(self) -> np.ndarray:
        """The codes transposed, (nwords, m), for the vector scan of codes longer than one word.

        One-word codes are scanned in place, so this costs nothing for them (a (1, 0) placeholder);
        longer codes hold a second copy of the distinct codes once a numba scan has run.
        """
        if self._planes is None:
            codes = self.groups.codes
            self._planes = (np.zeros((1, 0), np.uint64) if codes.shape[1] == 1
                            else np.ascontiguousarray(codes.T))
        return self._planes

    def prefixes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each block of the scan's sorted codes' common prefix, a lower bound on its distances."""
        if self._prefixes is None:
            from dnnh.index.kernels import GROUP, PREFIX_BLOCK

            self._prefixes = prefix_bounds(self.groups.codes, PREFIX_BLOCK, GROUP // PREFIX_BLOCK)
            self._scratch_done()
        return self._prefixes

    def scan_share(self, radius: int, sample: int = 32) -> float:
        """Share of the prefix blocks a scan at ``radius`` reads, for queries drawn like the items.

        Measured on ``sample`` stored items (the codes of random item slots, so a code weighs as
        much as its bucket), as the MIH estimate uses the real tables: learned codes cluster, and
        then most blocks are skipped; on random codes few are at small radii.
        """
        if radius not in self._shares:
            g = self.groups
            values, masks = self.prefixes()
            nb = -(-g.ndistinct // cost.PREFIX_BLOCK)
            q = self._sample_codes(sample)
            read = 0
            for b0 in range(0, nb, 4096):  # in slices: a (sample, nb) temporary would be 8 bytes a block a query
                b1 = min(b0 + 4096, nb)
                bound = np.zeros((sample, b1 - b0), np.int64)
                for w in range(q.shape[1]):
                    bound += np.bitwise_count((q[:, None, w] ^ values[None, w, b0:b1]) & masks[None, w, b0:b1])
                read += int((bound <= radius).sum())
            self._shares[radius] = read / max(sample * nb, 1)
        return self._shares[radius]

    def _sample_codes(self, sample: int = 32) -> np.ndarray:
        """The codes of ``sample`` random item slots (a code weighs as much as its bucket)."""
        g = self.groups
        slots = np.random.default_rng(0).integers(0, g.ntotal, sample)
        return g.codes[slots if g.singletons else np.searchsorted(g.offsets, slots, side="right") - 1]

    def prefix_reads(self, radius: int) -> float:
        """Codes a prefix-ball search at ``radius`` reads a query, for queries drawn like the items."""
        key = -1 - radius
        if key not in self._shares:
            starts, shift = self.directory()
            bits = self.prefix_masks(radius)[:, 0]
            if len(bits) > 1 << 16:  # a huge ball: estimate from the uniform bucket size
                self._shares[key] = float(len(bits)) * self.groups.ndistinct / max(len(starts) - 1, 1)
            else:
                q = self._sample_codes()
                bucket = ((q[:, 0] >> shift)[:, None] ^ bits[None, :]).astype(np.int64)
                self._shares[key] = float((starts[bucket + 1].astype(np.int64) - starts[bucket]).sum(axis=1).mean())
        return self._shares[key]

    def mih(self, s: int) -> MihTables:
        if s not in self._mih:
            self._mih[s] = MihTables.build(self.groups.codes, self.groups.sizes, self.nbits, s)
            self._scratch_done()
        return self._mih[s]

    def masks(self, radius: int) -> tuple[np.ndarray, np.ndarray]:
        if radius not in self._masks:
            self._masks[radius] = flip_masks(self.nbits, radius)
        return self._masks[radius]

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of each table built so far (0 for those not built)."""
        return {
            "directory": int(self._directory[0].nbytes) if self._directory is not None else 0,
            "prefix_bounds": sum(int(a.nbytes) for a in self._prefixes) if self._prefixes is not None else 0,
            "planes": int(self._planes.nbytes) if self._planes is not None else 0,
            "mih": sum(t.nbytes() for t in self._mih.values()),
            "sorted_keys": self._sorted.nbytes() if self._sorted is not None else 0,
            "faiss": self._faiss.nbytes() if self._faiss is not None else 0,
            "masks": sum(int(a.nbytes) for m in self._masks.values() for a in m),
        }

    def nbytes(self) -> int:
        return sum(self.memory_bytes().values())


def _one_word(codes: np.ndarray) -> np.ndarray:
    """One-word codes as a contiguous 1-D view (the kernels' vectorised path), else an empty array."""
    return codes.reshape(-1) if codes.shape[1] == 1 else np.zeros(0, np.uint64)


def knn(t: Tables, queries: np.ndarray, k: int, kernel: str, strategy: str, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances (nq, k) int32, positions (nq, k) int64), -1 padded."""
    g = t.groups
    m, nw = g.codes.shape
    success = cost.knn_success(t.knn_tried, t.knn_settled)
    level = cost.knn_probe_levels(m, nw, t.nbits, kernel, success) if strategy == "auto" else -1
    if kernel == "numba":
        kr = kernels()
        if level >= 0:
            slots, shift = t.directory()
            masks, lims = t.masks(level)
        else:
            slots, shift = np.zeros(2, np.int32), np.uint64(0)
            masks, lims = np.zeros((0, nw), np.uint64), np.zeros(1, np.int64)
        out_d = np.empty((len(queries), k), np.int32)
        out_p = np.empty((len(queries), k), np.int64)
        codes1, planes = _one_word(g.codes), t.planes()
        pre_vals, pre_masks = t.prefixes()
        scanned = run_blocks(lambda a, b: kr.knn_block(g.codes, codes1, planes, pre_vals, pre_masks, g.bucket_offsets,
                                                       g.members, slots, shift, masks, lims, queries[a:b], k, t.nbits,
                                                       out_d[a:b], out_p[a:b]),
                             _small_blocks(len(queries), threads, 64), threads)
        if level >= 0:
            t.knn_tried += len(queries)
            t.knn_settled += len(queries) - int(sum(scanned))
        return out_d, out_p
    nq = len(queries)
    parts, todo = [], np.arange(nq)
    if level >= 0:
        q, c, d = probe_candidates(t.sorted(), g.codes, queries, level, t.nbits)
        enough = np.bincount(q, weights=g.sizes[c], minlength=nq) >= k
        t.knn_tried += nq
        t.knn_settled += int(enough.sum())
        sel = enough[q]
        parts.append((q[sel], c[sel], d[sel]))
        todo = np.flatnonzero(~enough)
    if len(todo):
        sub = queries[todo]
        if kernel == "faiss":
            q, c, d = t.faiss().knn(sub, k)
            parts.append((todo[q], c, d))
        else:
            found = run_blocks(lambda a, b: knn_scan_block(g, sub[a:b], k, t.nbits, a),
                               query_blocks(len(sub), m, threads), threads)
            parts.extend((todo[q], c, d) for q, c, d in found)
    q, c, d = (np.concatenate(x) for x in zip(*parts))
    return expand_knn(g, q, c, d, nq, k)


def range_plan(t: Tables, radius: int, kernel: str) -> cost.RangePlan:
    g = t.groups
    return cost.plan_range(g.ndistinct, g.codes.shape[1], t.nbits, radius, kernel,
                           lambda s: t.mih(s).estimated_candidates(radius),
                           (lambda: t.scan_share(radius)) if kernel == "numba" else None, item_bytes=t.item_bytes,
                           prefix_codes=lambda: t.prefix_reads(radius))


def range_search(t: Tables, queries: np.ndarray, radius: int, kernel: str, strategy: str, threads: int,
                 ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lims (nq + 1), distances int32, ids int64) of every item within ``radius``, inclusive.

    ``ids[position]`` is an item's id (None: ids are the positions). Each query's results come by
    distance, then distinct code (the groups' sorted order), then position: every strategy and
    kernel gives this same order, and none sorts items, only codes.
    """
    g = t.groups
    m, nw = g.codes.shape
    nq = len(queries)
    plan = range_plan(t, radius, kernel) if strategy == "auto" else cost.plan_range(m, nw, t.nbits, radius, kernel)
    chosen = plan.strategy if strategy == "auto" else strategy
    s = plan.s or cost.default_mih_s(t.nbits, radius, m)
    if chosen == "probe" and cost.ball_size(t.nbits, radius) > cost.MAX_PROBES:
        raise ValueError(f"strategy='probe' at radius {radius} means {cost.ball_size(t.nbits, radius):,} probes a "
                         f"query on {t.nbits}-bit codes (limit {cost.MAX_PROBES:,}); use 'mih' or 'scan'")
    bits = cost.prefix_bits(m, t.nbits)
    if chosen == "prefix" and cost.ball_size(bits, radius) > cost.MAX_PROBES:
        raise ValueError(f"strategy='prefix' at radius {radius} means {cost.ball_size(bits, radius):,} buckets a "
                         f"query ({bits}-bit prefixes, limit {cost.MAX_PROBES:,}); use 'mih' or 'scan'")
    if kernel == "numba":
        return _range_numba(t, queries, radius, chosen, s, threads, ids)
    if chosen == "probe":
        q, c, d = probe_candidates(t.sorted(), g.codes, queries, radius, t.nbits)
    elif chosen == "prefix":
        q, c, d = prefix_candidates(*t.directory(), t.prefix_masks(radius), g.codes, queries, radius)
    elif chosen == "mih":
        q, c, d = t.mih(s).candidates(g.codes, queries, radius)
    elif kernel == "faiss":
        q, c, d = t.faiss().range(queries, radius)
    else:
        found = run_blocks(lambda a, b: range_scan_block(g, queries[a:b], radius, a),
                           query_blocks(nq, m, threads), threads)
        q, c, d = (np.concatenate(x) for x in zip(*found)) if found else (np.zeros(0, np.int64),) * 3
    lims, dist, pos = expand_range(g, q, c, d, nq)
    return lims, dist, pos if ids is None else ids[pos].astype(np.int64, copy=False)


def _range_numba(t: Tables, queries: np.ndarray, radius: int, chosen: str, s: int, threads: int,
                 ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two passes over query blocks: find each query's codes (counting its items), then, with the
    output allocated once at its final size, copy every bucket straight into place."""
    g = t.groups
    nw = g.codes.shape[1]
    slots, shift = np.zeros(2, np.int32), np.uint64(0)
    masks, lims = np.zeros((0, nw), np.uint64), np.zeros(1, np.int64)
    z64, zu = np.zeros(1, np.int64), np.zeros(0, np.uint64)
    mih = (z64, z64, z64, zu, z64, zu, z64, np.zeros(1, np.int32), np.zeros(0, np.int32))
    if chosen == "probe":
        slots, shift = t.directory()
        masks, lims = t.masks(radius)
    elif chosen == "prefix":
        slots, shift = t.directory()
        masks = t.prefix_masks(radius)
    elif chosen == "mih":
        tab = t.mih(s)
        radii, sub_masks, sub_lims = tab.sub_masks(radius)
        mih = (tab.starts, tab.widths, radii, sub_masks, sub_lims, tab.ukeys, tab.ukey_lims, tab.uoffsets, tab.ucodes)
    code = {"scan": 0, "probe": 1, "mih": 2, "prefix": 3}[chosen]
    kr = kernels()
    codes1 = _one_word(g.codes)
    planes = t.planes() if chosen == "scan" else np.zeros((1, 0), np.uint64)
    pre_vals, pre_masks = t.prefixes() if chosen == "scan" else (np.zeros((1, 0), np.uint64),) * 2
    blocks = _small_blocks(len(queries), threads, 64 if chosen == "scan" else 1024, per_thread=2)
    found = dict(zip(blocks, run_blocks(
        lambda a, b: kr.range_candidates(code, g.codes, codes1, planes, pre_vals, pre_masks, g.bucket_offsets, radius,
                                         queries[a:b], slots, shift, masks, lims, *mih), blocks, threads)))
    lims_out = np.zeros(len(queries) + 1, np.int64)
    if not blocks:
        return lims_out, np.zeros(0, np.int32), np.zeros(0, np.int64)
    np.cumsum(np.concatenate([found[b][3] for b in blocks]), out=lims_out[1:])
    out_d = np.empty(int(lims_out[-1]), np.int32)
    out_i = np.empty(int(lims_out[-1]), np.int64)
    id_map = np.zeros(0, np.int64) if ids is None else ids
    run_blocks(lambda a, b: kr.range_fill(*found[(a, b)][:3], g.bucket_offsets, g.members, id_map, lims_out[a:b],
                                          out_d, out_i),
               blocks, threads)
    return lims_out, out_d, out_i
