"""`dnnh encode`: binary codes of a run's split (or of image files) into a codes .npz file."""

from __future__ import annotations

import argparse
from pathlib import Path

from dnnh.cli.common import add_data_args, add_device_arg, encoder_device, run_data, show_bars


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode a split's queries and database to packed codes", description=__doc__)
    p.add_argument("--run", type=Path, required=True, help="a trained run directory")
    add_data_args(p, required=False)
    p.add_argument("--out", type=Path, help="folder for codes_query.npz and codes_database.npz (default: the run)")
    p.add_argument("--images", nargs="+", type=Path, help="encode these image files instead (writes codes_images.npz)")
    p.add_argument("--shard", type=shard, metavar="I/N",
                   help="encode share I of N of the database only (0 <= I < N), into "
                        "codes_database.part-I-of-N.npz; `dnnh index build --codes` merges the parts")
    p.add_argument("--reencode", action="store_true",
                   help="encode the split again even where the run keeps its codes from the same weights, data and "
                        "engine (by default those are reused, and it says so)")
    add_engine_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def add_engine_arg(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--engine``: which backend computes the codes (dnnh.encoder.names: no torch import)."""
    from dnnh.encoder.names import DEFAULT_ENGINE, ENGINE_CHOICES

    p.add_argument("--engine", choices=ENGINE_CHOICES, default=DEFAULT_ENGINE,
                   help=f"{prefix}what computes the codes: torch (fp32, the default: the codes training validated), "
                        "auto (onnxruntime where it is installed and its codes equal torch fp32's on a sample of the "
                        "run's database, else torch), torch-bf16, onnxruntime, onnxruntime-int8 (quantised: codes "
                        "may differ)")


def say_engine(encoder) -> None:
    """One line on which engine computes the codes (and, for auto, why)."""
    print(encoder.reason)


def note(line: str) -> None:
    """One line on stderr about something the command did differently than asked or expected."""
    import sys

    print(f"note: {line}", file=sys.stderr)


def shard(text: str) -> tuple[int, int]:
    """An argparse type: ``I/N`` with 0 <= I < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from dnnh.codes import CodeSet
    from dnnh.codes.provenance import engine_precision, shard_provenance
    from dnnh.codes.shards import shard_name
    from dnnh.encoder import Encoder
    from dnnh.locks import lock_folder, refuse_if_written
    from dnnh.runs import Run

    refuse_if_written(args.run, "run directory", "encode")  # not while a train writes it: before any work
    run = Run.open(args.run)
    out = args.out or args.run
    if args.images:
        encoder = Encoder.from_run(run, engine=args.engine, data=_data_if_named(args), device=encoder_device(args))
        say_engine(encoder)
        codes = CodeSet.from_bits(encoder.encode_files(args.images, progress=show_bars()))
        with lock_folder(out, "output folder"):
            codes.save(out / "codes_images.npz")
        print(f"wrote {len(codes)} codes of {codes.nbits} bits to {out / 'codes_images.npz'}")
        return 0
    dataset = run_data(run, args)
    if args.shard is None and not args.reencode:
        from dnnh.evaluation import reusable_codes

        kept = reusable_codes(run, dataset, engine=args.engine, say=note)
        if kept is not None:
            print(f"codes reused from {args.run} (model and data unchanged; --reencode to encode again)")
            _write_split_codes(out, *kept, same_folder=out.resolve() == run.path.resolve())
            return 0
    encoder = Encoder.from_run(run, engine=args.engine, data=dataset, device=encoder_device(args))
    say_engine(encoder)
    if args.shard is not None:
        i, n = args.shard
        idx = np.array_split(run.split.database, n)[i]  # contiguous shares: the parts concatenate to the database
        part = CodeSet.from_bits(encoder.encode_items(dataset, idx, progress=show_bars()), ids=idx,
                                 labels=dataset.labels[idx])
        # What the part came from (the weights the encoder loaded, the engine and its precision) and a digest
        # of its arrays, so that `dnnh index build` refuses a part of another encode, or with another's record.
        part.stamp_provenance(shard_provenance(
            run.path.resolve().name, _weights_of(encoder), "database", run.split.database, i, n,
            engine=encoder.backend.name, precision=engine_precision(encoder.backend.name, encoder.device.type)))
        name = shard_name(i, n)
        with lock_folder(out, "output folder"):
            part.save(out / name)
        print(f"wrote part {i} of {n}: {len(part)} database codes of {part.nbits} bits to {out / name}")
        return 0
    from dnnh.evaluation import encoder_origin

    query, database = encoder.encode_split(dataset, run.split, progress=show_bars())
    origin = encoder_origin(encoder, run, dataset)
    query.stamp_origin(origin)
    database.stamp_origin(origin)
    _write_split_codes(out, query, database)
    return 0


def _weights_of(encoder) -> str:
    """The digest of the weights ``encoder`` loaded (from a run, always; an AssertionError otherwise)."""
    assert encoder.weights_digest is not None, "an encoder built by Encoder.from_run knows its weights"
    return encoder.weights_digest


def _write_split_codes(out: Path, query, database, same_folder: bool = False) -> None:
    """codes_query.npz and codes_database.npz into ``out`` (nothing to write when they are already there)."""
    from dnnh.locks import lock_folder
    from dnnh.runs import CODES

    if not same_folder:
        with lock_folder(out, "output folder"):
            query.save(out / CODES["query"])
            database.save(out / CODES["database"])
    print(f"{'kept' if same_folder else 'wrote'} {len(query)} query and {len(database)} database codes of "
          f"{query.nbits} bits {'in' if same_folder else 'to'} {out}")


def _data_if_named(args: argparse.Namespace):
    """The dataset ``--data`` names (for the engines that need images), else None: the run's own."""
    from dnnh.cli.common import data_source

    source = data_source(args)
    return source.load() if source is not None else None
