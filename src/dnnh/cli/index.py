"""`dnnh index`: build an exact Hamming index from a codes file, and describe one.

    dnnh index build --codes codes.npz --out db.dhi
    dnnh index build --codes run/codes_database.part-*-of-004.npz --out db.dhi   # shards, one at a time
    dnnh index build --run runs/x --out db.dhi        # encode the run's database with its model first
    dnnh index build --codes ... --backend milvus --uri http://host:19530 --collection fmnist48
    dnnh index info db.dhi [--json] [--no-verify]

The index keeps the codes files' ``ids``, so a search answers with the dataset indices that
``dnnh encode`` wrote; labels stay in the codes files. Parts written by ``dnnh encode --shard I/N``
(on one machine or many) are read one at a time into one index, so memory holds the index and
one part, and a set whose parts are not all there is refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterator

from dnnh.cli.common import add_device_arg
from dnnh.cli.encode import add_engine_arg, note
from dnnh.codes import CodeSet
from dnnh.codes.provenance import check_set
from dnnh.codes.shards import check_shards, parse_shard_name


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("index", help="build and inspect exact Hamming indexes (.dhi files)",
                                   description="Build and inspect exact Hamming indexes (.dhi files).")
    actions = parser.add_subparsers(dest="index_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    build = actions.add_parser("build", help="index a codes file, or a run's database encoded by its model",
                               description="Index a codes .npz written by `dnnh encode`, or encode a trained "
                                           "run's database split with its model and index that.")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--codes", type=Path, nargs="+",
                        help="codes file(s) (.npz from `dnnh encode`, or all the parts of `dnnh encode --shard`)")
    source.add_argument("--run", type=Path, help="a trained run: its model encodes its split's database")
    build.add_argument("--data", help="with --run: the dataset, if not the one the run was trained on")
    build.add_argument("--root", help="with --run --data: the dataset's folder")
    add_engine_arg(build, prefix="with --run: ")
    build.add_argument("--reencode", action="store_true",
                       help="with --run: encode the database again even where the run keeps its codes from the same "
                            "weights, data and engine (by default those are reused, and it says so)")
    add_device_arg(build, "encode (with --run)")
    build.add_argument("--out", type=Path, help="index file to write (.dhi), replaced atomically; required with the "
                                                "hamming backend (the default), not with --backend milvus")
    build.add_argument("--force", action="store_true", help="replace --out even if it is not a dnnh index")
    add_backend_args(build)
    build.add_argument("--replace", action="store_true",
                       help="with --backend milvus: empty a collection that already holds items, then build it "
                            "(without: such a collection is refused, so a rerun never stores an item twice)")
    build.set_defaults(func=_build)

    info = actions.add_parser("info", help="describe an index file and verify its checksums",
                              description="Describe an index file and verify its checksums.")
    info.add_argument("path", type=Path, help="index file (.dhi)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--no-verify", action="store_true", help="skip the payload checksum (reads the whole file)")
    info.set_defaults(func=_info)


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """``--backend``: a .dhi file (HammingIndex) or a Milvus collection (MilvusIndex, extra ``milvus``)."""
    p.add_argument("--backend", choices=("hamming", "milvus"), default="hamming",
                   help="hamming: an index file (default); milvus: a collection on Milvus (a server at "
                        "http://host:19530, or a Milvus Lite file ending in .db) — pip install 'dnnh[milvus]'")
    p.add_argument("--uri", help="with --backend milvus: the server's address or a Milvus Lite .db file")
    p.add_argument("--collection", default="dnnh_codes", help="with --backend milvus: the collection (default "
                                                               "dnnh_codes)")


def open_milvus(args: argparse.Namespace, nbits: int, build: bool = False):
    """The collection named by ``--uri``/``--collection``; to ``build`` it, empty (or emptied with
    ``--replace``): see :meth:`dnnh.index.MilvusIndex.for_build`."""
    from dnnh.index import MilvusIndex

    if not args.uri:
        raise ValueError("--backend milvus needs --uri (http://host:19530, or a Milvus Lite file such as codes.db)")
    if build:
        return MilvusIndex.for_build(nbits, uri=args.uri, collection=args.collection,
                                     replace=getattr(args, "replace", False))
    return MilvusIndex(nbits, uri=args.uri, collection=args.collection)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _parts(args: argparse.Namespace) -> Iterator[CodeSet]:
    """The codes to index, one part at a time (a run's database encoded now, or the files given)."""
    if args.run is not None:
        yield _encode_run_database(args)
        return
    for path in args.codes:
        if not path.is_file():
            raise FileNotFoundError(f"codes file not found: {path}")
    check_shards(args.codes)  # dnnh.codes.shards names and checks shard files
    named = [(path, parse_shard_name(path.name)) for path in args.codes]
    checked = all(parts is not None for _, parts in named)
    if checked:  # and their provenance, arrays included, before any part is added (a collection keeps what it got)
        warning = check_set(named)
        if warning:
            note(warning)
    for path in args.codes:
        yield CodeSet.load(path, verify=not checked)


def _add_all(parts: Iterator[CodeSet], make_index):
    """Add every part to one index made by ``make_index(nbits)`` on the first part; parts must agree."""
    index, first = None, None
    for part in parts:
        if index is None:
            index, first = make_index(part.nbits), part.nbits
        elif part.nbits != first:
            raise ValueError(f"the codes files hold codes of {first} and {part.nbits} bits; one index takes one length")
        index.add(part.codes, ids=part.ids)
    if index is None:
        raise ValueError("no codes given")
    return index


def _build(args: argparse.Namespace) -> int:
    from dnnh.index import HammingIndex
    from dnnh.index.fileformat import looks_like_index
    from dnnh.locks import lock_file

    source = ", ".join(map(str, args.codes)) if args.codes else str(args.run)
    if args.run is not None:
        from dnnh.locks import refuse_if_written

        refuse_if_written(args.run, "run directory", "index build")  # not while a train writes it: before any work
    if args.backend == "milvus":
        index = _add_all(_parts(args), lambda nbits: open_milvus(args, nbits, build=True))
        print(f"added {index.ntotal:,} codes of {index.nbits} bits from {source} to Milvus collection "
              f"{args.collection} at {args.uri}")
        index.close()
        return 0
    if args.out is None:
        raise ValueError("give --out FILE.dhi (or --backend milvus --uri ...)")
    if args.out.is_dir():
        raise ValueError(f"--out must be a file path, {args.out} is a directory")
    if args.out.exists() and not args.force and not looks_like_index(args.out):
        raise ValueError(f"{args.out} exists and is not a dnnh index; choose another --out, or pass --force "
                         "to replace it")
    with lock_file(args.out, "index"):
        index = _add_all(_parts(args), HammingIndex)
        index.save(args.out)
    print(f"indexed {index.ntotal:,} codes of {index.nbits} bits ({index.ndistinct:,} distinct) from "
          f"{source} into {args.out} ({args.out.stat().st_size:,} bytes)")
    print(memory_report(index.prepare()))
    return 0


def memory_report(index) -> str:
    """One line: the bytes a searched index holds, by structure, and per code."""
    parts = index.memory_bytes()
    total = parts.pop("total")
    shown = ", ".join(f"{name} {value / 2**20:,.1f} MiB" for name, value in parts.items() if value)
    return (f"memory when searched: {total / 2**20:,.1f} MiB, {total / max(index.ntotal, 1):.1f} bytes a code "
            f"({shown})")


def _encode_run_database(args: argparse.Namespace) -> CodeSet:
    from dnnh.cli.common import encoder_device, run_data, show_bars
    from dnnh.cli.encode import say_engine
    from dnnh.encoder import Encoder
    from dnnh.evaluation import reusable_codes
    from dnnh.runs import Run

    run = Run.open(args.run)
    dataset = run_data(run, args)
    kept = None if args.reencode else reusable_codes(run, dataset, engine=args.engine, say=note)
    if kept is not None:
        print(f"codes reused from {args.run} (model and data unchanged; --reencode to encode again)")
        return kept[1]
    idx = run.split.database
    encoder = Encoder.from_run(run, engine=args.engine, data=dataset, device=encoder_device(args))
    say_engine(encoder)
    bits = encoder.encode_items(dataset, idx, progress=show_bars())
    return CodeSet.from_bits(bits, ids=idx, labels=dataset.labels[idx])


def _info(args: argparse.Namespace) -> int:
    from dnnh.index.fileformat import describe

    if not args.path.is_file():
        raise FileNotFoundError(f"index file not found: {args.path}")
    report = describe(args.path, verify=not args.no_verify)
    if args.json:
        print(json.dumps(report))
    else:
        width = max(map(len, report))
        for key, value in report.items():
            print(f"{key:<{width}}  {value:,}" if isinstance(value, int) and key != "format_version"
                  else f"{key:<{width}}  {value}")
    return 0
