"""Tuning (issue 15): one grid budget per deep method, validation MAP only, resumable, recorded, then used."""

from __future__ import annotations

import json

import pytest

from dnnh.bench import resolve_method, run_bench
from dnnh.bench import runners
from dnnh.bench.methods import transfer
from dnnh.bench.tuning import LEARNING_RATES, OWN, TUNABLE, default_grid, grid_points, point_name

# Small grids keep the test in seconds; the default grids are checked on their own below.
GRIDS = {"dnnh": {"lr": [1e-3, 3e-3], "margin": [0.5, 1.0]}, "dpsh": {"lr": [1e-3], "eta": [0.01, 0.1]}}
METHODS = ["lsh", "dnnh", "dpsh", "dnnh-paper"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, digits, tiny_bench):
    out = tmp_path_factory.mktemp("tuned") / "out"
    result = run_bench(digits, out, METHODS, [12, 16], **tiny_bench(epochs=1), tune_bits=12, grids=GRIDS)
    return out, result


def read(path):
    return json.loads(path.read_text())


def test_every_tunable_method_has_the_same_budget():
    assert set(TUNABLE) == {"dnnh", "dnnh-fc", "classifier", "csq", "dpsh", "dsh", "orthohash", "dtsh", "hashnet",
                            "greedyhash", "dpn"}
    for name in TUNABLE:
        grid = default_grid(name, 48)
        own = OWN[name][0]
        assert list(grid) == ["lr", own] and grid["lr"] == list(LEARNING_RATES) and len(grid[own]) == 2
        assert len(grid_points(grid)) == 6
        assert resolve_method(name).train_config(48, {}).decisive().get(own) in grid[own]  # the default is a point
    assert default_grid("dnnh", 48)["margin"] == [2.0, 4.0] and default_grid("dnnh", 12)["margin"] == [0.5, 1.0]
    assert default_grid("dnnh-paper", 48) is None and default_grid("cnnh", 48) is None
    assert point_name("dnnh", 48, {"lr": 3e-4, "margin": 4.0}) == "dnnh_48_lr0.0003_margin4"
    assert transfer({"lr": 1e-3, "margin": 4.0, "eta": 0.1}, 48, 12) == {"lr": 1e-3, "margin": 1.0, "eta": 0.1}


def test_tuning_json_records_the_grid_every_validation_score_and_the_choice(tuned):
    out, _ = tuned
    tuning = read(out / "tuning.json")
    assert tuning["bits"] == 12 and tuning["seed"] == 0 and tuning["shared"]["epochs"] == 1
    assert set(tuning["methods"]) == {"dnnh", "dpsh"}  # dnnh-paper has no grid
    for name, grid in GRIDS.items():
        rec = tuning["methods"][name]
        assert rec["grid"] == grid and rec["finished"] == rec["of"] == len(grid_points(grid))
        assert [p["settings"] for p in rec["points"]] == grid_points(grid)
        for point in rec["points"]:
            raw = read(out / point["entry"])
            history = raw["history"]
            assert point["best_val_map"] == raw["best_val_map"] == max(h["val_map"] for h in history)
            assert raw["settings"] == point["settings"] and (out / point["run_dir"] / "model.safetensors").exists()
            assert "report" not in raw and "codes" not in raw  # the test split is never encoded while tuning
            assert raw["config"]["lr"] == point["settings"]["lr"]
        best = max(rec["points"], key=lambda p: p["best_val_map"])
        assert rec["choice"] == best["settings"] and rec["choice_val_map"] == best["best_val_map"]
    assert not any(p.name.startswith(("dnnh_12_lr", "dpsh_12_lr")) for p in (out / "codes").iterdir())


def test_the_table_trains_each_tuned_method_with_its_choice(tuned):
    out, result = tuned
    tuning = read(out / "tuning.json")
    by = {(e["method"], e["bits"]): e for e in result.entries}
    for name in GRIDS:
        choice = tuning["methods"][name]["choice"]
        for bits in (12, 16):
            config = by[name, bits]["config"]
            assert config["lr"] == choice["lr"]
            if name == "dnnh":  # the margin scales with the code length
                assert config["margin"] == pytest.approx(choice["margin"] * bits / 12)
            else:
                assert config["eta"] == choice["eta"]
        # At the tuning length and seed the table's entry is the chosen run itself, scored on the test split.
        entry = by[name, 12]
        assert entry["adopted_from"] == tuning["methods"][name]["choice_run"]
        assert entry["history"] == read(out / tuning["methods"][name]["choice_run"] / "history.json")["history"]
        assert "adopted_from" not in by[name, 16]
    paper = by["dnnh-paper", 12]["config"]
    assert paper["lr"] == 1e-3 and "adopted_from" not in by["dnnh-paper", 12]
    markdown = (out / "results.md").read_text()
    assert "## Tuning: 12 bits, validation MAP only" in markdown
    assert markdown.count("**yes**") == 2 and "Not tuned (no grid; trained with their defaults): dnnh-paper" in markdown
    for point in tuning["methods"]["dpsh"]["points"]:
        assert f"| dpsh | lr=0.001, eta={point['settings']['eta']:g} | {point['best_val_map']:.4f} |" in markdown
    summary = read(out / "results.json")
    assert summary["tuning"] == tuning and summary["untuned"] == ["dnnh-paper"]


def test_a_later_bench_in_the_folder_uses_the_choices_without_retraining(tuned, digits, monkeypatch, tiny_bench):
    out, first = tuned
    monkeypatch.setattr(runners, "train", lambda *a, **k: pytest.fail("retrained"))
    again = run_bench(digits, out, METHODS, [12, 16], **tiny_bench(epochs=1))
    assert again.entries == first.entries
    # Tuning again reads every point back.
    run_bench(digits, out, METHODS, [12, 16], **tiny_bench(epochs=1), tune=True, grids=GRIDS)


def test_a_tuned_folder_refuses_what_would_mix_settings(tuned, digits, tiny_bench):
    out, _ = tuned
    with pytest.raises(ValueError, match="tuned folder, but csq is not tuned yet .no grid point finished.; add --tune"):
        run_bench(digits, out, ["csq"], [12], **tiny_bench(epochs=1))
    with pytest.raises(ValueError, match="tuned under other shared settings .epochs: saved 1, requested 2"):
        run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=2))
    with pytest.raises(ValueError, match="tuned at 12 bits, this run asks for 16: use --tune-bits 12"):
        run_bench(digits, out, ["dnnh"], [16], **tiny_bench(epochs=1), tune_bits=16)
    with pytest.raises(ValueError, match="margin is tuned for dnnh: do not set it for the whole bench"):
        run_bench(digits, out, ["dnnh"], [12], **tiny_bench(epochs=1, margin=2.0), tune_bits=12, grids=GRIDS)


def test_an_interrupted_tuning_resumes_point_by_point(tmp_path, digits, monkeypatch, tiny_bench):
    out = tmp_path / "out"
    grids = {"classifier": {"lr": [1e-3, 3e-3], "weight_decay": [5e-4]}}
    run_bench(digits, out, ["classifier"], [12], **tiny_bench(epochs=1), tune_only=True, grids=grids)
    assert not (out / "raw").exists()  # --tune-only stops before the table
    tuning = read(out / "tuning.json")
    assert tuning["methods"]["classifier"]["finished"] == 2
    lost = out / tuning["methods"]["classifier"]["points"][1]["entry"]
    kept = read(lost)
    lost.unlink()  # as if interrupted after the run finished, before its record was written
    calls = []
    real = runners.train
    monkeypatch.setattr(runners, "train", lambda *a, **k: calls.append(k["resume"]) or real(*a, **k))
    result = run_bench(digits, out, ["classifier"], [12], **tiny_bench(epochs=1), tune=True, grids=grids)
    assert calls == [True, True]  # the lost point continued from its checkpoint (nothing left), then the table's
    assert read(lost)["history"] == kept["history"]
    assert result.entries[0]["adopted_from"] == read(out / "tuning.json")["methods"]["classifier"]["choice_run"]
