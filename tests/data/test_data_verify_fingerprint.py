"""Header checks before training and data fingerprints (issue 11)."""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest
from dnnh.data import ArrayDataset, DataWarning, fingerprint_difference, load_dataset, make_split
from dnnh.data.fingerprint import PER_FILE_LIMIT
from support.builders import save_image


def _tree(root, per_class=3, classes=("a", "b")):
    for c, name in enumerate(classes):
        for i in range(per_class):
            save_image(root / name / f"{i}.png", np.full((6, 6), 10 * c + i, np.uint8))
    return root


# ---------- verify ----------

def test_verify_finds_corrupt_files_in_any_part_of_a_split(tmp_path):
    root = _tree(tmp_path / "d", per_class=12)
    good = (root / "a" / "0.png").read_bytes()
    (root / "a" / "5.png").write_bytes(good[: len(good) - 20])  # truncated
    (root / "b" / "7.png").write_text("not an image")
    (root / "b" / "9.png").write_bytes(good[:8])  # signature only
    ds = load_dataset(root)  # nothing decoded up front
    bad = ds.verify()
    assert [os.path.relpath(p, root) for p in bad] == ["a/5.png", "b/7.png", "b/9.png"]
    reasons = ds.verify_reasons()
    assert all(r.startswith("cannot read") for r in reasons.values())
    split = make_split(ds, "auto", val_fraction=0)
    for part in ("query", "database", "train"):
        idx = getattr(split, part)
        assert set(ds.verify(idx)) == {str(ds.paths[i]) for i in idx if str(ds.paths[i]) in bad}
    os.unlink(root / "a" / "1.png")
    assert "file not found" in ds.verify_reasons([1, 2]).values()


def test_verify_is_cheap_and_arrays_have_nothing_to_report(tmp_path):
    root = _tree(tmp_path / "d", per_class=40)
    ds = load_dataset(root)
    start = time.perf_counter()
    assert ds.verify() == []
    assert time.perf_counter() - start < 5
    arrays = ArrayDataset(images=np.zeros((3, 2, 2), np.uint8), labels=[0, 1, 0])
    assert arrays.verify() == []


def test_skip_corrupt_reports_each_skip_once(tmp_path):
    root = _tree(tmp_path / "d")
    (root / "b" / "x.png").write_text("junk")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root, skip_corrupt=True)
    assert len(ds) == 6 and len(ds.skipped) == 1
    assert len(caught) == 1 and caught[0].category is DataWarning
    assert caught[0].filename == __file__ and "skipped 1 of 7" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DataWarning)  # what a program that reports skips itself does
        assert len(load_dataset(root, skip_corrupt=True)) == 6


# ---------- fingerprints ----------

def test_folder_fingerprint_is_stable_and_moves_with_the_folder(tmp_path):
    root = _tree(tmp_path / "d")
    fp = load_dataset(root).fingerprint()
    assert fp["kind"] == "files" and fp["n"] == 6 and len(fp["sha256"]) == 64
    assert load_dataset(root).fingerprint() == fp
    assert fingerprint_difference(fp, load_dataset(root).fingerprint()) is None
    moved = tmp_path / "moved"
    os.rename(root, moved)
    assert fingerprint_difference(fp, load_dataset(moved).fingerprint()) is None  # relative paths


def test_one_added_one_removed_same_count_is_caught(tmp_path):
    root = _tree(tmp_path / "d")
    before = load_dataset(root).fingerprint()
    os.unlink(root / "a" / "1.png")
    save_image(root / "b" / "9.png", np.zeros((6, 6), np.uint8))  # the probe: same count, other files
    now = load_dataset(root).fingerprint()
    assert now["n"] == before["n"]
    assert fingerprint_difference(before, now) == "1 file added, 1 removed since the run was trained"


def test_changed_file_and_relabel_counted(tmp_path):
    root = _tree(tmp_path / "d")
    before = load_dataset(root).fingerprint()
    save_image(root / "a" / "2.png", np.full((7, 7), 3, np.uint8))  # other content, other size
    st = os.stat(root / "a" / "0.png")
    os.utime(root / "a" / "0.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    assert fingerprint_difference(before, load_dataset(root).fingerprint()) == \
        "2 changed (size, time or label) since the run was trained"
    (root / "l.csv").write_text("a/0.png,x\na/1.png,y\n")
    m1 = load_dataset(root / "l.csv").fingerprint()
    (root / "l.csv").write_text("a/0.png,x\na/1.png,x\n")
    assert "1 changed" in fingerprint_difference(m1, load_dataset(root / "l.csv").fingerprint())
    (root / "l.csv").write_text("a/1.png,y\na/0.png,x\n")  # positions now point at other files
    assert "another order" in fingerprint_difference(m1, load_dataset(root / "l.csv").fingerprint())


def test_large_sets_fall_back_to_totals(tmp_path):
    root = _tree(tmp_path / "d")
    before = load_dataset(root).fingerprint()
    stripped = {k: v for k, v in before.items() if k != "files"}  # as a set above PER_FILE_LIMIT stores it
    assert PER_FILE_LIMIT >= 10_000 and "files" in before
    save_image(root / "b" / "new.png", np.zeros((6, 6), np.uint8))
    now = {k: v for k, v in load_dataset(root).fingerprint().items() if k != "files"}
    assert fingerprint_difference(stripped, now) == "6 files when the run was trained, 7 now"
    os.unlink(root / "b" / "new.png")
    os.utime(root / "a" / "0.png", ns=(0, 10**9))
    now = {k: v for k, v in load_dataset(root).fingerprint().items() if k != "files"}
    assert "the same 6 files, but some changed" in fingerprint_difference(stripped, now)


def test_array_fingerprints():
    images = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 1), dtype=np.uint8)
    labels = np.arange(20) % 3
    ds = ArrayDataset(images=images, labels=labels, name="toy")
    fp = ds.fingerprint()
    assert fp["kind"] == "array" and fp["n"] == 20 and fp["name"] == "toy"
    same = ArrayDataset(images=images.copy(), labels=labels, name="toy")
    assert fingerprint_difference(fp, same.fingerprint()) is None
    relabelled = labels.copy()
    relabelled[0] = 2
    assert fingerprint_difference(fp, ArrayDataset(images=images, labels=relabelled, name="toy").fingerprint()) == \
        "the labels of toy changed since the run was trained"
    other = images.copy()
    other[3, 0, 0, 0] ^= 1
    assert "the images of toy changed" in fingerprint_difference(
        fp, ArrayDataset(images=other, labels=labels, name="toy").fingerprint())
    assert "20 items when the run was trained, it has 19" in fingerprint_difference(
        fp, ArrayDataset(images=images[:19], labels=labels[:19], name="toy").fingerprint())
    assert fingerprint_difference(None, fp) is None  # runs from before fingerprints


def test_digits_fingerprint_and_kind_change(tmp_path):
    digits = load_dataset("digits")
    fp = digits.fingerprint()
    assert fp == load_dataset("digits").fingerprint() and fp["n"] == 1797
    folder = load_dataset(_tree(tmp_path / "d")).fingerprint()
    assert fingerprint_difference(fp, folder).startswith("the run was trained on an in-memory dataset (digits)")


@pytest.mark.parametrize("n", [70_000])
def test_array_fingerprint_is_fast(n):
    images = np.zeros((n, 28, 28, 1), np.uint8)
    ds = ArrayDataset(images=images, labels=np.zeros(n, np.int64), name="mnist")
    start = time.perf_counter()
    ds.fingerprint()
    assert time.perf_counter() - start < 3
