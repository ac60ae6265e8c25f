"""Split protocols: counts per class, disjointness, containment, seeds, cifar10-1 / cifar10-2 shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnnh.data import ArrayDataset, FileDataset, Split, make_split


@pytest.fixture(scope="module")
def synthetic():
    """6,000 tiny images, 600 per class; the last 100 of each class form the 'official test set'."""
    labels = np.repeat(np.arange(10), 600)
    rng = np.random.default_rng(0)
    order = rng.permutation(6000)
    labels = labels[order]
    is_test = np.zeros(6000, bool)
    for c in range(10):
        is_test[np.flatnonzero(labels == c)[-100:]] = True
    return ArrayDataset(images=np.zeros((6000, 2, 2, 1), np.uint8), labels=labels, name="synthetic", is_test=is_test)


def check_invariants(split: Split, n: int) -> None:
    for part in ("query", "database", "train", "val"):
        arr = getattr(split, part)
        assert arr.dtype == np.int64 and len(np.unique(arr)) == len(arr)
    assert not np.intersect1d(split.query, split.database).size
    assert np.isin(split.train, split.database).all() and np.isin(split.val, split.database).all()
    assert not np.intersect1d(split.train, split.val).size
    split.check_fits(n)


def test_paper_counts_per_class(synthetic):
    split = make_split(synthetic, "paper", queries_per_class=30, train_per_class=200, val_fraction=0.1, seed=3)
    check_invariants(split, len(synthetic))
    labels = synthetic.labels
    assert np.bincount(labels[split.query]).tolist() == [30] * 10
    drawn = np.concatenate([split.train, split.val])  # val comes out of the training draw
    assert np.bincount(labels[drawn]).tolist() == [200] * 10
    assert np.bincount(labels[split.val]).tolist() == [20] * 10
    assert len(split.database) == 6000 - 300


def test_cifar10_1_shapes(synthetic):
    split = make_split(synthetic, "cifar10-1", val_fraction=0.0, seed=0)
    check_invariants(split, 6000)
    assert (len(split.query), len(split.train), len(split.database), len(split.val)) == (1000, 5000, 5000, 0)
    assert np.bincount(synthetic.labels[split.query]).tolist() == [100] * 10
    assert split.protocol == "cifar10-1"
    with pytest.raises(ValueError, match="cifar10-1 fixes 100 queries and 500"):
        make_split(synthetic, "cifar10-1", queries_per_class=50)


def test_cifar10_2_uses_official_partition(synthetic):
    split = make_split(synthetic, "cifar10-2", val_fraction=0.0)
    check_invariants(split, 6000)
    np.testing.assert_array_equal(split.query, np.flatnonzero(synthetic.is_test))
    np.testing.assert_array_equal(split.database, np.flatnonzero(~synthetic.is_test))
    np.testing.assert_array_equal(split.train, split.database)
    with_val = make_split(synthetic, "cifar10-2", val_fraction=0.1, seed=1)
    check_invariants(with_val, 6000)
    assert len(with_val.val) == 500 and len(with_val.train) == 4500
    np.testing.assert_array_equal(np.sort(np.concatenate([with_val.train, with_val.val])), with_val.database)


def test_cifar10_2_needs_is_test(tmp_path):
    ds = ArrayDataset(images=np.zeros((20, 2, 2), np.uint8), labels=np.arange(20) % 2)
    with pytest.raises(ValueError, match="does not mark them"):
        make_split(ds, "cifar10-2")
    files = FileDataset(paths=[tmp_path / "a.png"], labels=[0])
    with pytest.raises(ValueError, match="is_test is None"):
        make_split(files, "cifar10-2")


def test_seeds(synthetic):
    a = make_split(synthetic, seed=7)
    b = make_split(synthetic, seed=7)
    c = make_split(synthetic, seed=8)
    for part in ("query", "database", "train", "val"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.query, c.query) and not np.array_equal(a.train, c.train)
    assert not np.array_equal(make_split(synthetic, "cifar10-2", seed=1).val,
                              make_split(synthetic, "cifar10-2", seed=2).val)


def test_split_file_roundtrip(synthetic, tmp_path):
    split = make_split(synthetic, "cifar10-1", seed=5)
    split.save(tmp_path / "split.json")
    back = Split.load(tmp_path / "split.json")
    assert back.protocol == "cifar10-1" and back.seed == 5
    for part in ("query", "database", "train", "val"):
        np.testing.assert_array_equal(getattr(back, part), getattr(split, part))


def test_multilabel_per_concept():
    rng = np.random.default_rng(0)
    labels = (rng.random((3000, 5)) < 0.3).astype(np.uint8)
    labels[:50] = 0  # unlabelled images are in no part of the split
    ds = ArrayDataset(images=np.zeros((3000, 1, 1), np.uint8), labels=labels)
    split = make_split(ds, queries_per_class=20, train_per_class=60, val_fraction=0.1, seed=0)
    check_invariants(split, 3000)
    assert len(split.query) == 100 and len(split.train) + len(split.val) == 300
    for j in range(5):  # each concept got at least its own draw
        assert labels[split.query, j].sum() >= 20
    assert not np.isin(np.arange(50), np.concatenate([split.query, split.database])).any()


def test_too_few_per_class_is_explained(synthetic):
    with pytest.raises(ValueError, match="needs 700 images per class"):
        make_split(synthetic, queries_per_class=200)


def test_unknown_protocol(synthetic):
    with pytest.raises(ValueError, match="unknown split protocol 'cifar10-3'; expected one of paper, auto, cifar10-1"):
        make_split(synthetic, "cifar10-3")


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**31 - 1),
       st.floats(0.0, 0.5))
def test_paper_invariants_property(n_classes, q, t, seed, val_fraction):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.repeat(np.arange(n_classes), q + t), rng.integers(0, n_classes, 20)])
    ds = ArrayDataset(images=np.zeros((len(labels), 1, 1), np.uint8), labels=labels)
    split = make_split(ds, queries_per_class=q, train_per_class=t, val_fraction=val_fraction, seed=seed)
    check_invariants(split, len(labels))
    assert np.bincount(labels[split.query], minlength=n_classes).tolist() == [q] * n_classes
    assert len(split.train) + len(split.val) == t * n_classes
