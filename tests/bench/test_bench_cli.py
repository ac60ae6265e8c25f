"""`dnnh bench` as a command: a thin layer whose recorded command line reproduces the run."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from dnnh.cli.main import main


def test_cli_runs_and_records_a_command_that_reruns_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = ["bench", "--data", "digits", "--queries-per-class", "5", "--train-per-class", "30",
            "--methods", "lsh,pcah", "--bits", "12,16", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| lsh |" in printed and "| pcah |" in printed
    entries = json.loads((out / "results.json").read_text())["entries"]
    assert [(e["method"], e["bits"]) for e in entries] == [("lsh", 12), ("lsh", 16), ("pcah", 12), ("pcah", 16)]
    assert (out / "map_vs_bits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # two lengths: the MAP figure
    command = re.search(r"- command: `(.*)`", (out / "results.md").read_text()).group(1)
    assert command.startswith("dnnh bench ") and "--queries-per-class 5" in command and "--seed 0" in command

    monkeypatch.setattr("dnnh.baselines.base.ShallowHasher.fit",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("refit on rerun")))
    assert main(shlex.split(command)[1:]) == 0
    assert json.loads((out / "results.json").read_text())["entries"] == entries


def test_shared_training_flags_configure_train_and_every_bench_method_alike(monkeypatch):
    from dnnh.bench import resolve_method
    from dnnh.cli import bench as bench_cli
    from dnnh.cli.common import SHARED_TRAINING_FLAGS
    from dnnh.cli.main import build_parser
    from dnnh.cli.train import config_from_args

    flags = ["--backbone", "nin-cifar", "--input-size", "24", "--epochs", "7", "--batch-size", "60",
             "--augment", "shift-flip", "--no-batchnorm", "--erase", "0.3", "--dropout", "0.1", "--precision", "bf16",
             "--val-every", "3",
             "--threads", "2", "--workers", "1", "--device", "cpu", "--feature-cache", "features", "--deterministic"]
    trained = config_from_args(build_parser().parse_args(["train", "--data", "digits", "--run", "r", "--bits", "24",
                                                          *flags]))
    captured = {}

    def fake_run_bench(data, out, methods, bits, **kwargs):
        captured.update(kwargs)
        raise RuntimeError("stop before any work")

    monkeypatch.setattr("dnnh.bench.run_bench", fake_run_bench)
    args = build_parser().parse_args(["bench", "--data", "digits", "--methods", "dnnh", "--out", "o", *flags])
    with pytest.raises(RuntimeError, match="stop before any work"):
        bench_cli.run(args)
    benched = resolve_method("dnnh").train_config(24, captured["training"])
    expected = {"backbone": "nin-cifar", "input_size": 24, "epochs": 7, "batch_size": 60, "augment": "shift-flip",
                "batchnorm": False, "erase": 0.3, "dropout": 0.1, "precision": "bf16", "val_every": 3, "threads": 2,
                "num_workers": 1, "device": "cpu", "compile": False, "feature_cache": "features",
                "deterministic": True}
    # The pretrained backbones' own fields travel the same way (tests/training/test_finetune.py sets them).
    from dnnh.config import PRETRAINED_FIELDS
    assert set(expected) | set(PRETRAINED_FIELDS) == set(SHARED_TRAINING_FLAGS)
    assert {k: getattr(trained, k) for k in expected} == expected == {k: getattr(benched, k) for k in expected}
