"""Manifest rows (issue 11): duplicates merged or refused, swapped headers, nothing outside the folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from dnnh.data import ManifestError, load_dataset, make_split
from support import builders
from support.builders import load_with_warnings, save_image

PIX = {name: np.full((4, 4), v, np.uint8) for name, v in (("a", 10), ("b", 20), ("c", 30), ("d", 40))}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "m"
    for name, px in PIX.items():
        save_image(root / "img" / f"{name}.png", px)
    return root



def test_identical_duplicate_rows_merged_with_one_warning(folder):
    (folder / "l.csv").write_text("path,label\nimg/a.png,x\nimg/b.png,y\nimg/a.png,x\nimg/./b.png,y\nimg/c.png,x\n")
    ds, caught = load_with_warnings(folder / "l.csv")
    assert [p.name for p in ds.paths] == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(ds.labels, [0, 1, 0])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "2 duplicated row(s) merged" in message and "line 4 repeats line 2" in message
    assert "\n" not in message and caught[0].filename == builders.__file__  # the caller, not the loader


def test_merged_duplicates_cannot_put_a_query_in_the_database(folder):
    rows = ["img/a.png,x", "img/b.png,x", "img/c.png,y", "img/d.png,y"] * 3  # each image listed three times
    (folder / "l.csv").write_text("\n".join(rows) + "\n")
    ds, _ = load_with_warnings(folder / "l.csv")
    assert len(ds) == 4
    split = make_split(ds, "paper", queries_per_class=1, train_per_class=1, val_fraction=0)
    query_files = {ds.paths[i].resolve() for i in split.query}
    database_files = {ds.paths[i].resolve() for i in split.database}
    assert len(query_files) == 2 and not query_files & database_files


def test_same_image_two_labels_names_both_lines(folder):
    (folder / "l.csv").write_text("img/a.png,x\nimg/b.png,y\nimg/a.png,y\n")
    with pytest.raises(ManifestError, match=r"l.csv line 3: image 'img/a.png' is listed again with labels \['y'\], "
                                            r"but line 1 gave it \['x'\]"):
        load_dataset(folder / "l.csv")
    rows = [{"path": "img/a.png", "labels": ["x", "y"]}, {"path": "img/a.png", "labels": ["y", "x"]},
            {"path": "img/b.png", "labels": ["x"]}, {"path": "img/a.png", "labels": ["x"]}]
    (folder / "l.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ManifestError, match="l.jsonl line 4: .*line 1 gave it"):  # line 2 merged: same label set
        load_dataset(folder / "l.jsonl")


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_link_and_its_target_are_one_image(folder):
    (folder / "img" / "alias.png").symlink_to("a.png")
    (folder / "l.csv").write_text("img/a.png,x\nimg/alias.png,y\n")
    with pytest.raises(ManifestError, match="line 2: image 'img/alias.png' is listed again"):
        load_dataset(folder / "l.csv")


def test_header_with_columns_swapped(folder):
    (folder / "l.csv").write_text("label,path\ncat,img/a.png\ndog,img/b.png\n")
    ds = load_dataset(folder / "l.csv")
    assert ds.class_names == ["cat", "dog"] and [p.name for p in ds.paths] == ["a.png", "b.png"]
    (folder / "t.tsv").write_text("Category\tFilename\nx\timg/c.png\n")
    assert [p.name for p in load_dataset(folder / "t.tsv").paths] == ["c.png"]


def test_headerless_swapped_rows_explained(folder):
    (folder / "l.csv").write_text("cat,img/a.png\ndog,img/b.png\n")
    with pytest.raises(ManifestError, match=r"line 1: image 'cat' not found.*looks like label,path.*without a header "
                                            r"the path comes first"):
        load_dataset(folder / "l.csv")


def test_header_without_a_path_column(folder):
    (folder / "l.csv").write_text("label,picture\ncat,img/a.png\n")
    with pytest.raises(ManifestError, match=r"line 1: header .* has no path column .*path, then labels"):
        load_dataset(folder / "l.csv")


def test_single_label_message_has_no_python_only_advice(folder):
    (folder / "l.csv").write_text("img/a.png,x\nimg/b.png,\n")
    with pytest.raises(ManifestError, match="line 2: no label") as info:
        load_dataset(folder / "l.csv")
    assert "multilabel=True" not in str(info.value)


@pytest.mark.parametrize("row", ["../outside.png", "img/../../outside.png", "{abs}"])
def test_paths_leaving_the_folder_refused_unless_allowed(folder, tmp_path, row):
    outside = tmp_path / "outside.png"
    save_image(outside, PIX["d"])
    row = row.format(abs=outside)
    (folder / "l.csv").write_text(f"img/a.png,x\n{row},y\n")
    with pytest.raises(ManifestError, match=r"l.csv line 2: image .* is outside the manifest's folder .*"
                                            r"allow_outside_paths=True \(--allow-outside-paths\)"):
        load_dataset(folder / "l.csv")
    ds = load_dataset(folder / "l.csv", allow_outside_paths=True)
    assert ds.load_image(1)[0, 0, 0] == 40


def test_absolute_path_inside_the_folder_and_root_option(folder, tmp_path):
    (folder / "l.csv").write_text(f"{folder / 'img' / 'a.png'},x\nimg/b.png,y\n")
    assert len(load_dataset(folder / "l.csv")) == 2
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "l.csv").write_text("img/a.png,x\n")
    assert len(load_dataset(tmp_path / "lists" / "l.csv", root=folder)) == 1  # inside root: fine
    (tmp_path / "lists" / "up.csv").write_text("../m/img/a.png,x\n")
    with pytest.raises(ManifestError, match="outside the manifest's folder"):
        load_dataset(tmp_path / "lists" / "up.csv")


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_symlink_out_of_the_folder_counts_as_outside(folder, tmp_path):
    secret = tmp_path / "secret"
    save_image(secret / "s.png", PIX["c"])
    (folder / "img" / "door").symlink_to(secret)
    (folder / "l.csv").write_text("img/door/s.png,x\n")
    with pytest.raises(ManifestError, match=r"outside the manifest's folder .*resolves to .*secret/s.png"):
        load_dataset(folder / "l.csv")
    assert len(load_dataset(folder / "l.csv", allow_outside_paths=True)) == 1


def test_binary_manifest_is_one_line(folder):
    (folder / "l.csv").write_bytes(b"\xff\xfe\x00\x81binary\x00")
    with pytest.raises(ManifestError, match=r"cannot read manifest .*l.csv: not a UTF-8 text file"):
        load_dataset(folder / "l.csv")


def test_deephash_list_duplicates(folder):
    (folder / "db.txt").write_text("img/a.png 1 0\nimg/b.png 0 1\nimg/a.png 1 0\n")
    ds, caught = load_with_warnings(folder / "db.txt")
    assert len(ds) == 2 and caught
    (folder / "db.txt").write_text("img/a.png 1 0\nimg/a.png 0 1\n")
    with pytest.raises(ManifestError, match="db.txt line 2"):
        load_dataset(folder / "db.txt")
