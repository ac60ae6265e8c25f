"""The bench on digits, end to end: two shallow and two deep methods at 12 bits, two epochs.

Every number is checked against an independent recomputation: the table against the JSON, the
JSON against re-scoring the saved codes, the deep codes against re-encoding with the saved model.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from dnnh.bench import run_bench, time_to_reach
from dnnh.codes import CodeSet
from dnnh.data.splits import Split
from dnnh.encoder import Encoder
from dnnh.evaluation import score_codes
from dnnh.runs import Run

METHODS = ["lsh", "itq", "dnnh", "dnnh-random"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory, digits, tiny_bench):
    out = tmp_path_factory.mktemp("bench") / "out"
    result = run_bench(digits, out, METHODS, [12], **tiny_bench(epochs=2))
    return out, result


def main_table(markdown: str) -> dict[str, list[str]]:
    """{method: cells} of the methods x bits table (the first table of results.md)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method | MAP"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_writes_every_file(bench):
    out, _ = bench
    for name in ("split.json", "bench.json", "results.md", "results.json", "pr_curves_12.png",
                 "precision_at_k_12.png"):
        assert (out / name).exists(), name
    for name in ("pr_curves_12.png", "precision_at_k_12.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "map_vs_bits.png").exists()  # one code length: no line to draw
    for method in METHODS:
        assert (out / "raw" / f"{method}_12.json").exists(), method
        assert (out / "codes" / f"{method}_12_query.npz").exists(), method
    for method in ("dnnh", "dnnh-random"):
        assert (out / "runs" / f"{method}_12" / "checkpoint" / "state.pt").exists()
    combined = json.loads((out / "results.json").read_text())
    assert [e["method"] for e in combined["entries"]] == METHODS
    assert combined["entries"] == [json.loads((out / "raw" / f"{m}_12.json").read_text()) for m in METHODS]


def test_table_has_one_row_per_method_with_the_json_numbers(bench):
    out, _ = bench
    rows = main_table((out / "results.md").read_text())
    assert list(rows) == METHODS
    for method, cells in rows.items():
        entry = json.loads((out / "raw" / f"{method}_12.json").read_text())
        assert cells == [f"{entry['report']['map']:.4f}", f"{entry['report']['precision_radius']:.4f}",
                         f"{entry['train_seconds']:.2f}"]


def test_every_method_scored_on_the_one_split(bench):
    out, _ = bench
    split = Split.load(out / "split.json")
    sha = hashlib.sha256((out / "split.json").read_bytes()).hexdigest()
    for method in METHODS:
        entry = json.loads((out / "raw" / f"{method}_12.json").read_text())
        assert entry["split_sha256"] == sha
        query = CodeSet.load(out / entry["codes"]["query"])
        database = CodeSet.load(out / entry["codes"]["database"])
        assert np.array_equal(query.ids, split.query), method
        assert np.array_equal(database.ids, split.database), method
        assert entry["report"]["n_queries"] == len(split.query)
    for method in ("dnnh", "dnnh-random"):
        run_split = Split.load(out / "runs" / f"{method}_12" / "split.json")
        assert np.array_equal(run_split.train, split.train) and np.array_equal(run_split.query, split.query)


def test_json_numbers_are_the_saved_codes_scored(bench, digits):
    out, _ = bench
    for method in METHODS:
        entry = json.loads((out / "raw" / f"{method}_12.json").read_text())
        report = score_codes(CodeSet.load(out / entry["codes"]["query"]),
                             CodeSet.load(out / entry["codes"]["database"]))
        assert report.to_dict() == entry["report"], method
    # The deep codes are the saved model's codes (best epoch), not anything else.
    run = Run.open(out / "runs" / "dnnh_12")
    query, database = Encoder.from_run(run, num_workers=0).encode_split(digits, run.split)
    assert np.array_equal(query.codes, CodeSet.load(out / "codes" / "dnnh_12_query.npz").codes)
    assert np.array_equal(database.codes, CodeSet.load(out / "codes" / "dnnh_12_database.npz").codes)


def test_deep_entries_record_training(bench):
    out, _ = bench
    for method in ("dnnh", "dnnh-random"):
        entry = json.loads((out / "raw" / f"{method}_12.json").read_text())
        history = entry["history"]
        assert [h["epoch"] for h in history] == [1, 2]
        for h in history:
            assert {"loss", "val_map", "images_per_s", "triplets_per_s", "seconds"} <= set(h)
        assert entry["best_val_map"] == max(h["val_map"] for h in history)
        assert history[entry["best_epoch"] - 1]["val_map"] == entry["best_val_map"]
        assert entry["train_seconds"] >= entry["epoch_seconds"] == pytest.approx(sum(h["seconds"] for h in history))
        assert entry["config"]["nbits"] == 12 and entry["config"]["input_size"] == 8
        assert entry["config"]["backbone"] == "nin-small"
    random_config = json.loads((out / "raw" / "dnnh-random_12.json").read_text())["config"]
    assert random_config["triplets"] == "random" and random_config["optimizer"] == "adamw"


def test_speed_comparison_in_json_and_markdown(bench):
    out, result = bench
    histories = {m: json.loads((out / "raw" / f"{m}_12.json").read_text())["history"] for m in ("dnnh", "dnnh-random")}
    target = min(max(h["val_map"] for h in hist) for hist in histories.values())
    (speed,) = result.speed
    assert speed["bits"] == 12 and speed["target_val_map"] == target
    for method, hist in histories.items():
        first = next(i for i, h in enumerate(hist) if h["val_map"] >= target)
        seconds = sum(h["seconds"] for h in hist[:first + 1])
        assert speed["methods"][method]["reached"] == {"epoch": first + 1, "seconds": pytest.approx(seconds)}
    assert json.loads((out / "results.json").read_text())["speed"] == result.speed
    markdown = (out / "results.md").read_text()
    assert "## Training speed" in markdown and f"| 12 | {target:.4f} |" in markdown
    assert time_to_reach(histories["dnnh"], 2.0) is None


def test_rerun_reads_finished_entries_back(bench, digits, monkeypatch, tiny_bench):
    out, first = bench

    def refuse(*args, **kwargs):
        raise AssertionError("a finished entry was recomputed")

    monkeypatch.setattr("dnnh.bench.runners.train", refuse)
    monkeypatch.setattr("dnnh.baselines.base.ShallowHasher.fit", refuse)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.parent.name in ("raw", "codes", "checkpoint"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    again = run_bench(digits, out, METHODS, [12], **tiny_bench(epochs=2))
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    assert again.entries == first.entries
    report_cells = {e["method"]: [f"{e['report']['map']:.4f}", f"{e['report']['precision_radius']:.4f}",
                                  f"{e['train_seconds']:.2f}"] for e in first.entries}
    assert main_table((out / "results.md").read_text()) == report_cells
