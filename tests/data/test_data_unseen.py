"""Protocol unseen: held-out classes never trained or validated on, queries from them, two figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnnh.codes import CodeSet
from dnnh.data import Split, make_split
from dnnh.data.splits import held_out_count, unseen_split
from dnnh.evaluation import held_out_codes, score_split

LABELS = np.repeat(np.arange(10), 60)


def test_a_quarter_of_the_classes_at_least_two_is_held_out_and_never_trained_on():
    split = unseen_split(LABELS, queries_per_class=10, train_per_class=30, val_fraction=0.2, seed=3)
    assert split.protocol == "unseen" and len(split.held_out) == 2  # round(10 / 4) = 2
    held = set(split.held_out)
    assert held == set(np.unique(LABELS[split.query]))  # every query is of a held-out class ...
    assert not held & set(LABELS[split.train]) and not held & set(LABELS[split.val])  # ... none trains or validates
    assert set(LABELS[split.train]) == set(range(10)) - held
    assert (np.bincount(LABELS[split.query], minlength=10)[list(held)] == 10).all()
    assert len(split.train) + len(split.val) == 8 * 30
    assert len(split.database) == len(LABELS) - len(split.query)  # the database holds every class
    unseen = split.unseen_database(LABELS)
    assert set(LABELS[unseen]) == held and len(unseen) == 2 * 50
    assert held_out_count(20) == 5 and held_out_count(4) == 2 and held_out_count(10, 3) == 3
    with pytest.raises(ValueError, match="fewer than 2 to train on"):
        held_out_count(3)


def test_the_held_out_classes_are_seeded():
    a, b = (unseen_split(LABELS, 10, 30, seed=s).held_out for s in (0, 0))
    assert a == b
    assert len({unseen_split(LABELS, 10, 30, seed=s).held_out for s in range(8)}) > 1


def test_split_json_records_the_held_out_classes_and_reads_them_back(tmp_path):
    split = unseen_split(LABELS, 10, 30, seed=1)
    split.save(tmp_path / "split.json")
    assert json.loads((tmp_path / "split.json").read_text())["held_out"] == list(split.held_out)
    again = Split.load(tmp_path / "split.json")
    assert again == split and again.held_out == split.held_out
    payload = json.loads((tmp_path / "split.json").read_text())
    payload["held_out"] = ["cat"]
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="'held_out' must be a non-empty list of class ids"):
        Split.load(tmp_path / "bad.json")


def test_a_split_whose_training_sees_a_held_out_class_is_refused():
    split = unseen_split(LABELS, 10, 30, seed=1)
    wrong = Split(query=split.query, database=split.database, train=split.train, val=split.val,
                  protocol="unseen", held_out=(int(LABELS[split.train[0]]),))
    with pytest.raises(ValueError, match="of the held-out classes"):
        wrong.check_held_out(LABELS)


def test_multilabel_data_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="needs single-label data"):
        unseen_split(np.eye(5, dtype=int).repeat(10, axis=0), 2, 5)


def test_make_split_draws_unseen(digits):
    split = make_split(digits, protocol="unseen", queries_per_class=5, train_per_class=30)
    assert split.held_out is not None and not set(split.held_out) & set(digits.labels[split.train])


def test_scores_against_the_held_out_database_and_the_whole_one():
    labels = np.array([0, 0, 1, 1, 2, 2])
    bits = np.array([[0, 0], [0, 0], [1, 1], [1, 1], [0, 1], [0, 1]], dtype=np.uint8)
    split = Split(query=np.array([0, 2]), database=np.array([1, 3, 4, 5]), train=np.array([4]), val=np.array([5]),
                  protocol="unseen", held_out=(0, 1))
    query = CodeSet.from_bits(bits[split.query], split.query, labels[split.query])
    database = CodeSet.from_bits(bits[split.database], split.database, labels[split.database])
    assert list(held_out_codes(database, split).ids) == [1, 3]
    unseen, every = score_split(query, database, split)
    assert unseen.map == pytest.approx(1.0) and every.map == pytest.approx(1.0)
    # a seen-class item moved onto query 0's code, ahead of its class's item: it costs the whole-database figure only
    bits[1], bits[4] = [1, 0], [0, 0]
    database = CodeSet.from_bits(bits[split.database], split.database, labels[split.database])
    unseen, every = score_split(query, database, split)
    assert unseen.map == pytest.approx(1.0) and every.map < 1.0
    plain = Split(query=split.query, database=split.database, train=split.train, val=split.val)
    assert score_split(query, database, plain)[1] is None


def test_dnnh_train_protocol_unseen_writes_a_split_whose_train_and_query_classes_are_disjoint(tmp_path, capsys):
    from dnnh.cli.main import main

    run = tmp_path / "run"
    assert main(["train", "--run", str(run), "--data", "digits", "--protocol", "unseen", "--queries-per-class", "5",
                 "--train-per-class", "30", "--bits", "12", "--input-size", "8", "--epochs", "1", "--batch-size",
                 "40", "--threads", "1", "--workers", "0", "--quiet"]) == 0
    saved = json.loads((run / "split.json").read_text())
    labels = np.asarray(__import__("dnnh.data.digits", fromlist=["load_digits"]).load_digits().labels)
    train_classes = set(labels[saved["train"]]) | set(labels[saved["val"]])
    query_classes = set(labels[saved["query"]])
    assert saved["protocol"] == "unseen" and query_classes == set(saved["held_out"])
    assert not train_classes & query_classes and len(train_classes) == 10 - len(query_classes)
    assert json.loads((run / "metrics_all_classes.json").read_text())["map"] >= 0
    assert "unseen@all" in capsys.readouterr().out
