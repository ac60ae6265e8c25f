"""Training images/s beside a fixed background load, against idle, for each thread policy.

    python benchmarks/contention.py [--busy 2] [--epochs 2] [--timeout 180] [--policies default,passive,one]

Why: on a shared 2-core machine the digits demo trained at 921-961 images/s at load 1-2 and at
7-11 images/s at load 6-14, a 100x slowdown where the run's share of the cores fell 3-7x. The
suspect is OpenMP's barrier: torch's intra-op threads spin-wait for each other at the end of
every parallel region, and a region whose peer thread was descheduled waits a whole scheduler
slice (milliseconds) for work that takes microseconds. This benchmark measures it: each policy
trains nin-small on digits (``dnnh.training.train``, fp32, the modern recipe, no validation cost
counted) in a fresh process, once on its own and once beside ``--busy`` processes that spin on
the CPU, and prints images/s, the ratio loaded/idle, and the ratio a fair share would give
(``cores / (cores + busy)`` when the run wants all cores).

Policies (each a fresh interpreter, because OpenMP reads its environment once, at start):
- ``default``: what torch does unless told: one intra-op thread per core, OpenMP's own wait policy;
- ``passive``: the same threads with ``OMP_WAIT_POLICY=PASSIVE`` (a waiting thread sleeps at once);
- ``dnnh``: what ``dnnh`` itself sets up at start (:func:`dnnh.machine.configure_threads`);
- ``one``: a single intra-op thread (no barrier at all).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, tempfile, time
policy, epochs = sys.argv[1], int(sys.argv[2])
if policy == "passive":
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
if policy == "dnnh":
    from dnnh.machine import configure_threads
    configure_threads()
import torch
if policy == "one":
    torch.set_num_threads(1)
from dnnh.config import TrainConfig
from dnnh.data.sources import DataSource, SplitSpec
from dnnh.training.train import train
dataset = DataSource("digits").load()
split = SplitSpec(protocol="auto").resolve(dataset)
config = TrainConfig.from_recipe("modern", epochs=epochs, num_workers=0, precision="fp32", nbits=48,
                                 threads=torch.get_num_threads())
rates = []
with tempfile.TemporaryDirectory() as tmp:
    train(config, dataset, split, tmp + "/run", progress=False,
          on_epoch_end=lambda epoch, record: rates.append(record["images_per_s"]))
later = rates[1:] or rates
print(json.dumps({"images_per_s": sum(later) / len(later), "threads": torch.get_num_threads(),
                  "wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}))
"""

BUSY = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def measure(policy: str, epochs: int, timeout: float) -> dict:
    """One fresh process training under ``policy``; images/s, or None if it did not finish in time."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, policy, str(epochs)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"images_per_s": None, "note": f"did not finish in {timeout:.0f} s"}
    if done.returncode != 0:
        return {"images_per_s": None, "note": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--busy", type=int, default=2, help="background processes spinning on the CPU (default 2)")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs per measurement (default 2)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds before a measurement is given up (180)")
    ap.add_argument("--policies", default="default,passive,dnnh,one")
    args = ap.parse_args()
    from dnnh import machine

    cores = os.cpu_count() or 1
    print(machine.describe())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores {cores}; "
          f"background: {args.busy} spinning processes")
    fair = cores / (cores + args.busy)
    print(f"{'policy':<9} {'threads':>7} {'idle img/s':>11} {'loaded img/s':>13} {'loaded/idle':>12} "
          f"{'fair share':>11}")
    for policy in args.policies.split(","):
        idle = measure(policy, args.epochs, args.timeout)
        busy = [subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=args.timeout + 30)])
                for _ in range(args.busy)]
        try:
            time.sleep(1.0)
            loaded = measure(policy, args.epochs, args.timeout)
        finally:
            for p in busy:
                p.kill()
                p.wait()
        a, b = idle.get("images_per_s"), loaded.get("images_per_s")
        ratio = f"{b / a:.3f}" if a and b else "-"
        print(f"{policy:<9} {idle.get('threads', '-')!s:>7} {a or 0:>11.0f} {b or 0:>13.0f} {ratio:>12} {fair:>11.3f}"
              + ("  " + (idle.get("note") or loaded.get("note") or "") if not (a and b) else ""))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
