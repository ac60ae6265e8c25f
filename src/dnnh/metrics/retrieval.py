"""Mean average precision and precision within a Hamming radius, with the conventions named.

Hashing papers report numbers that differ for reasons other than the codes: how ties in Hamming
distance are ordered, whether queries with nothing relevant are skipped, what AP@K divides by, and
an off-by-one in some peers that drops the last database item. Each is a parameter here whose
default is the convention the literature's headline tables use (docs/METHOD.md §9), so two
methods compared with the same call are compared on the codes alone:

- ``ties="index"``: equal distances are ordered by database index, as FAISS orders them. Peers
  that argsort unstably get an arbitrary order; ``"optimistic"`` / ``"pessimistic"`` put relevant
  items first / last within a distance, the upper and lower bounds any such order lies between.
- ``normalize`` (AP@K's denominator): ``"retrieved"`` = R_K, relevant items within the top K (the
  peers'); ``"all_relevant"`` = R, relevant items in the whole database (TREC's); ``"capped"`` =
  min(R, K) (Kaggle / ml_metrics apk). All three agree when K is the whole database.
- ``empty``: a query whose AP has a zero denominator (with the default, one with no relevant item in
  its top K) scores 0 (``"zero"``) or is left out of the mean (``"skip"``, some peers' choice,
  which flatters methods that fail on hard queries).
- The whole database is ranked: every item, the last one included.
"""

from __future__ import annotations

import numpy as np

from dnnh.metrics._inputs import EMPTY, NORMALIZE, TIES, Codes, Labels
from dnnh.metrics._inputs import check_choice, check_codes, check_int, check_labels
from dnnh.metrics._scan import DEFAULT_MAX_MEMORY, RankStats, ball_scan, rank_scan


def mean_over_queries(values: np.ndarray, defined: np.ndarray, empty: str) -> float:
    """Mean of per-query values; undefined ones count 0 ("zero") or are left out ("skip", NaN if all are)."""
    if empty == "zero":
        return float(np.where(defined, values, 0.0).mean())
    if not np.any(defined):
        return float("nan")
    return float(np.mean(values[defined]))


def safe_ratio(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """num / den where den > 0, else 0; with the mask of where it was defined."""
    defined = den > 0
    return np.divide(num, den, out=np.zeros(np.shape(num), dtype=np.float64), where=defined), defined


def average_precisions(stats: RankStats, at_k: bool, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP (or AP@K) and whether its denominator was non-zero."""
    if not at_k:
        return safe_ratio(stats.ap_sum, stats.n_relevant)
    if normalize == "retrieved":
        den = stats.relevant_at_k
    elif normalize == "all_relevant":
        den = stats.n_relevant
    else:
        den = np.minimum(stats.n_relevant, stats.topk)
    num = stats.ap_sum_at_k
    return safe_ratio(num, den)


def check_common(
    query_bits: object, db_bits: object, query_labels: object, db_labels: object, chunk_size: int | None
) -> tuple[Codes, Labels, int | None]:
    codes = check_codes(query_bits, db_bits)
    labels = check_labels(query_labels, db_labels, len(codes.query), len(codes.db))
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", 1)
    return codes, labels, chunk_size


def check_topk(topk: int | None, n_db: int) -> int | None:
    """None, or K clipped to the database size (AP@K with K >= n_db is plain AP, as peers' slicing gives)."""
    return None if topk is None else min(check_int(topk, "topk", 1), n_db)


def mean_average_precision(
    query_bits: np.ndarray,
    db_bits: np.ndarray,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    topk: int | None = None,
    *,
    normalize: str = "retrieved",
    empty: str = "zero",
    ties: str = "index",
    chunk_size: int | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> float:
    """MAP of Hamming ranking: AP@K = (1/R_K) sum_{k<=K} P(k) rel(k), averaged over queries.

    ``topk=None`` ranks the whole database (CIFAR-10 protocol); NUS-WIDE uses ``topk=5000``; a
    ``topk`` beyond the database is clipped to it. Relevance: same class for 1-D labels, at least
    one shared label for 2-D multi-hot ones. See the module docstring for ``normalize``, ``empty``
    and ``ties``.

    Memory: queries are ranked a chunk at a time, ``chunk_size`` queries, or by default as many as
    keep the chunk's sort keys (4 bytes a query and item, 8 past ~16M items) plus one query's
    post-processing (17 bytes an item) under ``max_memory`` bytes. On top come a packed copy of the
    codes (8 bytes an item a 64 bits) and ~1.5 MB of block buffers. Neither knob changes the result.

    >>> import numpy as np
    >>> q = np.array([[0, 0, 0, 0]]); db = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [0, 0, 1, 0]])
    >>> # ranked 0, 2, 1 (the tie at distance 1 goes by index): relevant at ranks 2 and 3
    >>> mean_average_precision(q, db, np.array([0]), np.array([1, 0, 0]))  # (1/2 + 2/3) / 2
    0.5833333333333333
    """
    check_choice(normalize, "normalize", NORMALIZE)
    check_choice(empty, "empty", EMPTY)
    check_choice(ties, "ties", TIES)
    codes, labels, chunk_size = check_common(query_bits, db_bits, query_labels, db_labels, chunk_size)
    max_memory = check_int(max_memory, "max_memory", 1)
    k = check_topk(topk, len(codes.db))
    stats = rank_scan(codes, labels, k or len(codes.db), (), ties, chunk_size, max_memory)
    ap, defined = average_precisions(stats, at_k=k is not None, normalize=normalize)
    return mean_over_queries(ap, defined, empty)


def precision_within_radius(
    query_bits: np.ndarray,
    db_bits: np.ndarray,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    radius: int = 2,
    *,
    empty_ball: str = "zero",
    chunk_size: int | None = None,
) -> float:
    """Mean precision of the Hamming ball of ``radius`` (inclusive: distance <= radius) around each query.

    This is what hash-table lookup returns, so a query whose ball is empty got nothing useful: it
    scores 0 by default (``empty_ball="zero"``); ``"skip"`` averages over non-empty balls only.
    (FAISS's ``range_search`` is strict, ``< r``: our radius 2 is its radius 3.) Nothing is kept a
    (query, item) pair, so memory is a few block buffers whatever ``chunk_size`` is.
    """
    check_choice(empty_ball, "empty_ball", EMPTY)
    radius = check_int(radius, "radius", 0)
    codes, labels, chunk_size = check_common(query_bits, db_bits, query_labels, db_labels, chunk_size)
    ball = ball_scan(codes, labels, radius, chunk_size)
    return mean_over_queries(*safe_ratio(ball.relevant, ball.size), empty_ball)
