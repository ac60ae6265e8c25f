"""A bench on a frozen backbone with a weights file: features computed once for the whole bench, every
deep head trained on them, the shallow methods (pca-rr among them) on them too, and the floors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.backbones import seeded_weights_file

from dnnh.bench import run_bench
from dnnh.bench.floors import ranking_map
from dnnh.codes import CodeSet
from dnnh.data.splits import Split
from dnnh.encoder import Encoder
from dnnh.metrics import mean_average_precision
from dnnh.runs import Run
from dnnh.testing.reference import naive_ap


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return seeded_weights_file(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module's benches."""
    return tmp_path_factory.mktemp("features")


def frozen(tiny_bench, weights, cache, **changes):
    return tiny_bench(backbone="resnet18", backbone_weights=str(weights), freeze_backbone=True, input_size=32,
                      feature_cache=str(cache), precision="fp32", **changes)


def entry(out, name):
    return json.loads((out / "raw" / f"{name}.json").read_text())


def test_a_frozen_bench_computes_the_features_once_and_every_method_reads_them(digits, tiny_bench, weights, cache,
                                                                               tmp_path):
    out = tmp_path / "out"
    lines = []
    settings = {**frozen(tiny_bench, weights, cache, epochs=1), "log": lines.append, "seeds": [0, 1],
                "seeds_at": [12]}
    result = run_bench(digits, out, ["dnnh", "itq", "pca-rr"], [8, 12], floors=True, tune_bits=12,
                       grids={"dnnh": {"lr": [1e-3, 3e-3], "margin": [1.0]}}, **settings)
    split = Split.load(out / "split.json")
    npys, records = list(cache.glob("*.npy")), list(cache.glob("*.json"))
    assert len(npys) == 1 and len(records) == 1  # one entry for the bench: tuning, methods, seeds, lengths
    record = json.loads(records[0].read_text())
    items = np.unique(np.concatenate([split.query, split.database, split.train, split.val]))
    assert record["shape"] == [len(items), 512] and record["computed_images"] <= len(items)
    summary = result.summary
    assert summary["features"]["backbone"] == "resnet18" and summary["features"]["items"] == len(items)
    assert "frozen resnet18 features (resnet18-test.pth, 32 px)" == summary["shallow_inputs"]
    dnnh = entry(out, "dnnh_12_s1")
    assert dnnh["codes_from"] == "cached features" and dnnh["config"]["augment"] == "none"
    itq = entry(out, "itq_12")
    assert itq["features"] == summary["shallow_inputs"] and itq["signature"]["inputs"]["backbone"] == "resnet18"
    assert "on the frozen resnet18 features" in itq["description"]
    assert json.loads((out / "tuning.json").read_text())["methods"]["dnnh"]["choice"] is not None
    floors = {f["floor"]: f for f in summary["floors"]}
    assert set(floors) == {"pixels-cosine", "pixels-euclidean", "features-cosine"}
    text = (out / "results.md").read_text()
    assert "## Floors: ranking without hashing" in text and "| features-cosine |" in text
    assert "frozen features: resnet18" in text and "each head trained on its cached features" in text

    # The entry's codes are dnnh encode's on the raw images.
    run = Run.open(out / dnnh["run_dir"])
    raw_q, raw_db = Encoder.from_run(run).encode_split(digits, split)
    assert np.array_equal(CodeSet.load(out / dnnh["codes"]["query"]).bits, raw_q.bits)
    assert np.array_equal(CodeSet.load(out / dnnh["codes"]["database"]).bits, raw_db.bits)

    # The floor is the cosine ranking of the cached features, scored as the table scores.
    table_rows = {p: np.load(npys[0])[np.searchsorted(items, getattr(split, p))] for p in ("query", "database")}
    expected = ranking_map(table_rows["query"], table_rows["database"], digits.labels[split.query],
                           digits.labels[split.database], "cosine")
    assert floors["features-cosine"]["map"] == pytest.approx(expected)

    # A rerun reads everything back: no feature computed again, no entry redone.
    mtime = records[0].stat().st_mtime_ns
    again = run_bench(digits, out, ["dnnh", "itq", "pca-rr"], [8, 12], floors=True, **settings)
    assert records[0].stat().st_mtime_ns == mtime
    assert [e["finished"] for e in again.entries] == [e["finished"] for e in result.entries]


def test_a_pixel_folder_refuses_to_mix_in_feature_entries(digits, tiny_bench, weights, cache, tmp_path):
    out = tmp_path / "out"
    run_bench(digits, out, ["itq"], [8], **tiny_bench(epochs=1))
    assert entry(out, "itq_8")["features"] == "pixels" and "inputs" not in entry(out, "itq_8")["signature"]
    with pytest.raises(ValueError, match="other settings than this run asks for"):
        run_bench(digits, out, ["itq"], [8], **frozen(tiny_bench, weights, cache, epochs=1))


def test_protocol_unseen_with_cached_features_scores_both_figures(digits, tiny_bench, weights, cache, tmp_path):
    out = tmp_path / "out"
    result = run_bench(digits, out, ["dpsh", "pca-rr"], [8], floors=True,
                       **frozen(tiny_bench, weights, cache, epochs=1, split={"protocol": "unseen"}))
    split = Split.load(out / "split.json")
    for name in ("dpsh_8", "pca-rr_8"):
        e = entry(out, name)
        query, database = (CodeSet.load(out / e["codes"][part]) for part in ("query", "database"))
        keep = np.isin(database.labels, split.held_out)
        assert e["report"]["map"] == mean_average_precision(query.bits, database.bits[keep], query.labels,
                                                            database.labels[keep])
        assert e["report_all_classes"]["map"] == mean_average_precision(query.bits, database.bits, query.labels,
                                                                        database.labels)
    assert all(f["map_all_classes"] is not None for f in result.summary["floors"])
    assert "unseen@all" in (out / "results.md").read_text()


def test_euclidean_ranking_of_bits_is_hamming_ranking():
    rng = np.random.default_rng(0)
    q, db = rng.integers(0, 2, (30, 12)), rng.integers(0, 2, (200, 12))
    ql, dl = rng.integers(0, 4, 30), rng.integers(0, 4, 200)
    assert ranking_map(q, db, ql, dl, "euclidean") == pytest.approx(mean_average_precision(q, db, ql, dl))
    assert ranking_map(q, db, ql, dl, "euclidean", topk=20) == pytest.approx(
        mean_average_precision(q, db, ql, dl, topk=20))


def test_cosine_ranking_map_by_the_definition():
    rng = np.random.default_rng(1)
    q, db = rng.normal(size=(7, 5)), rng.normal(size=(40, 5))
    ql, dl = rng.integers(0, 3, 7), rng.integers(0, 3, 40)
    aps = []
    for x, label in zip(q, ql):
        sims = [float(np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)) for y in db]
        order = sorted(range(len(db)), key=lambda j: (-sims[j], j))
        aps.append(naive_ap([dl[j] == label for j in order], len(db)) or 0.0)
    assert ranking_map(q, db, ql, dl, "cosine") == pytest.approx(np.mean(aps))
