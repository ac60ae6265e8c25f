"""What cutting a network's outputs to bits costs: MAP of the 0/1 codes against the outputs they come from.

    python benchmarks/quantisation_loss.py results/fmnist-60/runs/dnnh_12 results/fmnist-60/runs/classifier_12 \
        --data fashion-mnist

For each trained run (a ``dnnh train`` run folder or a bench's ``runs/<method>_<bits>``), encodes
the run's own split and prints the MAP of its binary codes (Hamming ranking, the metric every
table uses), the MAP of the continuous outputs the codes are cut from (squared Euclidean ranking
of sigmoid(u) for the triplet loss, which trains on it, and of tanh(u) for the later losses), the
ratio of the two, and the share of outputs with sigmoid(u) within 0.1 of the cut at 0.5. Two
methods can rank equally well before the cut and differ after it: a short code pays for every
output left near 0.5.
Single-label datasets; ties are broken by database order in both rankings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

from dnnh.codes import CodeSet
from dnnh.data.pipeline import BatchSource
from dnnh.data.sources import DataSource
from dnnh.evaluation import score_codes
from dnnh.nn import DNNH
from dnnh.runs import Run
from dnnh import machine


def outputs(model: DNNH, split, source: BatchSource, part: str, batch_size: int = 1024) -> np.ndarray:
    """Pre-sigmoid outputs u of the split's ``part`` (query or database)."""
    idx = getattr(split, part)
    chunks = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    model.eval()
    with torch.no_grad():
        return np.concatenate([model.logits(x, role=part).float().numpy() for x in source.batches(chunks)])


def continuous_map(query: np.ndarray, database: np.ndarray, q_labels: np.ndarray, db_labels: np.ndarray) -> float:
    """MAP of a squared-Euclidean ranking of real vectors, every relevant item counted (brute force)."""
    db_sq = (database.astype(np.float64) ** 2).sum(1)
    aps = []
    for i, q in enumerate(query.astype(np.float64)):
        dist = db_sq - 2 * database @ q  # + |q|^2, the same for every item
        relevant = db_labels[np.argsort(dist, kind="stable")] == q_labels[i]
        ranks = np.flatnonzero(relevant) + 1
        aps.append(float((np.arange(1, len(ranks) + 1) / ranks).mean()) if len(ranks) else 0.0)
    return float(np.mean(aps))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="trained run folders")
    p.add_argument("--data", required=True, help="the dataset the runs were trained on (name or path)")
    p.add_argument("--root", help="folder holding the dataset's files")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    print(f"# {machine.describe()} (at start)", flush=True)
    torch.set_num_threads(args.threads)
    dataset = DataSource(args.data, root=args.root).load()
    print("| run | bits | MAP of 0/1 codes | MAP of continuous outputs | ratio | outputs within 0.1 of the cut |\n"
          "|---|---|---|---|---|---|")
    for run_dir in args.runs:
        run = Run.open(run_dir)
        model = run.load_model()
        labels = {part: dataset.labels[getattr(run.split, part)] for part in ("query", "database")}
        if labels["query"].ndim != 1:
            raise SystemExit(f"{run_dir}: single-label datasets only")
        source = BatchSource(dataset, run.prep, num_workers=0)
        u = {part: outputs(model, run.split, source, part) for part in ("query", "database")}
        codes = [CodeSet.from_bits((u[part] > 0).astype(np.uint8), ids=getattr(run.split, part), labels=labels[part])
                 for part in ("query", "database")]
        binary = score_codes(*codes).map
        squash = expit if run.config.loss == "triplet" else np.tanh
        cont = {part: squash(u[part]).astype(np.float32) for part in u}
        real = continuous_map(cont["query"], cont["database"], labels["query"], labels["database"])
        near = float(np.mean(np.abs(expit(u["database"]) - 0.5) < 0.1))
        print(f"| {run_dir} | {run.config.bits} | {binary:.4f} | {real:.4f} | {binary / real:.3f} | {near:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
