"""The prepared GPU check (issue 22): CUDA tests, one paper-width training run, and encoding speed.

    python benchmarks/gpu_check.py                     # on a machine with CUDA (under 10 minutes)
    python benchmarks/gpu_check.py --device cpu --tiny # the same steps on the CPU at a tiny size (~20 s)

On CUDA it (1) runs the tests marked ``cuda`` (``pytest -m cuda``), (2) trains the paper-width
``nin-cifar`` DNNH on Fashion-MNIST at 48 bits with the modern recipe for 60 epochs under the
paper protocol (5,000 training images, 1,000 queries, the other 69,000 images the database),
(3) scores it (MAP over the whole database) and (4) times encoding all 70,000 images. It prints
the GPU's name and memory, MAP, training wall time, training images/s, peak GPU memory and
encoding images/s, one ``key: value`` a line so the output can be pasted into docs/RESULTS.md.
``--tiny`` swaps in digits, nin-small at 8x8 pixels, one epoch and a 500-image encoding (and
skips the CUDA tests where there is no GPU): it checks that the script runs, not a figure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dnnh import devices, machine
from dnnh.config import TrainConfig
from dnnh.data.sources import DataSource, SplitSpec
from dnnh.encoder import Encoder
from dnnh.evaluation import evaluate_run
from dnnh.training.train import train

ROOT = Path(__file__).resolve().parents[1]


def cuda_tests(device: torch.device) -> str:
    """``pytest -m cuda``'s last line (where there is no GPU they skip, saying why)."""
    if device.type != "cuda":
        return "not run (no CUDA device)"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
                          cwd=ROOT, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return f"{lines[-1] if lines else '(no output)'} (exit {done.returncode})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    ap.add_argument("--tiny", action="store_true", help="digits, nin-small, 8x8, one epoch: checks the script runs")
    ap.add_argument("--epochs", type=int, help="training epochs (default 60; --tiny: 1)")
    ap.add_argument("--compile", action="store_true", help="train with torch.compile")
    ap.add_argument("--skip-tests", action="store_true", help="do not run the CUDA-marked tests")
    args = ap.parse_args()

    device = devices.resolve_device(args.device, announce=print)
    print(f"# {machine.describe()}")
    print(f"device: {devices.describe_device(device)}")
    print(f"torch: {torch.__version__} (CUDA {torch.version.cuda or 'none'})")
    if not args.skip_tests:
        print(f"cuda tests: {cuda_tests(device)}", flush=True)

    if args.tiny:
        data, spec = "digits", SplitSpec(queries_per_class=5, train_per_class=30, val_fraction=0.2)
        options = dict(backbone="nin-small", input_size=8, epochs=args.epochs or 1, batch_size=40, per_class=4,
                       threads=2, num_workers=0)
        encode_n = 500
    else:
        data, spec = "fashion-mnist", SplitSpec(protocol="paper")
        options = dict(backbone="nin-cifar", epochs=args.epochs or 60, num_workers=0)
        encode_n = None
    dataset = DataSource(data).load()
    split = spec.resolve(dataset)
    config = TrainConfig.from_recipe("modern", nbits=48, device=str(device), compile=args.compile, **options)
    print(f"training: {data}, {split.summary()}; {config.backbone}, {config.nbits} bits, {config.epochs} epochs, "
          f"precision {config.precision}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        devices.synchronize(device)
        started = time.perf_counter()
        result = train(config, dataset, split, Path(tmp) / "run", progress=False, log=print)
        devices.synchronize(device)
        wall = time.perf_counter() - started
        trained = sum(r["images_per_s"] * r["seconds"] for r in result.history)
        train_seconds = sum(r["seconds"] for r in result.history)
        encoder = Encoder.from_run(result.run, device=device, batch_size=2048)
        report = evaluate_run(result.run, dataset, encoder=encoder, write=False)

        ids = np.arange(len(dataset) if encode_n is None else min(encode_n, len(dataset)))
        encoder.encode_items(dataset, ids[:min(len(ids), 4096)])  # warm-up: cuDNN's algorithm search
        devices.synchronize(device)
        t0 = time.perf_counter()
        encoder.encode_items(dataset, ids)
        devices.synchronize(device)
        encode_seconds = time.perf_counter() - t0

    peak = devices.peak_memory_gib(device)
    print(f"MAP: {report.map:.4f} ({report.n_queries} queries against the whole database)")
    print(f"best validation MAP: {result.best_val_map:.4f} at epoch {result.best_epoch}")
    print(f"training wall time: {wall:.1f} s (epochs alone {train_seconds:.1f} s)")
    print(f"training images/s: {trained / max(train_seconds, 1e-9):.0f}")
    print(f"peak GPU memory: {'n/a (CPU)' if peak is None else f'{peak:.2f} GiB'}")
    print(f"encoding: {len(ids)} images in {encode_seconds:.2f} s = {len(ids) / encode_seconds:.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
