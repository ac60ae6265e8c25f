"""Encoding at the hardware's pace (issue 26 part 3): images/s and GFLOP/s against ceilings measured here.

    python benchmarks/encode_speed.py [--model nin-small] [--threads 2] [--images 4096] [--quick] [--profile]

In one run, on ``--threads`` threads of this CPU, with random weights (speed does not depend on
them; batch norms, where the model has them, carry made-up statistics so that folding them is
real work) and random 32x32 inputs (the preset's input size):

(a) matmul ceiling: a square fp32 and bf16 matmul (``--matmul`` side), GFLOP/s;
(b) conv ceiling: one large 3x3 convolution (256 -> 256 channels, 16x16, batch 64, channels-last),
    fp32 and bf16, GFLOP/s;
(c) the training step: forward, in-batch triplet mining, backward and AdamW on the training
    batch (100 images, 10 classes), channels-last as training runs it, fp32 and under bf16
    autocast, images/s and GFLOP/s;
(d) encoding: the old path (the eval-mode model itself, ``DNNH.encode`` under
    ``torch.no_grad`` in NCHW, bf16 by autocast, as the engines ran before the inference copy)
    and the engines ``torch``, ``torch-bf16`` and ``onnxruntime`` (``bits`` on the Encoder's CPU
    batches of 512), images/s and GFLOP/s; then the fused fp32 forward at batches of 64, 256 and
    1,024 (what chose ``CPU_FORWARD_BATCH``).

Every rate is the best of ``--rounds`` rounds, each round going over every measurement in turn
(a neighbour's burst of load hits each alike). FLOPs are counted from the model by
``torch.utils.flop_counter.FlopCounterMode`` (the forward of one image; the training step's
forward and backward), not written down. Ratios printed: encoding / training step at the same
precision (the issue's target is at least 2.5 for bf16), and new / old encoding. bf16 on a CPU
without AMX-BF16 or AVX512-BF16 is emulated and slow: it is still measured, and marked so.
``--profile`` adds the top operators by self CPU time of the old and the new fp32 (and bf16)
forward (torch.profiler). The header gives the CPU, its flags, threads and load average
(:func:`dnnh.machine.describe`), before and after.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dnnh import machine
from dnnh.encoder import backends
from dnnh.encoder.backends import OnnxRuntimeBackend, TorchBackend, TorchBf16Backend
from dnnh.losses import MinedTriplets, TripletRankingLoss
from dnnh.miners import BatchTripletMiner
from dnnh.nn import BACKBONES, DNNH, PRESETS

TRAIN_BATCH, CLASSES = 100, 10
ENCODER_BATCH = 512  # the Encoder's CPU batch: what each engine's bits() is handed
FORWARD_BATCHES = (64, 256, 1024)
BF16 = torch.bfloat16


def flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def best_rate(fn: Callable[[], object], work: float, reps: int) -> float:
    """``work`` / seconds of the fastest of ``reps`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return work / best


def matmul_ceiling(n: int, dtype: torch.dtype) -> tuple[Callable[[], object], float]:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return (lambda: torch.mm(a, b)), 2.0 * n ** 3 / 1e9


def conv_ceiling(dtype: torch.dtype, batch: int = 64) -> tuple[Callable[[], object], float]:
    conv = nn.Conv2d(256, 256, 3, padding=1).to(dtype).to(memory_format=torch.channels_last).requires_grad_(False)
    x = torch.randn(batch, 256, 16, 16).to(dtype).contiguous(memory_format=torch.channels_last)
    work = 2.0 * batch * 256 * 16 * 16 * 256 * 9 / 1e9

    def run() -> None:
        with torch.inference_mode():
            conv(x)

    return run, work


def with_statistics(model: DNNH) -> DNNH:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


def train_step(model: DNNH, size: int, precision: str) -> Callable[[], object]:
    """One training step on a fixed batch, as the training loop takes it (channels-last, autocast)."""
    model = model.to(memory_format=torch.channels_last).train()
    objective = MinedTriplets(TripletRankingLoss(1.0, reduction="active"), BatchTripletMiner("all"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(TRAIN_BATCH, model.in_channels, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(CLASSES).repeat_interleave(TRAIN_BATCH // CLASSES)

    def step() -> None:
        with torch.autocast("cpu", dtype=BF16, enabled=precision == "bf16"):
            outputs = model(x)
        loss, _ = objective(outputs, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def old_encode(model: DNNH, x: torch.Tensor, precision: str) -> Callable[[], object]:
    """The engines before the inference copy: the eval-mode model, NCHW, no_grad, autocast for bf16."""
    def run() -> None:
        for i in range(0, len(x), ENCODER_BATCH):
            with torch.autocast("cpu", dtype=BF16, enabled=precision == "bf16"):
                model.encode(x[i:i + ENCODER_BATCH])

    return run


def engine_encode(backend, x: torch.Tensor) -> Callable[[], object]:
    def run() -> None:
        for i in range(0, len(x), ENCODER_BATCH):
            backend.bits(x[i:i + ENCODER_BATCH], "database")

    return run


def forward_at(backend: TorchBackend, x: torch.Tensor, batch: int) -> Callable[[], object]:
    def run() -> None:
        saved, backends.CPU_FORWARD_BATCH = backends.CPU_FORWARD_BATCH, batch
        try:
            backend.bits(x, "database")
        finally:
            backends.CPU_FORWARD_BATCH = saved

    return run


def profile(label: str, fn: Callable[[], object], rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    fn()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    print(f"\n### {label}: top {rows} operators by self CPU time\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nin-small", help=f"a backbone: {', '.join([*PRESETS, *BACKBONES])}")
    ap.add_argument("--nbits", type=int, default=48)
    ap.add_argument("--batchnorm", action="store_true", help="a NIN with batch norm after its convolutions")
    ap.add_argument("--size", type=int, help="image side (default: the preset's input size, 32 for the others)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=4096, help="images encoded per measurement (default 4096)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over every measurement; the best counts")
    ap.add_argument("--matmul", type=int, default=2048, help="side of the matmul ceiling (default 2048)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 512 images, 1 round, smaller matmul")
    ap.add_argument("--profile", action="store_true", help="also the top operators of the old and new forward")
    ap.add_argument("--profile-rows", type=int, default=15)
    ap.add_argument("--precisions", help="fp32, bf16 or fp32,bf16 (default: both where bf16 runs in hardware, "
                    "fp32 alone where it is emulated: an emulated bf16 training step takes minutes and says nothing)")
    args = ap.parse_args()
    if args.quick:
        args.images, args.rounds, args.matmul = min(args.images, 512), 1, min(args.matmul, 1024)
    torch.set_num_threads(args.threads)
    size = args.size or (PRESETS[args.model].input_size if args.model in PRESETS else 32)
    native = machine.bf16_is_fast()
    bf16_note = "" if native else " (emulated)"
    tags = tuple(args.precisions.split(",")) if args.precisions else machine.precisions_to_time()
    if not set(tags) <= {"fp32", "bf16"}:
        raise SystemExit(f"--precisions takes fp32, bf16 or fp32,bf16; got {args.precisions!r}")

    import onnxruntime

    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {machine.describe(args.threads)} (at start)")
    print(f"# torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; model {args.model}"
          f"{' with batch norm' if args.batchnorm else ''}, {args.nbits} bits, {size}x{size}x3; "
          f"{args.images} images a measurement, best of {args.rounds} round(s)"
          + ("" if native else "; bf16 is EMULATED on this CPU (no AMX-BF16 or AVX512-BF16): its figures say "
                               "nothing about bf16 hardware"))

    torch.manual_seed(0)
    extra = {"batchnorm": True} if args.batchnorm else {}
    model = with_statistics(DNNH(args.nbits, backbone=args.model, **extra)).eval()
    x = torch.randn(args.images, 3, size, size)
    with torch.no_grad():
        forward_flops = flops(lambda: model(x[:8])) / 8
    step_flops = flops(train_step(with_statistics(DNNH(args.nbits, backbone=args.model, **extra)), size, "fp32"))
    print(f"# FLOPs counted by FlopCounterMode: {forward_flops / 1e6:.1f} MFLOP an image forward, "
          f"{step_flops / TRAIN_BATCH / 1e6:.1f} an image in a training step ({step_flops / TRAIN_BATCH / forward_flops:.2f}x)")

    measures: dict[str, tuple[Callable[[], object], float, str]] = {}  # name -> (fn, GFLOP a call, unit work)
    for dtype, tag in ((torch.float32, "fp32"), (BF16, "bf16")):
        if tag not in tags:
            continue
        fn, work = matmul_ceiling(args.matmul, dtype)
        measures[f"matmul {args.matmul} {tag}"] = (fn, work, "")
        fn, work = conv_ceiling(dtype)
        measures[f"conv 3x3 256->256 16x16 {tag}"] = (fn, work, "")
    for tag in tags:
        measures[f"training step {tag}"] = (train_step(with_statistics(DNNH(args.nbits, backbone=args.model, **extra)),
                                                      size, tag), step_flops / 1e9, f"{TRAIN_BATCH}")
    makers = {"torch": lambda: TorchBackend(model), "torch-bf16": lambda: TorchBf16Backend(model, device="cpu"),
              "onnxruntime": lambda: OnnxRuntimeBackend(model, size, 3, threads=args.threads)}
    if "bf16" not in tags:
        del makers["torch-bf16"]
    engines = {}
    for name, make in makers.items():
        try:
            engines[name] = make()
        except (ImportError, ValueError) as exc:
            print(f"# engine {name} skipped: {str(exc).splitlines()[0]}")
    images_work = forward_flops * args.images / 1e9
    for tag in tags:
        measures[f"encode old path {tag}"] = (old_encode(model, x, tag), images_work, f"{args.images}")
    for name, backend in engines.items():
        measures[f"encode {name}"] = (engine_encode(backend, x), images_work, f"{args.images}")
    for batch in FORWARD_BATCHES:
        measures[f"encode torch, forward batch {batch}"] = (forward_at(engines["torch"], x, batch), images_work,
                                                             f"{args.images}")

    calls: dict[str, float] = {}  # name -> calls a second (the best)
    for _ in range(args.rounds):
        for name, (fn, _, _) in measures.items():
            reps = 1 if name.startswith("encode") else 3  # an encode call is all --images images
            calls[name] = max(calls.get(name, 0.0), best_rate(fn, 1.0, reps))

    print("\n| measurement | images/s | GFLOP/s |\n|---|---|---|")
    rates: dict[str, float] = {}
    for name, (_, work, unit) in measures.items():
        note = bf16_note if "bf16" in name else ""
        per_s = calls[name]
        if unit:
            rates[name] = per_s * int(unit)
            print(f"| {name}{note} | {rates[name]:,.0f} | {per_s * work:,.1f} |")
        else:
            print(f"| {name} (ceiling){note} | | {per_s * work:,.1f} |")

    step = {tag: rates[f"training step {tag}"] for tag in tags}
    old = {tag: rates[f"encode old path {tag}"] for tag in tags}
    print("\n| engine | precision | encode / training step | new / old encode |\n|---|---|---|---|")
    for name, tag in (("torch", "fp32"), ("torch-bf16", "bf16"), ("onnxruntime", "fp32")):
        if name not in engines:
            continue
        r = rates[f"encode {name}"]
        print(f"| {name} | {tag}{bf16_note if tag == 'bf16' else ''} | {r / step[tag]:.2f} | {r / old[tag]:.2f} |")
    for tag in tags:
        print(f"| old path (eval-mode model) | {tag}{bf16_note if tag == 'bf16' else ''} | {old[tag] / step[tag]:.2f} | 1.00 |")

    if args.profile:
        batch = x[:ENCODER_BATCH]
        profile("old fp32 forward (eval-mode model, NCHW, no_grad)", old_encode(model, batch, "fp32"), args.profile_rows)
        profile("new fp32 forward (engine torch)", engine_encode(engines["torch"], batch), args.profile_rows)
        if "torch-bf16" in engines:
            profile(f"new bf16 forward (engine torch-bf16){bf16_note}", engine_encode(engines["torch-bf16"], batch),
                    args.profile_rows)
    print(f"\n# {machine.describe(args.threads)} (at end)")


if __name__ == "__main__":
    main()
