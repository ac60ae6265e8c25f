"""NUS-WIDE as distributed: image list with Windows paths, one 0/1 file per concept, lazy images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from dnnh.data import load_dataset
from dnnh.data.nuswide import NusWideFormatError

N_IMAGES = 40
N_CONCEPTS = 25


@pytest.fixture
def nus(tmp_path):
    """25 concepts whose frequencies differ, 40 images (a few with no label), JPEG files in Flickr/."""
    rng = np.random.default_rng(0)
    root = tmp_path / "NUS-WIDE"
    names = [f"concept{j:02d}" for j in range(N_CONCEPTS)]
    # concept j appears with probability falling in j, so the most frequent are the low numbers
    labels = (rng.random((N_IMAGES, N_CONCEPTS)) < np.linspace(0.6, 0.02, N_CONCEPTS)).astype(np.uint8)
    labels[:3] = 0  # three images without any concept
    labels[5, :] = 0
    labels[5, 24] = 1  # an image carrying only a rare concept
    entries = []
    for i in range(N_IMAGES):
        folder = ["actor", "airport"][i % 2]
        rel = f"{folder}\\{i:04d}_{1000 + i}.jpg"
        entries.append(rel if i % 3 else "C:\\ImageData\\Flickr\\" + rel)  # both spellings occur
        path = root / "Flickr" / folder / f"{i:04d}_{1000 + i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20 + i % 3, 30, 3), dtype=np.uint8)).save(path, quality=90)
    (root / "ImageList").mkdir(parents=True)
    (root / "ImageList" / "Imagelist.txt").write_text("\r\n".join(entries) + "\r\n")
    gt = root / "Groundtruth" / "AllLabels"
    gt.mkdir(parents=True)
    for j, name in enumerate(names):
        (gt / f"Labels_{name}.txt").write_text("".join(f"{v}\n" for v in labels[:, j]))
    tt = root / "Groundtruth" / "TrainTestLabels"
    tt.mkdir()
    (tt / "Labels_concept00_Train.txt").write_text("0\n")
    return root, labels, names


def test_top_concepts_multilabel_and_unlabelled_dropped(nus):
    root, labels, names = nus
    ds = load_dataset("nus-wide", root=root, concepts=5, image_size=None)
    counts = labels.sum(axis=0).astype(int)
    top = sorted(sorted(range(N_CONCEPTS), key=lambda j: (-counts[j], names[j]))[:5])
    assert ds.class_names == [names[j] for j in top]
    keep = np.flatnonzero(labels[:, top].any(axis=1))
    assert ds.multilabel and len(ds) == len(keep)
    np.testing.assert_array_equal(ds.labels, labels[np.ix_(keep, top)])
    assert ds.paths[0].name == f"{keep[0]:04d}_{1000 + keep[0]}.jpg" and ds.paths[0].parent.parent.name == "Flickr"
    i = 3
    expected = np.asarray(Image.open(ds.paths[i]).convert("RGB"))
    np.testing.assert_array_equal(ds.load_image(i), expected)


def test_default_21_concepts_resized_to_256(nus):
    root, labels, names = nus
    ds = load_dataset(root)  # a path with the distributed layout is recognised
    assert ds.name == "nus-wide" and len(ds.class_names) == 21
    assert ds.load_images([0, 1]).shape == (2, 256, 256, 3)


def test_named_concepts_and_keep_unlabelled(nus):
    root, labels, names = nus
    ds = load_dataset("nuswide", root=root, concepts=["concept24", "concept03"], drop_unlabeled=False)
    assert ds.class_names == ["concept03", "concept24"] and len(ds) == N_IMAGES
    np.testing.assert_array_equal(ds.labels, labels[:, [3, 24]])
    with pytest.raises(ValueError, match="unknown concept.*'sky'"):
        load_dataset("nus-wide", root=root, concepts=["sky"])


def test_label_file_with_wrong_line_count(nus):
    root, labels, names = nus
    path = root / "Groundtruth" / "AllLabels" / "Labels_concept07.txt"
    path.write_text("".join(f"{v}\n" for v in labels[:-1, 7]))
    with pytest.raises(NusWideFormatError, match=r"Labels_concept07.txt has 39 lines but the image list .*Imagelist.txt "
                                                 r"has 40 images"):
        load_dataset("nus-wide", root=root)


def test_label_file_with_bad_value(nus):
    root, labels, names = nus
    path = root / "Groundtruth" / "AllLabels" / "Labels_concept02.txt"
    lines = [f"{v}" for v in labels[:, 2]]
    lines[6] = "2"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NusWideFormatError, match=r"Labels_concept02.txt line 7: expected one 0 or 1, found b'2'"):
        load_dataset("nus-wide", root=root)


def test_missing_images_error_or_skip(nus):
    root, labels, names = nus
    ds = load_dataset("nus-wide", root=root, concepts=3)
    victim = ds.paths[2]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of \d+ listed images are missing.*skip_corrupt=True"):
        load_dataset("nus-wide", root=root, concepts=3)
    ds.paths[4].write_bytes(b"\xff\xd8\xff not really a jpeg")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        skipped = load_dataset("nus-wide", root=root, concepts=3, skip_corrupt=True)
    assert len(skipped) == len(ds) - 2
    assert set(skipped.skipped) == {str(victim), str(ds.paths[4])}
    assert "Imagelist.txt line" in skipped.skip_reasons[str(victim)]
    np.testing.assert_array_equal(skipped.labels, np.delete(ds.labels, [2, 4], axis=0))


def test_missing_layout_explained(tmp_path):
    (tmp_path / "ImageList").mkdir()
    with pytest.raises(FileNotFoundError, match="no image list"):
        load_dataset("nus-wide", root=tmp_path)
