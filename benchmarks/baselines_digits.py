"""Shallow hashing baselines on scikit-learn's digits: MAP and fit/encode times at 12/24/32/48 bits.

Why: a quick, fully local check that the baselines order as the literature says (supervised >
unsupervised, ITQ > PCAH) on real images before the long Fashion-MNIST runs. Protocol:
``paper_split(labels, 10, 100, seed=0)``: 100 queries (10 a class), the other 1,697 items are
the database, training on ``split.train`` (900 images after the 10% validation carve-out). Features:
raw pixels in [0, 1] (64 of them). MAP: whole-database AP, Hamming ranking with ties broken by
database index, by the slow reference the tests use (``dnnh.testing.reference.brute_force_map``),
cross-checked against ``dnnh.metrics.mean_average_precision`` when that module is importable.

BLAS is pinned to one thread: on this busy 2-core machine two OpenBLAS threads spin against other
processes and small products became up to 100x slower. Run:

    python benchmarks/baselines_digits.py [--bits 12 24 32 48] [--seed 0]

Prints a Markdown report (the figures in docs/results/baselines.md come from it).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from dnnh.baselines import SHALLOW_METHODS, make_shallow, pixel_features
from dnnh.data.digits import load_digits
from dnnh.data.splits import paper_split
from dnnh.testing.reference import brute_force_map
from dnnh import machine


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def library_map(qb, db, ql, dl) -> float | None:
    try:
        from dnnh.metrics import mean_average_precision
    except ImportError:
        return None
    return float(mean_average_precision(qb, db, ql, dl))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[12, 24, 32, 48])
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of every method")
    parser.add_argument("--methods", nargs="+", default=list(SHALLOW_METHODS))
    args = parser.parse_args()
    print(f"# {machine.describe()} (at start)", flush=True)

    data = load_digits()
    X = pixel_features(data.images)
    y = data.labels
    split = paper_split(y, 10, 100, seed=args.seed)
    Xtr, ytr = X[split.train], y[split.train]
    Xq, yq, Xdb, ydb = X[split.query], y[split.query], X[split.database], y[split.database]

    print(f"# Shallow baselines on digits ({time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, BLAS pinned to 1 thread; "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print(f"- {split.summary()}; features {X.shape[1]} pixels in [0, 1]; seed {args.seed}\n")

    rows, checks = [], []
    for name in args.methods:
        maps, fits, encs = [], [], []
        for bits in args.bits:
            est = make_shallow(name, bits, random_state=args.seed)
            t0 = time.perf_counter()
            est.fit(Xtr, ytr if est.supervised else None)
            t1 = time.perf_counter()
            qb, db = est.transform(Xq), est.transform(Xdb)
            t2 = time.perf_counter()
            m = brute_force_map(qb, db, yq, ydb)
            lib = library_map(qb, db, yq, ydb)
            if lib is not None:
                checks.append(abs(lib - m))
            maps.append(m)
            fits.append(t1 - t0)
            encs.append(t2 - t1)
        rows.append((name, maps, fits, encs))
        print(f"  done {name}", file=sys.stderr, flush=True)

    head = " / ".join(str(b) for b in args.bits)
    print(f"| method | MAP ({head} bits) | fit s ({head}) | encode s, 1,797 items ({head}) |")
    print("|---|---|---|---|")
    for name, maps, fits, encs in rows:
        print(f"| {name} | {' / '.join(f'{v:.3f}' for v in maps)} | {' / '.join(f'{v:.2f}' for v in fits)} "
              f"| {' / '.join(f'{v:.3f}' for v in encs)} |")
    if checks:
        print(f"\ndnnh.metrics.mean_average_precision agrees with the reference to {max(checks):.1e} "
              f"on all {len(checks)} runs.")
    else:
        print("\n(dnnh.metrics not importable: no cross-check.)")


if __name__ == "__main__":
    with threadpool_limits(limits=1):
        main()
