import os
import stat
import subprocess
import sys
import threading

import pytest

from dnnh.atomic import atomic_open, atomic_write_text, remove_leftovers


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


# ---------- modes and leftovers (issue 11) ----------

@pytest.fixture
def umask():
    """Set a umask for the test and restore the old one."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_umask_mode(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_text(tmp_path / "split.json", "{}")
    assert _mode(tmp_path / "split.json") == expected


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_existing_target_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "model.bin"
    atomic_write_text(target, "one")
    os.chmod(target, 0o640)
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and _mode(target) == 0o640
    os.chmod(target, 0o444)  # read-only for everyone: the rename still replaces it, mode kept
    atomic_write_text(target, "three")
    assert target.read_text() == "three" and _mode(target) == 0o444


def test_killed_write_leftover_removed_by_next_write(tmp_path):
    target = tmp_path / "state.pt"
    code = ("import os, sys\nfrom dnnh.atomic import atomic_open\n"
            "with atomic_open(sys.argv[1]) as fh:\n    fh.write(b'x' * 100000)\n    fh.flush()\n    os._exit(9)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(target)])
    assert proc.returncode == 9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".state.pt.") and leftovers[0].endswith(".tmp")
    atomic_write_text(target, "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_only_our_leftovers_for_this_target_are_removed(tmp_path):
    target = tmp_path / "x.bin"
    ours = tmp_path / ".x.bin.ab_cd123.tmp"
    others = [".x.bin.abc.tmp", ".y.bin.abcdefgh.tmp", ".x.bin.abcdefgh.tmp.bak", "x.bin.abcdefgh.tmp",
              ".x.binabcdefghi.tmp", ".x.bin.ABCDEFGH.tmp"]
    ours.write_bytes(b"half")
    for name in others:
        (tmp_path / name).write_bytes(b"keep")
    atomic_write_text(target, "new")
    names = {p.name for p in tmp_path.iterdir()}
    assert ours.name not in names and set(others) <= names and "x.bin" in names


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_leftover_held_by_a_live_writer_is_kept(tmp_path):
    import fcntl

    busy = tmp_path / ".x.bin.abcdefgh.tmp"
    busy.write_bytes(b"in progress")
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_leftovers(tmp_path / "x.bin") == []
        assert busy.exists()
    finally:
        os.close(fd)
    assert remove_leftovers(tmp_path / "x.bin") == [busy] and not busy.exists()


def test_concurrent_write_to_same_target_does_not_break_the_first(tmp_path):
    target = tmp_path / "t.bin"
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            with atomic_open(target) as fh:
                fh.write(b"slow")
                inside.set()
                release.wait(10)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    inside.wait(10)
    atomic_write_text(target, "fast")  # its cleanup must not take the slow writer's file
    release.set()
    t.join(10)
    assert not errors and target.read_text() == "slow"
    assert [p.name for p in tmp_path.iterdir()] == ["t.bin"]
