"""Every metric against the slow reference of :mod:`dnnh.testing.reference` (plain Python loops).

The reference shares no code with dnnh.metrics: distances by comparing bits one at a time,
ranking by a full ``sorted`` on (distance, index), relevance by comparing labels directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnnh.metrics import mean_average_precision, precision_within_radius, retrieval_report
from dnnh.testing.reference import naive_ap, naive_mean
from dnnh.testing.reference import ranked_relevance as naive_query


def random_case(rng, n_query, n_db, nbits, multilabel, n_classes=4):
    # few distinct codes, so that ties in distance are frequent
    pool = rng.integers(0, 2, size=(max(3, n_db // 6), nbits))
    half = n_query // 2
    qb = np.concatenate([pool[rng.integers(0, len(pool), half)], rng.integers(0, 2, (n_query - half, nbits))])
    db = pool[rng.integers(0, len(pool), n_db)]
    if multilabel:
        ql = (rng.random((n_query, n_classes)) < 0.3).astype(np.uint8)
        dl = (rng.random((n_db, n_classes)) < 0.3).astype(np.uint8)
    else:
        ql = rng.integers(0, n_classes + 1, n_query)  # class n_classes may be missing from db
        dl = rng.integers(0, n_classes, n_db)
    return qb, db, ql, dl


CASES = [(12, False), (12, True), (24, False), (48, False), (48, True), (70, True), (130, False)]


@pytest.mark.parametrize("nbits,multilabel", CASES)
@pytest.mark.parametrize("ties", ["index", "optimistic", "pessimistic"])
def test_map_and_report_match_brute_force(nbits, multilabel, ties):
    rng = np.random.default_rng(nbits * 10 + multilabel + len(ties))
    qb, db, ql, dl = random_case(rng, 13, 157, nbits, multilabel)
    topk, radius, ks = 40, 3, (1, 5, 40, 157)
    per_query = [naive_query(qb[i], ql[i], db, dl, ties) for i in range(len(qb))]

    for normalize in ("retrieved", "all_relevant", "capped"):
        for empty in ("zero", "skip"):
            expect_full = naive_mean([naive_ap(r, len(db), normalize) for r, _, _ in per_query], empty)
            expect_k = naive_mean([naive_ap(r, topk, normalize) for r, _, _ in per_query], empty)
            kw = dict(normalize=normalize, empty=empty, ties=ties)
            assert mean_average_precision(qb, db, ql, dl, **kw) == pytest.approx(expect_full, rel=1e-12, nan_ok=True)
            assert mean_average_precision(qb, db, ql, dl, topk, **kw) == pytest.approx(expect_k, rel=1e-12, nan_ok=True)

    rep = retrieval_report(qb, db, ql, dl, topk=topk, radius=radius, precision_at=ks, ties=ties, chunk_size=4)
    assert rep.map == pytest.approx(naive_mean([naive_ap(r, len(db), "retrieved") for r, _, _ in per_query], "zero"))
    assert rep.map_at_k == pytest.approx(naive_mean([naive_ap(r, topk, "retrieved") for r, _, _ in per_query], "zero"))
    assert rep.n_no_relevant == sum(1 for r, _, _ in per_query if not any(r))
    assert rep.n_no_relevant_at_k == sum(1 for r, _, _ in per_query if not any(r[:topk]))
    for j, k in enumerate(ks):
        assert rep.precision_at_k[j] == pytest.approx(sum(sum(r[:k]) / k for r, _, _ in per_query) / len(qb))

    for r in range(nbits + 1):
        precisions, recalls, empties = [], [], 0
        for _, dists, rels in per_query:
            inside = [j for j in range(len(db)) if dists[j] <= r]
            hits = sum(1 for j in inside if rels[j])
            precisions.append(hits / len(inside) if inside else 0.0)
            recalls.append(hits / sum(rels) if sum(rels) else 0.0)
            empties += not inside
        assert rep.pr_precision[r] == pytest.approx(sum(precisions) / len(qb)), r
        assert rep.pr_recall[r] == pytest.approx(sum(recalls) / len(qb)), r
        assert rep.pr_empty_fraction[r] == pytest.approx(empties / len(qb)), r
    assert rep.precision_radius == rep.pr_precision[radius]
    assert rep.empty_ball_fraction == rep.pr_empty_fraction[radius]


@pytest.mark.parametrize("nbits,multilabel", CASES)
@pytest.mark.parametrize("radius", [0, 2, 5])
def test_precision_within_radius_matches_brute_force(nbits, multilabel, radius):
    rng = np.random.default_rng(nbits + 7 * radius + multilabel)
    qb, db, ql, dl = random_case(rng, 11, 120, nbits, multilabel)
    per_query = [naive_query(qb[i], ql[i], db, dl) for i in range(len(qb))]
    precisions = []
    for _, dists, rels in per_query:
        inside = [j for j in range(len(db)) if dists[j] <= radius]
        precisions.append(sum(rels[j] for j in inside) / len(inside) if inside else None)
    for empty_ball in ("zero", "skip"):
        got = precision_within_radius(qb, db, ql, dl, radius, empty_ball=empty_ball, chunk_size=3)
        assert got == pytest.approx(naive_mean(precisions, empty_ball), nan_ok=True)


@settings(max_examples=60, deadline=None)
@given(
    nbits=st.integers(1, 10),
    n_db=st.integers(1, 12),
    n_query=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    topk=st.one_of(st.none(), st.integers(1, 15)),
)
def test_tiny_random_cases_with_many_ties(nbits, n_db, n_query, seed, topk):
    rng = np.random.default_rng(seed)
    qb = rng.integers(0, 2, (n_query, nbits))
    db = rng.integers(0, 2, (n_db, nbits))
    ql, dl = rng.integers(0, 3, n_query), rng.integers(0, 3, n_db)
    k = n_db if topk is None else min(topk, n_db)
    ranked = [naive_query(qb[i], ql[i], db, dl)[0] for i in range(n_query)]
    expect = naive_mean([naive_ap(r, k, "retrieved") for r in ranked], "zero")
    assert mean_average_precision(qb, db, ql, dl, topk) == pytest.approx(expect, rel=1e-12)
