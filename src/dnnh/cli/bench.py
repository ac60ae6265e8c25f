"""`dnnh bench`: every method at every code length on one saved split, into one results folder.

Reruns resume: finished entries are read back, interrupted deep runs continue from their
checkpoint. The output layout is described in :mod:`dnnh.bench.harness`.
"""

from __future__ import annotations

import argparse
import time

from dnnh.cli.common import (add_data_args, add_shared_training_args, add_split_args, data_source, folder_path,
                             non_negative_int, positive_int, show_bars, split_spec, training_options)


def register(sub: argparse._SubParsersAction) -> None:
    from dnnh.bench.methods import known_methods

    p = sub.add_parser("bench", help="compare methods x code lengths on one split; table, curves, JSON",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    add_split_args(p)
    p.add_argument("--methods", required=True, help=f"comma-separated method names. Known: {known_methods()}")
    p.add_argument("--bits", default="12,24,32,48", help="comma-separated code lengths (default 12,24,32,48)")
    p.add_argument("--out", type=folder_path, required=True, help="results folder (reused and resumed on rerun)")
    add_shared_training_args(p, every=True)
    p.add_argument("--topk", type=positive_int, help="report MAP@K instead of MAP over the whole database (NUS-WIDE: 5000)")
    p.add_argument("--radius", type=non_negative_int, default=2, help="Hamming radius of the precision column (default 2)")
    p.add_argument("--target-map", type=float, help="validation MAP of the dnnh vs dnnh-random speed comparison "
                                                    "(default: the lower of their best validation MAPs)")
    p.add_argument("--quiet", action="store_true", help="print only the results table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.bench import run_bench, shell_command

    t0 = time.perf_counter()
    result = run_bench(data_source(args), args.out, args.methods, args.bits, split=split_spec(args),
                       training=training_options(args), topk=args.topk, radius=args.radius,
                       target_map=args.target_map, command=shell_command(equivalent_argv(args)),
                       progress=not args.quiet and show_bars(), log=(lambda message: None) if args.quiet else print)
    print()
    print((result.out / "results.md").read_text())
    print(f"bench finished in {time.perf_counter() - t0:.0f}s; results in {result.out}")
    return 0


def equivalent_argv(args: argparse.Namespace) -> list[str]:
    """The command line with every setting spelled out (defaults included), for results.md.

    Rebuilt from the parsed flags rather than copied from sys.argv, so it is right however the
    command was invoked (a shell, ``python -m dnnh``, or ``main([...])`` from Python).
    """
    argv = ["bench"]
    for dest, value in vars(args).items():
        if dest == "batchnorm" and value is False:
            argv.append("--no-batchnorm")
            continue
        if dest in ("func", "command", "debug", "quiet") or value is None or value is False:
            continue
        flag = "--" + dest.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv
