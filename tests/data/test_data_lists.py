"""DeepHash-pytorch list folders: train.txt / test.txt / database.txt written in the publisher's layout
(``path 0 1 0 ...``, paths relative to an image root) load as one dataset whose split is the files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dnnh.data.lists import ListDataset
from dnnh.data.registry import load_dataset, make_split


def _write(folder, image_root, parts: dict[str, list[tuple[str, list[int]]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, rows in parts.items():
        lines = []
        for rel, vector in rows:
            path = image_root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
            lines.append(f"{rel} {' '.join(map(str, vector))}\n")
        (folder / name).write_text("".join(lines))


def _one_hot(c: int, n: int = 3) -> list[int]:
    return [int(j == c) for j in range(n)]


def test_one_hot_lists_are_a_single_label_set_with_the_published_split(tmp_path):
    images = tmp_path / "images"
    database = [(f"db/{c}_{i}.png", _one_hot(c)) for c in range(3) for i in range(4)]
    _write(tmp_path / "cifar10", images, {
        "database.txt": database,
        "train.txt": database[::2],  # DeepHash's training images are database images
        "test.txt": [(f"test/{c}.png", _one_hot(c)) for c in range(3)],
    })
    data = load_dataset(tmp_path / "cifar10", root=images)
    assert isinstance(data, ListDataset) and len(data) == 15  # 12 database (6 of them training) + 3 queries
    assert data.labels.ndim == 1 and data.topk is None and "mAP@all" in data.metric
    split = make_split(data, protocol="lists", val_fraction=0)
    names = [p.relative_to(images).as_posix() for p in data.paths]
    assert [names[i] for i in split.database] == [r for r, _ in database]
    assert [names[i] for i in split.train] == [r for r, _ in database[::2]]
    assert [names[i] for i in split.query] == [f"test/{c}.png" for c in range(3)]
    assert list(data.labels[split.query]) == [0, 1, 2]
    carved = make_split(data, protocol="lists", val_fraction=0.5, seed=1)
    assert set(carved.train) | set(carved.val) == set(split.train) and not set(carved.train) & set(carved.val)


def test_multi_hot_lists_keep_the_matrix_and_the_dataset_metric(tmp_path):
    rows = [(f"im/{i}.png", [1, int(i % 2), 0, int(i % 3 == 0)]) for i in range(8)]
    _write(tmp_path / "nus_wide_21", tmp_path / "nus_wide_21", {
        "database.txt": rows[:6], "train.txt": rows[:3], "test.txt": rows[6:]})
    data = load_dataset(tmp_path / "nus_wide_21")
    assert data.labels.shape == (8, 4) and data.topk == 5000 and "NUS-WIDE" in data.metric
    assert load_dataset(tmp_path / "nus_wide_21", topk=100).topk == 100


def test_inconsistent_lists_are_refused(tmp_path):
    rows = [(f"im/{i}.png", _one_hot(i % 3)) for i in range(6)]
    _write(tmp_path / "a", tmp_path / "a", {"database.txt": rows[:4], "train.txt": [rows[5]], "test.txt": [rows[4]]})
    data = load_dataset(tmp_path / "a")
    with pytest.raises(ValueError, match="train position.* not in 'database'"):
        make_split(data, protocol="lists", val_fraction=0)
    _write(tmp_path / "b", tmp_path / "b", {"database.txt": rows[:4], "train.txt": [(rows[0][0], _one_hot(2))],
                                            "test.txt": [rows[4]]})
    with pytest.raises(ValueError, match="other labels than in an earlier list"):
        load_dataset(tmp_path / "b")
    with pytest.raises(ValueError, match="protocol lists takes the split from train.txt"):
        make_split(load_dataset("digits"), protocol="lists")
