"""Flags and helpers shared by subcommands: which data, which split, which run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dnnh.data.splits import Split


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", required=required,
                   help="dataset name (digits, mnist, fashion-mnist, cifar10, svhn, nus-wide) or a path "
                        "(image folder, CSV/JSONL manifest)")
    p.add_argument("--root", help="folder holding the dataset's files (downloads go here where allowed)")
    p.add_argument("--skip-corrupt", action="store_true", help="skip unreadable images and report them")


def add_split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", default="paper", help="paper, cifar10-1 or cifar10-2 (default paper)")
    p.add_argument("--queries-per-class", type=int, help="paper protocol: queries per class (default 100)")
    p.add_argument("--train-per-class", type=int, help="paper protocol: training images per class (default 500)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of training images held out for "
                                                                      "model selection (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training run")
    p.add_argument("--split", type=Path, help="reuse this split.json instead of drawing one")


#: Config field -> flag destination of the training options both ``train`` and ``bench`` take.
SHARED_TRAINING_FLAGS = {"backbone": "backbone", "input_size": "input_size", "epochs": "epochs",
                         "batch_size": "batch_size", "augment": "augment", "batchnorm": "batchnorm",
                         "erase": "erase", "val_every": "val_every", "threads": "threads", "num_workers": "workers"}


def add_shared_training_args(p: argparse.ArgumentParser, every: bool = False) -> None:
    """The training flags of ``train`` and ``bench`` (``every``: the bench applies them to every deep method)."""
    from dnnh.nn import PRESETS
    from dnnh.training.config import AUGMENTS

    of = " of every deep method" if every else ""
    p.add_argument("--backbone", choices=sorted(PRESETS), help=f"backbone{of} (default nin-small)")
    p.add_argument("--input-size", type=int, help="side images are resized to (default: the backbone's)")
    p.add_argument("--epochs", type=int, help=f"training epochs{of} (default: the recipe's)")
    p.add_argument("--batch-size", type=int, help=f"batch size{of} (default: the recipe's)")
    p.add_argument("--augment", choices=AUGMENTS, help=f"augmentation{of} (default: the recipe's)")
    p.add_argument("--batchnorm", action=argparse.BooleanOptionalAction,
                   help=f"batch norm after each convolution{of} (default: modern on, paper off)")
    p.add_argument("--erase", type=float, help=f"probability of random erasing per training image{of} (default 0)")
    p.add_argument("--val-every", type=int, help="validate (and keep the best model) every N epochs (default 1)")
    p.add_argument("--threads", type=int, help="torch threads")
    p.add_argument("--workers", type=int, help="decoding worker processes for image files (default 2)")


def shared_training_options(args: argparse.Namespace) -> dict:
    """The config fields set by the flags of :func:`add_shared_training_args` that were given."""
    return {field: getattr(args, dest) for field, dest in SHARED_TRAINING_FLAGS.items()
            if getattr(args, dest, None) is not None}


def load_data(args: argparse.Namespace):
    from dnnh.data import load_dataset

    dataset = load_dataset(args.data, root=args.root, skip_corrupt=args.skip_corrupt)
    skipped = getattr(dataset, "skipped", None)
    if skipped:
        print(f"skipped {len(skipped)} unreadable images, e.g. {skipped[:3]}")
    return dataset


def resolve_split(args: argparse.Namespace, dataset) -> Split:
    from dnnh.data import make_split

    if args.split:
        split = Split.load(args.split)
        split.check_fits(len(dataset))
        return split
    counts = {k: v for k, v in (("queries_per_class", args.queries_per_class),
                                ("train_per_class", args.train_per_class)) if v is not None}
    return make_split(dataset, protocol=args.protocol, val_fraction=args.val_fraction, seed=args.seed, **counts)


def save_data_source(run_dir: Path, args: argparse.Namespace) -> None:
    """Remember where the run's data came from, so encode/eval can reload it without flags."""
    from dnnh.atomic import atomic_write_text

    source = {"data": str(args.data), "root": str(args.root) if args.root else None,
              "skip_corrupt": bool(args.skip_corrupt)}
    atomic_write_text(run_dir / "data.json", json.dumps(source, indent=2))


def load_run_data(run_dir: Path, args: argparse.Namespace):
    """The dataset a run was trained on, or the one named by --data."""
    from dnnh.data import load_dataset

    if getattr(args, "data", None):
        return load_data(args)
    path = Path(run_dir) / "data.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; name the dataset with --data")
    source = json.loads(path.read_text())
    return load_dataset(source["data"], root=source["root"], skip_corrupt=source["skip_corrupt"])
