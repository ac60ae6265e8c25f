"""Small cases worked by hand; the arithmetic is in the comments, none of it from running the code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnnh.metrics import mean_average_precision, precision_within_radius, retrieval_report

# Case A, 4-bit codes, one query 0000 of class 0.
#   index  code  dist  class  relevant
#     0    0011   2      1      no
#     1    0001   1      1      no
#     2    0010   1      0      yes
#     3    0000   0      1      no
#     4    0100   1      1      no
#     5    1111   4      0      yes   <- the last database item
# Ranking by (distance, index): 3 | 1 2 4 | 0 | 5  -> relevance 0 0 1 0 0 1.
A_Q = np.array([[0, 0, 0, 0]])
A_DB = np.array([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]])
A_QL = np.array([0])
A_DL = np.array([1, 1, 0, 1, 1, 0])


def test_ties_are_broken_by_database_index():
    # relevant at ranks 3 and 6: AP = (1/3 + 2/6) / 2 = 1/3
    assert mean_average_precision(A_Q, A_DB, A_QL, A_DL) == pytest.approx(1 / 3)


def test_tie_bounds_put_relevant_items_first_or_last_within_a_distance():
    # optimistic: 3 | 2 1 4 | 0 | 5 -> relevant at 2 and 6: (1/2 + 2/6) / 2 = 5/12
    assert mean_average_precision(A_Q, A_DB, A_QL, A_DL, ties="optimistic") == pytest.approx(5 / 12)
    # pessimistic: 3 | 1 4 2 | 0 | 5 -> relevant at 4 and 6: (1/4 + 2/6) / 2 = 7/24
    assert mean_average_precision(A_Q, A_DB, A_QL, A_DL, ties="pessimistic") == pytest.approx(7 / 24)


def test_the_last_database_item_is_ranked():
    # query 00 of class 0; db 00 (class 1), 01 (class 1), 11 (class 0): the only relevant item is
    # last, at rank 3: AP = 1/3. A peer that drops the last item would report 0 (or skip the query).
    db = np.array([[0, 0], [0, 1], [1, 1]])
    got = mean_average_precision(np.array([[0, 0]]), db, np.array([0]), np.array([1, 1, 0]))
    assert got == pytest.approx(1 / 3)


def test_topk_truncates_and_divides_by_relevant_items_retrieved():
    # K = 3: top 3 = items 3, 1, 2 -> relevance 0 0 1; R_3 = 1; AP@3 = (1/3) / 1 = 1/3
    assert mean_average_precision(A_Q, A_DB, A_QL, A_DL, topk=3) == pytest.approx(1 / 3)
    # K = 4: top 4 = 3, 1, 2, 4 -> still only the hit at rank 3: AP@4 = 1/3
    assert mean_average_precision(A_Q, A_DB, A_QL, A_DL, topk=4) == pytest.approx(1 / 3)
    # K larger than the database is the whole ranking: plain AP = 1/3 (K is clipped to 6)
    rep = retrieval_report(A_Q, A_DB, A_QL, A_DL, topk=100)
    assert rep.topk == 6 and rep.map_at_k == pytest.approx(1 / 3)


def test_query_with_no_relevant_item_scores_zero_and_is_counted():
    # query 1: case A (AP 1/3). query 2: class 7, which no database item has: AP undefined -> 0.
    qb, ql = np.array([[0, 0, 0, 0], [1, 0, 1, 0]]), np.array([0, 7])
    # zero: (1/3 + 0) / 2 = 1/6 ; skip: 1/3 alone
    assert mean_average_precision(qb, A_DB, ql, A_DL) == pytest.approx(1 / 6)
    assert mean_average_precision(qb, A_DB, ql, A_DL, empty="skip") == pytest.approx(1 / 3)
    rep = retrieval_report(qb, A_DB, ql, A_DL, topk=2)
    # top 2 of query 1 = items 3, 1: no relevant item either -> two queries empty at K = 2
    assert rep.n_no_relevant == 1 and rep.n_no_relevant_at_k == 2
    assert rep.map == pytest.approx(1 / 6) and rep.map_at_k == 0.0


def test_skip_with_every_query_empty_is_nan():
    # K = 2 on case A: top 2 = items 3, 1, neither relevant; nothing is left to average
    assert math.isnan(mean_average_precision(A_Q, A_DB, A_QL, A_DL, topk=2, empty="skip"))


# Case N, 2-bit codes, query 00 of class 0: db 00 (c0), 01 (c1), 10 (c0), 11 (c0).
# Ranking 0 | 1 2 | 3 -> relevance 1 0 1 1; R = 3.
N_Q, N_QL = np.array([[0, 0]]), np.array([0])
N_DB, N_DL = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), np.array([0, 1, 0, 0])


@pytest.mark.parametrize(
    "normalize,expected",
    [
        ("retrieved", 1.0),  # top 2 = 1 0: sum P(k) rel(k) = 1/1; R_K = 1 -> 1
        ("all_relevant", 1 / 3),  # same numerator over R = 3
        ("capped", 1 / 2),  # over min(R, K) = min(3, 2) = 2
    ],
)
def test_ap_at_k_denominators(normalize, expected):
    assert mean_average_precision(N_Q, N_DB, N_QL, N_DL, topk=2, normalize=normalize) == pytest.approx(expected)


@pytest.mark.parametrize("normalize", ["retrieved", "all_relevant", "capped"])
def test_denominators_agree_over_the_whole_database(normalize):
    # (1/1 + 2/3 + 3/4) / 3 = (29/12) / 3 = 29/36 whatever the convention
    assert mean_average_precision(N_Q, N_DB, N_QL, N_DL, normalize=normalize) == pytest.approx(29 / 36)


def test_all_relevant_scores_a_miss_in_the_top_k_as_a_defined_zero():
    # case A, K = 2: no hit in the top 2 but R = 2 > 0, so AP@2 = 0 / 2 is defined and skip keeps it
    assert mean_average_precision(A_Q, A_DB, A_QL, A_DL, topk=2, normalize="all_relevant", empty="skip") == 0.0


def test_multilabel_relevance_is_sharing_a_label():
    # query 000 with concepts {0, 2}; 3-bit codes:
    #   index code dist labels   relevant
    #     0   001   1   {1}       no
    #     1   000   0   {2}       yes
    #     2   011   2   {0, 1}    yes
    #     3   010   1   {}        no
    #     4   111   3   {0, 2}    yes
    # ranking 1 | 0 3 | 2 | 4 -> relevance 1 0 0 1 1: AP = (1/1 + 2/4 + 3/5) / 3 = 2.1 / 3 = 0.7
    db = np.array([[0, 0, 1], [0, 0, 0], [0, 1, 1], [0, 1, 0], [1, 1, 1]])
    dl = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1]])
    assert mean_average_precision(np.zeros((1, 3), int), db, np.array([[1, 0, 1]]), dl) == pytest.approx(0.7)
    # top 3 = 1 0 3 -> relevance 1 0 0: AP@3 = 1/1 = 1
    assert mean_average_precision(np.zeros((1, 3), int), db, np.array([[1, 0, 1]]), dl, topk=3) == pytest.approx(1.0)


# Case R, 4-bit codes, two queries of class 0; db classes 0 1 0 0 1 (relevant: items 0, 2, 3; R = 3).
#   index code   dist to 0000   dist to 1111
#     0   0000        0              4
#     1   1000        1              3
#     2   0100        1              3
#     3   1100        2              2
#     4   1110        3              1
R_Q, R_QL = np.array([[0, 0, 0, 0], [1, 1, 1, 1]]), np.array([0, 0])
R_DB = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]])
R_DL = np.array([0, 1, 0, 0, 1])


def test_precision_within_radius_including_an_empty_ball():
    # radius 1: q1 ball {0, 1, 2}, 2 relevant -> 2/3; q2 ball {4} -> 0/1. Mean 1/3
    assert precision_within_radius(R_Q, R_DB, R_QL, R_DL, radius=1) == pytest.approx(1 / 3)
    # radius 2 (default): q1 {0, 1, 2, 3} -> 3/4; q2 {3, 4} -> 1/2. Mean 5/8
    assert precision_within_radius(R_Q, R_DB, R_QL, R_DL) == pytest.approx(5 / 8)
    # radius 0: q1 {0} -> 1; q2 empty ball -> 0 under "zero": 1/2; left out under "skip": 1
    assert precision_within_radius(R_Q, R_DB, R_QL, R_DL, radius=0) == pytest.approx(1 / 2)
    assert precision_within_radius(R_Q, R_DB, R_QL, R_DL, radius=0, empty_ball="skip") == pytest.approx(1.0)
    rep = retrieval_report(R_Q, R_DB, R_QL, R_DL, radius=0)
    assert rep.precision_radius == pytest.approx(1 / 2) and rep.empty_ball_fraction == pytest.approx(1 / 2)
    # the radius may exceed the code length: the ball is the whole database, 3/5 for both
    assert precision_within_radius(R_Q, R_DB, R_QL, R_DL, radius=9) == pytest.approx(3 / 5)


def test_pr_curve_over_radius():
    #            q1 (dists 0 1 1 2 3)      q2 (dists 4 3 3 2 1)     mean
    # r  ball    P      recall    ball      P      recall           P       recall
    # 0  {0}     1      1/3       {}        0      0                1/2     1/6
    # 1  {0,1,2} 2/3    2/3       {4}       0      0                1/3     1/3
    # 2  +3      3/4    1         {3,4}     1/2    1/3              5/8     2/3
    # 3  all     3/5    1         {1..4}    2/4    2/3              11/20   5/6
    # 4  all     3/5    1         all       3/5    1                3/5     1
    rep = retrieval_report(R_Q, R_DB, R_QL, R_DL)
    assert rep.pr_radius == (0, 1, 2, 3, 4)
    assert rep.pr_precision == pytest.approx([1 / 2, 1 / 3, 5 / 8, 11 / 20, 3 / 5])
    assert rep.pr_recall == pytest.approx([1 / 6, 1 / 3, 2 / 3, 5 / 6, 1])
    assert rep.pr_empty_fraction == pytest.approx([1 / 2, 0, 0, 0, 0])
    # skip leaves q2 out at r = 0 only: precision 1 there, the rest unchanged
    skip = retrieval_report(R_Q, R_DB, R_QL, R_DL, empty_ball="skip")
    assert skip.pr_precision == pytest.approx([1, 1 / 3, 5 / 8, 11 / 20, 3 / 5])


def test_precision_at_k_and_map_of_case_r():
    # q1 ranking 0 | 1 2 | 3 | 4 -> relevance 1 0 1 1 0: P@1 1, P@2 1/2, P@3 2/3, P@5 3/5
    # q2 ranking 4 | 3 | 1 2 | 0 -> relevance 0 1 0 1 1: P@1 0, P@2 1/2, P@3 1/3, P@5 3/5
    rep = retrieval_report(R_Q, R_DB, R_QL, R_DL, precision_at=(1, 2, 3, 5))
    assert rep.precision_at == (1, 2, 3, 5)
    assert rep.precision_at_k == pytest.approx([1 / 2, 1 / 2, 1 / 2, 3 / 5])
    # AP q1 = (1/1 + 2/3 + 3/4) / 3 = 29/36; q2 = (1/2 + 2/4 + 3/5) / 3 = 8/15
    assert rep.map == pytest.approx((29 / 36 + 8 / 15) / 2)
    assert rep.map_at_k is None and rep.n_no_relevant_at_k is None


def test_docstring_examples_run():
    import doctest

    import dnnh.metrics.retrieval

    assert doctest.testmod(dnnh.metrics.retrieval).failed == 0


def test_pr_recall_of_a_query_with_nothing_relevant_follows_empty():
    # q1 of case R (recall 1/3 at r = 0, 1 from r = 2 on) beside a query of class 9, which has no
    # relevant item: its recall is undefined. zero: (1/3 + 0) / 2 = 1/6 at r = 0, (1 + 0) / 2 at r = 4;
    # skip: q1 alone, 1/3 and 1.
    qb, ql = np.array([[0, 0, 0, 0], [0, 0, 0, 0]]), np.array([0, 9])
    zero = retrieval_report(qb, R_DB, ql, R_DL)
    skip = retrieval_report(qb, R_DB, ql, R_DL, empty="skip")
    assert zero.pr_recall[0] == pytest.approx(1 / 6) and zero.pr_recall[4] == pytest.approx(1 / 2)
    assert skip.pr_recall[0] == pytest.approx(1 / 3) and skip.pr_recall[4] == pytest.approx(1.0)
