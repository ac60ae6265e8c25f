"""Sweep DNNH's training settings on one saved split: test MAP of each variant against the first.

    python benchmarks/recipe_sweep.py --split results/fmnist-48/split.json \
        --variant '{}' --variant '{"margin": 4}' --variant '{"epochs": 60}'

Each variant is a JSON object of TrainConfig fields laid over the base settings (the recorded
Fashion-MNIST ones: 48 bits, 20 epochs, shift-flip, batch norm, 1 thread). Runs go to
``--out/<n>`` and resume when rerun; the table gives test MAP (queries against the database,
never seen in training or model selection), the best validation MAP and epoch, the wall time,
and each MAP as a ratio of the first variant's, measured in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dnnh.data import load_dataset
from dnnh.data.splits import Split
from dnnh.evaluation import evaluate_run
from dnnh.runs import Run
from dnnh.training.config import TrainConfig
from dnnh.training.train import train
from dnnh import machine

BASE = dict(bits=48, epochs=20, augment="shift-flip", batchnorm=True, threads=1, num_workers=0, seed=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--split", type=Path, required=True, help="split.json to train and score on")
    p.add_argument("--variant", action="append", required=True, help="JSON object of config overrides")
    p.add_argument("--out", type=Path, default=Path("results/sweep"))
    args = p.parse_args(argv)
    print(f"# {machine.describe()} (at start)", flush=True)

    dataset = load_dataset(args.data)
    split = Split.load(args.split)
    rows = []
    for n, text in enumerate(args.variant):
        overrides = json.loads(text)
        settings = {**BASE, **overrides}
        config = TrainConfig.from_recipe(settings.pop("recipe", "modern"), **settings)
        run_dir = args.out / str(n)
        t0 = time.perf_counter()
        resume = (run_dir / "config.json").exists() and Run.open(run_dir).has_checkpoint
        result = train(config, dataset, split, run_dir, resume=resume)
        seconds = time.perf_counter() - t0
        report = evaluate_run(result.run, dataset, write=False)
        rows.append((text, report.map, report.precision_radius, result.best_val_map, result.best_epoch, seconds))
        print(f"{text}: MAP {report.map:.4f}", flush=True)

    ref = rows[0][1]
    print("\n| variant | MAP | vs first | P@r2 | best val MAP (epoch) | wall s |\n|---|---|---|---|---|---|")
    for text, m, pr, val, epoch, seconds in rows:
        print(f"| `{text}` | {m:.4f} | {m / ref:.3f} | {pr:.4f} | {val:.4f} ({epoch}) | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
