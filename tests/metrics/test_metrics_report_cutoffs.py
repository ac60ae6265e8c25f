"""The report's precision@k: its default cut-offs as documented, averaged over every query as DeepHash-pytorch's
``pr_curve`` averages its top-k precision (a query without a relevant item counting 0)."""

from __future__ import annotations

import re

import numpy as np

from dnnh.metrics import retrieval_report
from dnnh.metrics._inputs import DEFAULT_PRECISION_AT


def test_default_cutoffs_include_50_and_the_docstring_lists_them_all():
    rng = np.random.default_rng(0)
    db, queries = rng.integers(0, 2, (6000, 16)), rng.integers(0, 2, (3, 16))
    report = retrieval_report(queries, db, rng.integers(0, 4, 3), rng.integers(0, 4, 6000))
    assert 50 in report.precision_at and report.precision_at == DEFAULT_PRECISION_AT
    listed = re.search(r"cut-offs among\s+\(([\d, ]+)\)", retrieval_report.__doc__)
    assert listed is not None and tuple(int(k) for k in listed.group(1).split(",")) == DEFAULT_PRECISION_AT


def top_k_precision_over_all_queries(qb, db, ql, dl, k):
    """Precision of each query's top k by Hamming distance (ties by database index), averaged over every query."""
    total = 0.0
    for code, label in zip(qb, ql):
        distances = [(sum(int(a) != int(b) for a, b in zip(code, other)), j) for j, other in enumerate(db)]
        top = [j for _, j in sorted(distances)[:k]]
        total += sum(1 for j in top if dl[j] == label) / k
    return total / len(qb)


def test_precision_at_k_counts_a_query_without_relevant_items_as_zero():
    rng = np.random.default_rng(1)
    qb, db = rng.integers(0, 2, (5, 8)), rng.integers(0, 2, (60, 8))
    ql, dl = np.array([0, 1, 2, 0, 9]), rng.integers(0, 3, 60)  # class 9: nothing relevant in the database
    report = retrieval_report(qb, db, ql, dl, precision_at=(1, 10, 50))
    for k, p in zip(report.precision_at, report.precision_at_k):
        assert p == top_k_precision_over_all_queries(qb, db, ql, dl, k)
        assert p < top_k_precision_over_all_queries(qb[:4], db, ql[:4], dl, k)  # the fifth query pulls it down
