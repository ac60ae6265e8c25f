"""Bad input is refused at the boundary with a message naming what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest

from dnnh.metrics import mean_average_precision, precision_within_radius, retrieval_report

Q = np.array([[0, 1, 1, 0], [1, 1, 0, 0]])
DB = np.array([[0, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1]])
QL, DL = np.array([0, 1]), np.array([0, 1, 1])


def test_code_width_mismatch():
    with pytest.raises(ValueError, match=r"code width mismatch: query_bits have 4 bits per code but db_bits have 5"):
        mean_average_precision(Q, np.zeros((3, 5), int), QL, DL)


@pytest.mark.parametrize(
    "bits,pattern",
    [
        (np.array([[0, 2, 1, 0], [1, 1, 0, 0]]), r"query_bits must hold only 0 and 1"),
        (np.array([[0, 0.5, 1, 0], [1, 1, 0, 0]]), r"query_bits must hold only 0 and 1"),
        (np.array([0, 1, 1, 0]), r"query_bits must be a 2-D"),
        (np.zeros((0, 4), int), r"query_bits must hold at least one code"),
        (np.array([[-1, 1, 1, 0], [1, 1, 0, 0]]), r"query_bits must hold only 0 and 1"),
    ],
)
def test_bad_codes(bits, pattern):
    with pytest.raises(ValueError, match=pattern):
        mean_average_precision(bits, DB, QL, DL)


def test_float_and_bool_codes_that_are_0_1_are_accepted():
    expect = mean_average_precision(Q, DB, QL, DL)
    assert mean_average_precision(Q.astype(np.float32), DB.astype(bool), QL, DL) == expect


@pytest.mark.parametrize(
    "ql,dl,pattern",
    [
        (
            QL,
            np.eye(3, dtype=int),
            r"same kind.*query_labels as 1-D class ids.*db_labels as 2-D multi-hot of shape \(3, 3\)",
        ),
        (np.eye(2, 3, dtype=int), np.eye(3, 4, dtype=int), r"query_labels have 3 label columns but db_labels have 4"),
        (np.array([0, 1, 2]), DL, r"query_labels has 3 rows but query_bits has 2 codes"),
        (QL, np.array([0, 1]), r"db_labels has 2 rows but db_bits has 3 codes"),
        (np.array([0.0, 1.0]), DL, r"1-D labels must be integer class ids; got dtype float64"),
        (np.array([[0, 2], [1, 0]]), np.eye(3, 2, dtype=int), r"query_labels must hold only 0 and 1"),
        (np.zeros((2, 1, 1), int), DL, r"query_labels must be 1-D integer class ids or a 2-D 0/1 multi-hot"),
        (np.array(["a", "b"]), DL, r"integer class ids"),
    ],
)
def test_bad_labels(ql, dl, pattern):
    with pytest.raises(ValueError, match=pattern):
        mean_average_precision(Q, DB, ql, dl)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(normalize="mean"), r"normalize must be one of 'retrieved', 'all_relevant', 'capped'; got 'mean'"),
        (dict(empty="ignore"), r"empty must be one of 'zero', 'skip'; got 'ignore'"),
        (dict(ties="random"), r"ties must be one of 'index', 'optimistic', 'pessimistic'; got 'random'"),
        (dict(topk=0), r"topk must be an integer >= 1; got 0"),
        (dict(topk=2.0), r"topk must be an integer >= 1; got 2.0 \(float\)"),
        (dict(topk=True), r"topk must be an integer"),
        (dict(chunk_size=0), r"chunk_size must be an integer >= 1"),
        (dict(max_memory=0), r"max_memory must be an integer >= 1"),
    ],
)
def test_bad_map_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        mean_average_precision(Q, DB, QL, DL, **kwargs)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(radius=-1), r"radius must be an integer >= 0; got -1"),
        (dict(empty_ball="nan"), r"empty_ball must be one of 'zero', 'skip'"),
        (dict(precision_at=(1, 4)), r"precision_at entries must be <= the database size 3; got \[4\]"),
        (dict(precision_at=(0,)), r"precision_at entries must be an integer >= 1"),
    ],
)
def test_bad_report_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        retrieval_report(Q, DB, QL, DL, **kwargs)


def test_precision_within_radius_validates_too():
    with pytest.raises(ValueError, match=r"radius must be an integer >= 0"):
        precision_within_radius(Q, DB, QL, DL, radius=1.5)
    with pytest.raises(ValueError, match=r"code width mismatch"):
        precision_within_radius(Q, np.zeros((3, 8), int), QL, DL)
