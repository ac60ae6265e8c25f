"""Time the retrieval metrics at scale and show that memory stays bounded.

    .venv/bin/python benchmarks/metrics_scale.py            # 1,000 queries x 1,000,000 48-bit codes
    .venv/bin/python benchmarks/metrics_scale.py --queries 100 --db 100000

Codes and labels are random (10 classes), so MAP is about 0.1: the point is time and memory, not
quality. Each metric runs once under tracemalloc, which sees numpy's buffers; the peak is taken
after the inputs exist, so it is what the metric itself allocates. It is printed next to the size
of the dense (queries x database) float64 / float32 distance matrix a naive evaluation would build.
numpy does this work on one thread; OMP/BLAS threads are pinned to 1 so the figures are comparable.
CPU seconds are printed beside wall seconds: on a shared machine the wall clock also counts the
time other processes held the cores.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from dnnh.metrics import mean_average_precision, precision_within_radius, retrieval_report  # noqa: E402
from dnnh import machine

MB = 1e6


def measure(fn: Callable[[], object]) -> tuple[float, float, float, object]:
    """Wall seconds, CPU seconds of this process (steadier on a shared machine), peak bytes, result."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return wall, cpu, peak, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--db", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, default=48)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--topk", type=int, default=5000)
    ap.add_argument("--max-memory-mib", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-report", action="store_true", help="time only MAP and precision within radius 2")
    args = ap.parse_args()
    print(f"# {machine.describe()} (at start)", flush=True)

    rng = np.random.default_rng(args.seed)
    db = rng.integers(0, 2, (args.db, args.bits), dtype=np.uint8)
    qb = rng.integers(0, 2, (args.queries, args.bits), dtype=np.uint8)
    dl = rng.integers(0, args.classes, args.db)
    ql = rng.integers(0, args.classes, args.queries)
    budget = args.max_memory_mib * 2**20
    cells = args.queries * args.db
    dense64, dense32 = cells * 8, cells * 4
    print(f"numpy {np.__version__}, python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        f"{args.queries:,} queries x {args.db:,} codes of {args.bits} bits, {args.classes} classes, "
        f"max_memory {args.max_memory_mib} MiB"
    )
    print(f"inputs: {(db.nbytes + qb.nbytes) / MB:.0f} MB of 0/1 uint8 bits (not counted below)")
    print(f"a dense distance matrix would take {dense64 / MB:,.0f} MB (float64) / {dense32 / MB:,.0f} MB (float32)\n")

    runs = [
        ("MAP (whole database)", lambda: mean_average_precision(qb, db, ql, dl, max_memory=budget)),
        (f"MAP@{args.topk}", lambda: mean_average_precision(qb, db, ql, dl, args.topk, max_memory=budget)),
        ("precision within radius 2", lambda: precision_within_radius(qb, db, ql, dl, 2)),
    ]
    if not args.skip_report:
        report = lambda: retrieval_report(qb, db, ql, dl, args.topk, max_memory=budget)  # noqa: E731
        runs.append((f"retrieval_report(topk={args.topk})", report))
    header = (
        f"{'metric':34} {'value':>8} {'wall s':>8} {'CPU s':>8} {'CPU ms/query':>12} {'peak MB':>8} "
        f"{'dense64/peak':>13} {'dense32/peak':>13}"
    )
    print(header)
    print("-" * len(header))
    for label, fn in runs:
        wall, cpu, peak, value = measure(fn)
        shown = f"{value.map:.4f}" if hasattr(value, "map") else f"{value:.4f}"
        print(
            f"{label:34} {shown:>8} {wall:8.2f} {cpu:8.2f} {1e3 * cpu / args.queries:12.2f} {peak / MB:8.1f} "
            f"{dense64 / peak:13.0f} {dense32 / peak:13.0f}"
        )


if __name__ == "__main__":
    main()
