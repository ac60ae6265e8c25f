"""The embedded default: DNNH against shallow baselines on scikit-learn's digits, in minutes.

Digits (1,797 real 8x8 images) ships with scikit-learn, so this runs anywhere without a download.
The split is the paper's protocol scaled to the set: 10 queries and 100 training images per class,
the other 1,697 images as the database (training images inside it).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dnnh.codes import CodeSet
from dnnh.data.digits import load_digits
from dnnh.data.splits import paper_split
from dnnh.evaluation import evaluate_run, score_codes
from dnnh.training.config import TrainConfig
from dnnh.training.encode import TrainedRun
from dnnh.training.train import train

DEMO_BITS = (12, 24, 32, 48)
DEMO_BASELINES = ("lsh", "itq")


@dataclass
class ResultRow:
    method: str
    bits: int
    map: float
    precision_radius2: float
    train_seconds: float


def run_shallow(name: str, bits: int, dataset, split, seed: int = 0) -> ResultRow:
    from dnnh.baselines import make_shallow, pixel_features

    features = pixel_features(dataset.images)
    t0 = time.perf_counter()
    model = make_shallow(name, bits, random_state=seed)
    model.fit(features[split.train], dataset.labels[split.train]) if model.supervised else model.fit(features[split.train])
    seconds = time.perf_counter() - t0
    labels = dataset.labels
    report = score_codes(CodeSet.from_bits(model.transform(features[split.query]), split.query, labels[split.query]),
                         CodeSet.from_bits(model.transform(features[split.database]), split.database,
                                           labels[split.database]))
    return ResultRow(name.upper(), bits, report.map, report.precision_radius, seconds)


def run_demo(out_dir: str | Path = "runs/demo", bits: tuple[int, ...] = DEMO_BITS, epochs: int | None = None,
             recipe: str = "modern", seed: int = 0, progress: bool = True) -> list[ResultRow]:
    out_dir = Path(out_dir)
    dataset = load_digits()
    split = paper_split(dataset.labels, queries_per_class=10, train_per_class=100, seed=seed)
    print(f"digits: {len(dataset)} images; {split.summary()}")
    rows = []
    for b in bits:
        config = TrainConfig.from_recipe(recipe, bits=b, seed=seed, **({"epochs": epochs} if epochs else {}))
        run_dir = out_dir / f"dnnh-{b}"
        if (run_dir / "checkpoint" / "state.pt").exists():
            import shutil

            shutil.rmtree(run_dir)
        print(f"training DNNH at {b} bits ({config.recipe} recipe, {config.epochs} epochs, {config.backbone})")
        result = train(config, dataset, split, run_dir, progress=progress)
        report = evaluate_run(TrainedRun.load(run_dir), dataset)
        rows.append(ResultRow("DNNH", b, report.map, report.precision_radius, result.seconds))
        for name in DEMO_BASELINES:
            rows.append(run_shallow(name, b, dataset, split, seed))
    (out_dir / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    table = format_table(rows)
    (out_dir / "results.md").write_text(table + "\n")
    return rows


def format_table(rows: list[ResultRow]) -> str:
    """Markdown: one line a method, MAP / precision@r2 / train seconds for each bit length."""
    bits = sorted({r.bits for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    by = {(r.method, r.bits): r for r in rows}
    head = "| method | " + " | ".join(f"MAP {b}" for b in bits) + " | " + \
           " | ".join(f"P@r2 {b}" for b in bits) + " | " + " | ".join(f"train s {b}" for b in bits) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(bits))]
    for m in methods:
        cells = [f"{by[m, b].map:.3f}" if (m, b) in by else "" for b in bits]
        cells += [f"{by[m, b].precision_radius2:.3f}" if (m, b) in by else "" for b in bits]
        cells += [f"{by[m, b].train_seconds:.1f}" if (m, b) in by else "" for b in bits]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
