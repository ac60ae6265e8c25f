"""A run on DeepHash-pytorch's list files is scored with its dataset's published mAP@K (issue 23.5).

``train`` and ``eval`` ask :func:`dnnh.data.lists.reported_topk`: the ``--topk`` flag, else the
K the folder's dataset is reported with (MS-COCO: 5000), else the whole database; they say which.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from dnnh.cli.main import main

TINY = ["--bits", "12", "--input-size", "8", "--epochs", "1", "--batch-size", "20", "--threads", "1",
        "--workers", "0"]


def _coco_lists(folder):
    """A list folder named like MS-COCO: 2 classes, 16 training, 6 test and 30 database images."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(36):
        label = i % 2
        image = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8) + 150 * label
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.png")
        lines.append(f"{i}.png {int(label == 0)} {int(label == 1)}\n")
    for name, rows in (("train.txt", lines[:16]), ("database.txt", lines[:30]), ("test.txt", lines[30:])):
        (folder / name).write_text("".join(rows))
    return folder


def test_train_and_eval_report_the_lists_dataset_metric(tmp_path, capsys):
    data, run = _coco_lists(tmp_path / "coco"), tmp_path / "run"
    assert main(["train", "--data", str(data), "--protocol", "lists", "--run", str(run), *TINY]) == 0
    out = capsys.readouterr().out
    assert "scoring: mAP@5000, as MS-COCO is reported" in out
    assert json.loads((run / "metrics.json").read_text())["topk"] == 30  # K=5000, capped at the 30-item database

    assert main(["eval", "--run", str(run), "--topk", "10"]) == 0
    assert "scoring: mAP@10 (as asked)" in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["topk"] == 10
