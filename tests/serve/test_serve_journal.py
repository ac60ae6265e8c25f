"""The store's log format: a torn last append is cut off, damage before the end is refused untouched."""

from __future__ import annotations

import os

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


@pytest.mark.parametrize("tail", [b'1234abcd {"seq": 3', encode_record({"seq": 3})[:-1], b"\x00" * 40])
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


def test_a_complete_last_record_with_a_bad_checksum_is_damage_not_a_torn_tail(tmp_path):
    """Issue 25.1: a bit flip in the last record used to be cut off silently (an acknowledged add lost)."""
    log = tmp_path / "wal.log"
    write_log(log, {"seq": 1}, {"seq": 2, "op": "add"})
    data = log.read_bytes().replace(b'"seq":2', b'"seq":3')  # one flipped digit, newline intact
    log.write_bytes(data)
    with pytest.raises(StoreError, match=r"damaged at record 2 \(of 2, the last\)"):
        list(read_records(log))
    assert log.read_bytes() == data  # nothing cut


def test_a_failed_append_is_rolled_back_and_the_next_one_is_whole(tmp_path, monkeypatch):
    """Issue 25.4: a full disk mid-append left half a line that the next record was glued to."""
    import errno

    from dnnh.serve import journal as journal_module

    log = tmp_path / "wal.log"
    journal = Journal(log)
    journal.append({"seq": 1})
    real = journal_module.write_line

    def half_then_full(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module, "write_line", half_then_full)
    with pytest.raises(journal_module.StoreWriteError, match="disk is full") as info:
        journal.append({"seq": 2})
    assert info.value.status == 507
    monkeypatch.setattr(journal_module, "write_line", real)
    journal.append({"seq": 3})
    journal.close()
    assert [r["seq"] for r in read_records(log)] == [1, 3]


def test_a_closed_journal_refuses_to_append(tmp_path):
    journal = Journal(tmp_path / "wal.log")
    journal.close()
    assert journal.closed
    with pytest.raises(StoreError, match="is closed"):
        journal.append({"seq": 1})
