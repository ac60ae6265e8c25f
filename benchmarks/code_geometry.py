"""How each method's codes sit in Hamming space: why two methods with equal accuracy differ in MAP.

    python benchmarks/code_geometry.py results/fmnist-60 --bits 48

Reads the codes a ``dnnh bench`` folder saved (codes/<method>_<bits>_{query,database}.npz) and
prints, per method: the accuracy of a 50-nearest-neighbour vote of each query over the database
(what the codes know about classes), how many distinct codes the database holds, the mean
Hamming distance of a database code to its class centre (the bitwise majority of its class), and
the smallest and mean distance between two class centres. MAP over the whole database rewards
classes that sit far apart, not only queries that land in the right one: a method whose nearest
two centres are 3 bits apart loses ranks wherever a query's code drifts by 2 bits. Single-label
datasets only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dnnh.codes import CodeSet
from dnnh.index import HammingIndex
from dnnh import machine


def geometry(query: CodeSet, database: CodeSet, k: int = 50) -> dict[str, float]:
    labels = None if database.labels is None else np.asarray(database.labels)
    if query.labels is None or labels is None or labels.ndim != 1:
        raise ValueError("code geometry needs single-label class ids on both code sets")
    index = HammingIndex(database.nbits)
    index.add(database.codes)
    _, ids = index.search(query.codes, k)
    n_classes = int(labels.max()) + 1
    votes = np.stack([np.bincount(labels[row[row >= 0]], minlength=n_classes) for row in ids])
    accuracy = float((votes.argmax(1) == np.asarray(query.labels)).mean())
    bits = database.bits
    present = np.unique(labels)
    centres = np.stack([(bits[labels == c].mean(0) > 0.5) for c in present]).astype(np.uint8)
    spread = float(np.mean([(bits[labels == c] != centres[i]).sum(1).mean() for i, c in enumerate(present)]))
    between = (centres[:, None, :] != centres[None, :, :]).sum(-1)[np.triu_indices(len(present), 1)]
    return {"knn_accuracy": accuracy, "distinct": float(len(np.unique(database.codes, axis=0))),
            "to_centre": spread, "centre_min": float(between.min()), "centre_mean": float(between.mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="a dnnh bench output folder")
    p.add_argument("--bits", type=int, default=48)
    p.add_argument("--k", type=int, default=50, help="neighbours in the vote (default 50)")
    args = p.parse_args(argv)
    print(f"# {machine.describe()} (at start)", flush=True)
    suffix = f"_{args.bits}_query.npz"
    methods = sorted(q.name[:-len(suffix)] for q in (args.folder / "codes").glob(f"*{suffix}"))
    if not methods:
        raise SystemExit(f"no {args.bits}-bit codes under {args.folder / 'codes'}")
    print(f"| method | {args.k}-NN accuracy | distinct codes | mean bits to class centre | "
          "closest centres (bits) | mean centre distance |\n|---|---|---|---|---|---|")
    for m in methods:
        q = CodeSet.load(args.folder / "codes" / f"{m}_{args.bits}_query.npz")
        d = CodeSet.load(args.folder / "codes" / f"{m}_{args.bits}_database.npz")
        g = geometry(q, d, args.k)
        print(f"| {m} | {g['knn_accuracy']:.3f} | {g['distinct']:.0f} | {g['to_centre']:.2f} | "
              f"{g['centre_min']:.0f} | {g['centre_mean']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
