"""`dnnh bench --tune --seeds`: the default grid, every seed, and a recorded command that reruns it."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from dnnh.cli.main import main


def test_cli_tunes_trains_every_seed_and_records_a_command_that_reads_it_all_back(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = ["bench", "--data", "digits", "--protocol", "paper", "--queries-per-class", "5", "--train-per-class", "30",
            "--val-fraction", "0.2", "--methods", "dpsh", "--bits", "12", "--tune", "--seeds", "0,1", "--epochs", "1",
            "--input-size", "8", "--batch-size", "40", "--threads", "1", "--workers", "0", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"\| dpsh \| 0\.\d{4} ± 0\.\d{4} \(2\) \|", printed)
    tuning = json.loads((out / "tuning.json").read_text())
    rec = tuning["methods"]["dpsh"]
    assert tuning["bits"] == 12 and rec["grid"] == {"lr": [3e-4, 1e-3, 3e-3], "eta": [0.02, 0.2]}
    assert rec["finished"] == 6 and len(list((out / "tune" / "raw").iterdir())) == 6
    entries = json.loads((out / "results.json").read_text())["entries"]
    assert [(e["method"], e["seed"]) for e in entries] == [("dpsh", 0), ("dpsh", 1)]
    assert all(e["config"]["lr"] == rec["choice"]["lr"] and e["config"]["eta"] == rec["choice"]["eta"] for e in entries)
    command = re.search(r"- command: `(.*)`", (out / "results.md").read_text()).group(1)
    assert "--tune" in command and "--seeds 0,1" in command

    monkeypatch.setattr("dnnh.bench.runners.train", lambda *a, **k: pytest.fail("retrained on rerun"))
    assert main(shlex.split(command)[1:]) == 0
    assert json.loads((out / "results.json").read_text())["entries"] == entries
