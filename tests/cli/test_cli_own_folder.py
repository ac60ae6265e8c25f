"""A user's own image folder through the command line: the adaptive split, changed data, corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dnnh.cli.main import main

FAST = ["--bits", "12", "--input-size", "8", "--epochs", "1", "--batch-size", "20", "--threads", "1",
        "--workers", "0", "--quiet"]


@pytest.fixture
def folder(tmp_path, digits):
    """Three classes of 30 digit images each, as PNG files in class folders."""
    root = tmp_path / "images"
    for c in range(3):
        (root / str(c)).mkdir(parents=True)
        for i, item in enumerate(np.flatnonzero(digits.labels == c)[:30]):
            Image.fromarray(digits.images[item, :, :, 0]).save(root / str(c) / f"{i:03d}.png")
    return root


def test_a_small_folder_trains_with_the_default_split_which_says_what_it_chose(folder, tmp_path, capsys):
    """30 a class is short of the paper's 600: the default adapts instead of refusing."""
    assert main(["train", "--data", str(folder), "--run", str(tmp_path / "r"), *FAST[:-1]]) == 0
    out = capsys.readouterr().out
    assert "3 queries" in out.splitlines()[0] or "queries" in out.splitlines()[0]
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    assert split["protocol"] == "auto" and len(split["query"]) == 9  # 10% of 30, for each of 3 classes
    assert not set(split["query"]) & set(split["train"]) and not set(split["query"]) & set(split["database"])
    assert main(["train", "--data", str(folder), "--run", str(tmp_path / "p"), "--protocol", "paper", *FAST]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--queries-per-class" in err and "--protocol auto" in err


def test_changed_data_is_refused_by_eval_encode_and_index_build(folder, tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "--data", str(folder), "--run", str(run), *FAST]) == 0
    metrics = (run / "metrics.json").read_bytes()
    # One image removed, one added: the same count, but positions now point at other files.
    (folder / "1" / "000.png").unlink()
    Image.fromarray(np.full((8, 8), 255, dtype=np.uint8)).save(folder / "2" / "999.png")
    capsys.readouterr()
    for argv in (["eval", "--run", str(run)], ["encode", "--run", str(run), "--out", str(tmp_path / "codes")],
                 ["index", "build", "--run", str(run), "--out", str(tmp_path / "db.dhi")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "the data differs from what" in err and "1 removed" in err, err
    assert (run / "metrics.json").read_bytes() == metrics  # nothing was overwritten
    assert not (tmp_path / "db.dhi").exists()


def test_a_corrupt_image_anywhere_in_the_split_stops_training_before_it_starts(folder, tmp_path, capsys):
    (folder / "2" / "017.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["train", "--data", str(folder), "--run", str(tmp_path / "r"), *FAST]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "017.png" in err and "--skip-corrupt" in err
    assert not (tmp_path / "r" / "checkpoint").exists()
    assert main(["train", "--data", str(folder), "--run", str(tmp_path / "s"), "--skip-corrupt", *FAST]) == 0
    err = capsys.readouterr().err
    assert sum("017.png" in line for line in err.splitlines()) == 1  # reported once, as one line
    assert "warning" in err and "UserWarning" not in err and ".py:" not in err
