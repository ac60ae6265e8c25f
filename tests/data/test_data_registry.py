"""load_dataset: names, aliases, recognising a path by what is there, and option errors."""

from __future__ import annotations

import numpy as np
import pytest
import dnnh.data as data
from dnnh.data import ArrayDataset, FileDataset, load_dataset
from support.builders import save_image, write_cifar, write_idx_set, write_svhn_mat


def test_exports():
    for name in ("load_dataset", "make_split", "load_cifar10", "load_svhn", "load_nuswide", "load_mnist",
                 "load_fashion_mnist", "load_image_folder", "load_manifest", "load_digits", "Split"):
        assert hasattr(data, name)
    assert data.dataset_names() == ["digits", "mnist", "fashion-mnist", "cifar10", "svhn", "nus-wide"]


def test_digits_by_name():
    ds = load_dataset("digits")
    assert isinstance(ds, ArrayDataset) and ds.images.shape == (1797, 8, 8, 1) and ds.is_test is None
    with pytest.raises(ValueError, match="root is not used"):
        load_dataset("digits", root="/tmp")


def test_paths_recognised_by_content(tmp_path):
    rng = np.random.default_rng(0)
    write_cifar(tmp_path / "c", rng, per_batch=2, tar=False)
    assert load_dataset(tmp_path / "c" / "cifar-10-batches-py").name == "cifar10"
    assert load_dataset(tmp_path / "c").name == "cifar10"
    write_cifar(tmp_path / "t", rng, per_batch=2, tar=True)
    assert load_dataset(tmp_path / "t" / "cifar-10-python.tar.gz").name == "cifar10"
    write_idx_set(tmp_path / "fashion", rng)
    assert load_dataset(tmp_path / "fashion").name == "fashion-mnist"
    write_idx_set(tmp_path / "digits_idx", rng)
    assert load_dataset(str(tmp_path / "digits_idx")).name == "mnist"
    write_svhn_mat(tmp_path / "s" / "train_32x32.mat", rng, 2)
    write_svhn_mat(tmp_path / "s" / "test_32x32.mat", rng, 2)
    assert load_dataset(tmp_path / "s", download=False).name == "svhn"
    save_image(tmp_path / "pics" / "a" / "1.png", np.zeros((4, 4), np.uint8))
    assert isinstance(load_dataset(tmp_path / "pics"), FileDataset)


def test_unknown_name_or_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'imagenet' is not a dataset name \(digits, mnist"):
        load_dataset("imagenet")
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="not a manifest"):
        load_dataset(tmp_path / "x.bin")


def test_unknown_option_lists_accepted(tmp_path):
    with pytest.raises(ValueError, match=r"cifar10: unknown option\(s\) image_size; accepted: download"):
        load_dataset("cifar10", root=tmp_path, image_size=32)
    save_image(tmp_path / "pics" / "a" / "1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="unknown option.*concepts.*accepted: channels, image_size"):
        load_dataset(tmp_path / "pics", concepts=21)


def test_root_with_a_folder_path_is_refused(tmp_path):
    save_image(tmp_path / "pics" / "a" / "1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="root is only used"):
        load_dataset(tmp_path / "pics", root=tmp_path)


def test_skip_corrupt_is_harmless_for_array_sets():
    assert len(load_dataset("digits", skip_corrupt=True)) == 1797
