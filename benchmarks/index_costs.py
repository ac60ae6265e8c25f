"""Measure the unit costs behind dnnh.index.cost.UNIT_COSTS on this machine.

Each strategy is timed on uniform random 48-bit codes, where its own work dominates (few results,
so expanding buckets is negligible), and divided by its count of elementary steps. The printout
gives each cost relative to one scanned code word, the unit of the cost model. One thread, best of
five, so that other load on the machine matters less.

    python benchmarks/index_costs.py --kernel numba
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dnnh import machine as cpu  # noqa: E402
from dnnh.index import HammingIndex, search  # noqa: E402
from dnnh.index.layout import ball_size, to_words  # noqa: E402
from dnnh.index.mih import split, table_radii  # noqa: E402


def best(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernel", "--engine", dest="kernel", default="numba", choices=["numba", "numpy", "faiss"],
                   help="the index's scan kernel (--engine: its old name)")
    p.add_argument("--m", type=int, default=400_000)
    p.add_argument("--nq", type=int, default=200)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    nbits = 48
    ix = HammingIndex(nbits, kernel=args.kernel, num_threads=1)
    ix.add(rng.integers(0, 256, (args.m, 6), dtype=np.uint8))
    q = rng.integers(0, 256, (args.nq, 6), dtype=np.uint8)
    m, nq = ix.ndistinct, args.nq
    tables = ix._prepared()
    words = to_words(q, nbits)

    if args.kernel == "numba":
        # numba's scan skips blocks by their common prefix, so random codes at radius 0 would time
        # the skipping: bounds of zero make it read every code, the cost the unit stands for
        kr, g = search.kernels(), tables.groups
        values, masks = tables.prefixes()
        z64, zu = np.zeros(1, np.int64), np.zeros(0, np.uint64)
        no_mih = (z64, z64, z64, zu, z64, zu, z64, np.zeros(1, np.int32), np.zeros(0, np.int32))
        scan = best(lambda: kr.range_candidates(0, g.codes, g.codes.reshape(-1), tables.planes(), values,
                                                np.zeros_like(masks), g.bucket_offsets, 0, words, np.zeros(2, np.int32),
                                                np.uint64(0), np.zeros((0, 1), np.uint64), np.zeros(1, np.int64),
                                                *no_mih)) / (nq * m)
    else:
        scan = best(lambda: ix.range_search(q, 0, strategy="scan")) / (nq * m)
    probe = best(lambda: ix.range_search(q, 2, strategy="probe")) / (nq * ball_size(nbits, 2))
    print(f"# {cpu.describe(1)}")
    print(f"kernel {args.kernel}: {m:,} distinct 48-bit codes, {nq} queries, 1 thread")
    print(f"scan  {scan * 1e9:9.2f} ns a code         = 1 unit")
    print(f"probe {probe * 1e9:9.2f} ns a ball code    = {probe / scan:7.1f} units")

    rows, times = [], []
    for s, radius in ((2, 1), (3, 2), (4, 3), (3, 5), (4, 7)):
        _, widths = split(nbits, s)
        radii = table_radii(radius, s)
        probes = sum(ball_size(int(w), int(r)) for w, r in zip(widths, radii) if r >= 0)
        cand = sum(m * ball_size(int(w), int(r)) / 2 ** int(w) for w, r in zip(widths, radii) if r >= 0)
        tables.mih(s)
        if args.kernel == "numba":
            def run(s=s, radius=radius):
                return search._range_numba(tables, words, radius, "mih", s, 1, None)
        else:
            def run(s=s, radius=radius):
                return tables.mih(s).candidates(tables.groups.codes, words, radius)
        t = best(run) / nq
        rows.append((probes, cand))
        times.append(t)
        print(f"mih s={s} r={radius}: {t * 1e6:9.2f} us a query, {probes} substring probes, ~{cand:,.1f} candidates")
    (mih_probe, verify), *_ = np.linalg.lstsq(np.asarray(rows), np.asarray(times), rcond=None)
    print(f"fit: mih_probe {mih_probe * 1e9:.1f} ns = {mih_probe / scan:.1f} units; "
          f"verify {verify * 1e9:.1f} ns = {verify / scan:.1f} units")
    print(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (timings on a loaded machine "
          "are upper bounds; the unit costs only need to be right within a small factor)")


if __name__ == "__main__":
    main()
