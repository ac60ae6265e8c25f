"""CIFAR-10 python version: tarball or folder, plane order, labels, download with MD5, hostile pickles."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import urllib.error

import numpy as np
import pytest
import dnnh.data.cifar as cifar_mod
import dnnh.data.download as download_mod
from dnnh.data import ChecksumError, DownloadError, load_dataset
from dnnh.data.cifar import CifarFormatError
from dnnh.data.download import md5_file
from support.builders import CIFAR_NAMES, cifar_row, write_cifar


@pytest.mark.parametrize("tar", [True, False])
def test_pixels_channel_order_and_labels(tmp_path, tar):
    made = write_cifar(tmp_path, np.random.default_rng(0), tar=tar)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert ds.images.shape == (36, 32, 32, 3)
    np.testing.assert_array_equal(ds.images, made["images"])
    np.testing.assert_array_equal(ds.labels, made["labels"])
    np.testing.assert_array_equal(ds.is_test, np.arange(36) >= 30)
    assert ds.class_names == CIFAR_NAMES


@pytest.mark.parametrize("protocol", [2, 5])
def test_python3_pickles_of_a_resaved_copy(tmp_path, protocol):
    made = write_cifar(tmp_path, np.random.default_rng(10), tar=False, protocol=protocol)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.images, made["images"])


def test_plane_layout_by_hand(tmp_path):
    """Row = 1024 red values, 1024 green, 1024 blue; pixel (r, c) of a plane is at r * 32 + c."""
    made = write_cifar(tmp_path, np.random.default_rng(1))
    ds = load_dataset("cifar10", root=made["path"], download=False)  # root may be the tarball itself
    row = made["batches"]["data_batch_2"][b"data"][3]
    image = ds.images[6 + 3]
    assert image[0, 1, 0] == row[1] and image[1, 0, 1] == row[1024 + 32] and image[31, 31, 2] == row[3071]


def test_extracted_folder_as_root(tmp_path):
    made = write_cifar(tmp_path, np.random.default_rng(2), tar=False)
    ds = load_dataset("cifar-10", root=made["path"], download=False)
    np.testing.assert_array_equal(ds.images, made["images"])


def test_missing_batch(tmp_path):
    made = write_cifar(tmp_path, np.random.default_rng(3), tar=False)
    os.unlink(made["path"] / "data_batch_4")
    os.unlink(made["path"] / "data_batch_5")
    with pytest.raises(CifarFormatError, match="missing batch file.*data_batch_4, data_batch_5"):
        load_dataset("cifar10", root=made["path"], download=False)


def test_wrong_keys_named(tmp_path):
    made = write_cifar(tmp_path, np.random.default_rng(4), tar=False)
    batch = made["batches"]["data_batch_1"]
    (made["path"] / "data_batch_1").write_bytes(pickle.dumps({b"data": batch[b"data"], b"fine_labels": [0]}, 2))
    with pytest.raises(CifarFormatError, match=r"data_batch_1: expected keys b'data' and b'labels'.*fine_labels"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_wrong_row_length(tmp_path):
    made = write_cifar(tmp_path, np.random.default_rng(5), tar=False)
    bad = {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}
    (made["path"] / "test_batch").write_bytes(pickle.dumps(bad, 2))
    with pytest.raises(CifarFormatError, match="3072"):
        load_dataset("cifar10", root=tmp_path, download=False)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    made = write_cifar(tmp_path, np.random.default_rng(6), tar=False)
    (made["path"] / "data_batch_1").write_bytes(pickle.dumps({b"data": _Boom(), b"labels": []}, 2))
    with pytest.raises(CifarFormatError, match="refusing to load"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_not_a_tarball(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(CifarFormatError, match="not a readable tar"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_absent_without_download_says_where(tmp_path):
    with pytest.raises(DownloadError, match=r"download=False.*cifar-10-python.tar.gz.*c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", root=tmp_path / "data", download=False)


# ---------- download: the fetch function is replaced by a local copy ----------

def _serve(monkeypatch, source):
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        shutil.copyfile(source, dest)
    monkeypatch.setattr(download_mod, "fetch", fake_fetch)
    return calls


def test_download_when_missing_then_reuse(tmp_path, monkeypatch):
    made = write_cifar(tmp_path / "src", np.random.default_rng(7))
    calls = _serve(monkeypatch, made["path"])
    monkeypatch.setattr(cifar_mod, "CIFAR10_MD5", md5_file(made["path"]))
    root = tmp_path / "data"
    ds = load_dataset("cifar10", root=root)
    assert calls == [cifar_mod.CIFAR10_URL]
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]  # no temporary left
    np.testing.assert_array_equal(ds.images, made["images"])
    load_dataset("cifar10", root=root)
    assert len(calls) == 1  # present now: not fetched again


def test_download_md5_mismatch_deletes_file(tmp_path, monkeypatch):
    made = write_cifar(tmp_path / "src", np.random.default_rng(8))
    _serve(monkeypatch, made["path"])  # our fixture is not the published file: its MD5 differs
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="expected the published c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", root=root)
    assert list(root.iterdir()) == []


def test_download_network_failure_explains(tmp_path, monkeypatch):
    def offline(url, dest):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(download_mod, "fetch", offline)
    with pytest.raises(DownloadError, match=r"downloading it failed.*Name or service.*put it in"):
        load_dataset("cifar10", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    def half(url, dest):
        dest.write_bytes(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(download_mod, "fetch", half)
    with pytest.raises(KeyboardInterrupt):
        download_mod.download("http://example.invalid/f", tmp_path / "f", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_tarball_with_other_members_order(tmp_path):
    """Members may come in any order inside the archive; the training batches still come first."""
    made = write_cifar(tmp_path / "src", np.random.default_rng(9), tar=False)
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name in ["test_batch", "data_batch_5", "batches.meta", "data_batch_1", "data_batch_3",
                     "data_batch_2", "data_batch_4"]:
            blob = (made["path"] / name).read_bytes()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.images, made["images"])
    assert cifar_row(ds.images[0]).tolist() == made["batches"]["data_batch_1"][b"data"][0].tolist()


# ---------- hostile and malformed batches (issue 11) ----------

def test_pickle_declaring_a_huge_length_is_one_error(tmp_path):
    import struct

    made = write_cifar(tmp_path, np.random.default_rng(7), tar=False)
    # protocol 4 BINBYTES8 claiming 2**60 bytes: the allocation fails before anything is read
    (made["path"] / "data_batch_2").write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**60) + b"abc")
    with pytest.raises(CifarFormatError, match=r"data_batch_2: not a readable CIFAR batch pickle .*larger than memory"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_label_beyond_the_class_names(tmp_path):
    made = write_cifar(tmp_path, np.random.default_rng(8), tar=False)
    batch = dict(made["batches"]["test_batch"])
    batch[b"labels"] = [99] + list(batch[b"labels"][1:])
    (made["path"] / "test_batch").write_bytes(pickle.dumps(batch, 2))
    with pytest.raises(CifarFormatError, match=r"test_batch: class id 99 but there are 10 class names .*ids 0..9"):
        load_dataset("cifar10", root=tmp_path, download=False)


@pytest.mark.parametrize("labels", [[1.5] * 6, [b"x"] * 6, [-1] + [0] * 5, [2**70] * 6, [[1, 2]] * 6])
def test_bad_label_values_name_the_file(tmp_path, labels):
    made = write_cifar(tmp_path, np.random.default_rng(9), tar=False)
    batch = dict(made["batches"]["data_batch_3"])
    batch[b"labels"] = labels
    (made["path"] / "data_batch_3").write_bytes(pickle.dumps(batch, 2))
    with pytest.raises(CifarFormatError, match=r"cifar-10-batches-py:data_batch_3: b'labels' "):
        load_dataset("cifar10", root=tmp_path, download=False)
