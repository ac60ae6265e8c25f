"""Image folders with symbolic links (issue 11): each real file once, loops cut, nothing outside the root."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from dnnh.data import load_dataset
from support import builders
from support.builders import load_with_warnings, save_image
pytestmark = pytest.mark.skipif(os.name != "posix", reason="symbolic links")


def _pixels(value: int) -> np.ndarray:
    return np.full((4, 4), value, np.uint8)


@pytest.fixture
def three_classes(tmp_path):
    root = tmp_path / "data"
    for c in range(3):
        for i in range(2):
            save_image(root / str(c) / f"img{i}.png", _pixels(10 * c + i))
    return root



def test_loop_to_parent_neither_grows_nor_relabels(three_classes):
    (three_classes / "0" / "up").symlink_to("..")  # the probe: ln -s .. data/0/up
    ds, caught = load_with_warnings(three_classes)
    assert len(ds) == 6
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 2, 2])
    assert [p.relative_to(three_classes).as_posix() for p in ds.paths] == [
        f"{c}/img{i}.png" for c in range(3) for i in range(2)]
    for k in range(6):  # every image still carries its own class's pixels
        assert ds.load_image(k)[0, 0, 0] == 10 * int(ds.labels[k]) + k % 2
    assert len(caught) == 1 and "loop" in str(caught[0].message) and "up" in str(caught[0].message)
    assert caught[0].filename == builders.__file__  # attributed to the caller, not to a loader's internals


def test_loop_to_own_folder_and_deeper_loop(three_classes):
    (three_classes / "1" / "self").symlink_to(".")
    (three_classes / "2" / "sub").mkdir()
    save_image(three_classes / "2" / "sub" / "deep.png", _pixels(99))
    (three_classes / "2" / "sub" / "back").symlink_to("../..")
    ds, caught = load_with_warnings(three_classes)
    assert len(ds) == 7 and np.bincount(ds.labels).tolist() == [2, 2, 3]
    assert "skipped 2 symbolic link(s)" in str(caught[0].message)


def test_class_folder_linking_to_root_is_a_loop(three_classes):
    (three_classes / "all").symlink_to(".")
    ds, caught = load_with_warnings(three_classes)
    assert ds.class_names == ["0", "1", "2"] and len(ds) == 6 and caught


def test_duplicate_links_within_a_class_counted_once(three_classes):
    (three_classes / "0" / "again.png").symlink_to("img0.png")
    (three_classes / "0" / "dir").mkdir()
    (three_classes / "0" / "dir" / "third.png").symlink_to("../img0.png")
    ds, caught = load_with_warnings(three_classes)
    assert len(ds) == 6 and np.bincount(ds.labels).tolist() == [2, 2, 2]
    assert "2 file(s) reached twice" in str(caught[0].message)
    # the file kept is the first in sorted order of the paths as listed
    assert {p.name for p in ds.paths if p.parent.name == "0"} == {"again.png", "img1.png"}


def test_link_into_a_folder_inside_the_class_is_followed(three_classes):
    extra = three_classes / "1" / "pool"
    save_image(extra / "p.png", _pixels(7))
    (three_classes / "1" / "view").symlink_to("pool")  # a second route to the same files
    ds, _ = load_with_warnings(three_classes)
    assert np.bincount(ds.labels).tolist() == [2, 3, 2]


def test_same_file_in_two_classes_is_an_error_naming_both(three_classes):
    (three_classes / "2" / "stolen.png").symlink_to("../0/img1.png")
    with pytest.raises(ValueError, match=r"0/img1.png \(class '0'\) and .*2/stolen.png \(class '2'\) "
                                         r"are the same file"):
        load_dataset(three_classes)
    (three_classes / "2" / "stolen.png").unlink()
    (three_classes / "2" / "other").symlink_to("../1")
    with pytest.raises(ValueError, match="same file"):
        load_dataset(three_classes)


def test_links_out_of_the_root_refused_unless_allowed(three_classes, tmp_path):
    outside = tmp_path / "elsewhere"
    save_image(outside / "x.png", _pixels(200))
    (three_classes / "1" / "x.png").symlink_to(outside / "x.png")
    with pytest.raises(ValueError, match=r"1/x.png is a symbolic link to .*elsewhere/x.png, outside the image folder"
                                         r".*allow_outside_paths=True"):
        load_dataset(three_classes)
    ds, _ = load_with_warnings(three_classes, allow_outside_paths=True)
    assert len(ds) == 7 and ds.load_image(int(np.flatnonzero([p.name == "x.png" for p in ds.paths])[0]))[0, 0, 0] == 200
    (three_classes / "1" / "x.png").unlink()
    (three_classes / "3").symlink_to(outside)  # a whole class folder elsewhere
    with pytest.raises(ValueError, match="3 is a symbolic link to .*outside the image folder"):
        load_dataset(three_classes)
    assert load_with_warnings(three_classes, allow_outside_paths=True)[0].class_names == ["0", "1", "2", "3"]


def test_root_given_through_a_link_and_dangling_links(three_classes, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(three_classes)
    (three_classes / "0" / "gone.png").symlink_to("nothing-here.png")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = load_dataset(alias, skip_corrupt=True)
    assert len(ds) == 6 and [os.path.basename(p) for p in ds.skipped] == ["gone.png"]
