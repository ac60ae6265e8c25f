"""Reproduce the comparison table: every method at 12/24/32/48 bits on Fashion-MNIST's paper split.

    python benchmarks/reproduce.py                      # the full table into results/fmnist
    python benchmarks/reproduce.py --quick              # 2 epochs, a few methods: minutes, a smoke test
    python benchmarks/reproduce.py --out results/x --epochs 10 --methods dnnh,itq

A thin script over :func:`dnnh.bench.run_bench`, the same function as ``dnnh bench``; rerunning
it resumes (finished entries are read back, interrupted deep runs continue from their
checkpoint). The defaults are those of the recorded Fashion-MNIST table (docs/RESULTS.md): 60
epochs, shifts and horizontal flips, batch norm. Validation MAP was still rising at epoch 20;
60 epochs and the bits/12 margin lifted DNNH from 0.770 to 0.840 at 48 bits. A 60-epoch nin-small run is 15-18 minutes
on one shared core (about 420 images/s plus per-epoch validation), so the full table, 12 deep
methods x 4 code lengths, is about half a day on 2 cores; results.md fills in as entries finish.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from dnnh.bench import run_bench
from dnnh.data.sources import SplitSpec
from dnnh import machine

SHALLOW = ["lsh", "pcah", "itq", "sh", "cca-itq", "ksh", "sdh"]
DEEP = ["dnnh", "dnnh-paper", "dnnh-fc", "dnnh-threshold", "dnnh-random", "dnnh-eps0.05", "dnnh-eps0.25",
        "dpsh", "dsh", "csq", "classifier", "cnnh"]
FULL = DEEP + SHALLOW + ["itq@features"]
QUICK = ["dnnh", "dnnh-random", "cnnh", "lsh", "itq"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--out", help="results folder (default results/fmnist, with --quick results/fmnist-quick)")
    p.add_argument("--methods", default=",".join(FULL))
    p.add_argument("--bits", default="12,24,32,48")
    p.add_argument("--epochs", type=int, help="epochs of every deep method (default 60; 2 with --quick)")
    p.add_argument("--augment", default="shift-flip", choices=("none", "shift", "shift-flip"),
                   help="augmentation of every deep method (default shift-flip)")
    p.add_argument("--backbone", default="nin-small")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help=f"2 epochs, 12 and 32 bits, methods {','.join(QUICK)}")
    args = p.parse_args(argv)
    print(f"# {machine.describe()} (at start)", flush=True)
    if args.quick:  # its own folder: a bench folder refuses entries made with other epochs
        args.epochs, args.bits = args.epochs or 2, "12,32"
        args.methods = ",".join(QUICK) if args.methods == ",".join(FULL) else args.methods
    args.epochs = args.epochs or 60
    args.out = args.out or ("results/fmnist-quick" if args.quick else "results/fmnist")
    run_bench(args.data, args.out, args.methods, args.bits,
              split=SplitSpec(protocol="paper", queries_per_class=100, train_per_class=500),
              training={"epochs": args.epochs, "backbone": args.backbone, "threads": args.threads,
                        "augment": args.augment},
              command=shlex.join(["python", "benchmarks/reproduce.py", *(sys.argv[1:] if argv is None else argv)]))
    print(open(f"{args.out}/results.md").read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
