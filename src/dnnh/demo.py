"""The embedded default: DNNH against LSH and ITQ on scikit-learn's digits, in minutes.

Digits (1,797 real 8x8 images) ships with scikit-learn, so this runs anywhere without a download.
The split is the paper's protocol scaled to the set: 10 queries and 100 training images per class,
the other 1,697 images as the database (training images inside it). It is one call of the bench
harness, so the demo's numbers come from the same code as every other table.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

from dnnh.bench import run_bench
from dnnh.bench.report import ResultRow, entry_row, format_table
from dnnh.data.sources import DataSource, SplitSpec

DEMO_BITS = (12, 24, 32, 48)
DEMO_METHODS = ("dnnh", "lsh", "itq")
DEMO_SPLIT = SplitSpec(protocol="paper", queries_per_class=10, train_per_class=100)


#: One line under the table: what its columns are (the table itself has room for names only).
TABLE_LEGEND = ("MAP: mean average precision of the queries' Hamming rankings over the whole database; "
                "P@r2: precision of the database items within Hamming distance 2 of a query (an empty ball "
                "scores 0); train s: seconds to train (DNNH: the whole run, with its per-epoch validation)")


def run_demo(out_dir: str | Path = "runs/demo", nbits: tuple[int, ...] = DEMO_BITS, epochs: int | None = None,
             seed: int = 0, progress: bool = True, log: Callable[[str], None] = print) -> list[ResultRow]:
    """Train, encode and score; a previous demo in ``out_dir`` is replaced, not resumed."""
    out_dir = Path(out_dir)
    if (out_dir / "bench.json").exists():
        shutil.rmtree(out_dir)
    split = replace(DEMO_SPLIT, seed=seed)
    training = {"epochs": epochs} if epochs is not None else {}
    result = run_bench(DataSource("digits"), out_dir, DEMO_METHODS, nbits, split=split, training=training,
                       progress=progress, log=log, command="dnnh demo")
    return [entry_row(e) for e in result.entries]


__all__ = ["DEMO_BITS", "DEMO_METHODS", "TABLE_LEGEND", "format_table", "run_demo"]
