"""The one pass over the database that every metric is read from.

Queries are taken in chunks so that a chunk's work arrays stay under a memory budget: 10,000
queries against 1,000,000 codes never become a dense 10,000 x 1,000,000 matrix. Within a chunk the
database is walked in cache-sized blocks, so the XOR words, distances and relevance flags exist only
a block at a time; the one (chunk x n_db) array is the sort key below.

Ranking needs a stable sort by Hamming distance (ties broken by database index). Instead of an
argsort plus a gather, each item gets one unsigned integer key::

    distance | database index | relevance bit        (ties="index")
    distance | relevance flag | database index       (ties="optimistic" / "pessimistic")

Keys are unique, so any sort (numpy's fast unstable one included) gives exactly the stable order,
and the relevance of the k-th ranked item is read back from its key without a gather. From the
sorted keys of a query only the 1-based ranks of its relevant items are kept; AP, precision@k and
the Hamming-ball counts all follow from those ranks by ``searchsorted``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from dnnh.metrics._inputs import Codes, Labels

DEFAULT_MAX_MEMORY = 64 * 2**20
_BLOCK_CELLS = 1 << 16  # (query, item) cells a database block: its uint64 XOR buffer is 512 KiB
# Working bytes a database item for one query's post-processing, at most: a relevance flag (1),
# the ranks of relevant items (8) and their running precision sums (8).
_ROW_BYTES_PER_ITEM = 17


def key_dtype(nbits: int, index_bits: int) -> type:
    """uint32 while distance, flag and index fit (48-bit codes: up to 16M items), else uint64."""
    return np.uint32 if nbits.bit_length() + 1 + index_bits <= 32 else np.uint64


def rows_per_chunk(n_db: int, bytes_per_cell: int, max_memory: int, chunk_size: int | None) -> int:
    """Queries a chunk: an explicit chunk_size wins, else as many as fit the budget (at least one)."""
    if chunk_size is not None:
        return chunk_size
    return max(1, (max_memory - _ROW_BYTES_PER_ITEM * n_db) // (bytes_per_cell * n_db))


class _Database:
    """Database codes and labels laid out word-major, so a block of items is a contiguous slice."""

    def __init__(self, codes: Codes, labels: Labels) -> None:
        self.nbits = codes.nbits
        self.n = len(codes.db)
        self.codes_t = np.ascontiguousarray(codes.db.T)
        self.labels = labels
        self.labels_t = np.ascontiguousarray(labels.db.T) if labels.multilabel else labels.db

    def block_width(self, n_rows: int) -> int:
        return max(256, _BLOCK_CELLS // n_rows)

    def relevance(self, rows: slice, items: slice) -> np.ndarray:
        """(rows, items) bool: same class, or at least one shared label."""
        q = self.labels.query[rows]
        if not self.labels.multilabel:
            return np.equal(q[:, None], self.labels_t[None, items])
        shared = q[:, 0, None] & self.labels_t[0, None, items]
        for w in range(1, q.shape[1]):
            shared |= q[:, w, None] & self.labels_t[w, None, items]
        return shared != 0

    def distances(self, query_words: np.ndarray, items: slice) -> np.ndarray:
        """(rows, items) Hamming distances, uint8 (uint16 past 255 bits): XOR + popcount a word."""
        xor = query_words[:, 0, None] ^ self.codes_t[0, None, items]
        if len(self.codes_t) == 1:
            return np.bitwise_count(xor)
        dist = np.bitwise_count(xor).astype(np.uint8 if self.nbits <= 255 else np.uint16, copy=False)
        for w in range(1, len(self.codes_t)):
            np.bitwise_xor(query_words[:, w, None], self.codes_t[w, None, items], out=xor)
            dist += np.bitwise_count(xor)
        return dist


@dataclass(frozen=True)
class BallCounts:
    """Hamming-ball counts a query at one radius (inclusive: distance <= radius)."""

    size: np.ndarray  # (n_query,) items in the ball
    relevant: np.ndarray  # (n_query,) relevant items in the ball


def ball_scan(codes: Codes, labels: Labels, radius: int, chunk_size: int | None) -> BallCounts:
    """Counts inside one Hamming ball; no ranking, so no sort and nothing kept a (query, item) cell.

    Memory is the block buffers only, so the default chunk is just wide enough (16 queries) to
    amortise the per-block overhead; block shapes never change the counts.
    """
    db = _Database(codes, labels)
    n_query = len(codes.query)
    size, relevant = np.zeros(n_query, dtype=np.int64), np.zeros(n_query, dtype=np.int64)
    step = chunk_size or max(16, _BLOCK_CELLS // db.n)
    for start in range(0, n_query, step):
        rows = slice(start, min(start + step, n_query))
        width = db.block_width(rows.stop - rows.start)
        for first in range(0, db.n, width):
            items = slice(first, min(first + width, db.n))
            inside = db.distances(codes.query[rows], items) <= radius
            size[rows] += np.count_nonzero(inside, axis=1)
            inside &= db.relevance(rows, items)
            relevant[rows] += np.count_nonzero(inside, axis=1)
    return BallCounts(size, relevant)


@dataclass(frozen=True)
class RankStats:
    """What each query's ranking leaves behind; every ranked metric is a function of these."""

    nbits: int
    n_db: int
    topk: int  # the cut-off K actually used (n_db when none was asked)
    ks: tuple[int, ...]  # precision@k cut-offs
    n_relevant: np.ndarray  # (n_query,) R: relevant items in the database
    ap_sum: np.ndarray  # (n_query,) sum over relevant items of P(rank): AP's numerator over all ranks
    relevant_at_k: np.ndarray  # (n_query,) R_K: relevant items in the top K
    ap_sum_at_k: np.ndarray  # (n_query,) the same numerator over the top K
    hits_at: np.ndarray  # (n_query, len(ks)) relevant items in the top k, for each k
    ball_size: np.ndarray  # (n_query, nbits + 1) items within radius r, r = 0..nbits
    ball_relevant: np.ndarray  # (n_query, nbits + 1) relevant items within radius r


def _chunk_keys(db: _Database, query_words: np.ndarray, rows: slice, ties: str, dtype: type) -> np.ndarray:
    """(rows, n_db) sort keys, built a database block at a time (layout in the module docstring)."""
    index_bits = max(1, (db.n - 1).bit_length())
    key = np.empty((len(query_words), db.n), dtype=dtype)
    width = db.block_width(len(query_words))
    for first in range(0, db.n, width):
        items = slice(first, min(first + width, db.n))
        rel = db.relevance(rows, items)
        k = key[:, items]
        np.copyto(k, db.distances(query_words, items))
        index = np.arange(items.start, items.stop, dtype=dtype)
        if ties == "index":
            k <<= index_bits
            k |= index
            k <<= 1
            k |= rel
        else:  # the flag sorts relevant items last (pessimistic) or first (optimistic: flag = not relevant)
            k <<= 1
            k |= rel if ties == "pessimistic" else ~rel
            k <<= index_bits
            k |= index
    return key


def _relevant_ranks(sorted_keys: np.ndarray, ties: str, index_bits: int) -> np.ndarray:
    """1-based ranks of the relevant items of one query, read from the byte that holds the flag."""
    bit = 0 if ties == "index" else index_bits
    size = sorted_keys.dtype.itemsize
    byte = bit // 8 if sys.byteorder == "little" else size - 1 - bit // 8
    flags = sorted_keys.view(np.uint8)[byte::size] & np.uint8(1 << (bit % 8))
    if ties == "optimistic":  # the flag marks irrelevant items
        hits = flags == 0
    else:  # flags hold 0 or 1 << (bit % 8); a 0/1 byte can be read as bool without a pass
        hits = flags.view(bool) if bit % 8 == 0 else flags != 0
    ranks = np.flatnonzero(hits)
    ranks += 1
    return ranks


def _rank_chunk(db: _Database, query_words: np.ndarray, rows: slice, ties: str, dtype: type, out: RankStats) -> None:
    """Rank one chunk of queries and write their statistics into ``out``.

    A function of its own so that the chunk's keys (and the row views into them) are released on
    return, before the next chunk's are built.
    """
    index_bits = max(1, (db.n - 1).bit_length())
    # keys below (r + 1) << (index_bits + 1) are the items at distance <= r, for r = 0 .. nbits - 1
    bounds = np.arange(1, db.nbits + 1, dtype=dtype) << (index_bits + 1)
    ks = np.asarray(out.ks, dtype=np.int64)
    keys = _chunk_keys(db, query_words, rows, ties, dtype)
    keys.sort(axis=1)
    for i, row in zip(range(rows.start, rows.stop), keys):
        ranks = _relevant_ranks(row, ties, index_bits)
        precision = np.arange(1, ranks.size + 1, dtype=np.float64)  # P at each relevant rank ...
        precision /= ranks
        np.cumsum(precision, out=precision)  # ... summed so far
        at_k = int(np.searchsorted(ranks, out.topk, side="right"))
        out.n_relevant[i], out.relevant_at_k[i] = ranks.size, at_k
        out.ap_sum[i] = precision[-1] if ranks.size else 0.0
        out.ap_sum_at_k[i] = precision[at_k - 1] if at_k else 0.0
        out.hits_at[i] = np.searchsorted(ranks, ks, side="right")
        out.ball_size[i, : db.nbits] = np.searchsorted(row, bounds)
        out.ball_relevant[i] = np.searchsorted(ranks, out.ball_size[i], side="right")


def rank_scan(
    codes: Codes,
    labels: Labels,
    topk: int,
    ks: tuple[int, ...],
    ties: str,
    chunk_size: int | None,
    max_memory: int,
) -> RankStats:
    db = _Database(codes, labels)
    n_query, nbits = len(codes.query), codes.nbits
    dtype = key_dtype(nbits, max(1, (db.n - 1).bit_length()))
    out = RankStats(
        nbits=nbits,
        n_db=db.n,
        topk=topk,
        ks=ks,
        n_relevant=np.zeros(n_query, np.int64),
        ap_sum=np.zeros(n_query),
        relevant_at_k=np.zeros(n_query, np.int64),
        ap_sum_at_k=np.zeros(n_query),
        hits_at=np.zeros((n_query, len(ks)), np.int64),
        ball_size=np.full((n_query, nbits + 1), db.n, np.int64),
        ball_relevant=np.zeros((n_query, nbits + 1), np.int64),
    )
    step = rows_per_chunk(db.n, np.dtype(dtype).itemsize, max_memory, chunk_size)
    for start in range(0, n_query, step):
        rows = slice(start, min(start + step, n_query))
        _rank_chunk(db, codes.query[rows], rows, ties, dtype, out)
    return out
