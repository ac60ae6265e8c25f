"""Several training seeds (issue 15): separate resumable entries, mean ± std cells, every seed's number kept."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from dnnh.bench import run_bench
from dnnh.bench import runners
from dnnh.bench.harness import parse_seeds
from dnnh.metrics.plots import map_vs_bits_figure


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, digits, tiny_bench):
    out = tmp_path_factory.mktemp("seeded") / "out"
    result = run_bench(digits, out, ["lsh", "dnnh", "classifier"], [12, 16], **tiny_bench(epochs=1),
                       seeds=[0, 1, 2], seeds_at=[12])
    return out, result


def read(path):
    return json.loads(path.read_text())


def test_each_seed_is_its_own_entry_and_run_the_default_seed_keeps_the_plain_name(seeded):
    out, result = seeded
    names = sorted(p.stem for p in (out / "raw").iterdir())
    assert names == sorted(["lsh_12", "lsh_16", "dnnh_12", "dnnh_12_s1", "dnnh_12_s2", "dnnh_16",
                            "classifier_12", "classifier_12_s1", "classifier_12_s2", "classifier_16"])
    for name in names:
        entry = read(out / "raw" / f"{name}.json")
        if entry["kind"] == "deep":
            seed = int(name.split("_s")[1]) if "_s" in name else 0
            assert entry["seed"] == entry["config"]["seed"] == seed and entry["run_dir"] == f"runs/{name}"
            assert read(out / "runs" / name / "config.json")["config"]["seed"] == seed
    histories = [read(out / "raw" / f"dnnh_12{s}.json")["history"][0]["loss"] for s in ("", "_s1", "_s2")]
    assert len(set(histories)) == 3  # three trainings, not one read three times
    assert [(e["method"], e["bits"], e.get("seed")) for e in result.entries] == [
        ("lsh", 12, None), ("lsh", 16, None), ("dnnh", 12, 0), ("dnnh", 12, 1), ("dnnh", 12, 2), ("dnnh", 16, 0),
        ("classifier", 12, 0), ("classifier", 12, 1), ("classifier", 12, 2), ("classifier", 16, 0)]


def test_results_json_keeps_every_seed_and_the_cells_are_their_mean_and_std(seeded):
    out, result = seeded
    summary = read(out / "results.json")
    assert summary["seeds"] == [0, 1, 2] and summary["seeds_at"] == [12]
    assert summary["entries"] == result.entries
    cells = {(c["method"], c["bits"]): c for c in summary["cells"]}
    maps = [read(out / "raw" / f"dnnh_12{s}.json")["report"]["map"] for s in ("", "_s1", "_s2")]
    cell = cells["dnnh", 12]
    assert cell["n"] == 3 and cell["seeds"] == [0, 1, 2] and cell["map"]["values"] == maps
    assert cell["map"]["mean"] == pytest.approx(np.mean(maps))
    assert cell["map"]["std"] == pytest.approx(np.std(maps, ddof=1))
    assert cells["dnnh", 16]["n"] == 1 and cells["dnnh", 16]["map"]["std"] is None
    assert cells["lsh", 12]["seeds"] == [None]


def test_every_cell_of_results_md_is_mean_std_and_count(seeded):
    out, _ = seeded
    markdown = (out / "results.md").read_text()
    summary = read(out / "results.json")
    row = next(line for line in markdown.splitlines() if line.startswith("| dnnh |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    dnnh12 = next(c for c in summary["cells"] if (c["method"], c["bits"]) == ("dnnh", 12))
    assert cells[0] == f"{dnnh12['map']['mean']:.4f} ± {dnnh12['map']['std']:.4f} (3)"
    assert re.fullmatch(r"0\.\d{4} \(1\)", cells[1])  # one seed at 16 bits
    assert "mean ± the sample standard deviation" in markdown and "| method | bits | seed |" in markdown
    assert (out / "map_vs_bits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cell(method, bits, values):
    return {"method": method, "bits": bits, "n": len(values),
            "map": {"values": values, "mean": float(np.mean(values)),
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}}


def test_standing_ranks_each_multi_seed_length_and_counts_the_gap_in_standard_deviations():
    from dnnh.bench.report import standing

    cells = [_cell("a", 12, [0.70, 0.72, 0.74]),  # mean 0.72, std 0.02
             _cell("b", 12, [0.60, 0.63, 0.66]),  # mean 0.63, std 0.03
             _cell("lsh", 12, [0.30]),            # fitted once: std 0
             _cell("a", 24, [0.80]), _cell("b", 24, [0.81])]  # one seed each: not ranked
    (row,) = standing(cells)
    assert row["bits"] == 12
    by = {m["method"]: m for m in row["methods"]}
    assert [by[m]["rank"] for m in ("a", "b", "lsh")] == [1, 2, 3]
    assert by["a"]["against"] == "b" and by["a"]["gap"] == pytest.approx(0.09)
    assert by["a"]["sd"] == pytest.approx(0.09 / (0.02 ** 2 + 0.03 ** 2) ** 0.5)  # 2.50 sd
    assert by["b"]["against"] == "a" and by["b"]["gap"] == pytest.approx(-0.09)
    assert by["lsh"]["gap"] == pytest.approx(-0.42) and by["lsh"]["sd"] == pytest.approx(-0.42 / 0.02)
    assert standing([_cell("x", 12, [0.5]), _cell("y", 12, [0.4])]) == []  # no length with seeds
    assert standing([_cell("x", 12, [0.5, 0.6])]) == []  # one method: nothing to stand against
    (tied,) = standing([_cell("x", 12, [0.5, 0.5]), _cell("y", 12, [0.4])])
    assert tied["methods"][0]["sd"] is None  # both spreads zero: no ratio to give


def test_results_md_says_where_each_method_stands(seeded):
    out, _ = seeded
    markdown = (out / "results.md").read_text()
    section = markdown.split("## Standing at the lengths with several seeds")[1].split("\n## ")[0]
    assert "| method | 12 bits |" in section and "16 bits" not in section  # 16 bits has one seed
    rows = [line for line in section.splitlines() if line.startswith("| ") and "method" not in line]
    assert sorted(line.split("|")[1].strip() for line in rows) == ["classifier", "dnnh", "lsh"]
    assert sum(" 1: +" in line for line in rows) == 1  # one leader, ahead of the runner-up


def test_map_vs_bits_draws_error_bars():
    fig = map_vs_bits_figure({"a": {12: 0.5, 48: 0.6}, "b": {12: 0.4, 48: 0.5}}, errors={"a": {12: 0.02, 48: 0.01}})
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1 and bars[0].get_label() == "a"
    assert len(ax.lines) >= 2  # "b" has no spread: a plain line


def test_a_single_seed_folder_grows_into_a_multi_seed_one(tmp_path, digits, monkeypatch, tiny_bench):
    out = tmp_path / "out"
    single = run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1))
    assert (out / "raw" / "dnnh_12.json").exists() and "±" not in (out / "results.md").read_text()
    assert "cells" not in read(out / "results.json")
    calls = []
    real = runners.train
    monkeypatch.setattr(runners, "train", lambda *a, **k: calls.append(a[0].seed) or real(*a, **k))
    grown = run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1), seeds="0,1")
    assert calls == [1] and grown.entries[0] == single.entries[0]  # seed 0 read back, seed 1 trained
    assert "± " in (out / "results.md").read_text() and "## Standing" not in (out / "results.md").read_text()


def test_seed_arguments_are_checked(tmp_path, digits, tiny_bench):
    assert parse_seeds("0, 1,2,1") == [0, 1, 2]
    for bad in ("", "a", "-1", "1.5"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)
    with pytest.raises(ValueError, match="give the seeds too"):
        run_bench(digits, tmp_path / "o", ["dnnh"], [12], **tiny_bench(), seeds_at=[12])
    with pytest.raises(ValueError, match=r"seeds_at \[48\] not among"):
        run_bench(digits, tmp_path / "o", ["dnnh"], [12], **tiny_bench(), seeds=[0, 1], seeds_at=[48])
