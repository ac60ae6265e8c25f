"""The ``auto`` protocol (issue 11): the paper's split when it fits, proportional counts when it does not."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.data import ArrayDataset, Split, auto_split, make_split, paper_split
from dnnh.data.splits import auto_counts


def _dataset(labels) -> ArrayDataset:
    labels = np.asarray(labels)
    return ArrayDataset(images=np.zeros((len(labels), 1, 1, 1), np.uint8), labels=labels, name="t")


def _shuffled(per_class: list[int], seed: int = 0) -> np.ndarray:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)])
    return labels[np.random.default_rng(seed).permutation(len(labels))]


def test_equals_paper_exactly_when_the_counts_fit():
    labels = _shuffled([650] * 5 + [900])
    for seed in (0, 3):
        auto = make_split(_dataset(labels), "auto", seed=seed)
        paper = make_split(_dataset(labels), "paper", seed=seed)
        assert auto == paper and auto.protocol == "auto" and auto.counts == paper.counts
    small = make_split(_dataset(labels), "auto", queries_per_class=20, train_per_class=50, seed=1)
    assert small == paper_split(labels, 20, 50, seed=1)


def test_the_newcomer_folder_of_500_a_class():
    labels = _shuffled([500] * 10)
    with pytest.raises(ValueError, match=r"needs 600 images per class.*--queries-per-class / --train-per-class.*"
                                         r"--protocol auto"):
        make_split(_dataset(labels), "paper")
    split = make_split(_dataset(labels), "auto", seed=0)
    q = np.bincount(labels[split.query], minlength=10)
    drawn = np.bincount(labels[np.concatenate([split.train, split.val])], minlength=10)
    db = np.bincount(labels[split.database], minlength=10)
    assert q.tolist() == [50] * 10
    assert all(300 <= d <= 450 for d in drawn) and drawn.tolist() == [360] * 10
    assert db.tolist() == [450] * 10  # every class keeps 90 database items never trained on
    assert split.counts == {"query": {str(c): 50 for c in range(10)}, "train": {str(c): 360 for c in range(10)}}
    assert "50 queries and 360 training images a class (10 classes)" in split.summary()
    assert not np.intersect1d(split.query, split.database).size


def test_imbalanced_classes_get_proportional_counts():
    sizes = [2000, 700, 120, 40, 9, 3, 2, 1]
    labels = _shuffled(sizes)
    split = auto_split(labels, seed=5)
    q = np.bincount(labels[split.query], minlength=len(sizes)).tolist()
    t = np.bincount(labels[np.concatenate([split.train, split.val])], minlength=len(sizes)).tolist()
    assert q == [100, 70, 12, 4, 1, 1, 1, 0]
    assert t == [500, 500, 86, 28, 6, 1, 0, 0]
    assert [auto_counts(n) for n in sizes] == list(zip(q, t))
    assert split.counts["query"]["7"] == 0 and split.counts["train"]["0"] == 500
    assert "0-100 queries and 0-500 training images" in split.summary()
    for c, n in enumerate(sizes):  # the database keeps an item of every class with more than one
        in_db = int((labels[split.database] == c).sum())
        assert in_db == n - q[c] and (in_db > t[c] or n <= 2)


def test_auto_is_seeded_and_the_counts_survive_a_file(tmp_path):
    labels = _shuffled([300] * 4)
    a, b = auto_split(labels, seed=2), auto_split(labels, seed=2)
    assert a == b and a != auto_split(labels, seed=3)
    a.save(tmp_path / "split.json")
    back = Split.load(tmp_path / "split.json")
    assert back == a and back.counts == a.counts and back.protocol == "auto"


def test_caps_follow_the_given_counts():
    labels = _shuffled([200] * 3)
    split = make_split(_dataset(labels), "auto", queries_per_class=5, train_per_class=50, val_fraction=0)
    assert np.bincount(labels[split.query]).tolist() == [5] * 3  # fits: the paper counts exactly
    split = make_split(_dataset(labels), "auto", queries_per_class=150, train_per_class=500, val_fraction=0)
    assert np.bincount(labels[split.query]).tolist() == [20] * 3
    assert np.bincount(labels[split.train]).tolist() == [144] * 3


def test_counts_must_be_positive():
    labels = _shuffled([50] * 2)
    for protocol in ("paper", "auto"):
        with pytest.raises(ValueError, match="queries_per_class must be a positive integer, got 0"):
            make_split(_dataset(labels), protocol, queries_per_class=0, train_per_class=5)
        with pytest.raises(ValueError, match="train_per_class must be a positive integer"):
            make_split(_dataset(labels), protocol, queries_per_class=5, train_per_class=-1)


def test_too_small_to_train():
    with pytest.raises(ValueError, match="too small to train on"):
        auto_split(np.array([0, 1, 2, 2]))


def test_multilabel_auto():
    rng = np.random.default_rng(0)
    labels = (rng.random((900, 5)) < [0.6, 0.3, 0.1, 0.05, 0.02]).astype(np.uint8)
    with pytest.raises(ValueError, match="--protocol auto"):
        paper_split(labels)
    split = auto_split(labels, seed=0)
    assert split.protocol == "auto" and set(split.counts) == {"query", "train"}
    assert len(split.query) and len(split.train)
    assert not np.intersect1d(split.query, split.database).size
    assert np.isin(split.train, split.database).all()
    fits = (rng.random((3000, 3)) < 0.5).astype(np.uint8)
    assert auto_split(fits, 20, 100, seed=1) == paper_split(fits, 20, 100, seed=1)
