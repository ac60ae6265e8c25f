"""The prepared GPU check (issues 22 and 34): CUDA tests, one paper-width training run, where the GPU idles, encoding.

    python benchmarks/gpu_check.py                     # on a machine with CUDA (under 10 minutes on one H100)
    python benchmarks/gpu_check.py --device cpu --tiny # the same steps on the CPU at a tiny size (~1 min)

It needs the repository and a Python with torch and dnnh's dependencies, nothing else: no network,
no package beyond those. Data, first found of: ``--data`` (a folder of Fashion-MNIST's four IDX
files, or anything ``dnnh --data`` takes); ``benchmarks/data/fashion-mnist/`` beside this script;
Debian's ``/usr/share/datasets/fashion-mnist``; else **digits-70k**, made here from scikit-learn's
digits (which ships with dnnh's dependencies): 7,000 images a class of 28x28, each an 8x8 digit
upscaled with a random shift and contrast, seeded. The ``data:`` line says which was used; MAP on
digits-70k is not comparable to Fashion-MNIST's, the speeds are (same sizes, same network).

On CUDA it (1) runs the tests marked ``cuda`` (``pytest -m cuda``), (2) trains the paper-width
``nin-cifar`` DNNH at 48 bits with the modern recipe for 60 epochs under the paper protocol (5,000
training images, 1,000 queries, the other 69,000 the database), (3) trains one more epoch under
torch's profiler: the GPU's busy share (the union of its kernels' intervals over the epoch's wall
time, from CUDA's own timestamps), and one under :class:`dnnh.testing.syncs.HostSyncCounter`: how
often a step made the host wait for the GPU, (4) scores the model (MAP over the whole database)
and (5) times encoding all 70,000 images after an untimed pass over the same batches (every batch
shape cuDNN will see, the last partial one included, so its algorithm search is not timed).
Peak GPU memory is reset before each phase and reported for each. Output: one ``key: value`` a
line, to paste into docs/RESULTS.md. ``--tiny`` swaps in digits, nin-small at 8x8 pixels, one
epoch and a 500-image encoding (and skips the CUDA tests where there is no GPU): it checks that
the script runs, not a figure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dnnh import devices, machine
from dnnh.config import TrainConfig
from dnnh.data import load_dataset
from dnnh.data.dataset import ArrayDataset
from dnnh.data.idx import FASHION_SYSTEM_ROOT
from dnnh.data.sources import SplitSpec
from dnnh.encoder import Encoder
from dnnh.evaluation import evaluate_run
from dnnh.testing.syncs import HostSyncCounter
from dnnh.training.train import train

ROOT = Path(__file__).resolve().parents[1]
BESIDE = Path(__file__).resolve().parent / "data" / "fashion-mnist"


def cuda_tests(device: torch.device) -> str:
    """``pytest -m cuda``'s last line (where there is no GPU they skip, saying why)."""
    if device.type != "cuda":
        return "not run (no CUDA device)"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
                          cwd=ROOT, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return f"{lines[-1] if lines else '(no output)'} (exit {done.returncode})"


def digits_70k(per_class: int = 7000, side: int = 28, seed: int = 0) -> ArrayDataset:
    """Fashion-MNIST's shape made from scikit-learn's digits: ``per_class`` images a class of ``side`` px."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    big = torch.nn.functional.interpolate(small, size=(side - 4, side - 4), mode="bilinear", align_corners=False)
    images, labels = [], []
    for label in range(10):
        members = np.flatnonzero(digits.target == label)
        pick = rng.choice(members, per_class)
        shifts = rng.integers(0, 5, (per_class, 2))
        contrast = rng.uniform(0.6, 1.0, per_class).astype(np.float32)
        out = np.zeros((per_class, side, side), dtype=np.float32)
        for i, (j, (dy, dx)) in enumerate(zip(pick, shifts)):
            out[i, dy:dy + side - 4, dx:dx + side - 4] = big[j, 0].numpy() * contrast[i]
        images.append((out * 255).round().clip(0, 255).astype(np.uint8))
        labels.append(np.full(per_class, label))
    order = rng.permutation(10 * per_class)
    return ArrayDataset(np.concatenate(images)[order][..., None], np.concatenate(labels)[order], name="digits-70k",
                        class_names=[str(i) for i in range(10)])


def find_data(asked: str | None, tiny: bool) -> tuple[ArrayDataset, str]:
    """The dataset and the line saying which it is (see the module docstring for the order)."""
    if tiny:
        return load_dataset("digits"), "digits (scikit-learn's; --tiny)"
    candidates = [Path(asked)] if asked else [BESIDE, FASHION_SYSTEM_ROOT]
    for folder in candidates:
        if folder.exists():
            return load_dataset(folder), f"{folder} (Fashion-MNIST)" if "fashion" in str(folder).lower() else str(folder)
    if asked:
        raise SystemExit(f"gpu_check: --data {asked} does not exist")
    made = digits_70k()
    return made, (f"digits-70k, made from scikit-learn's digits ({len(made):,} images of 28x28; Fashion-MNIST not "
                  f"found at {BESIDE} or {FASHION_SYSTEM_ROOT}): speeds comparable, MAP not")


def phase(device: torch.device, peaks: dict[str, str], name: str, work: Callable[[], object]) -> tuple[object, float]:
    """Run ``work`` as one phase: synchronised wall time, and the peak GPU memory of this phase alone."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    devices.synchronize(device)
    started = time.perf_counter()
    out = work()
    devices.synchronize(device)
    seconds = time.perf_counter() - started
    peak = devices.peak_memory_gib(device)
    peaks[name] = "n/a (CPU)" if peak is None else f"{peak:.2f} GiB"
    return out, seconds


def busy_share(device: torch.device, work: Callable[[], object]) -> str:
    """The share of ``work``'s wall time in which the GPU ran a kernel (union of CUDA kernel intervals)."""
    if device.type != "cuda":
        return "n/a (CPU)"
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        devices.synchronize(device)
        started = time.perf_counter()
        work()
        devices.synchronize(device)
        wall_us = (time.perf_counter() - started) * 1e6
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start)
    busy, end = 0.0, -np.inf
    for start, stop in spans:
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return f"{busy / wall_us:.0%} ({busy / 1e6:.2f} s of kernels in {wall_us / 1e6:.2f} s, one epoch with its validation)"


def host_waits(device: torch.device, work: Callable[[], object]) -> str:
    """How often a training step made the host wait for the GPU (:class:`HostSyncCounter` on real tensors)."""
    if device.type != "cuda":
        return "n/a (CPU: nothing waits; tests/training/test_host_syncs.py counts them on a faked GPU)"
    with HostSyncCounter() as counter:
        work()
    steps = counter.per_step()
    if not steps:
        return "n/a (fewer than two steps)"
    counts = [len(s) for s in steps]
    kinds = sorted({e for s in steps for e in s})
    return f"max {max(counts)}, mean {np.mean(counts):.2f} a step over {len(steps)} steps ({', '.join(kinds) or 'none'})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    ap.add_argument("--tiny", action="store_true", help="digits, nin-small, 8x8, one epoch: checks the script runs")
    ap.add_argument("--epochs", type=int, help="training epochs (default 60; --tiny: 1)")
    ap.add_argument("--data", help="a folder of Fashion-MNIST's IDX files (or any dataset dnnh loads)")
    ap.add_argument("--compile", action="store_true", help="train with torch.compile")
    ap.add_argument("--skip-tests", action="store_true", help="do not run the CUDA-marked tests")
    args = ap.parse_args()

    device = devices.resolve_device(args.device, announce=print)
    print(f"# {machine.describe()}")
    print(f"device: {devices.describe_device(device)}")
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    print(f"torch: {torch.__version__} (CUDA {torch.version.cuda or 'none'}, cuDNN {cudnn or 'none'})")
    if not args.skip_tests:
        print(f"cuda tests: {cuda_tests(device)}", flush=True)

    dataset, described = find_data(args.data, args.tiny)
    print(f"data: {described}", flush=True)
    if args.tiny:
        spec = SplitSpec(queries_per_class=5, train_per_class=30, val_fraction=0.2)
        options = dict(backbone="nin-small", input_size=8, epochs=args.epochs or 1, batch_size=40, per_class=4,
                       threads=2, num_workers=0)
        encode_n = 500
    else:
        spec = SplitSpec(protocol="paper")
        options = dict(backbone="nin-cifar", epochs=args.epochs or 60, num_workers=0)
        encode_n = None
    split = spec.resolve(dataset)
    config = TrainConfig.from_recipe("modern", nbits=48, device=str(device), compile=args.compile, **options)
    print(f"training: {split.summary()}; {config.backbone}, {config.nbits} bits, {config.epochs} epochs, "
          f"batch {config.batch_size}, precision {config.precision}", flush=True)

    peaks: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        def run(name: str, epochs: int) -> Callable[[], object]:
            return lambda: train(config.replace(epochs=epochs), dataset, split, Path(tmp) / name, progress=False,
                                 log=print if name == "run" else None)

        result, wall = phase(device, peaks, "training", run("run", config.epochs))
        trained = sum(r["images_per_s"] * r["seconds"] for r in result.history)
        train_seconds = sum(r["seconds"] for r in result.history)
        busy = busy_share(device, run("profiled", 1))
        waits = host_waits(device, run("counted", 1))
        encoder = Encoder.from_run(result.run, device=device, batch_size=2048)
        report, score_seconds = phase(device, peaks, "scoring", lambda: evaluate_run(result.run, dataset,
                                                                                     encoder=encoder, write=False))
        ids = np.arange(len(dataset) if encode_n is None else min(encode_n, len(dataset)))
        encoder.encode_items(dataset, ids)  # untimed: every batch shape once (cuDNN's search, the last partial one)
        _, encode_seconds = phase(device, peaks, "encoding", lambda: encoder.encode_items(dataset, ids))

    print(f"MAP: {report.map:.4f} ({report.n_queries} queries against the whole database)")
    print(f"best validation MAP: {result.best_val_map:.4f} at epoch {result.best_epoch}")
    print(f"training wall time: {wall:.1f} s (epochs alone {train_seconds:.1f} s; the rest: set-up, validation, "
          f"checkpoints)")
    print(f"training images/s: {trained / max(train_seconds, 1e-9):.0f}")
    print(f"GPU busy share while training: {busy}")
    print(f"host waits per training step: {waits}")
    print(f"scoring: {score_seconds:.2f} s (encoding the split and MAP)")
    print(f"encoding: {len(ids)} images in {encode_seconds:.2f} s = {len(ids) / encode_seconds:.0f} images/s "
          f"(batch {encoder.batch_size}, after an untimed pass)")
    for name, peak in peaks.items():
        print(f"peak GPU memory, {name}: {peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
