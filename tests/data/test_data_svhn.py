"""SVHN cropped digits .mat files: axis order, the 10 -> 0 label, extra, download with MD5."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import dnnh.data.download as download_mod
import dnnh.data.svhn as svhn_mod
from dnnh.data import ChecksumError, DownloadError, load_dataset
from dnnh.data.download import md5_file
from dnnh.data.svhn import SvhnFormatError
from support.builders import write_svhn_mat


@pytest.fixture
def svhn_root(tmp_path):
    rng = np.random.default_rng(0)
    parts = {name: write_svhn_mat(tmp_path / f"{name}_32x32.mat", rng, n) for name, n in
             (("train", 7), ("test", 4), ("extra", 3))}
    return tmp_path, parts


def test_pixels_labels_and_order(svhn_root):
    root, parts = svhn_root
    ds = load_dataset("svhn", root=root, download=False)
    assert ds.images.shape == (11, 32, 32, 3) and ds.images.flags.c_contiguous
    x_train, y_train = parts["train"]
    x_test, y_test = parts["test"]
    for i in range(7):
        np.testing.assert_array_equal(ds.images[i], x_train[:, :, :, i])
    np.testing.assert_array_equal(ds.images[7 + 2], x_test[:, :, :, 2])
    expected = np.concatenate([y_train[:, 0], y_test[:, 0]]).astype(int) % 10
    np.testing.assert_array_equal(ds.labels, expected)
    assert ds.labels[0] == 0 and ds.labels[7] == 0  # the fixtures' first label is 10, the digit 0
    assert ds.labels.max() <= 9
    np.testing.assert_array_equal(ds.is_test, np.arange(11) >= 7)


def test_extra_appended_after_test(svhn_root):
    root, parts = svhn_root
    ds = load_dataset("svhn", root=root, download=False, extra=True)
    assert len(ds) == 14
    np.testing.assert_array_equal(ds.images[11 + 1], parts["extra"][0][:, :, :, 1])
    assert not ds.is_test[11:].any()


def test_wrong_shape_named(tmp_path):
    from scipy.io import savemat
    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((5, 32, 32, 3), np.uint8), "y": np.ones((5, 1))})
    write_svhn_mat(tmp_path / "test_32x32.mat", np.random.default_rng(1), 2)
    with pytest.raises(SvhnFormatError, match=r"train_32x32.mat: X must be \(32, 32, 3, N\)"):
        load_dataset("svhn", root=tmp_path, download=False)


def test_label_count_mismatch(tmp_path):
    from scipy.io import savemat
    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 5), np.uint8), "y": np.ones((4, 1))})
    write_svhn_mat(tmp_path / "test_32x32.mat", np.random.default_rng(1), 2)
    with pytest.raises(SvhnFormatError, match="N = 5 images"):
        load_dataset("svhn", root=tmp_path, download=False)


def test_not_a_mat_file(tmp_path):
    (tmp_path / "train_32x32.mat").write_bytes(b"<html>404</html>")
    write_svhn_mat(tmp_path / "test_32x32.mat", np.random.default_rng(1), 2)
    with pytest.raises(SvhnFormatError, match="train_32x32.mat"):
        load_dataset("svhn", root=tmp_path, download=False)


def test_missing_without_download(tmp_path):
    with pytest.raises(DownloadError, match="train_32x32.mat.*e26dedcc434d2e4c54c9b2d4a06d8373"):
        load_dataset("svhn", root=tmp_path, download=False)


def test_download_checked_against_published_md5(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_svhn_mat(src / "train_32x32.mat", np.random.default_rng(2), 3)
    write_svhn_mat(src / "test_32x32.mat", np.random.default_rng(3), 2)
    fetched = []

    def fake_fetch(url, dest):
        fetched.append(url)
        shutil.copyfile(src / url.rsplit("/", 1)[1], dest)
    monkeypatch.setattr(download_mod, "fetch", fake_fetch)
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="e26dedcc434d2e4c54c9b2d4a06d8373"):
        load_dataset("svhn", root=root)
    assert list(root.iterdir()) == []
    files = dict(svhn_mod.SVHN_FILES)
    for part in ("train", "test"):
        files[part] = (files[part][0], md5_file(src / files[part][0]))
    monkeypatch.setattr(svhn_mod, "SVHN_FILES", files)
    ds = load_dataset("svhn", root=root)
    assert len(ds) == 5 and fetched[-1].endswith("/test_32x32.mat")
    assert fetched[0] == "http://ufldl.stanford.edu/housenumbers/train_32x32.mat"
