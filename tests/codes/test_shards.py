"""Shard file names: written and parsed by one module (dnnh.codes.shards)."""

from pathlib import Path

import pytest

from dnnh.codes.shards import check_shards, parse_shard_name, shard_name


def test_names_round_trip_and_plain_files_are_not_shards():
    assert shard_name(2, 12) == "codes_database.part-002-of-012.npz"
    assert parse_shard_name(shard_name(2, 12)) == (2, 12)
    assert parse_shard_name("codes_database.npz") is None
    with pytest.raises(ValueError, match="0 <= I < N"):
        shard_name(3, 3)


def test_a_set_must_be_whole_and_one_set():
    parts = [Path(shard_name(i, 3)) for i in range(3)]
    check_shards(parts)
    check_shards([Path("codes_database.npz")])
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        check_shards([parts[0], parts[2]])
    with pytest.raises(ValueError, match="names a part twice"):
        check_shards(parts + [parts[0]])
    with pytest.raises(ValueError, match="mixes shard sets"):
        check_shards(parts + [Path(shard_name(0, 4))])
