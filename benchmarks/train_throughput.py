"""Training throughput (images/s) of the NIN presets, and of the data pipeline against in-memory tensors.

    python benchmarks/train_throughput.py [--steps 20] [--threads 2]

Section 1: one training step = forward + in-batch triplet mining + backward + AdamW, batch of 100
32x32 RGB images, 48 bits; ratios against nin-small measured in the same run.
Section 1 also gives the inference path (``DNNH.encode``, batches of 512, no gradient).
Section 2: nin-small trained on 2,000 PNG files decoded per batch (0 and 2 worker processes)
versus the same images already in memory as a tensor; ratio = pipeline / in-memory.
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
from dnnh import machine


def step_rate(model: DNNH, batches, labels: torch.Tensor, steps: int) -> float:
    objective = MinedTriplets(TripletRankingLoss(1.0, reduction="active"), BatchTripletMiner("all"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    seen, t0 = 0, None
    for i, images in enumerate(batches):
        if i == 2:  # two warm-up steps
            t0, seen = time.perf_counter(), 0
        loss, _ = objective(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(images)
        if i + 1 >= steps + 2:
            break
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"# {machine.describe()} (at start)", flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    labels = torch.arange(10).repeat_interleave(10)
    x = torch.randn(100, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    print(f"{time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads")
    print("\n| backbone | training images/s | ratio to nin-small | encoding images/s | ratio to nin-small |")
    print("|---|---|---|---|---|")
    rates, enc = {}, {}
    big = torch.randn(512, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    for preset in ("nin-small", "nin-cifar"):
        model = DNNH(48, backbone=preset, in_channels=3).to(memory_format=torch.channels_last)
        steps = args.steps if preset == "nin-small" else max(4, args.steps // 4)
        rates[preset] = step_rate(model, iter(lambda: x, None), labels, steps)
        model.encode(big)
        t0 = time.perf_counter()
        rounds = 3 if preset == "nin-small" else 1
        for _ in range(rounds):
            model.encode(big)
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
        model = DNNH(48, backbone="nin-small", in_channels=3).to(memory_format=torch.channels_last)
        print("\n| nin-small fed by | images/s | ratio to in-memory |\n|---|---|---|")
        memory = step_rate(model, BatchSource(arrays, prep, cache_indices=np.arange(2000)).batches(order), labels,
                           args.steps)
        print(f"| tensors in memory | {memory:.0f} | 1.00 |")
        for workers in (0, 2):
            rate = step_rate(model, BatchSource(files, prep, num_workers=workers).batches(order), labels, args.steps)
            print(f"| PNG files, {workers} decoding workers | {rate:.0f} | {rate / memory:.2f} |")


if __name__ == "__main__":
    main()
