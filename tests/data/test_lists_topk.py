"""The K of mAP@K a list folder is reported with: DeepHash-pytorch's per-dataset topK, a flag over it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dnnh.data.dataset import ArrayDataset
from dnnh.data.lists import dataset_metric, reported_topk
from dnnh.data.registry import load_dataset


@pytest.mark.parametrize("folder, k", [
    ("imagenet", 1000), ("ImageNet-100", 1000), ("nuswide_21", 5000), ("nuswide_81_m", 5000), ("nus_wide_21", 5000),
    ("coco", 5000), ("MS-COCO", 5000), ("cifar10", None), ("cifar10-1", None), ("mirflickr", None),
    ("voc2012", None), ("my_photos", None)])
def test_topk_follows_deephash_pytorch_by_dataset_name(folder, k):
    topk, why = dataset_metric(folder)
    assert topk == k
    assert (f"mAP@{k}" in why) if k else ("whole database" in why)


def _lists(folder, n=6):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        lines.append(f"{i}.png {int(i % 2 == 0)} {int(i % 2 == 1)}\n")
    for name, rows in (("database.txt", lines[:4]), ("train.txt", lines[:2]), ("test.txt", lines[4:])):
        (folder / name).write_text("".join(rows))
    return folder


def test_reported_topk_takes_the_flag_then_the_list_folder_then_the_whole_database(tmp_path):
    coco = load_dataset(_lists(tmp_path / "coco"))
    assert reported_topk(coco) == (5000, coco.metric) and "MS-COCO" in coco.metric
    assert reported_topk(coco, 100) == (100, "mAP@100 (as asked)")
    assert reported_topk(load_dataset(_lists(tmp_path / "cifar10")))[0] is None
    assert reported_topk(ArrayDataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1])))[0] is None
    assert reported_topk(load_dataset(tmp_path / "coco", topk=200))[0] == 200  # the loader's option is recorded too
