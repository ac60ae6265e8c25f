"""Flags shared by subcommands, each turned into the library's own description of it.

``--data/--root/--skip-corrupt`` become a :class:`~dnnh.data.sources.DataSource`, the split flags
a :class:`~dnnh.data.sources.SplitSpec`, the training flags a dict of
:class:`~dnnh.training.config.TrainConfig` fields: ``train``, ``bench`` and the demo hand those
objects to the library, which owns every default.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dnnh.data.sources import DataSource, SplitSpec


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", required=required,
                   help="dataset name (digits, mnist, fashion-mnist, cifar10, svhn, nus-wide) or a path "
                        "(image folder, CSV/JSONL manifest)")
    p.add_argument("--root", help="folder holding the dataset's files (downloads go here where allowed)")
    p.add_argument("--skip-corrupt", action="store_true", help="skip unreadable images and report them")


def data_source(args: argparse.Namespace) -> DataSource | None:
    """The data the flags name, or None when ``--data`` was not given."""
    if not getattr(args, "data", None):
        return None
    return DataSource(str(args.data), root=str(args.root) if getattr(args, "root", None) else None, skip_corrupt=bool(getattr(args, "skip_corrupt", False)))


def load_data(source: DataSource):
    dataset = source.load()
    skipped = getattr(dataset, "skipped", None)
    if skipped:
        print(f"skipped {len(skipped)} unreadable images, e.g. {skipped[:3]}")
    return dataset


def add_split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", default="paper", help="paper, cifar10-1 or cifar10-2 (default paper)")
    p.add_argument("--queries-per-class", type=int, help="paper protocol: queries per class (default 100)")
    p.add_argument("--train-per-class", type=int, help="paper protocol: training images per class (default 500)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of training images held out for "
                                                                      "model selection (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training run")
    p.add_argument("--split", type=Path, help="reuse this split.json instead of drawing one")


def split_spec(args: argparse.Namespace) -> SplitSpec:
    return SplitSpec(protocol=args.protocol, queries_per_class=args.queries_per_class,
                     train_per_class=args.train_per_class, val_fraction=args.val_fraction, seed=args.seed,
                     file=args.split)


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


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields set by the flags of :func:`add_shared_training_args` that were given."""
    return {field: getattr(args, dest) for field, dest in SHARED_TRAINING_FLAGS.items()
            if getattr(args, dest, None) is not None}


def run_data(run, args: argparse.Namespace):
    """The dataset a run was trained on, or the one ``--data`` names instead."""
    source = data_source(args)
    dataset = load_data(source) if source is not None else run.load_dataset()
    run.split.check_fits(len(dataset))
    return dataset
