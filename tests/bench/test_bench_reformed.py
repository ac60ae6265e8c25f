"""Entries of the reformed DPSH and CSQ losses (issue 15) are refused, everything else still resumes."""

from __future__ import annotations

import json

import pytest

from dnnh.bench import resolve_method, run_bench
from dnnh.bench import runners
from dnnh.data.splits import Split
from dnnh.training.config import TrainConfig
from dnnh.training.train import train

from support.interrupts import Interrupt, stop_after


def test_loss_weights_are_decisive_only_for_their_own_loss():
    for loss, field in (("dpsh", "eta"), ("dsh", "alpha"), ("csq", "lam")):
        decisive = TrainConfig(loss=loss).decisive()
        assert field in decisive and not {"eta", "alpha", "lam"} - {field} & set(decisive)
    assert not {"eta", "alpha", "lam"} & set(TrainConfig().decisive())  # the triplet loss reads none
    assert TrainConfig(loss="classifier", eta=5.0).decisive() == TrainConfig(loss="classifier").decisive()
    with pytest.raises(ValueError, match="eta must be >= 0"):
        TrainConfig(loss="dpsh", eta=-1.0)
    spec = TrainConfig(loss="dpsh", eta=0.3, alpha=0.2, lam=0.1).objective_spec()
    assert (spec.eta, spec.alpha, spec.lam) == (0.3, 0.2, 0.1)


def _drop(path, field):
    entry = json.loads(path.read_text())
    del entry["signature"]["config"][field]
    path.write_text(json.dumps(entry))


def test_old_dpsh_and_csq_entries_are_refused_old_dsh_entries_still_stand(tmp_path, digits, monkeypatch, tiny_bench):
    out = tmp_path / "out"
    run_bench(digits, out, ["dpsh", "csq", "dsh"], [12], **tiny_bench(epochs=1))
    # As written before issue 15: the signatures lack the new fields.
    _drop(out / "raw" / "dpsh_12.json", "eta")
    _drop(out / "raw" / "csq_12.json", "lam")
    _drop(out / "raw" / "dsh_12.json", "alpha")  # DSH's formula did not change
    monkeypatch.setattr(runners, "train", lambda *a, **k: pytest.fail("retrained"))
    run_bench(digits, out, ["dsh"], [12], **tiny_bench(epochs=1))
    with pytest.raises(ValueError, match=r"dpsh_12.json was made with other settings .*eta: saved 'before issue "
                                         rf"15 \(quantisation term summed over bits\)', requested {TrainConfig().eta}.*"
                                         r"delete dpsh_12"):
        run_bench(digits, out, ["dpsh"], [12], **tiny_bench(epochs=1))
    with pytest.raises(ValueError, match=r"lam: saved 'before issue 15 \(unfiltered random centres"):
        run_bench(digits, out, ["csq"], [12], **tiny_bench(epochs=1))


def test_an_unfinished_old_dpsh_run_is_not_continued_under_the_new_formula(tmp_path, digits, tiny_bench):
    out = tmp_path / "out"
    run_bench(digits, out, ["lsh"], [12], **tiny_bench())
    config = resolve_method("dpsh").train_config(12, {"epochs": 2, "input_size": 8, "threads": 1, "num_workers": 0,
                                                      "batch_size": 40, "per_class": 4, "seed": 0})

    stop = stop_after(1)
    with pytest.raises(Interrupt):
        train(config, digits, Split.load(out / "split.json"), out / "runs" / "dpsh_12", progress=False,
              on_epoch_end=stop)
    saved = json.loads((out / "runs" / "dpsh_12" / "config.json").read_text())
    del saved["config"]["eta"]
    (out / "runs" / "dpsh_12" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="holds a dpsh run trained before issue 15.*delete .* to train it again"):
        run_bench(digits, out, ["dpsh"], [12], **tiny_bench(epochs=2))
