"""Issue 25.19: a missing image file is one line naming it and what was expected, not the raw errno text."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from dnnh.cli.main import main
from dnnh.data import load_image_folder, read_image


def assert_one_line_naming(err: str, path) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert f"image file {path} does not exist (expected an image file" in err and "Errno" not in err, err


@pytest.mark.parametrize("command", ["search", "encode"])
def test_a_missing_query_image_is_one_line(tiny_run, tmp_path, capsys, command):
    """Before: "dnnh search: [Errno 2] No such file or directory: 'nope.png'"."""
    missing = tmp_path / "nope.png"
    argv = (["search", str(missing), "--run", str(tiny_run)] if command == "search"
            else ["encode", "--run", str(tiny_run), "--images", str(missing), "--out", str(tmp_path)])
    capsys.readouterr()
    assert main(argv) == 1
    assert_one_line_naming(capsys.readouterr().err, missing)


def test_an_image_removed_after_the_folder_was_listed_is_named(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / label / f"{i}.png")
    dataset = load_image_folder(tmp_path)
    gone = dataset.paths[1]
    os.remove(gone)
    with pytest.raises(FileNotFoundError) as caught:
        dataset.load_image(1)
    assert_one_line_naming(str(caught.value), gone)
    with pytest.raises(Exception, match="is a folder, not an image file"):
        read_image(tmp_path)
