"""`dnnh bench` as a command: a thin layer whose recorded command line reproduces the run."""

from __future__ import annotations

import json
import re
import shlex

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
    command = re.search(r"- command: `(.*)`", (out / "results.md").read_text()).group(1)
    assert command.startswith("dnnh bench ") and "--queries-per-class 5" in command and "--seed 0" in command

    monkeypatch.setattr("dnnh.baselines.base.ShallowHasher.fit",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("refit on rerun")))
    assert main(shlex.split(command)[1:]) == 0
    assert json.loads((out / "results.json").read_text())["entries"] == entries
