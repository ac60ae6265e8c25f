"""Benchmark dnnh's HammingIndex against faiss-cpu's IndexBinaryFlat, in the same run.

Sections (``--cases 1,2,3,4``, all by default):
  1. 1,000,000 random 64-bit codes, 1,000 queries, k=100: the worst case for grouping (every code
     distinct), target ratio >= 1.0.
  2. 1,000,000 learned-like 48-bit codes (a few thousand centres, a few unstable bits each, rare
     noise), queries drawn the same way, k=100: target >= 10x.
  3. radius 2 over the set of case 2 (FAISS range_search at 3: FAISS is strict, ours inclusive):
     target >= 100x.
  4. bytes of memory per stored code, next to FAISS's.

Every timing is the median of ``--repeats`` runs after one warm-up (JIT compilation, lazy tables),
FAISS and dnnh alternating so that load from other processes hits both alike. Results are checked
equal to FAISS's (distances exactly; ids as sets per distance where FAISS's tie order differs).

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

import numpy as np  # noqa: E402

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


def same_range(flims, fd, fi, lims, d, i) -> str:
    if not np.array_equal(np.asarray(flims, np.int64), lims):
        return "COUNTS DIFFER"
    for row in range(len(lims) - 1):
        a, b = int(lims[row]), int(lims[row + 1])
        fo = np.lexsort((fi[a:b], fd[a:b]))
        if not (np.array_equal(fd[a:b][fo], d[a:b]) and np.array_equal(fi[a:b][fo], i[a:b])):
            return f"RESULTS DIFFER (query {row})"
    return "identical (as sorted by distance, then id)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="1,2,3,4")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--nq", type=int, default=1_000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--threads", type=int, default=int(THREADS_DEFAULT))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--engine", default="auto", help="dnnh engine: auto, numba, faiss, numpy")
    p.add_argument("--centres", type=int, default=4000)
    p.add_argument("--unstable", type=int, default=4, help="unstable bits per centre")
    p.add_argument("--p-unstable", type=float, default=0.2)
    p.add_argument("--p-noise", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codes", help="cases 2-4 on codes a trained model made (a codes .npz, tiled to --n rows) "
                                   "instead of the generator")
    p.add_argument("--query-codes", help="with --codes: the queries' codes .npz (default: --nq database rows)")
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
    print(f"# dnnh engine: {HammingIndex(8, engine=args.engine).engine}; load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []

    def index_of(codes: np.ndarray, nbits: int) -> tuple[HammingIndex, float]:
        t = time.perf_counter()
        ix = HammingIndex(nbits, engine=args.engine, num_threads=args.threads)
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
            note = same_range(fl, fd, fi, l, d, i) + f"; strategy {plan.strategy}" + (f" s={plan.s}" if plan.s else "")
            note += f"; {int(l[-1]):,} results"
            rows.append((f"3 {'model codes' if args.codes else 'learned-like'} {nbits}-bit, radius 2", ix.ndistinct, tf, td, note, build))
            print(rows[-1], flush=True)
        mem2 = (ix, fx, 48)

    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
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
        for label, (ix, fx, nbits) in held + [("learned-like 48-bit", mem2)]:
            mem = ix.memory_usage()
            base = mem["total"] - mem["tables"]
            print(f"| {label} ({ix.ntotal:,} codes, ids 0..n-1) | {base / ix.ntotal:.2f} | "
                  f"{mem['total'] / ix.ntotal:.2f} | {fx.code_size} | {fx.code_size + 8} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
