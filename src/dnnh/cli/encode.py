"""`dnnh encode`: binary codes of a run's split (or of image files) into a codes .npz file."""

from __future__ import annotations

import argparse
from pathlib import Path

from dnnh.cli.common import add_data_args, load_run_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode a split's queries and database to packed codes", description=__doc__)
    p.add_argument("--run", type=Path, required=True, help="a trained run directory")
    add_data_args(p, required=False)
    p.add_argument("--out", type=Path, help="folder for codes_query.npz and codes_database.npz (default: the run)")
    p.add_argument("--images", nargs="+", type=Path, help="encode these image files instead (writes codes_images.npz)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.codes import CodeSet
    from dnnh.evaluation import encode_split
    from dnnh.training.encode import TrainedRun, encode_image_files

    trained = TrainedRun.load(args.run)
    out = args.out or args.run
    if args.images:
        codes = CodeSet.from_bits(encode_image_files(trained.model, trained.prep, args.images))
        codes.save(out / "codes_images.npz")
        print(f"wrote {len(codes)} codes of {codes.nbits} bits to {out / 'codes_images.npz'}")
        return 0
    query, database = encode_split(trained, load_run_data(args.run, args), progress=True)
    query.save(out / "codes_query.npz")
    database.save(out / "codes_database.npz")
    print(f"wrote {len(query)} query and {len(database)} database codes of {query.nbits} bits to {out}")
    return 0
