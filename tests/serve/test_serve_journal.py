"""The store's log format: a torn last append is cut off, damage before the end is refused untouched."""

from __future__ import annotations

import pytest

from dnnh.serve.journal import Journal, StoreError, decode_record, encode_record, read_records


def write_log(path, *records, tail=b""):
    journal = Journal(path)
    for record in records:
        journal.append(record)
    journal.close()
    with open(path, "ab") as fh:
        fh.write(tail)


def test_records_read_back_in_order_and_a_line_is_checksummed(tmp_path):
    log = tmp_path / "wal.log"
    write_log(log, {"seq": 1, "op": "add"}, {"seq": 2, "op": "delete", "id": 7})
    assert list(read_records(log)) == [{"seq": 1, "op": "add"}, {"seq": 2, "op": "delete", "id": 7}]
    line = encode_record({"seq": 3})
    assert decode_record(line.rstrip(b"\n")) == {"seq": 3}
    flipped = line.replace(b'"seq":3', b'"seq":4')
    assert decode_record(flipped.rstrip(b"\n")) is None  # the checksum no longer matches
    assert decode_record(b"not a record") is None and list(read_records(tmp_path / "absent.log")) == []


@pytest.mark.parametrize("tail", [b'1234abcd {"seq": 3', encode_record({"seq": 3})[:-1], b"garbage\n\n\n"])
def test_a_torn_last_append_is_cut_off(tmp_path, tail):
    log = tmp_path / "wal.log"
    write_log(log, {"seq": 1}, {"seq": 2}, tail=tail)
    good = len(encode_record({"seq": 1})) + len(encode_record({"seq": 2}))
    assert [r["seq"] for r in read_records(log)] == [1, 2]
    assert log.stat().st_size == good  # cut back to the last whole record


def test_damage_before_the_end_is_refused_and_the_file_is_left_alone(tmp_path):
    log = tmp_path / "wal.log"
    write_log(log, {"seq": 1}, {"seq": 2})
    data = log.read_bytes().replace(b'"seq":1', b'"seq":9', 1)
    log.write_bytes(data)
    with pytest.raises(StoreError, match=r"damaged at record 1 \(of 2\)"):
        list(read_records(log))
    assert log.read_bytes() == data


def test_a_closed_journal_refuses_to_append(tmp_path):
    journal = Journal(tmp_path / "wal.log")
    journal.close()
    assert journal.closed
    with pytest.raises(StoreError, match="is closed"):
        journal.append({"seq": 1})
