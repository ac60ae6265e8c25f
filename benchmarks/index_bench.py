"""Benchmark dnnh's HammingIndex against faiss-cpu's IndexBinaryFlat, in the same run.

Sections (``--cases 1,2,3,4,5``, all by default):
  1. 1,000,000 random 64-bit codes, 1,000 queries, k=100: the worst case for grouping (every code
     distinct), target ratio >= 2.0; printed with how far the scan is from the popcount limit.
  2. 1,000,000 learned-like 48-bit codes (a few thousand centres, a few unstable bits each, rare
     noise), queries drawn the same way, k=100: target >= 10x.
  3. radius 2 over the set of case 2 (FAISS range_search at 3: FAISS is strict, ours inclusive):
     sparse balls (a few hundred items each), target >= 100x.
  4. bytes of memory per stored code, next to FAISS's.
  5. radius 2 where balls are full: 1,000,000 48-bit codes around 100 centres with 1% bit noise,
     100 queries drawn the same way (about 9,000 items a ball, as on a trained model's codes).
     Timed against FAISS and against copying the result arrays once (``D.copy(), I.copy()``, the
     cost of writing the output): target <= 3x that copy.

Every timing is the median of ``--repeats`` runs after one warm-up (JIT compilation, lazy tables),
FAISS, dnnh (and the copy) alternating so that load from other processes hits them alike. Results
are checked equal to FAISS's (k-NN: distances and ids exactly, ties included; radius: the same
items and distances, FAISS's sorted into the index's documented order). The header gives the CPU
model, clock, the flags that decide the popcount path, the threads and the load average; the load
average is printed again at the end. Ratios mean little on a loaded machine: say so with them.

    OMP_NUM_THREADS=2 python benchmarks/index_bench.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

THREADS_DEFAULT = "2"
for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, THREADS_DEFAULT)
# FAISS's OpenMP workers otherwise spin for a while after each call, taking the cores from the
# next (dnnh) timing: a 2 ms radius search measured 17 ms right after a FAISS call that way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from dnnh import machine as cpu  # noqa: E402
from dnnh.index import HammingIndex  # noqa: E402


def learned_like(rng: np.random.Generator, n: int, nbits: int, centres: np.ndarray, unstable: np.ndarray,
                 p_unstable: float, p_noise: float) -> np.ndarray:
    """Items near centre codes: each centre has a few unstable bits that flip often, the rest rarely.

    This is how trained hash codes look: a class maps to one code up to the few bits its images
    disagree on, and an odd image lands a bit away.
    """
    which = rng.integers(0, len(centres), n)
    bits = centres[which].copy()
    flips = rng.random((n, unstable.shape[1])) < p_unstable
    rows = np.repeat(np.arange(n), unstable.shape[1]).reshape(n, -1)
    bits[rows[flips], unstable[which][flips]] ^= 1
    noise = rng.random((n, nbits)) < p_noise
    return bits ^ noise.astype(np.uint8)


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def alternate(fns: dict[str, object], repeats: int) -> dict[str, tuple[float, object]]:
    results = {name: [] for name in fns}
    outs = {}
    for name, fn in fns.items():
        outs[name] = fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            outs[name] = fn()
            results[name].append(time.perf_counter() - t)
    return {name: (statistics.median(ts), outs[name]) for name, ts in results.items()}


def same_knn(fd: np.ndarray, fi: np.ndarray, d: np.ndarray, i: np.ndarray) -> str:
    if not np.array_equal(fd, d):
        return "DISTANCES DIFFER"
    if np.array_equal(fi, i):
        return "identical"
    # FAISS may cut ties at the k-th distance differently; everything before the last distance must match
    for row in range(len(fd)):
        last = fd[row, -1]
        before = fd[row] < last
        if set(fi[row, before]) != set(i[row, before]):
            return f"IDS DIFFER (query {row})"
    return "same distances; ties at the k-th distance cut differently"


def same_range(flims, fd, fi, lims, d, i, index: HammingIndex) -> str:
    """FAISS's radius results, sorted into the index's order, against the index's.

    The index gives each query's items by distance, then code (words compared in turn, word 0
    first), then insertion order; FAISS gives them in scan order. Ids here are 0..n-1 (insertion).
    dnnh before the vector scan gave them by distance, then id: that order is recognised too.
    """
    if not np.array_equal(np.asarray(flims, np.int64), lims):
        return "COUNTS DIFFER"
    words = index.codes()
    words = np.ascontiguousarray(np.pad(words, ((0, 0), (0, -words.shape[1] % 8)))).view("<u8")
    orders = set()
    for row in range(len(lims) - 1):
        a, b = int(lims[row]), int(lims[row + 1])
        ids = fi[a:b].astype(np.int64)
        by_code = np.lexsort([ids] + [words[ids, w] for w in range(words.shape[1] - 1, -1, -1)] + [fd[a:b]])
        by_id = np.lexsort((ids, fd[a:b]))
        for name, fo in (("(distance, code, id)", by_code), ("(distance, id)", by_id)):
            if np.array_equal(fd[a:b][fo], d[a:b]) and np.array_equal(ids[fo], i[a:b]):
                orders.add(name)
                break
        else:
            return f"RESULTS DIFFER (query {row})"
    return f"identical (FAISS's sorted by {' or '.join(sorted(orders)) or 'anything: no results'})"


def popcount_peak(threads: int) -> tuple[float, float]:
    """(popcounts a second on one core, the same on ``threads`` threads) of an L1-resident loop.

    XOR and popcount of a 4 KB block, summed, as fast as numba makes it on this CPU: the ceiling a
    scan could reach if it did nothing but popcounts (no compare, no loads beyond L1).
    """
    import threading

    try:
        from dnnh.index.kernels import popcount_loop as spin
    except ImportError:  # an older dnnh
        return float("nan"), float("nan")

    block = np.random.default_rng(1).integers(0, 2**63, 512, dtype=np.int64).astype(np.uint64)
    reps = 200_000
    spin(block, np.uint64(3), 10)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        spin(block, np.uint64(3), reps)
        best = max(best, block.size * reps / (time.perf_counter() - t))
    many = 0.0
    for _ in range(2):
        workers = [threading.Thread(target=spin, args=(block, np.uint64(3 + w), reps)) for w in range(threads)]
        t = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        many = max(many, threads * block.size * reps / (time.perf_counter() - t))
    return best, many


def full_balls(rng: np.random.Generator, n: int, nq: int, nbits: int = 48, centres: int = 100,
               p_noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Codes around a few centres with independent bit noise: radius-2 balls hold ~1% of the set."""
    from dnnh.codes import pack_bits

    cs = rng.integers(0, 2, (centres, nbits), dtype=np.uint8)

    def draw(count: int) -> np.ndarray:
        return pack_bits(cs[rng.integers(0, centres, count)] ^ (rng.random((count, nbits)) < p_noise).astype(np.uint8))

    return draw(n), draw(nq)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="1,2,3,4,5")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--nq", type=int, default=1_000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--threads", type=int, default=int(THREADS_DEFAULT))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kernel", "--engine", dest="kernel", default="auto",
                   help="the index's scan kernel: auto, numba, faiss, numpy (--engine: its old name)")
    p.add_argument("--centres", type=int, default=4000)
    p.add_argument("--unstable", type=int, default=4, help="unstable bits per centre")
    p.add_argument("--p-unstable", type=float, default=0.2)
    p.add_argument("--p-noise", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codes", help="cases 2-4 on codes a trained model made (a codes .npz, tiled to --n rows) "
                                   "instead of the generator")
    p.add_argument("--query-codes", help="with --codes: the queries' codes .npz (default: --nq database rows)")
    p.add_argument("--ball-queries", type=int, default=100, help="queries of case 5 (full balls)")
    args = p.parse_args(argv)
    cases = {int(c) for c in args.cases.split(",")}

    import faiss

    faiss.omp_set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(args.threads)
    except ImportError:
        pass
    rng = np.random.default_rng(args.seed)
    print(f"# dnnh HammingIndex vs faiss {faiss.__version__} IndexBinaryFlat; threads={args.threads}, "
          f"n={args.n:,}, nq={args.nq:,}, k={args.k}, repeats={args.repeats} (median)")
    print(f"# command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"# {cpu.describe(args.threads)} (at start)")
    target = {v: os.environ[v] for v in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES") if v in os.environ}
    print(f"# dnnh kernel: {HammingIndex(8, kernel=args.kernel).kernel}"
          + (f"; numba target overridden: {target}" if target else ""))
    rows = []
    notes = []

    def index_of(codes: np.ndarray, nbits: int) -> tuple[HammingIndex, float]:
        t = time.perf_counter()
        ix = HammingIndex(nbits, kernel=args.kernel, num_threads=args.threads)
        ix.add(codes)
        _ = ix.ndistinct  # grouping happens here
        return ix, time.perf_counter() - t

    def faiss_of(codes: np.ndarray, nbits: int):
        fx = faiss.IndexBinaryFlat(nbits)
        fx.add(codes)
        return fx

    if 1 in cases:
        db = rng.integers(0, 256, (args.n, 8), dtype=np.uint8)
        q = rng.integers(0, 256, (args.nq, 8), dtype=np.uint8)
        fx = faiss_of(db, 64)
        ix, build = index_of(db, 64)
        r = alternate({"faiss": lambda: fx.search(q, args.k), "dnnh": lambda: ix.search(q, args.k)}, args.repeats)
        (tf, (fd, fi)), (td, (d, i)) = r["faiss"], r["dnnh"]
        rows.append(("1 random 64-bit, k-NN", ix.ndistinct, tf, td, same_knn(fd, fi, d, i), build))
        print(rows[-1], flush=True)
        mem1 = (ix, fx, 64)
        del db
        one, many = popcount_peak(args.threads) if ix.kernel == "numba" else (float("nan"),) * 2
        if many == many:  # not NaN
            work = float(args.n) * args.nq
            info = cpu.summary()
            line = (f"case 1 is {work:.0e} XOR-popcounts. Measured popcount peak (L1-resident loop): "
                    f"{one / 1e9:.1f}e9/s on one core, {many / 1e9:.1f}e9/s on {args.threads} threads, so "
                    f"{work / many * 1e3:.0f} ms at best; the scan took {td * 1e3:.0f} ms, "
                    f"{td / (work / many):.1f}x that")
            if "avx512_vpopcntdq" in info["flags"] and info["mhz"] and not target:
                bound = work / (8 * float(info["mhz"]) * 1e6 * args.threads)
                line += (f"; instruction bound at one VPOPCNTQ (8 words) a cycle a core, "
                         f"{info['mhz']:.0f} MHz: {bound * 1e3:.0f} ms, the scan {td / bound:.1f}x that")
            notes.append(line)
            print("# " + line, flush=True)

    if cases & {2, 3, 4}:
        nbits = 48
        centres = rng.integers(0, 2, (args.centres, nbits), dtype=np.uint8)
        unstable = np.argsort(rng.random((args.centres, nbits)), axis=1)[:, : args.unstable]
        gen = dict(centres=centres, unstable=unstable, p_unstable=args.p_unstable, p_noise=args.p_noise)
        from dnnh.codes import pack_bits

        if args.codes:
            from dnnh.codes import CodeSet

            real = CodeSet.load(args.codes)
            nbits = real.nbits
            db = np.tile(real.codes, (-(-args.n // len(real)), 1))[: args.n]
            q = (CodeSet.load(args.query_codes).codes if args.query_codes
                 else real.codes[rng.choice(len(real), args.nq, replace=False)])[: args.nq]
        else:
            db = pack_bits(learned_like(rng, args.n, nbits, **gen))
            q = pack_bits(learned_like(rng, args.nq, nbits, **gen))
        fx = faiss_of(db, nbits)
        ix, build = index_of(db, nbits)
        source = (f"codes of {args.codes} tiled" if args.codes else
                  f"learned-like set: {args.centres} centres, {args.unstable} unstable bits (p={args.p_unstable}), "
                  f"noise p={args.p_noise}")
        print(f"# {source}: {ix.ndistinct:,} distinct codes of {args.n:,}", flush=True)
        if 2 in cases:
            r = alternate({"faiss": lambda: fx.search(q, args.k), "dnnh": lambda: ix.search(q, args.k)}, args.repeats)
            (tf, (fd, fi)), (td, (d, i)) = r["faiss"], r["dnnh"]
            rows.append((f"2 {'model codes' if args.codes else 'learned-like'} {nbits}-bit, k-NN", ix.ndistinct, tf, td, same_knn(fd, fi, d, i), build))
            print(rows[-1], flush=True)
        if 3 in cases:
            plan = ix.plan_range(2)
            r = alternate({"faiss": lambda: fx.range_search(q, 3), "dnnh": lambda: ix.range_search(q, 2)}, args.repeats)
            (tf, (fl, fd, fi)), (td, (l, d, i)) = r["faiss"], r["dnnh"]
            note = same_range(fl, fd, fi, l, d, i, ix) + f"; strategy {plan.strategy}" + (f" s={plan.s}" if plan.s else "")
            note += f"; {int(l[-1]):,} results"
            rows.append((f"3 {'model codes' if args.codes else 'learned-like'} {nbits}-bit, radius 2", ix.ndistinct, tf, td, note, build))
            print(rows[-1], flush=True)
        mem2 = (ix, fx, 48)

    if 5 in cases:
        db, q = full_balls(rng, args.n, args.ball_queries)
        fx = faiss_of(db, 48)
        ix, build = index_of(db, 48)
        plan = ix.plan_range(2)
        out = ix.range_search(q, 2)
        r = alternate({"faiss": lambda: fx.range_search(q, 3), "dnnh": lambda: ix.range_search(q, 2),
                       "copy": lambda: (out[1].copy(), out[2].copy())}, args.repeats)
        (tf, (fl, fd, fi)), (td, (l, d, i)), (tc, _) = r["faiss"], r["dnnh"], r["copy"]
        note = (same_range(fl, fd, fi, l, d, i, ix) + f"; strategy {plan.strategy}; {int(l[-1]):,} results; "
                f"copying them once {tc * 1e3:.2f} ms: dnnh {td / tc:.1f}x the copy")
        rows.append(("5 full balls 48-bit, radius 2", ix.ndistinct, tf, td, note, build))
        notes.append(f"case 5: {args.ball_queries} queries, {int(l[-1]):,} results ({int(l[-1]) // max(len(q), 1):,} a "
                     f"ball); dnnh {td * 1e3:.2f} ms = {td / tc:.1f}x the {tc * 1e3:.2f} ms copy of its output "
                     f"(target <= 3x); FAISS {tf * 1e3:.0f} ms")
        print(rows[-1], flush=True)

    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for line in notes:
        print(f"# {line}")
    print()
    print("| case | distinct codes | FAISS flat (s) | dnnh (s) | speed-up | check | dnnh build (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, distinct, tf, td, note, build in rows:
        print(f"| {name} | {distinct:,} | {tf:.3f} | {td:.4f} | {tf / td:.1f}x | {note} | {build:.2f} |")
    if 4 in cases:
        print()
        print("| case 4: memory | bytes/code dnnh (base) | dnnh with lookup tables built | FAISS IndexBinaryFlat | FAISS + IndexBinaryIDMap ids |")
        print("|---|---|---|---|---|")
        held = [("random 64-bit", mem1)] if 1 in cases else []
        for label, (ix, fx, _nbits) in held + [("learned-like 48-bit", mem2)]:
            mem = ix.memory_usage()
            base = mem["total"] - mem["tables"]
            print(f"| {label} ({ix.ntotal:,} codes, ids 0..n-1) | {base / ix.ntotal:.2f} | "
                  f"{mem['total'] / ix.ntotal:.2f} | {fx.code_size} | {fx.code_size + 8} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
