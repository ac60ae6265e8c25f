"""Codes files (issue 11): what is not a dnnh codes file is refused in one line naming it."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from dnnh.codes import CodeSet

BITS = np.random.default_rng(0).integers(0, 2, (5, 12)).astype(np.uint8)


def _npz(path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def test_round_trip(tmp_path):
    cs = CodeSet.from_bits(BITS, ids=np.arange(10, 15), labels=np.arange(5) % 2)
    cs.save(tmp_path / "c.npz")
    back = CodeSet.load(tmp_path / "c.npz")
    assert back.nbits == 12 and np.array_equal(back.bits, BITS) and back.ids.tolist() == [10, 11, 12, 13, 14]
    assert back.labels.tolist() == [0, 1, 0, 1, 0]


def test_text_file_named_npz(tmp_path):
    path = tmp_path / "codes.npz"
    path.write_text("hello, these are not codes\n")
    with pytest.raises(ValueError, match=r"^cannot read codes file .*codes.npz: not a .npz archive") as info:
        CodeSet.load(path)
    assert "allow_pickle" not in str(info.value)


def test_pickled_object_array_refused_without_numpy_advice(tmp_path):
    path = tmp_path / "evil.npz"
    codes = CodeSet.from_bits(BITS).codes
    _npz(path, codes=codes, nbits=np.int64(12), ids=np.arange(5), labels=np.array([{"a": 1}] * 5, dtype=object))
    with pytest.raises(ValueError, match=r"evil.npz: array 'labels' holds Python objects") as info:
        CodeSet.load(path)
    assert "allow_pickle" not in str(info.value) and "weights_only" not in str(info.value)


def test_float_ids_refused_not_truncated(tmp_path):
    path = tmp_path / "f.npz"
    _npz(path, codes=CodeSet.from_bits(BITS).codes, nbits=np.int64(12), ids=np.array([0.5, 1.7, 2, 3, 4]))
    with pytest.raises(TypeError, match=r"f.npz: ids must be integers.*float64"):
        CodeSet.load(path)
    with pytest.raises(TypeError, match="ids must be integers"):
        CodeSet.from_bits(BITS, ids=np.array([0.0, 1, 2, 3, 4]))


def test_labels_and_ids_length_must_agree(tmp_path):
    path = tmp_path / "l.npz"
    _npz(path, codes=CodeSet.from_bits(BITS).codes, nbits=np.int64(12), ids=np.arange(5), labels=np.arange(3))
    with pytest.raises(ValueError, match=r"l.npz: 5 codes but labels of shape \(3,\)"):
        CodeSet.load(path)
    _npz(path, codes=CodeSet.from_bits(BITS).codes, nbits=np.int64(12), ids=np.arange(4))
    with pytest.raises(ValueError, match=r"l.npz: 5 codes but 4 ids"):
        CodeSet.load(path)


def test_missing_keys_bad_nbits_missing_file_and_corrupt_zip(tmp_path):
    path = tmp_path / "k.npz"
    _npz(path, codes=CodeSet.from_bits(BITS).codes)
    with pytest.raises(ValueError, match=r"k.npz is not a dnnh codes file: missing \['ids', 'nbits'\]"):
        CodeSet.load(path)
    _npz(path, codes=CodeSet.from_bits(BITS).codes, nbits=np.float64(12.5), ids=np.arange(5))
    with pytest.raises(ValueError, match="'nbits' must be one integer"):
        CodeSet.load(path)
    with pytest.raises(FileNotFoundError, match="nope.npz does not exist"):
        CodeSet.load(tmp_path / "nope.npz")
    CodeSet.from_bits(BITS).save(path)
    blob = bytearray(path.read_bytes())
    start = blob.find(b"PK\x01\x02")  # the central directory: cut it off
    path.write_bytes(bytes(blob[:start]))
    with pytest.raises(ValueError, match="cannot read codes file .*k.npz"):
        CodeSet.load(path)
    with zipfile.ZipFile(path, "w") as zf:  # a zip, but not of .npy members
        zf.writestr("codes.npy", b"garbage")
        zf.writestr("nbits.npy", b"garbage")
        zf.writestr("ids.npy", b"garbage")
    with pytest.raises(ValueError, match="cannot read codes file .*k.npz"):
        CodeSet.load(path)
