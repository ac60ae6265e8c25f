"""`dnnh index`: build an exact Hamming index from a codes file, and describe one.

    dnnh index build --codes codes.npz --out db.dhi
    dnnh index build --run runs/x --out db.dhi        # encode the run's database with its model first
    dnnh index info db.dhi [--json] [--no-verify]

The index keeps the codes file's ``ids``, so a search answers with the dataset indices that
``dnnh encode`` wrote; labels stay in the codes file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dnnh.cli.encode import add_engine_arg
from dnnh.codes import CodeSet


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="build and inspect exact Hamming indexes (.dhi files)",
                                   description="Build and inspect exact Hamming indexes (.dhi files).")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    build = actions.add_parser("build", help="index a codes file, or a run's database encoded by its model",
                               description="Index a codes .npz written by `dnnh encode`, or encode a trained "
                                           "run's database split with its model and index that.")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--codes", type=Path, help="codes file (.npz from `dnnh encode`)")
    source.add_argument("--run", type=Path, help="a trained run: its model encodes its split's database")
    build.add_argument("--data", help="with --run: the dataset, if not the one the run was trained on")
    build.add_argument("--root", help="with --run --data: the dataset's folder")
    add_engine_arg(build, prefix="with --run: ")
    build.add_argument("--out", required=True, type=Path, help="index file to write (.dhi), replaced atomically")
    build.add_argument("--force", action="store_true", help="replace --out even if it is not a dnnh index")
    build.set_defaults(func=_build)

    info = actions.add_parser("info", help="describe an index file and verify its checksums",
                              description="Describe an index file and verify its checksums.")
    info.add_argument("path", type=Path, help="index file (.dhi)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-verify", action="store_true", help="skip the payload checksum (reads the whole file)")
    info.set_defaults(func=_info)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _build(args: argparse.Namespace) -> int:
    from dnnh.index import HammingIndex
    from dnnh.index.fileformat import looks_like_index
    from dnnh.locks import lock_file

    if args.out.is_dir():
        raise ValueError(f"--out must be a file path, {args.out} is a directory")
    if args.out.exists() and not args.force and not looks_like_index(args.out):
        raise ValueError(f"{args.out} exists and is not a dnnh index; choose another --out, or pass --force "
                         "to replace it")
    with lock_file(args.out, "index"):
        if args.run is not None:
            codes = _encode_run_database(args)
        else:
            if not args.codes.is_file():
                raise FileNotFoundError(f"codes file not found: {args.codes}")
            codes = CodeSet.load(args.codes)
        index = HammingIndex.from_codeset(codes)
        index.save(args.out)
    print(f"indexed {index.ntotal:,} codes of {index.nbits} bits ({index.ndistinct:,} distinct) from "
          f"{args.codes or args.run} into {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


def _encode_run_database(args: argparse.Namespace) -> CodeSet:
    from dnnh.cli.common import run_data, show_bars
    from dnnh.cli.encode import say_engine
    from dnnh.encoder import Encoder
    from dnnh.runs import Run

    run = Run.open(args.run)
    dataset = run_data(run, args)
    idx = run.split.database
    encoder = Encoder.from_run(run, engine=args.engine, data=dataset)
    say_engine(encoder)
    bits = encoder.encode_items(dataset, idx, progress=show_bars())
    return CodeSet.from_bits(bits, ids=idx, labels=dataset.labels[idx])


def _info(args: argparse.Namespace) -> int:
    from dnnh.index import HammingIndex
    from dnnh.index.fileformat import F_IDS, F_IDS64, F_MEMBERS64, read_header

    if not args.path.is_file():
        raise FileNotFoundError(f"index file not found: {args.path}")
    head = read_header(args.path)
    if not args.no_verify:
        HammingIndex.load(args.path, mmap=True, verify=True)
    flags = head["flags"]
    ids = ("int64" if flags & F_IDS64 else "int32") if flags & F_IDS else "none (ids are 0..ntotal-1)"
    report = {
        "path": str(args.path), "format_version": head["version"], "nbits": head["nbits"],
        "ntotal": head["ntotal"], "ndistinct": head["ndistinct"], "file_bytes": head["size"],
        "positions": "int64" if flags & F_MEMBERS64 else "int32", "stored_ids": ids,
        "next_default_id": head["next_id"], "checksum": "skipped" if args.no_verify else "ok",
    }
    if args.json:
        print(json.dumps(report))
    else:
        width = max(map(len, report))
        for key, value in report.items():
            print(f"{key:<{width}}  {value:,}" if isinstance(value, int) and key != "format_version"
                  else f"{key:<{width}}  {value}")
    return 0
