"""What a pretrained weights file is worth, measured with a file made here (issue 23).

No ImageNet weights can be fetched on these machines, so the file is made the way a user's is:
a torchvision-layout ``resnet18`` classifier trained on Fashion-MNIST classes 0-4 (all their
training images), its ``state_dict()`` saved as a ``.pth``. Then DNNH (triplet loss, 48 bits) is
trained on classes 5-9 — 100 training images a class, 100 queries a class, a database of
1,000 a class — from that file and from random initialisation, three seeds each, with the same
budget (epochs, batch, input pipeline). The from-file runs use the field's fine-tuning default
(backbone at 0.1 of the head's learning rate); the scratch runs train everything at the head's
rate (a tenth would starve a random backbone). Prints MAP mean ± std and training seconds.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist;
``apt-get install dataset-fashion-mnist``), or the folder of its four IDX files given as --root.

    python benchmarks/transfer.py                  # about 5 minutes on 2 cores
    python benchmarks/transfer.py --epochs 20 --classifier-epochs 1 --seeds 3 --out transfer.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dnnh import machine
from dnnh.config import TrainConfig
from dnnh.data.dataset import ArrayDataset
from dnnh.data.idx import load_fashion_mnist
from dnnh.data.splits import paper_split
from dnnh.evaluation import evaluate_run
from dnnh.nn import build_backbone
from dnnh.nn.backbones import IMAGENET_MEAN, IMAGENET_STD
from dnnh.training.train import train

SOURCE_CLASSES, TARGET_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


def _batches(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (n, 28, 28, 1) -> the float input DNNH's pipeline gives a pretrained resnet18 on gray images."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return ((x - sum(IMAGENET_MEAN) / 3) / (sum(IMAGENET_STD) / 3)).expand(-1, 3, -1, -1)


def train_classifier(data: ArrayDataset, out: Path, size: int, epochs: int, seed: int = 0) -> dict:
    """resnet18 + a 5-way fc on every training image of classes 0-4; its state_dict saved as torchvision's."""
    torch.manual_seed(seed)
    keep = np.flatnonzero(np.isin(data.labels, SOURCE_CLASSES) & ~data.is_test)
    images, labels = data.images[keep], torch.from_numpy(data.labels[keep])
    net = build_backbone("resnet18")
    fc = torch.nn.Linear(net.out_features, len(SOURCE_CLASSES))
    params = [*net.parameters(), *fc.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=5e-4)
    steps = epochs * (len(keep) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    rng = np.random.default_rng(seed)
    started, correct, seen = time.perf_counter(), 0, 0
    net.train()
    for _ in range(epochs):
        order = rng.permutation(len(keep))
        for i in range(0, len(order) - 127, 128):
            b = order[i:i + 128]
            x, y = _batches(images[b], size), labels[b]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=machine.bf16_is_fast()):
                logits = fc(net(x).float())
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            correct += int((logits.argmax(1) == y).sum())
            seen += len(b)
    state = {**net.state_dict(), "fc.weight": fc.weight.detach(), "fc.bias": fc.bias.detach()}
    torch.save(state, out)  # exactly a torchvision resnet18 state_dict with a 5-way fc
    return {"images": int(len(keep)), "epochs": epochs, "seconds": time.perf_counter() - started,
            "train_accuracy_last_epoch_running": correct / max(seen, 1)}


def target_set(data: ArrayDataset, per_class: int = 1200, seed: int = 0) -> ArrayDataset:
    """Classes 5-9 (relabelled 0-4), ``per_class`` training-set images each: queries, training, database."""
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero((data.labels == c) & ~data.is_test), per_class,
                                              replace=False) for c in TARGET_CLASSES]))
    return ArrayDataset(data.images[keep], data.labels[keep] - TARGET_CLASSES[0], name="fashion-mnist-5-9")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="folder of Fashion-MNIST's IDX files (default: Debian's)")
    p.add_argument("--size", type=int, default=32, help="network input side (default 32; resize 36, crop 32)")
    p.add_argument("--classifier-epochs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=20, help="DNNH epochs, the same for both starts (default 20)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--nbits", type=int, default=48)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_fashion_mnist(args.root)
    print(machine.describe(threads=args.threads))
    results: dict = {"command": "python benchmarks/transfer.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
        "load_before": machine.load_average()}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "resnet18-fmnist0-4.pth"
        results["classifier"] = train_classifier(data, weights, args.size, args.classifier_epochs)
        print(f"classifier on classes 0-4: {results['classifier']}")
        target = target_set(data)
        split = paper_split(target.labels, queries_per_class=100, train_per_class=100, val_fraction=0.0, seed=0)
        for start in ("pretrained", "scratch"):
            maps, seconds = [], []
            for seed in range(args.seeds):
                config = TrainConfig(backbone="resnet18", nbits=args.nbits, input_size=args.size, epochs=args.epochs,
                                     batch_size=100, per_class=20, seed=seed, num_workers=0, threads=args.threads,
                                     backbone_weights=str(weights) if start == "pretrained" else None)
                result = train(config, target, split, Path(tmp) / f"{start}-{seed}", progress=False)
                report = evaluate_run(result.run, target, write=False)
                maps.append(float(report.map))
                seconds.append(result.seconds)
                print(f"{start} seed {seed}: MAP {maps[-1]:.4f}, {result.seconds:.1f} s", flush=True)
            results[start] = {"map": maps, "seconds": seconds, "map_mean": statistics.mean(maps),
                              "map_std": statistics.stdev(maps) if len(maps) > 1 else 0.0,
                              "seconds_mean": statistics.mean(seconds), "backbone_lr": config.backbone_lr}
    results["load_after"] = machine.load_average()
    print(f"\n| start | MAP (mean ± std, {args.seeds} seeds) | training s (mean) |\n|---|---|---|")
    for start in ("pretrained", "scratch"):
        r = results[start]
        print(f"| {start} | {r['map_mean']:.4f} ± {r['map_std']:.4f} | {r['seconds_mean']:.1f} |")
    print(f"ratio pretrained / scratch MAP: {results['pretrained']['map_mean'] / results['scratch']['map_mean']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
