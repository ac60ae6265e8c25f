"""`dnnh encode`: binary codes of a run's split (or of image files) into a codes .npz file."""

from __future__ import annotations

import argparse
from pathlib import Path

from dnnh.cli.common import add_data_args, run_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode a split's queries and database to packed codes", description=__doc__)
    p.add_argument("--run", type=Path, required=True, help="a trained run directory")
    add_data_args(p, required=False)
    p.add_argument("--out", type=Path, help="folder for codes_query.npz and codes_database.npz (default: the run)")
    p.add_argument("--images", nargs="+", type=Path, help="encode these image files instead (writes codes_images.npz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.codes import CodeSet
    from dnnh.encoder import Encoder
    from dnnh.runs import CODES, Run

    run = Run.open(args.run)
    encoder = Encoder.from_run(run)
    out = args.out or args.run
    if args.images:
        codes = CodeSet.from_bits(encoder.encode_files(args.images, progress=True))
        codes.save(out / "codes_images.npz")
        print(f"wrote {len(codes)} codes of {codes.nbits} bits to {out / 'codes_images.npz'}")
        return 0
    query, database = encoder.encode_split(run_data(run, args), run.split, progress=True)
    query.save(out / CODES["query"])
    database.save(out / CODES["database"])
    print(f"wrote {len(query)} query and {len(database)} database codes of {query.nbits} bits to {out}")
    return 0
