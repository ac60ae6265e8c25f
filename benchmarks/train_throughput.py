"""Training throughput (images/s) of the NIN presets, and of the data pipeline against in-memory tensors.

    python benchmarks/train_throughput.py [--steps 20] [--threads 2] [--device cpu|cuda|cuda:N]
                                          [--loop digits,fashion-mnist]

Section 1: one training step = forward + in-batch triplet mining + backward + AdamW, batch of 100
32x32 RGB images, 48 bits; ratios against nin-small measured in the same run.
Section 1 also gives the inference path (``DNNH.encode``, batches of 512, no gradient).
Section 2: nin-small trained on 2,000 PNG files decoded per batch (0 and 2 worker processes)
versus the same images already in memory as a tensor; ratio = pipeline / in-memory.
Section 3 (``--loop``): dnnh's whole training loop (``dnnh.training.train``: batches, shift-flip
and erasing, mining, the step, validation excluded) on each named dataset, nin-small, fp32,
3 epochs; images/s of the last two epochs, and the ratio to section 1's bare nin-small step.
Everything runs on ``--device`` (default: the CPU); on a GPU the timings synchronise it.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dnnh.data.dataset import ArrayDataset, FileDataset
from dnnh.data.pipeline import BatchSource, Preprocessing
from dnnh.losses import MinedTriplets, TripletRankingLoss
from dnnh.miners import BatchTripletMiner
from dnnh.nn import DNNH
from dnnh import devices, machine


def step_rate(model: DNNH, batches, labels: torch.Tensor, steps: int) -> float:
    objective = MinedTriplets(TripletRankingLoss(1.0, reduction="active"), BatchTripletMiner("all"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    seen, t0 = 0, None
    for i, images in enumerate(batches):
        if i == 2:  # two warm-up steps
            devices.synchronize(labels.device)
            t0, seen = time.perf_counter(), 0
        loss, _ = objective(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(images)
        if i + 1 >= steps + 2:
            break
    devices.synchronize(labels.device)
    return seen / (time.perf_counter() - t0)


def loop_rate(data: str, device: torch.device, threads: int, epochs: int = 3) -> float:
    """images/s of the training loop (mean of epochs after the first) on ``data``'s default split."""
    from dnnh.config import TrainConfig
    from dnnh.data.sources import DataSource, SplitSpec
    from dnnh.training.train import train

    dataset = DataSource(data).load()
    split = (SplitSpec(protocol="paper") if data == "fashion-mnist" else SplitSpec(protocol="auto")).resolve(dataset)
    config = TrainConfig.from_recipe("modern", epochs=epochs, threads=threads, num_workers=0, precision="fp32",
                                     augment="shift-flip", erase=0.3, device=str(device))
    with tempfile.TemporaryDirectory() as tmp:
        history = train(config, dataset, split, Path(tmp) / "run", progress=False).history
    later = history[1:] or history
    return sum(r["images_per_s"] for r in later) / len(later)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    ap.add_argument("--loop", default="", help="comma-separated datasets for section 3 (e.g. digits,fashion-mnist)")
    args = ap.parse_args()
    device = devices.resolve_device(args.device, announce=print)
    print(f"# {machine.describe(args.threads)} (at start); device {devices.describe_device(device)}", flush=True)
    torch.set_num_threads(args.threads)
    devices.speed_switches(device)
    torch.manual_seed(0)
    labels = torch.arange(10, device=device).repeat_interleave(10)
    x = torch.randn(100, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    print(f"{time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, {device}")
    print("\n| backbone | training images/s | ratio to nin-small | encoding images/s | ratio to nin-small |")
    print("|---|---|---|---|---|")
    rates, enc = {}, {}
    big = torch.randn(512, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    for preset in ("nin-small", "nin-cifar"):
        model = DNNH(48, backbone=preset, in_channels=3).to(device, memory_format=torch.channels_last)
        steps = args.steps if preset == "nin-small" else max(4, args.steps // 4)
        rates[preset] = step_rate(model, iter(lambda: x, None), labels, steps)
        model.encode(big)
        t0 = time.perf_counter()
        rounds = 3 if preset == "nin-small" else 1
        for _ in range(rounds):
            model.encode(big)
        devices.synchronize(device)
        enc[preset] = rounds * len(big) / (time.perf_counter() - t0)
        print(f"| {preset} | {rates[preset]:.0f} | {rates[preset] / rates['nin-small']:.2f} | "
              f"{enc[preset]:.0f} | {enc[preset] / enc['nin-small']:.2f} |")

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(np.arange(10), 200)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, img in enumerate(images):
            paths.append(Path(tmp) / f"{i}.png")
            Image.fromarray(img).save(paths[-1])
        arrays = ArrayDataset(images, y)
        files = FileDataset(paths, y, channels=3)
        prep = Preprocessing.fit(arrays, np.arange(2000), 32)
        order = [np.concatenate([rng.choice(np.flatnonzero(y == c), 10, replace=False) for c in range(10)])
                 for _ in range(args.steps + 2)]
        model = DNNH(48, backbone="nin-small", in_channels=3).to(device, memory_format=torch.channels_last)
        print("\n| nin-small fed by | images/s | ratio to in-memory |\n|---|---|---|")
        memory = step_rate(model, BatchSource(arrays, prep, cache_indices=np.arange(2000), device=device).batches(order),
                           labels, args.steps)
        print(f"| tensors in memory | {memory:.0f} | 1.00 |")
        for workers in (0, 2):
            rate = step_rate(model, BatchSource(files, prep, num_workers=workers, device=device).batches(order), labels,
                             args.steps)
            print(f"| PNG files, {workers} decoding workers | {rate:.0f} | {rate / memory:.2f} |")

    if args.loop:
        print("\n| training loop on | images/s | ratio to the bare nin-small step |\n|---|---|---|")
        for data in args.loop.split(","):
            rate = loop_rate(data, device, args.threads)
            print(f"| {data} | {rate:.0f} | {rate / rates['nin-small']:.2f} |", flush=True)
    print(f"# {machine.describe(args.threads)} (at end)")


if __name__ == "__main__":
    main()
