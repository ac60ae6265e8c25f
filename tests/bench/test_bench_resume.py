"""Resuming: an interrupted deep run continues from its checkpoint; settings that differ are refused."""

from __future__ import annotations

import json

import pytest

from dnnh.bench import resolve_method, run_bench
from dnnh.bench import runners
from dnnh.data.splits import Split
from dnnh.training.train import train

from support.interrupts import Interrupt, stop_after

_stop_after_first_epoch = stop_after(1)


def test_interrupted_deep_run_is_continued_not_restarted(tmp_path, digits, monkeypatch, tiny_bench):
    out = tmp_path / "out"
    run_bench(digits, out, ["lsh"], [12], **tiny_bench())  # writes the split first
    lsh_mtime = (out / "raw" / "lsh_12.json").stat().st_mtime_ns
    split = Split.load(out / "split.json")

    # The bench's own dnnh config, trained outside the bench and cut after epoch 1 of 2.
    common = {"epochs": 2, "input_size": 8, "threads": 1, "num_workers": 0, "batch_size": 40, "per_class": 4,
              "seed": 0}
    config = resolve_method("dnnh").train_config(12, common)
    with pytest.raises(Interrupt):
        train(config, digits, split, out / "runs" / "dnnh_12", progress=False, on_epoch_end=_stop_after_first_epoch)
    cut = json.loads((out / "runs" / "dnnh_12" / "history.json").read_text())["history"]
    assert len(cut) == 1

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["resume"])
        return train(*args, **kwargs)

    monkeypatch.setattr(runners, "train", spy)
    with pytest.raises(ValueError, match="other settings"):  # 3 epochs asked, the run was started for 2
        run_bench(digits, out, ["lsh", "dnnh"], [12], **tiny_bench(epochs=3))
    assert calls == []

    result = run_bench(digits, out, ["lsh", "dnnh"], [12], **tiny_bench(epochs=2))
    assert calls == [True]
    lsh, dnnh = result.entries
    assert (out / "raw" / "lsh_12.json").stat().st_mtime_ns == lsh_mtime
    assert dnnh["resumed"] is True and [h["epoch"] for h in dnnh["history"]] == [1, 2]
    assert dnnh["history"][0] == cut[0]


def test_runtime_only_options_may_change_between_runs(tmp_path, digits, monkeypatch, tiny_bench):
    out = tmp_path / "out"
    run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1))
    monkeypatch.setattr(runners, "train", lambda *a, **k: pytest.fail("retrained after a threads change"))
    run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1, threads=2))


def test_another_split_in_the_same_folder_is_refused(tmp_path, digits, tiny_bench):
    out = tmp_path / "out"
    run_bench(digits, out, ["lsh"], [12], **tiny_bench())
    with pytest.raises(ValueError, match="another split.*queries_per_class"):
        run_bench(digits, out, ["lsh"], [12], **tiny_bench(split={"queries_per_class": 6}))


def test_a_setting_a_method_never_reads_voids_nothing(tmp_path, digits, monkeypatch, tiny_bench):
    out = tmp_path / "out"
    run_bench(digits, out, ["classifier", "dnnh"], [12], **tiny_bench(epochs=1))
    retrained = []
    real_train = runners.train
    monkeypatch.setattr(runners, "train", lambda *a, **k: retrained.append(a[0].loss) or real_train(*a, **k))
    # The margin is read by the triplet loss only: the classifier's finished entry stands, DNNH's is refused.
    options = tiny_bench(epochs=1, margin=2.0)
    with pytest.raises(ValueError, match="dnnh_12.json was made with other settings.*margin: saved 1.0, requested 2.0"):
        run_bench(digits, out, ["classifier", "dnnh"], [12], **options)
    result = run_bench(digits, out, ["classifier"], [12], **options)
    assert retrained == [] and result.entries[0]["method"] == "classifier"
    # The default margin at 12 bits is 1: asking for it explicitly is the same DNNH run.
    run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1, margin=1.0))
    assert retrained == []


def test_entries_written_with_the_whole_config_still_resume(tmp_path, digits, monkeypatch, tiny_bench):
    """Raw records from before signatures were reduced carry every config field (margin None)."""
    out = tmp_path / "out"
    run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1))
    raw = out / "raw" / "dnnh_12.json"
    entry = json.loads(raw.read_text())
    full = {k: v for k, v in entry["config"].items() if k not in ("threads", "num_workers")}
    assert full["margin"] is None and entry["signature"]["config"]["margin"] == 1.0
    entry["signature"]["config"] = full
    raw.write_text(json.dumps(entry))
    monkeypatch.setattr(runners, "train", lambda *a, **k: pytest.fail("retrained an entry written by an older dnnh"))
    run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1))
    with pytest.raises(ValueError, match="other settings.*epochs: saved 1, requested 2"):
        run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=2))


def test_an_interrupted_run_continues_across_a_setting_it_never_reads(tmp_path, digits, monkeypatch, tiny_bench):
    out = tmp_path / "out"
    run_bench(digits, out, ["lsh"], [12], **tiny_bench())
    split = Split.load(out / "split.json")
    common = {"epochs": 2, "input_size": 8, "threads": 1, "num_workers": 0, "batch_size": 40, "per_class": 4,
              "seed": 0}
    config = resolve_method("classifier").train_config(12, common)
    with pytest.raises(Interrupt):
        train(config, digits, split, out / "runs" / "classifier_12", progress=False,
              on_epoch_end=_stop_after_first_epoch)
    calls = []
    monkeypatch.setattr(runners, "train", lambda *a, **k: calls.append(k["resume"]) or train(*a, **k))
    options = tiny_bench(epochs=2, margin=2.0, momentum=0.5)
    entry = run_bench(digits, out, ["classifier"], [12], **options).entries[0]
    assert calls == [True] and entry["config"]["margin"] is None  # continued with the saved config
    assert [h["epoch"] for h in entry["history"]] == [1, 2]
    (out / "raw" / "classifier_12.json").unlink()  # the run folder (with its checkpoint) stays
    with pytest.raises(ValueError, match=r"unfinished classifier run.*'per_class': \(4, 5\)"):
        run_bench(digits, out, ["classifier"], [12], **tiny_bench(epochs=2, per_class=5))
