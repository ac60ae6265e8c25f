"""`dnnh search`: query image files against a run's database, print the top-k items with distances.

The database is a saved HammingIndex (``--index``, from ``dnnh index build``) or a codes file
(``--codes``, default the run's codes_database.npz), which is indexed in memory on the fly. Each
result shows its id, distance, label and (for a folder dataset) the image's path, as the service
does; ``--ids-only`` skips loading the run's dataset for them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dnnh.cli.common import add_device_arg, encoder_device, positive_int
from dnnh.cli.encode import add_engine_arg
from dnnh.cli.index import add_backend_args, open_milvus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="top-k database items for query image files", description=__doc__)
    p.add_argument("images", nargs="+", type=Path, help="query image files")
    p.add_argument("--run", type=Path, required=True, help="the trained run whose model encodes the queries")
    p.add_argument("--index", type=Path, help="a saved index (dnnh index build)")
    p.add_argument("--codes", type=Path, help="a database codes file (default: RUN/codes_database.npz)")
    p.add_argument("-k", "--topk", type=positive_int, default=10, help="results per query (default 10)")
    p.add_argument("--ids-only", action="store_true",
                   help="print ids and distances only (the run's dataset is not loaded for labels and paths)")
    add_backend_args(p)
    add_engine_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.codes import CodeSet, pack_bits
    from dnnh.encoder import Encoder
    from dnnh.index import HammingIndex
    from dnnh.runs import CODES

    encoder = Encoder.from_run(args.run, engine=args.engine, device=encoder_device(args))
    bits = encoder.encode_files(args.images)
    if args.backend == "milvus":
        index = open_milvus(args, encoder.nbits)
        codes_path = f"collection {args.collection} at {args.uri}"
    elif args.index:
        index = HammingIndex.load(args.index)
    else:
        codes_path = args.codes or args.run / CODES["database"]
        if not codes_path.exists():
            raise FileNotFoundError(f"{codes_path} not found; run `dnnh encode --run {args.run}` or pass --index")
        codes = CodeSet.load(codes_path)
        check_same_model(codes, codes_path, encoder.weights_digest, args.run)
        index = HammingIndex(codes.nbits)
        index.add(codes.codes, ids=codes.ids)
    if index.ntotal == 0:
        raise ValueError(f"{args.index or codes_path} holds no codes: nothing to search")
    if index.nbits != encoder.nbits:
        raise ValueError(f"the index holds {index.nbits}-bit codes but the model makes {encoder.nbits}-bit codes")
    distances, ids = index.search(pack_bits(bits), args.topk)
    describe = (lambda i: "") if args.ids_only else _describer(args.run)
    for path, code, dist_row, id_row in zip(args.images, bits, distances, ids):
        print(f"{path}  code {''.join(map(str, code))}")
        for rank, (d, i) in enumerate(zip(dist_row, id_row), 1):
            if i >= 0:
                print(f"  {rank:3d}. id {i:8d}  distance {d}{describe(int(i))}")
    return 0


def check_same_model(codes, path: Path, weights: str | None, run: Path) -> None:
    """Refuse database codes whose record names other weights than the model encoding the queries:
    the distances between codes of two models mean nothing (the run was retrained or resumed since)."""
    from dnnh.errors import DataError

    record = codes.origin or codes.provenance or {}
    made = record.get("weights")
    if made is not None and weights is not None and made != weights:
        raise DataError(f"{path} holds codes of weights {made}, but {run}'s model (weights {weights}) encodes the "
                        f"queries, and distances between two models' codes mean nothing; encode the database again "
                        f"(dnnh encode --run {run}), or search with the model that made them")


def _describer(run_path: Path):
    """``id -> "  label ...  path ..."`` from the run's dataset; a note and ids only when it is unavailable."""
    import sys

    from dnnh.data.dataset import label_text
    from dnnh.runs import Run

    try:
        dataset = Run.open(run_path).load_dataset()
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"note: no labels or paths: the run's dataset is unavailable ({exc})", file=sys.stderr)
        return lambda i: ""
    labels, names = dataset.labels, getattr(dataset, "class_names", None)
    paths = getattr(dataset, "paths", None)

    def describe(i: int) -> str:
        if not 0 <= i < len(labels):
            return ""  # an id beyond the dataset (an item added to a store or an index by hand)
        text = f"  label {label_text(labels, names, i)}"
        return text + (f"  path {paths[i]}" if paths is not None else "")

    return describe
