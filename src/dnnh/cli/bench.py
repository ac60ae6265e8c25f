"""`dnnh bench`: every method at every code length on one saved split, into one results folder.

Reruns resume: finished entries are read back, interrupted deep runs continue from their
checkpoint. The output layout is described in :mod:`dnnh.bench.harness`.

--tune first tunes every tunable deep method on validation MAP (the learning rate at three values
times the method's own hyperparameter at two, at one code length), records the grid, every score
and the choice in OUT/tuning.json, and trains the table with the choices; later runs in the folder
use them. --seeds 0,1,2 trains each deep entry once per seed (mean ± std in every cell).
--adopt RUN brings in a run trained outside the bench, after checking its split and config.
"""

from __future__ import annotations

import argparse
import time

from dnnh.checks import Interval
from dnnh.cli.common import (add_data_args, add_shared_training_args, add_split_args, data_source, folder_path,
                             non_negative_int, number_in, positive_int, show_bars, split_spec, training_options)


def register(sub: argparse._SubParsersAction) -> None:
    from dnnh.bench.methods import known_methods  # light: names only (dnnh.bench loads lazily)

    p = sub.add_parser("bench", help="compare methods x code lengths on one split; table, curves, JSON",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    add_split_args(p)
    p.add_argument("--methods", required=True, help=f"comma-separated method names. Known: {known_methods()}")
    p.add_argument("--bits", default="12,24,32,48", help="comma-separated code lengths (default 12,24,32,48)")
    p.add_argument("--out", type=folder_path, required=True, help="results folder (reused and resumed on rerun)")
    add_shared_training_args(p, every=True)
    p.add_argument("--topk", type=positive_int,
                   help="report MAP@K instead of MAP over the whole database (default: the whole database; the "
                        "published K of NUS-WIDE is 5000)")
    p.add_argument("--radius", type=non_negative_int, default=2, help="Hamming radius of the precision column (default 2)")
    p.add_argument("--target-map", type=number_in(Interval(0, 1, what="a MAP")),
                   help="validation MAP, in [0, 1], of the dnnh vs dnnh-random speed comparison (default: the lower "
                        "of their best validation MAPs)")
    p.add_argument("--seeds", help="train each deep entry once per training seed, e.g. 0,1,2 (default: --seed "
                                   "only); results.md shows mean ± std over them")
    p.add_argument("--seeds-at", help="the code lengths that get every seed of --seeds, e.g. 12,48 (default: all; "
                                      "the others get the first seed)")
    p.add_argument("--tune", action="store_true", help="first tune every tunable deep method (dnnh, dnnh-fc, "
                   "classifier, csq, dpsh, dsh) on validation MAP at one code length; see dnnh.bench.tuning")
    p.add_argument("--tune-bits", type=positive_int, help="the code length to tune at (implies --tune; default: "
                                                          "the folder's, else the largest of --bits)")
    p.add_argument("--tune-only", action="store_true", help="stop after the tuning (implies --tune)")
    p.add_argument("--adopt", action="append", metavar="RUN", default=[],
                   help="a run folder trained outside the bench to bring in as the entry it matches (same split, "
                        "same decisive config); may be repeated")
    p.add_argument("--floors", action="store_true", help="also rank without hashing: raw pixels (cosine, Euclidean) "
                   "and, with a frozen backbone, its features (cosine), scored with the same MAP (dnnh.bench.floors)")
    p.add_argument("--quiet", action="store_true", help="print only the results table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.bench import run_bench, shell_command

    t0 = time.perf_counter()
    result = run_bench(data_source(args), args.out, args.methods, args.bits, split=split_spec(args),
                       training=training_options(args), topk=args.topk, radius=args.radius,
                       target_map=args.target_map, command=shell_command(equivalent_argv(args)),
                       progress=not args.quiet and show_bars(), log=(lambda message: None) if args.quiet else print,
                       seeds=args.seeds, seeds_at=args.seeds_at, tune=args.tune or args.tune_only,
                       tune_bits=args.tune_bits, tune_only=args.tune_only, adopt=args.adopt, floors=args.floors)
    print()
    print((result.out / "results.md").read_text())
    print(f"bench finished in {time.perf_counter() - t0:.0f}s; results in {result.out}")
    return 0


def equivalent_argv(args: argparse.Namespace) -> list[str]:
    """The command line with every setting spelled out (defaults included), for results.md.

    Rebuilt from the parsed flags rather than copied from sys.argv, so it is right however the
    command was invoked (a shell, ``python -m dnnh``, or ``main([...])`` from Python). ``--adopt``
    is left out: adopting is a one-off import, recorded in each adopted entry (``adopted_from``).
    """
    argv = ["bench"]
    for dest, value in vars(args).items():
        if dest == "batchnorm" and value is False:
            argv.append("--no-batchnorm")
            continue
        if dest in ("func", "command", "debug", "quiet", "adopt", "argv") or value is None or value is False:
            continue
        flag = "--" + dest.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv
