"""`dnnh train`: train DNNH on a dataset and split, checkpoint each epoch, score the best model."""

from __future__ import annotations

import argparse

from dnnh.cli.common import (add_data_args, add_shared_training_args, add_split_args, data_source, field_number,
                             folder_path, positive_int, show_bars, split_spec, training_options)
from dnnh.config import RECIPES, TRIPLET_MODES, TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a DNNH model", description=__doc__)
    add_data_args(p)
    add_split_args(p)
    p.add_argument("--run", type=folder_path, required=True, help="run directory (config, split, weights, metrics)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="train with N processes on this machine (PyTorch's elastic launcher, DDP semantics: N "
                        "shares of each global batch); for several machines run torchrun ... -m dnnh -- train ...")
    p.add_argument("--recipe", choices=RECIPES, default="modern", help="modern (default) or paper")
    p.add_argument("--bits", type=code_length, default=48,
                   help=f"code length in bits: any integer 1..{MAX_CLI_NBITS}, on purpose (the hash layer has "
                        "a slice per bit and codes pack into ceil(bits/8) bytes; the paper reports 12-64; "
                        "default 48)")
    add_shared_training_args(p)
    p.add_argument("--encoder", choices=("divide-and-encode", "fc"),
                   help="hash layer: divide-and-encode (the paper's: each bit from its own slice of the "
                        "features; default) or fc (every bit from all features)")
    p.add_argument("--eps", type=field_number("eps"),
                   help="half-width of the threshold's band, in [0, 0.5], narrowed from 0.5 over the run (modern "
                        "default: no threshold; paper: 0.1 from the start)")
    p.add_argument("--no-threshold", action="store_true", help="sigmoid only (the paper recipe without its threshold)")
    p.add_argument("--separate-query-network", action="store_true",
                   help="train a second network for queries (the paper's asymmetric variant; default: one "
                        "network for queries and database)")
    p.add_argument("--triplets", choices=TRIPLET_MODES, help="random (paper) or an in-batch mining strategy")
    p.add_argument("--margin", type=field_number("margin"),
                   help="triplet margin, squared-distance units, >= 0 (default bits/12; paper recipe 1)")
    p.add_argument("--smooth-loss", action="store_true", help="softplus instead of the hinge (soft margin)")
    p.add_argument("--distance", choices=("l2", "dot"),
                   help="distance the triplet loss compares: l2 (squared Euclidean; default) or dot "
                        "(negative inner product)")
    p.add_argument("--lr", type=field_number("lr"), help="learning rate (default 0.001 in both recipes), > 0")
    p.add_argument("--weight-decay", type=field_number("weight_decay"), help="weight decay (default 0.0005 in both recipes), >= 0")
    p.add_argument("--topk", type=positive_int,
                   help="also report MAP@K when scoring (default: a DeepHash-pytorch list folder's published K, "
                        "e.g. 5000 for NUS-WIDE; any other data: MAP over the whole database only)")
    p.add_argument("--quiet", action="store_true", help="print only the scores of the trained model")
    p.set_defaults(func=run)


MAX_CLI_NBITS = 1024


def code_length(text: str) -> int:
    """An argparse type: a code length 1..MAX_CLI_NBITS (a huge one would only exhaust memory)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a code length 1..{MAX_CLI_NBITS}, got {text!r}") from None
    if not 1 <= value <= MAX_CLI_NBITS:
        raise argparse.ArgumentTypeError(f"expected a code length 1..{MAX_CLI_NBITS}, got {value}")
    return value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {k: getattr(args, k) for k in ("encoder", "eps", "triplets", "margin", "distance", "lr",
                                               "weight_decay", "seed") if getattr(args, k, None) is not None}
    overrides.update(training_options(args))
    if args.bits is not None:
        overrides["nbits"] = args.bits
    if args.no_threshold:
        overrides["eps"] = None
    if args.smooth_loss:
        overrides["smooth_loss"] = True
    if args.separate_query_network:
        overrides["separate_query_network"] = True
    return TrainConfig.from_recipe(args.recipe, **overrides)


def check_unlocked(run_dir) -> None:
    """LockedError (one line, naming the holder's PID) when another process writes ``run_dir``."""
    from dnnh.locks import lock_folder

    if run_dir.is_dir():
        lock_folder(run_dir, "run directory").acquire().release()


def launch(args: argparse.Namespace) -> int:
    """Run this same command as ``nproc`` workers under PyTorch's elastic launcher (torchrun)."""
    import subprocess
    import sys

    argv = list(args.argv)
    i = argv.index("--nproc") if "--nproc" in argv else next(i for i, a in enumerate(argv) if a.startswith("--nproc="))
    del argv[i:i + (1 if "=" in argv[i] else 2)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "dnnh", "--", *argv]
    return subprocess.run(command).returncode


def cached_codes(result, dataset, say):
    """A head trained on cached features is scored on them: ``dnnh encode``'s bits without a second pass of the
    backbone over every image (tests/training/test_head_training.py); None for any other run (encoded now)."""
    from dnnh.training.head_training import run_features, split_codes, uses_feature_cache

    if not uses_feature_cache(result.run.config):
        return None
    say("scoring the codes of the cached features (dnnh eval encodes the raw images again)")
    return split_codes(result.model, run_features(result.run, dataset), dataset, result.run.split)


def run(args: argparse.Namespace) -> int:
    import os

    from dnnh.data.lists import reported_topk
    from dnnh.evaluation import evaluate_run, format_report, unseen_summary
    from dnnh.runs import SPLIT, Run
    from dnnh.training.preflight import check_before_writing
    from dnnh.training.train import train

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return launch(args)
    main_rank = os.environ.get("RANK", "0") == "0"
    config = config_from_args(args)
    check_before_writing(config)  # an input size or weights file the backbone cannot take: before any file
    if main_rank:  # a run another process writes is refused now, before the data loads (seconds, and
        check_unlocked(args.run)  # memory the first run then competes for); train() holds the lock
    source = data_source(args)
    dataset = source.load()
    if args.resume and (args.run / SPLIT).exists():  # a resumed run keeps its own split
        split = Run.open(args.run).split
    else:
        split = split_spec(args).resolve(dataset)
    say = (lambda message: None) if args.quiet or not main_rank else print
    say(f"{dataset.name}: {len(dataset)} images; {split.summary()}")
    result = train(config, dataset, split, args.run, resume=args.resume, progress=not args.quiet and show_bars(),
                   source=source, log=say)
    if not main_rank:  # rank 0 scores and reports
        return 0
    say(f"trained in {result.seconds:.1f}s; best validation MAP {result.best_val_map:.4f} at epoch {result.best_epoch}")
    topk, metric = reported_topk(dataset, args.topk)  # a list folder reports its dataset's published mAP@K
    say(f"scoring: {metric}")
    report = evaluate_run(result.run, dataset, topk=topk, codes=cached_codes(result, dataset, say))
    print(format_report(report))
    unseen = unseen_summary(result.run)
    if unseen:
        print(unseen)
    say(f"run saved in {args.run}")
    return 0
