"""The CLI on digits, end to end: train, encode, eval, search, demo, and one-line errors."""

import json

import pytest
from PIL import Image

from dnnh.cli.main import main
from dnnh.codes import CodeSet
from dnnh.data.digits import load_digits

TINY = ["--data", "digits", "--queries-per-class", "5", "--train-per-class", "30", "--bits", "12",
        "--input-size", "8", "--epochs", "2", "--batch-size", "40", "--threads", "1", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--run", str(run), *TINY, "--erase", "0.25", "--val-every", "2"]) == 0
    return run


def test_train_writes_run_directory(trained_run):
    for name in ("config.json", "split.json", "model.safetensors", "history.json", "metrics.json",
                 "pr_curve.png", "codes_query.npz", "codes_database.npz", "checkpoint/state.pt"):
        assert (trained_run / name).exists(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert 0.0 <= metrics["map"] <= 1.0 and metrics["n_queries"] == 50
    assert (trained_run / "pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((trained_run / "config.json").read_text())
    assert (saved["config"]["erase"], saved["config"]["val_every"]) == (0.25, 2)
    # Where the data came from is part of the run, so encode/eval/index build reload it unasked.
    assert saved["dataset"]["source"]["data"] == "digits" and saved["model"]["nbits"] == 12
    history = json.loads((trained_run / "history.json").read_text())["history"]
    assert ["val_map" in h for h in history] == [False, True]  # validated every second epoch only


def test_encode_then_eval_codes_match_run_metrics(trained_run, tmp_path, capsys):
    assert main(["encode", "--run", str(trained_run), "--out", str(tmp_path)]) == 0
    query = CodeSet.load(tmp_path / "codes_query.npz")
    split = json.loads((trained_run / "split.json").read_text())
    assert query.ids.tolist() == split["query"] and query.nbits == 12
    capsys.readouterr()
    assert main(["eval", "--query-codes", str(tmp_path / "codes_query.npz"),
                 "--db-codes", str(tmp_path / "codes_database.npz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["map"] == pytest.approx(json.loads((trained_run / "metrics.json").read_text())["map"])


def test_search_finds_the_query_itself_at_distance_zero(trained_run, tmp_path, capsys):
    digits = load_digits()
    split = json.loads((trained_run / "split.json").read_text())
    item = split["database"][7]
    path = tmp_path / "q.png"
    Image.fromarray(digits.images[item, :, :, 0]).save(path)
    capsys.readouterr()
    assert main(["search", str(path), "--run", str(trained_run), "-k", "5"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "distance" in ln]
    assert len(lines) == 5
    assert lines[0].split()[4] == "0"  # its own code is in the database
    # Issue 25.18: each result says its label, as the API does (before: ids and distances only).
    shown = [int(ln.split()[2]) for ln in lines]
    assert [ln.split("label ")[1] for ln in lines] == [str(int(digits.labels[i])) for i in shown]


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--run", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run directory" in err and "nope not found" in err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--run", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.json not found: is" in err and "a dnnh run directory?" in err
    with pytest.raises(SystemExit) as exit_:  # refused while parsing, before anything is loaded
        main(["train", "--run", str(tmp_path / "r"), "--data", "digits", "--bits", "0", "--quiet"])
    assert exit_.value.code == 2 and "argument --bits: expected a code length 1..1024, got 0" in capsys.readouterr().err


def test_demo_prints_table(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--bits", "12", "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| method |" in out and "| dnnh |" in out and "| lsh |" in out and "| itq |" in out
    entries = json.loads((tmp_path / "demo" / "results.json").read_text())["entries"]
    assert {e["method"] for e in entries} == {"dnnh", "lsh", "itq"}
    assert all(0 <= e["report"]["map"] <= 1 and e["bits"] == 12 for e in entries)
    assert (tmp_path / "demo" / "pr_curves_12.png").exists()


def test_index_built_from_run_serves_search(trained_run, tmp_path, capsys):
    from dnnh.index import HammingIndex

    index_path = tmp_path / "db.dhi"
    assert main(["index", "build", "--run", str(trained_run), "--out", str(index_path)]) == 0
    index = HammingIndex.load(index_path)
    database = CodeSet.load(trained_run / "codes_database.npz")
    assert index.ntotal == len(database) and sorted(index.ids.tolist()) == sorted(database.ids.tolist())
    digits = load_digits()
    item = int(database.ids[3])
    Image.fromarray(digits.images[item, :, :, 0]).save(tmp_path / "q.png")
    capsys.readouterr()
    assert main(["search", str(tmp_path / "q.png"), "--run", str(trained_run), "--index", str(index_path), "-k", "3"]) == 0
    first = [ln for ln in capsys.readouterr().out.splitlines() if "distance" in ln][0]
    assert first.split()[4] == "0"
