"""--adopt RUN (issue 15): a run trained outside the bench joins it only with the bench's split and config."""

from __future__ import annotations

import json
import shutil

import pytest

from dnnh.bench import resolve_method, run_bench
from dnnh.bench import runners
from dnnh.cli.main import main
from dnnh.data.sources import SplitSpec
from dnnh.data.splits import Split
from dnnh.training.train import train

COMMON = {"epochs": 1, "input_size": 8, "threads": 1, "num_workers": 0, "batch_size": 40, "per_class": 4}


@pytest.fixture(scope="module")
def outside(tmp_path_factory, digits, tiny_bench):
    """A bench folder holding only its split, and three runs trained outside it."""
    root = tmp_path_factory.mktemp("adopt")
    out = root / "out"
    run_bench(digits, out, ["lsh"], [12], **tiny_bench(epochs=1))
    split = Split.load(out / "split.json")
    dnnh = resolve_method("dnnh")
    runs = {"seed1": (dnnh.train_config(12, {**COMMON, "seed": 1}), split),
            "epochs2": (dnnh.train_config(12, {**COMMON, "seed": 0, "epochs": 2}), split),
            "other_split": (dnnh.train_config(12, {**COMMON, "seed": 0}),
                            SplitSpec(queries_per_class=5, train_per_class=30, val_fraction=0.2, seed=7).draw(digits))}
    for name, (config, its_split) in runs.items():
        train(config, digits, its_split, root / name, progress=False)
    return root, out


def test_a_matching_run_becomes_the_entry_it_matches_without_retraining(outside, digits, monkeypatch, tiny_bench):
    root, out = outside
    calls = []
    real = runners.train
    monkeypatch.setattr(runners, "train", lambda *a, **k: calls.append(k["resume"]) or real(*a, **k))
    result = run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1), seeds=[1], adopt=[root / "seed1"])
    (entry,) = result.entries
    assert calls == [True] and entry["resumed"] is True  # continued at its end: nothing trained
    assert entry["adopted_from"] == str((root / "seed1").resolve()) and entry["run_dir"] == "runs/dnnh_12_s1"
    history = json.loads((root / "seed1" / "history.json").read_text())["history"]
    assert entry["history"] == history
    assert entry["train_seconds"] >= sum(h["seconds"] for h in history)
    assert json.loads((out / "runs" / "dnnh_12_s1" / "adopted.json").read_text())["epochs"] == 1
    # Adopting it again is a no-op; another run for the same entry is refused.
    run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1), seeds=[1], adopt=[root / "seed1"])
    shutil.copytree(root / "seed1", root / "seed1_copy")
    with pytest.raises(ValueError, match="dnnh_12_s1 already holds a run; delete it first"):
        run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1), seeds=[1], adopt=[root / "seed1_copy"])


def test_another_config_or_split_is_refused_in_one_line(outside, capsys):
    root, out = outside
    base = ["bench", "--data", "digits", "--protocol", "paper", "--queries-per-class", "5", "--train-per-class", "30",
            "--val-fraction", "0.2", "--methods", "lsh,dnnh", "--bits", "12", "--epochs", "1", "--input-size", "8",
            "--batch-size", "40", "--threads", "1", "--workers", "0", "--out", str(out), "--quiet"]
    for run, message in [("epochs2", "its config is not what this bench trains; closest entry dnnh_12 "
                                      "(epochs: saved 2, bench 1"),
                         ("other_split", "its split"),
                         ("missing", "not found")]:
        assert main([*base, "--adopt", str(root / run)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"cannot adopt {root / run}" in err and message in err, err
    assert not (out / "runs" / "dnnh_12").exists()
