"""`dnnh index build` and `dnnh index info`, run in-process through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dnnh.cli.main import main
from dnnh.codes import CodeSet
from dnnh.index import HammingIndex


@pytest.fixture()
def codes_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (40, 4), dtype=np.uint8).repeat(3, axis=0)
    bits = np.concatenate([bits, rng.integers(0, 2, (120, 20), dtype=np.uint8)], axis=1)
    cs = CodeSet.from_bits(bits, ids=np.arange(120) * 10 + 5, labels=rng.integers(0, 3, 120))
    path = tmp_path / "codes.npz"
    cs.save(path)
    return path


def test_build_then_info(codes_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out" / "db.dhi"
    assert main(["index", "build", "--codes", str(codes_file), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "indexed 120 codes of 24 bits" in said and str(out) in said
    index = HammingIndex.load(out, mmap=True)
    cs = CodeSet.load(codes_file)
    d, i = index.search(cs.codes[:3], 1)
    assert (d[:, 0] == 0).all() and i[:, 0].tolist() == [5, 15, 25]  # the codes file's ids, ties by insertion
    assert main(["index", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ntotal" in text and "120" in text and "checksum" in text and "ok" in text
    assert main(["index", "info", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["nbits"] == 24 and report["ntotal"] == 120 and report["ndistinct"] == index.ndistinct
    assert report["stored_ids"] == "int32" and report["checksum"] == "ok"


def test_user_errors_are_one_line(codes_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["index", "build", "--codes", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.dhi")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "codes file not found" in err
    assert main(["index", "info", str(tmp_path / "missing.dhi")]) == 1
    assert "index file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.dhi"
    bad.write_bytes(b"DNNHHIX\x00" + b"\x00" * 10)
    assert main(["index", "info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dnnh index: error:") and "truncated" in err
    assert main(["index", "build", "--codes", str(codes_file), "--out", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


def test_index_without_action_prints_help(capsys: pytest.CaptureFixture) -> None:
    assert main(["index"]) == 2
    assert "build" in capsys.readouterr().out
