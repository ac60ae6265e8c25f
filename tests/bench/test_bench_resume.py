"""Resuming: an interrupted deep run continues from its checkpoint; settings that differ are refused."""

from __future__ import annotations

import json

import pytest

from dnnh.bench import resolve_method, run_bench
from dnnh.bench import runners
from dnnh.data.splits import Split
from dnnh.training.train import train

from bench_testutils import TINY


class Interrupt(Exception):
    pass


def _stop_after_first_epoch(epoch, record):
    if epoch == 1:
        raise Interrupt


def test_interrupted_deep_run_is_continued_not_restarted(tmp_path, digits, monkeypatch):
    out = tmp_path / "out"
    run_bench(digits, out, ["lsh"], [12], **TINY)  # writes the split first
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
        run_bench(digits, out, ["lsh", "dnnh"], [12], epochs=3, **TINY)
    assert calls == []

    result = run_bench(digits, out, ["lsh", "dnnh"], [12], epochs=2, **TINY)
    assert calls == [True]
    lsh, dnnh = result.entries
    assert (out / "raw" / "lsh_12.json").stat().st_mtime_ns == lsh_mtime
    assert dnnh["resumed"] is True and [h["epoch"] for h in dnnh["history"]] == [1, 2]
    assert dnnh["history"][0] == cut[0]


def test_runtime_only_options_may_change_between_runs(tmp_path, digits, monkeypatch):
    out = tmp_path / "out"
    run_bench(digits, out, ["dnnh"], [12], epochs=1, **TINY)
    monkeypatch.setattr(runners, "train", lambda *a, **k: pytest.fail("retrained after a threads change"))
    changed = {**TINY, "threads": 2}
    run_bench(digits, out, ["dnnh"], [12], epochs=1, **changed)


def test_another_split_in_the_same_folder_is_refused(tmp_path, digits):
    out = tmp_path / "out"
    run_bench(digits, out, ["lsh"], [12], **TINY)
    with pytest.raises(ValueError, match="another split.*queries_per_class"):
        run_bench(digits, out, ["lsh"], [12], **{**TINY, "queries_per_class": 6})
