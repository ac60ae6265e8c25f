"""The bench under protocol unseen: the held-out classes' figure first, unseen@all beside it."""

from __future__ import annotations

import json

import numpy as np

from dnnh.bench import run_bench
from dnnh.codes import CodeSet
from dnnh.data.splits import Split
from dnnh.evaluation import score_codes


def test_bench_protocol_unseen_scores_both_figures(digits, tiny_bench, tmp_path):
    out = tmp_path / "out"
    run_bench(digits, out, ["lsh", "orthohash"], [12], **tiny_bench(epochs=1, split={"protocol": "unseen"}))
    split = Split.load(out / "split.json")
    assert split.held_out is not None and not set(split.held_out) & set(digits.labels[split.train])
    for name in ("lsh_12", "orthohash_12"):
        entry = json.loads((out / "raw" / f"{name}.json").read_text())
        query = CodeSet.load(out / entry["codes"]["query"])
        database = CodeSet.load(out / entry["codes"]["database"])
        keep = np.isin(database.labels, split.held_out)
        held = CodeSet(database.codes[keep], database.nbits, database.ids[keep], database.labels[keep])
        assert entry["report"]["map"] == score_codes(query, held).map
        assert entry["report_all_classes"]["map"] == score_codes(query, database).map
    text = (out / "results.md").read_text()
    assert "unseen@all" in text and "held out of training" in text
