import pytest

from dnnh.atomic import atomic_open, atomic_write_text


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.bin"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_write_replaces_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "x.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
