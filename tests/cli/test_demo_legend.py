"""Issue 36.16: the demo's table says what its columns are (before: "P@r2" and "train s" unexplained)."""

from __future__ import annotations

import dnnh.demo
from dnnh.bench.report import ResultRow
from dnnh.cli.main import main


def test_the_demo_prints_a_legend_under_its_table(monkeypatch, tmp_path, capsys):
    rows = [ResultRow("dnnh", 12, 0.9, 0.8, 12.5), ResultRow("lsh", 12, 0.2, 0.1, 0.01)]
    monkeypatch.setattr(dnnh.demo, "run_demo", lambda *args, **kwargs: rows)  # the table's rows, not a training
    for quiet in ([], ["--quiet"]):
        assert main(["demo", "--out", str(tmp_path / "demo"), "--bits", "12", *quiet]) == 0
        lines = capsys.readouterr().out.splitlines()
        last_row = max(i for i, line in enumerate(lines) if line.startswith("| lsh |"))
        legend = lines[last_row + 1]
        assert "P@r2" in legend and "within Hamming distance 2" in legend
        assert "train s" in legend and "seconds" in legend and "MAP" in legend
        assert "| P@r2 12 | train s 12 |" in "\n".join(lines)
