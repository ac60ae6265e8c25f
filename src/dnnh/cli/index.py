"""`dnnh index`: build an exact Hamming index from a codes file, and describe one.

    dnnh index build --codes codes.npz --out db.dhi
    dnnh index info db.dhi [--json] [--no-verify]

The index keeps the codes file's ``ids``, so a search answers with the dataset indices that
``dnnh encode`` wrote; labels stay in the codes file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dnnh.codes import CodeSet


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="build and inspect exact Hamming indexes (.dhi files)",
                                   description="Build and inspect exact Hamming indexes (.dhi files).")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    build = actions.add_parser("build", help="index a codes file written by `dnnh encode`",
                               description="Index a codes .npz written by `dnnh encode`.")
    build.add_argument("--codes", required=True, type=Path, help="codes file (.npz from `dnnh encode`)")
    build.add_argument("--out", required=True, type=Path, help="index file to write (.dhi), replaced atomically")
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

    if not args.codes.is_file():
        raise FileNotFoundError(f"codes file not found: {args.codes}")
    if args.out.is_dir():
        raise ValueError(f"--out must be a file path, {args.out} is a directory")
    codes = CodeSet.load(args.codes)
    index = HammingIndex.from_codeset(codes)
    index.save(args.out)
    print(f"indexed {index.ntotal:,} codes of {index.nbits} bits ({index.ndistinct:,} distinct) from "
          f"{args.codes} into {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


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
