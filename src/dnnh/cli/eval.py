"""`dnnh eval`: score a run on its split (MAP, precision within radius, PR curve, precision@k)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dnnh.cli.common import add_data_args, add_device_arg, device_of, non_negative_int, positive_int, run_data, show_bars


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a trained run, or two codes files", description=__doc__)
    p.add_argument("--run", type=Path, help="a trained run directory")
    add_data_args(p, required=False)
    p.add_argument("--query-codes", type=Path, help="score these codes (with --db-codes) instead of a run")
    p.add_argument("--db-codes", type=Path, help="the database's codes file (.npz from dnnh encode) that "
                                                  "--query-codes are ranked against")
    p.add_argument("--topk", type=positive_int, help="also report MAP@K (default: a list folder's published K; "
                                                     "otherwise MAP over the whole database only)")
    p.add_argument("--radius", type=non_negative_int, default=2, help="Hamming radius for precision within radius (default 2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--reencode", action="store_true",
                   help="encode the split again even where the run keeps its codes from the same weights and data "
                        "(by default those are reused, and it says so)")
    add_device_arg(p, "encode the run's split")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.codes import CodeSet
    from dnnh.data.lists import reported_topk
    from dnnh.evaluation import evaluate_run, format_report, reusable_codes, score_codes
    from dnnh.runs import METRICS, Run

    if args.query_codes or args.db_codes:
        if not (args.query_codes and args.db_codes):
            raise ValueError("--query-codes and --db-codes go together")
        report = score_codes(CodeSet.load(args.query_codes), CodeSet.load(args.db_codes), topk=args.topk,
                             radius=args.radius)
    elif args.run:
        from dnnh.cli.encode import note
        from dnnh.encoder import Encoder
        from dnnh.locks import refuse_if_written

        refuse_if_written(args.run, "run directory", "eval")  # not while a train writes it: before any work
        run = Run.open(args.run)
        dataset = run_data(run, args)
        codes = None if args.reencode else reusable_codes(run, dataset, say=note)
        if codes is not None:
            print(f"codes reused from {args.run} (model and data unchanged; --reencode to encode again)")
        encoder = None if codes is not None else Encoder.from_run(run, device=device_of(args))
        topk, metric = reported_topk(dataset, args.topk)  # a list folder: its dataset's published mAP@K
        print(f"scoring: {metric}")
        report = evaluate_run(run, dataset, topk=topk, radius=args.radius, progress=show_bars(),
                              encoder=encoder, codes=codes)
        print(f"wrote {args.run / METRICS} and {args.run / 'pr_curve.png'}")
    else:
        raise ValueError("give --run DIR, or --query-codes and --db-codes")
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0
