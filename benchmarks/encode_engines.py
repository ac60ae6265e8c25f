"""Encoding engines compared: images/s at 1 and 2 threads, bit agreement with fp32 torch, MAP.

    python benchmarks/encode_engines.py [--run RUN] [--threads 1,2] [--limit N] [--engines ...]

Data: Fashion-MNIST from Debian's /usr/share/datasets/fashion-mnist (``apt-get install
dataset-fashion-mnist``) under the paper protocol: 1,000 queries, 69,000 database images. Without
it, digits tiled to 69,000+ images (said in the output). Model: ``--run`` (a trained run on that
data), or a 48-bit nin-small run trained here for ``--epochs`` on ``--train-per-class`` images a
class (a short run: its MAP is lower than a full recipe's, but its outputs are decided the way a
trained model's are, which is what the engines' rounding meets).

Speed: the backend alone (``bits(batch, role)`` on preprocessed batches of ``--batch-size``), on
the first ``--limit`` database images (default all), after one warm-up batch, for each engine
and thread count; ``--rounds`` rounds go over every engine and thread count in turn and the best
round counts, so a neighbour's burst of load hits every engine alike. Ratios are against torch
fp32 at the same thread count, measured in this run.
Agreement and MAP: every engine encodes the whole database and the queries (at the last thread
count), compared bit by bit with torch fp32 and scored with the library's MAP (whole database
ranked). The CPU model, its bf16/VNNI flags and the load average before and after are printed:
this machine's 2 cores are shared, so a busy neighbour shows up as load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dnnh.data.dataset import ArrayDataset
from dnnh.data.pipeline import BatchSource
from dnnh import machine
from dnnh.encoder import ENGINES, choose_auto, make_backend
from dnnh.metrics import mean_average_precision
from dnnh.runs import Run

FASHION = Path("/usr/share/datasets/fashion-mnist")


def load_data() -> tuple[object, str]:
    from dnnh.data.idx import load_fashion_mnist

    if FASHION.is_dir():
        return load_fashion_mnist(FASHION), "Fashion-MNIST (Debian's files)"
    from dnnh.data.digits import load_digits

    d = load_digits()
    reps = -(-70_000 // len(d))
    return (ArrayDataset(np.tile(d.images, (reps, 1, 1, 1)), np.tile(d.labels, reps), name="digits-tiled"),
            f"digits tiled {reps}x (Fashion-MNIST not installed: apt-get install dataset-fashion-mnist)")


def train_run(dataset, args, folder: Path) -> Run:
    from dnnh.data.splits import paper_split
    from dnnh.config import TrainConfig
    from dnnh.training.train import train

    split = paper_split(dataset.labels, queries_per_class=100, train_per_class=args.train_per_class, seed=0)
    config = TrainConfig.from_recipe("modern", nbits=48, epochs=args.epochs, num_workers=0,
                                     threads=max(args.threads))
    t0 = time.perf_counter()
    train(config, dataset, split, folder, progress=False)
    print(f"trained a 48-bit nin-small run ({args.epochs} epochs, {args.train_per_class} images a class) "
          f"in {time.perf_counter() - t0:.0f} s")
    return Run.open(folder)


def preprocess(run: Run, dataset, idx: np.ndarray, size: int = 4096) -> torch.Tensor:
    chunks = [idx[i:i + size] for i in range(0, len(idx), size)]
    return torch.cat(list(BatchSource(dataset, run.prep, num_workers=0).batches(chunks)))


def encode(backend, x: torch.Tensor, role: str, batch: int) -> np.ndarray:
    return np.concatenate([backend.bits(x[i:i + batch], role) for i in range(0, len(x), batch)])


def rate(backend, x: torch.Tensor, batch: int) -> float:
    backend.bits(x[:batch], "database")  # warm-up (onnxruntime's first run plans its memory)
    t0 = time.perf_counter()
    encode(backend, x, "database", batch)
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a trained run on Fashion-MNIST (default: train a short one here)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="engines, comma-separated (default all)")
    ap.add_argument("--limit", type=int, help="time the first N database images only (default all 69,000)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds over all engines; the best counts")
    ap.add_argument("--epochs", type=int, default=3, help="without --run: training epochs (default 3)")
    ap.add_argument("--train-per-class", type=int, default=200, help="without --run: training images a class")
    ap.add_argument("--keep", type=Path, help="without --run: train into this folder (reuse it with --run)")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    names = [e for e in args.engines.split(",") if e]
    if "torch" not in names:
        names.insert(0, "torch")

    flags = {f: ("yes" if f in machine.cpu_flags() else "no") for f in machine.BF16_FLAGS}
    import onnxruntime

    print(f"{time.strftime('%Y-%m-%d %H:%M')}  CPU: {machine.cpu_model()}, {os.cpu_count()} cores; "
          + ", ".join(f"{k} {v}" for k, v in flags.items()))
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; threads {args.threads}; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    dataset, described = load_data()
    with tempfile.TemporaryDirectory(prefix="dnnh-engines-") as tmp:
        run = Run.open(args.run) if args.run else train_run(dataset, args, args.keep or Path(tmp) / "run")
        if args.run:
            dataset = run.load_dataset()
            described = f"the run's data ({run.dataset.get('name')})"
        split = run.split
        print(f"data: {described}; {len(split.query):,} queries, {len(split.database):,} database images; "
              f"model: {run.model_config.nbits} bits, {run.model_config.backbone}, input {run.prep.input_size}x"
              f"{run.prep.input_size}x{run.prep.channels}")
        db = preprocess(run, dataset, split.database)
        queries = preprocess(run, dataset, split.query)
        timed = db[:args.limit] if args.limit else db
        labels_q, labels_db = dataset.labels[split.query], dataset.labels[split.database]

        backends: dict[tuple[str, int], object] = {}
        for name in names:
            for threads in args.threads:
                torch.set_num_threads(threads)
                try:
                    backends[name, threads] = make_backend(name, run, dataset)  # onnxruntime: torch's threads
                except (ValueError, ImportError) as exc:
                    print(f"{name}: skipped ({exc})")
                    break
        speed: dict[tuple[str, int], float] = {}
        for _ in range(args.rounds):
            for (name, threads), backend in backends.items():
                torch.set_num_threads(threads)
                speed[name, threads] = max(speed.get((name, threads), 0.0), rate(backend, timed, args.batch_size))
        result: dict[str, dict] = {}
        torch.set_num_threads(max(args.threads))
        for name in dict.fromkeys(n for n, _ in backends):
            backend = backends[name, max(args.threads)]
            d_bits = encode(backend, db, "database", args.batch_size)
            q_bits = encode(backend, queries, "query", args.batch_size)
            result[name] = {"db": d_bits, "q": q_bits,
                            "map": mean_average_precision(q_bits, d_bits, labels_q, labels_db)}
        auto = choose_auto(run, dataset)

    ref = result["torch"]
    print(f"\nspeed on {len(timed):,} database images (backend only, batches of {args.batch_size}, best of "
          f"{args.rounds} rounds); agreement and "
          f"MAP on all {len(db):,} database and {len(queries):,} query codes\n")
    head = " | ".join(f"images/s {t}T | ratio {t}T" for t in args.threads)
    print(f"| engine | {head} | bits equal to torch fp32 | MAP | MAP - torch |")
    print("|---|" + "---:|" * (2 * len(args.threads) + 3))
    for name, r in result.items():
        cells = " | ".join(f"{speed[name, t]:,.0f} | {speed[name, t] / speed['torch', t]:.2f}" for t in args.threads)
        agree = (np.count_nonzero(r["db"] == ref["db"]) + np.count_nonzero(r["q"] == ref["q"])) / (ref["db"].size
                                                                                                  + ref["q"].size)
        print(f"| {name} | {cells} | {agree:.5%} | {r['map']:.5f} | {r['map'] - ref['map']:+.5f} |")
    print(f"\nauto on this run: {auto.reason}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
