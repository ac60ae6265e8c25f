"""How fast the pretrained backbones train and encode at 224 px on this CPU, and their ONNX sizes (issue 23).

    python benchmarks/backbone_speed.py                       # resnet18, resnet50, vit_small_patch16_224
    python benchmarks/backbone_speed.py --backbones resnet50 --threads 2 --steps 5 --out speed.json
    python benchmarks/backbone_speed.py --quick               # the smoke test: resnet18 at 64 px, 1 step

For each backbone, the DNNH model dnnh trains on it (48 bits, divide-and-encode: the backbone, a
linear map to 50·q and a ReLU, the slices), at 224 px, random initialisation (speed does not
depend on the weights):

* training images/s: one step = forward + in-batch triplet mining + backward + AdamW on a batch
  of ``--batch`` images, the backbone under bf16 autocast or in fp32 (the hash head is fp32 in
  both, as in training); two warm-up steps, then ``--steps`` timed;
* encoding images/s: ``DNNH.forward`` under ``torch.no_grad`` in eval mode, batches of
  ``--encode-batch``, fp32 and bf16 autocast;
* the ONNX file ``dnnh export`` writes for such a run (raw uint8 [N, 256, 256, 3] in, the
  centre crop, ImageNet normalisation, the network, bits and packed codes out): traced by
  :func:`dnnh.export.graph.image_graph`, the function ``dnnh export`` uses, its serialized bytes.

bf16 is only fast on CPUs with AMX-BF16 or AVX512-BF16 (the header line says which path this CPU
takes); elsewhere it is emulated and slower than fp32, so by default only fp32 is measured there
(``--precisions fp32 bf16`` measures the emulated path anyway). GPUs are not measured here.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from dnnh import machine
from dnnh.data.pipeline import Preprocessing
from dnnh.losses import MinedTriplets, TripletRankingLoss
from dnnh.miners import BatchTripletMiner
from dnnh.nn import DNNH
from dnnh.nn.backbones import backbone_spec
from dnnh.training.finetune import RESIZE_RATIO

NBITS = 48


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def train_rate(model: DNNH, size: int, batch: int, steps: int, precision: str) -> float:
    """Training images/s: forward, mining, backward, AdamW; two warm-up steps excluded."""
    objective = MinedTriplets(TripletRankingLoss(4.0, reduction="active"), BatchTripletMiner("all"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, size, size)
    labels = torch.arange(batch) % max(2, batch // 4)
    model.train()
    t0 = time.perf_counter()
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with _autocast(precision):
            out = model(images)
        loss, _ = objective(out.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


@torch.no_grad()
def encode_rate(model: DNNH, size: int, batch: int, batches: int, precision: str) -> float:
    """Encoding images/s: eval-mode forward passes, one warm-up batch excluded."""
    images = torch.randn(batch, 3, size, size)
    model.eval()
    t0 = time.perf_counter()
    for i in range(batches + 1):
        if i == 1:
            t0 = time.perf_counter()
        with _autocast(precision):
            model(images)
    return batch * batches / (time.perf_counter() - t0)


def onnx_bytes(model: DNNH, name: str, size: int) -> int:
    """Bytes of the ONNX file ``dnnh export`` writes for a run of this model (same graph function)."""
    from dnnh.encoder.onnx import network_of
    from dnnh.export.graph import image_graph

    spec = backbone_spec(name)
    prep = Preprocessing.fixed(size, 3, spec.mean, spec.std, resize=int(round(size * RESIZE_RATIO)))
    model.eval()
    return image_graph(network_of(model, "database"), prep, model.nbits).ByteSize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50", "vit_small_patch16_224"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32, help="training batch (default 32)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps (default 3, after 2 warm-up)")
    p.add_argument("--encode-batch", type=int, default=64)
    p.add_argument("--encode-batches", type=int, default=3)
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                   help="default: fp32 and bf16 where bf16 runs in hardware, fp32 alone where it is emulated "
                        "(an emulated bf16 step is slower than fp32 and says nothing about a bf16 CPU)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX sizes")
    p.add_argument("--quick", action="store_true", help="smoke test: resnet18 at 64 px, batch 8, 1 step")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()
    if args.quick:
        args.backbones, args.size, args.batch, args.steps = ["resnet18"], 64, 8, 1
        args.encode_batch, args.encode_batches = 8, 1
    if args.precisions is None:
        args.precisions = list(machine.precisions_to_time())
    for name in args.backbones:
        backbone_spec(name)  # an unknown name is one line before anything runs
    torch.set_num_threads(args.threads)
    header = machine.describe(threads=args.threads)
    print(header)
    print(f"{args.size} px, {NBITS} bits, divide-and-encode; training batch {args.batch} ({args.steps} timed steps), "
          f"encoding batch {args.encode_batch} ({args.encode_batches} timed batches); random weights", flush=True)
    rows = []
    for name in args.backbones:
        torch.manual_seed(0)
        model = DNNH(NBITS, backbone=name)
        row: dict = {"backbone": name, "features": model.net.backbone.out_features,
                     "parameters": sum(q.numel() for q in model.parameters())}
        for precision in args.precisions:
            row[f"train_{precision}"] = train_rate(model, args.size, args.batch, args.steps, precision)
            row[f"encode_{precision}"] = encode_rate(model, args.size, args.encode_batch, args.encode_batches, precision)
            print(f"{name} {precision}: train {row[f'train_{precision}']:.1f} img/s, "
                  f"encode {row[f'encode_{precision}']:.1f} img/s", flush=True)
        if not args.no_onnx:
            row["onnx_bytes"] = onnx_bytes(model, name, args.size)
        rows.append(row)
    load_after = machine.load_average()
    cols = [f"{kind} {precision} img/s" for precision in args.precisions for kind in ("train", "encode")]
    print(f"\n| backbone | features | parameters | {' | '.join(cols)} | ONNX MB |\n|---|---|---|"
          + "---|" * len(cols) + "---|")
    for r in rows:
        rates = " | ".join(f"{r[f'{kind}_{precision}']:.1f}" for precision in args.precisions
                           for kind in ("train", "encode"))
        onnx = f"{r['onnx_bytes'] / 1e6:.1f}" if "onnx_bytes" in r else "-"
        print(f"| {r['backbone']} | {r['features']} | {r['parameters'] / 1e6:.1f} M | {rates} | {onnx} |")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    if args.out:
        args.out.write_text(json.dumps({"machine": header, "args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows, "load_after": load_after}, indent=1))


if __name__ == "__main__":
    main()
