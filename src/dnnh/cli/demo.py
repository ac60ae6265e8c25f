"""`dnnh demo`: DNNH at 12/24/32/48 bits on scikit-learn's digits next to LSH and ITQ, as a table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dnnh.cli.common import folder_path, positive_int, show_bars


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train and score DNNH on digits, print a results table", description=__doc__)
    p.add_argument("--out", type=folder_path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--bits", default="12,24,32,48", help="comma-separated code lengths (default 12,24,32,48)")
    p.add_argument("--epochs", type=positive_int, help="training epochs per model (default: the recipe's)")
    p.add_argument("--quiet", action="store_true", help="print only the results table and its legend")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.bench import parse_bits
    from dnnh.demo import TABLE_LEGEND, format_table, run_demo

    nbits = tuple(parse_bits(args.bits))
    t0 = time.perf_counter()
    rows = run_demo(args.out, nbits=nbits, epochs=args.epochs, progress=not args.quiet and show_bars(),
                    log=(lambda message: None) if args.quiet else print)
    print()
    print(format_table(rows))
    print(TABLE_LEGEND)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; runs, PR curves and results.md in {args.out}")
    return 0
