"""Ids at the top of int64 (issue 11): default ids that would overflow are a ValueError, not an OverflowError."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.codes import pack_bits
from dnnh.index import HammingIndex

TOP = 2**63 - 1
CODES = pack_bits(np.random.default_rng(0).integers(0, 2, (3, 16)).astype(np.uint8))


def test_default_ids_after_the_largest_int64_id():
    index = HammingIndex(16)
    index.add(CODES[:1], ids=[TOP])
    with pytest.raises(ValueError, match=r"default ids.*2\*\*63-1.*pass ids="):
        index.add(CODES[1:])
    assert index.ntotal == 1 and index.ids.tolist() == [TOP]
    index.add(CODES[1:0])  # adding nothing is still fine
    index.add(CODES[1:], ids=[5, 6])  # explicit ids still work
    assert index.ids.tolist() == [TOP, 5, 6]
    index.reset()
    index.add(CODES)
    assert index.ids.tolist() == [0, 1, 2]


def test_default_ids_up_to_the_last_one_then_refused():
    index = HammingIndex(16)
    index.add(CODES[:1], ids=[TOP - 2])
    index.add(CODES[1:2])  # TOP - 1
    with pytest.raises(ValueError, match="default ids"):
        index.add(CODES[:2])  # TOP and TOP + 1: the second does not fit
    index.add(CODES[2:])  # TOP fits
    assert index.ids.tolist() == [TOP - 2, TOP - 1, TOP]


def test_exhausted_index_saves_and_stays_exhausted(tmp_path):
    index = HammingIndex(16)
    index.add(CODES[:2], ids=[3, TOP])
    index.save(tmp_path / "i.dhi")
    back = HammingIndex.load(tmp_path / "i.dhi")
    assert back.ids.tolist() == [3, TOP]
    with pytest.raises(ValueError, match="default ids"):
        back.add(CODES[2:])
    fine = HammingIndex(16)
    fine.add(CODES[:1], ids=[TOP - 1])
    fine.save(tmp_path / "j.dhi")
    again = HammingIndex.load(tmp_path / "j.dhi")
    again.add(CODES[1:2])
    assert again.ids.tolist() == [TOP - 1, TOP]
