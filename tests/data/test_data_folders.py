"""Class-folder trees and manifests: modes decode exactly, labels map as documented, errors name the culprit."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from dnnh.data import CorruptImageError, FileDataset, ManifestError, load_dataset
from support.builders import save_image

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
RGB = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
RGBA = np.concatenate([RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8), np.full((5, 6, 1), 255, np.uint8)], axis=2)
RGBA[0, 0, 3] = 0  # fully transparent: composited on white
RGBA[0, 1, 3] = 128
PALETTE = [int(v) for v in RNG.integers(0, 256, 768)]
INDICES = RNG.integers(0, 256, (5, 6), dtype=np.uint8)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "shapes"
    save_image(root / "cat" / "a_gray.png", GRAY)
    save_image(root / "cat" / "b_rgb.png", RGB)
    save_image(root / "dog" / "c_rgba.png", RGBA)
    save_image(root / "dog" / "sub" / "d_palette.png", INDICES, palette=PALETTE)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.png").write_bytes(b"ignored")
    (root / ".cache").mkdir()
    return root


def test_folder_modes_decode_exactly(tree):
    ds = load_dataset(str(tree))
    assert isinstance(ds, FileDataset) and len(ds) == 4 and not ds.multilabel
    assert ds.class_names == ["cat", "dog"]
    assert [p.name for p in ds.paths] == ["a_gray.png", "b_rgb.png", "c_rgba.png", "d_palette.png"]
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
    np.testing.assert_array_equal(ds.load_image(0), np.repeat(GRAY[..., None], 3, axis=2))
    np.testing.assert_array_equal(ds.load_image(1), RGB)
    rgba = ds.load_image(2)
    np.testing.assert_array_equal(rgba[1:], RGBA[1:, :, :3])
    np.testing.assert_array_equal(rgba[0, 0], [255, 255, 255])
    expected = (RGBA[0, 1, :3].astype(float) * 128 + 255 * 127) / 255
    assert np.abs(rgba[0, 1].astype(float) - expected).max() <= 1
    np.testing.assert_array_equal(ds.load_image(3), np.asarray(PALETTE, np.uint8).reshape(256, 3)[INDICES])
    assert ds.load_images([3, 1]).shape == (2, 5, 6, 3)


def test_folder_grayscale_and_resize(tree):
    ds = load_dataset(tree, channels=1, image_size=8)
    batch = ds.load_images(range(4))
    assert batch.shape == (4, 8, 8, 1) and batch.dtype == np.uint8
    small = load_dataset(tree, channels=1)
    np.testing.assert_array_equal(small.load_image(0)[..., 0], GRAY)
    np.testing.assert_array_equal(small.load_image(1)[..., 0], np.asarray(Image.fromarray(RGB).convert("L")))


def test_mixed_sizes_need_image_size(tmp_path):
    save_image(tmp_path / "d" / "a" / "1.png", GRAY)
    save_image(tmp_path / "d" / "a" / "2.png", np.zeros((7, 7), np.uint8))
    ds = load_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="differ in size.*image_size"):
        ds.load_images([0, 1])
    assert load_dataset(tmp_path / "d", image_size=(4, 3)).load_images([0, 1]).shape == (2, 4, 3, 3)


def test_empty_class_folder(tree):
    (tree / "empty").mkdir()
    (tree / "empty" / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="class folder 'empty' holds no image files"):
        load_dataset(tree)


def test_folder_without_class_folders(tmp_path):
    save_image(tmp_path / "flat" / "x.png", GRAY)
    with pytest.raises(ValueError, match="one subfolder per class.*1 images directly"):
        load_dataset(tmp_path / "flat")


def test_corrupt_image_default_error_names_file(tree):
    (tree / "cat" / "z_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = load_dataset(tree)  # nothing decoded up front
    with pytest.raises(CorruptImageError, match="z_broken.png"):
        ds.load_images(range(len(ds)))


def test_truncated_png_skipped_and_reported(tree):
    blob = (tree / "cat" / "b_rgb.png").read_bytes()
    (tree / "cat" / "c_truncated.png").write_bytes(blob[: len(blob) - 30])
    (tree / "dog" / "e_text.jpg").write_text("plain text")
    with pytest.warns(UserWarning, match="skipped 2 of 6"):
        ds = load_dataset(tree, skip_corrupt=True)
    assert len(ds) == 4 and len(ds.skipped) == 2
    assert {p.split("/")[-1] for p in ds.skipped} == {"c_truncated.png", "e_text.jpg"}
    assert all("cannot decode" in r for r in ds.skip_reasons.values())
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
    assert ds.load_images(range(4)).shape[0] == 4


# ---------- manifests ----------

@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "m"
    for name, px in (("a.png", GRAY), ("b.png", RGB), ("c.png", RGBA)):
        save_image(folder / "img" / name, px)
    return folder


def test_csv_single_label_with_header(images):
    (images / "list.csv").write_text("path,label\nimg/a.png,cat\nimg/b.png,dog\n\nimg/c.png,cat\n")
    ds = load_dataset(images / "list.csv")
    assert not ds.multilabel and ds.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(ds.labels, [0, 1, 0])
    np.testing.assert_array_equal(ds.load_image(1), RGB)


def test_csv_multilabel_separators_and_extra_columns(images):
    absolute = images / "img" / "c.png"
    (images / "list.csv").write_text(f"img/a.png,sky|sea\nimg/b.png,sea;tree\n{absolute},tree,sky\n")
    ds = load_dataset(images / "list.csv")
    assert ds.multilabel and ds.class_names == ["sea", "sky", "tree"]
    np.testing.assert_array_equal(ds.labels, [[1, 1, 0], [1, 0, 1], [0, 1, 1]])


def test_numeric_labels_sort_numerically(images):
    (images / "l.csv").write_text("img/a.png,10\nimg/b.png,9\nimg/c.png,2\n")
    ds = load_dataset(images / "l.csv")
    assert ds.class_names == ["2", "9", "10"]
    np.testing.assert_array_equal(ds.labels, [2, 1, 0])


def test_manifest_missing_file_names_line(images):
    (images / "list.csv").write_text("path,labels\nimg/a.png,x\nimg/nope.png,y\nimg/gone.png,y\n")
    with pytest.raises(ManifestError, match=r"list.csv line 3: image 'img/nope.png' not found.*1 more"):
        load_dataset(images / "list.csv")


def test_manifest_missing_file_skipped_when_asked(images):
    (images / "list.csv").write_text("img/a.png,x\nimg/nope.png,y\nimg/b.png,y\n")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = load_dataset(images / "list.csv", skip_corrupt=True)
    assert len(ds) == 2 and ds.skipped[0].endswith("nope.png")
    assert ds.skip_reasons[ds.skipped[0]] == "file not found (list.csv line 2)"


def test_manifest_root_overrides_base(images, tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "l.csv").write_text("img/a.png,x\n")
    ds = load_dataset(tmp_path / "lists" / "l.csv", root=images)
    assert ds.paths[0] == images / "img" / "a.png"


def test_single_label_row_without_label(images):
    (images / "l.csv").write_text("img/a.png,x\nimg/b.png,\n")
    with pytest.raises(ManifestError, match="l.csv line 2: no label"):
        load_dataset(images / "l.csv")


def test_jsonl_lists_and_scalars(images):
    rows = [{"path": "img/a.png", "labels": ["sky", "sea"]}, {"path": "img/b.png", "label": "sea"},
            {"path": "img/c.png", "labels": []}]
    (images / "l.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = load_dataset(str(images / "l.jsonl"))
    assert ds.multilabel and ds.class_names == ["sea", "sky"]
    np.testing.assert_array_equal(ds.labels, [[1, 1], [1, 0], [0, 0]])


def test_jsonl_errors_name_line(images):
    (images / "bad.jsonl").write_text('{"path": "img/a.png", "label": 1}\n{"path": "img/b.png", label: 2}\n')
    with pytest.raises(ManifestError, match="bad.jsonl line 2: not valid JSON"):
        load_dataset(images / "bad.jsonl")
    (images / "bad2.jsonl").write_text('{"file_name": "img/a.png", "label": 1}\n')
    with pytest.raises(ManifestError, match="bad2.jsonl line 1: expected keys 'path' and 'labels'"):
        load_dataset(images / "bad2.jsonl")


def test_deephash_list_format(images):
    (images / "database.txt").write_text("img/a.png 0 1 0\nimg/b.png 1 0 1\nimg/c.png 0 0 1\n")
    ds = load_dataset(images / "database.txt")
    assert ds.multilabel
    np.testing.assert_array_equal(ds.labels, [[0, 1, 0], [1, 0, 1], [0, 0, 1]])
    (images / "onehot.txt").write_text("img/a.png 0 1\nimg/b.png 1 0\n")
    np.testing.assert_array_equal(load_dataset(images / "onehot.txt").labels, [1, 0])
    (images / "bad.txt").write_text("img/a.png 0 1\nimg/b.png 1 0 1\n")
    with pytest.raises(ManifestError, match="bad.txt line 2: expected a path then 2 values"):
        load_dataset(images / "bad.txt")
