"""Split files are validated on read (issue 11): every problem one error naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnnh.data import Split, make_split, paper_split

LABELS = np.repeat(np.arange(4), 30)


def _payload(**parts):
    base = {"format": "dnnh-split/1", "protocol": "paper", "seed": 0,
            "query": [0, 1], "database": [2, 3, 4, 5], "train": [2, 3], "val": [4]}
    base.update(parts)
    return base


def _write(tmp_path, payload, name="split.json"):
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


def test_round_trip_keeps_counts_and_source(tmp_path):
    split = paper_split(LABELS, 3, 10, seed=1)
    assert split.counts == {"query": {str(c): 3 for c in range(4)}, "train": {str(c): 10 for c in range(4)}}
    split.save(tmp_path / "s.json")
    back = Split.load(tmp_path / "s.json")
    assert back == split and back.counts == split.counts and back.source == tmp_path / "s.json"
    assert split.source is None and "3 queries and 10 training images a class" in back.summary()


def test_old_split_file_without_counts_still_loads(tmp_path):
    back = Split.load(_write(tmp_path, _payload()))
    assert back.counts is None and back.query.tolist() == [0, 1] and back.val.dtype == np.int64


def test_file_without_val_names_the_file(tmp_path):
    payload = _payload()
    del payload["val"]
    with pytest.raises(ValueError, match=r"split file .*split.json lacks 'val'"):
        Split.load(_write(tmp_path, payload))


@pytest.mark.parametrize("bad", [[1.5, 2], ["3"], [True], 7, [[1, 2]], [2**70]])
def test_bad_integers_name_file_and_part(tmp_path, bad):
    expected = r"split file .*split.json: 'train' (must be a list of integer positions|holds a position too large)"
    with pytest.raises(ValueError, match=expected):
        Split.load(_write(tmp_path, _payload(train=bad)))


def test_binary_and_broken_json(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=r"^cannot read split file .*bin.json: not a UTF-8 JSON file$"):
        Split.load(tmp_path / "bin.json")
    (tmp_path / "half.json").write_text('{"format": "dnnh-split/1", "query": [1, 2')
    with pytest.raises(ValueError, match=r"cannot read split file .*half.json: not valid JSON"):
        Split.load(tmp_path / "half.json")
    with pytest.raises(ValueError, match="is not a dnnh split file"):
        Split.load(_write(tmp_path, [1, 2, 3]))
    with pytest.raises(ValueError, match="is not a dnnh split file"):
        Split.load(_write(tmp_path, _payload(format="other/1")))
    with pytest.raises(FileNotFoundError, match="split file .*nope.json does not exist"):
        Split.load(tmp_path / "nope.json")


@pytest.mark.parametrize("parts, message", [
    ({"train": [0, 2]}, r"in both 'query' and 'train'.*query would find itself"),
    ({"database": [0, 2, 3, 4, 5]}, r"in both 'query' and 'database'"),
    ({"val": [1], "database": [1, 2, 3, 4, 5]}, r"in both 'query' and 'database'"),
    ({"val": [3]}, r"in both 'train' and 'val'"),
    ({"train": [2, 9]}, r"1 train position\(s\) are not in 'database', e.g. 9"),
    ({"val": [8]}, r"val position\(s\) are not in 'database'"),
    ({"query": [0, 0, 1]}, r"'query' lists 1 position\(s\) more than once, e.g. 0"),
    ({"query": [-1, 0]}, r"'query' holds the negative position -1"),
])
def test_inconsistent_parts_refused_naming_file(tmp_path, parts, message):
    with pytest.raises(ValueError, match=r"split file .*split.json: (\d+ )?(position\(s\) are )?" + message):
        Split.load(_write(tmp_path, _payload(**parts)))


def test_constructor_validates_too():
    with pytest.raises(ValueError, match=r"^split: .*'query' and 'train'"):
        Split(query=np.array([0]), database=np.array([1, 2]), train=np.array([0]), val=np.array([], np.int64))
    with pytest.raises(TypeError, match="integer positions"):
        Split(query=np.array([0.5]), database=np.array([1]), train=np.array([1]), val=np.array([], np.int64))


def test_check_fits_reports_the_exact_position_and_file(tmp_path):
    path = _write(tmp_path, _payload(database=[2, 3, 4, 5, 1796], train=[2, 1796]))
    split = Split.load(path)
    with pytest.raises(ValueError, match=r"split file .*split.json: 'database' holds position 1796, but the dataset "
                                         r"has 1000 items \(positions 0..999\)"):
        split.check_fits(1000)
    split.check_fits(1797)
    made = make_split_for(6)
    with pytest.raises(ValueError, match=r"^split: 'database' holds position 5, but the dataset has 5 items"):
        made.check_fits(5)


def test_negative_position_is_reported_as_itself():
    # validate() refuses negatives; check_fits reports one as itself too (never as the largest index).
    split = make_split_for(6)
    object.__setattr__(split, "query", np.array([-1, 1]))
    with pytest.raises(ValueError, match=r"'query' holds position -1, but"):
        split.check_fits(1797)


def make_split_for(n: int) -> Split:
    return Split(query=np.array([0]), database=np.arange(1, n), train=np.array([1]), val=np.array([2]))


def test_equality_ignores_source_and_counts(tmp_path):
    a = paper_split(LABELS, 3, 10, seed=1)
    a.save(tmp_path / "a.json")
    b = Split.load(tmp_path / "a.json")
    assert a == b and a != paper_split(LABELS, 3, 10, seed=2)
    assert make_split  # exported
