"""MNIST-format IDX files: pixels and labels back exactly, gz or not, and clear errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from dnnh.data import IdxFormatError, load_dataset, read_idx
from support.builders import idx_bytes, write_idx_set


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_pixels_labels_and_test_mask(tmp_path, gz):
    data = write_idx_set(tmp_path, np.random.default_rng(0), gz=gz)
    ds = load_dataset("mnist", root=tmp_path)
    assert ds.images.shape == (17, 28, 28, 1) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:12, :, :, 0], data["train_images"])
    np.testing.assert_array_equal(ds.images[12:, :, :, 0], data["test_images"])
    np.testing.assert_array_equal(ds.labels, np.concatenate([data["train_labels"], data["test_labels"]]))
    np.testing.assert_array_equal(ds.is_test, np.arange(17) >= 12)
    assert ds.images.flags.writeable  # torch.from_numpy warns on read-only arrays
    assert ds.name == "mnist" and ds.class_names == [str(c) for c in range(10)]


def test_fashion_mnist_from_root_with_dotted_names_in_raw(tmp_path):
    """torchvision keeps files in raw/; some mirrors write train-images.idx3-ubyte."""
    raw = tmp_path / "raw"
    data = write_idx_set(raw, np.random.default_rng(2), gz=False)
    for f in raw.iterdir():
        f.rename(raw / f.name.replace("-idx", ".idx"))
    ds = load_dataset("fashion_mnist", root=tmp_path)
    np.testing.assert_array_equal(ds.images[0, :, :, 0], data["train_images"][0])
    assert ds.class_names[9] == "Ankle boot"


def test_gzip_detected_by_content_not_name(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x-idx3-ubyte").write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(tmp_path / "x-idx3-ubyte"), arr)


@pytest.mark.parametrize("code,values", [(0x0B, np.array([-2, 300], dtype=np.int16)),
                                         (0x0C, np.array([[1, -70000]], dtype=np.int32)),
                                         (0x0D, np.array([1.5, -2.25], dtype=np.float32)),
                                         (0x0E, np.array([3.125], dtype=np.float64))])
def test_other_idx_types_big_endian(tmp_path, code, values):
    (tmp_path / "f").write_bytes(idx_bytes(values, code))
    out = read_idx(tmp_path / "f")
    np.testing.assert_array_equal(out, values)
    assert out.dtype.isnative


def test_wrong_magic_is_named(tmp_path):
    data = write_idx_set(tmp_path, np.random.default_rng(3), gz=False)
    # Swap: the labels file where the images file should be.
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(data["train_labels"]))
    with pytest.raises(IdxFormatError, match=r"train-images-idx3-ubyte: magic number 2049 .*expected 2051"):
        load_dataset("mnist", root=tmp_path)


def test_not_idx_at_all(tmp_path):
    (tmp_path / "f").write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        read_idx(tmp_path / "f")


@pytest.mark.parametrize("cut", [2, 10, 4 + 12 + 50])
def test_truncated_file(tmp_path, cut):
    raw = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    (tmp_path / "f.gz").write_bytes(gzip.compress(raw[:cut]))
    with pytest.raises(IdxFormatError, match="truncated"):
        read_idx(tmp_path / "f.gz")


def test_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint8) % 7))
    (tmp_path / "f.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(IdxFormatError, match="f.gz"):
        read_idx(tmp_path / "f.gz")


def test_trailing_data(tmp_path):
    (tmp_path / "f").write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\x00")
    with pytest.raises(IdxFormatError, match="more data than"):
        read_idx(tmp_path / "f")


def test_image_label_count_mismatch(tmp_path):
    write_idx_set(tmp_path, np.random.default_rng(4), gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(IdxFormatError, match="5 images but .* 4 labels"):
        load_dataset("mnist", root=tmp_path)


def test_missing_files_listed(tmp_path):
    write_idx_set(tmp_path, np.random.default_rng(5))
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_dataset("mnist", root=tmp_path)


def test_fashion_mnist_found_without_root_in_debians_folder(tmp_path, monkeypatch):
    """Debian's dataset-fashion-mnist layout (four .gz files in one folder), found with no root."""
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    data = write_idx_set(system, np.random.default_rng(4), gz=True)
    monkeypatch.setattr("dnnh.data.idx.FASHION_SYSTEM_ROOT", system)
    ds = load_dataset("fashion-mnist")
    np.testing.assert_array_equal(ds.images[:12, :, :, 0], data["train_images"])
    np.testing.assert_array_equal(ds.labels[12:], data["test_labels"])
    assert int(ds.is_test.sum()) == 5 and ds.name == "fashion-mnist"


def test_fashion_mnist_without_root_or_system_copy_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("dnnh.data.idx.FASHION_SYSTEM_ROOT", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
