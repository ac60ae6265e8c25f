"""Checking what the metrics are given, once, at the boundary.

Codes and multi-hot labels are turned into rows of uint64 words here, because every later step
(XOR + popcount for distances, AND for "shares a label") is then one vectorised pass a word.
Validation is done in row blocks: checking a 1,000,000 x 48 array in one go with ``np.isin``
(what :func:`dnnh.codes.as_bits` does) takes about half a gigabyte of temporaries, more than the
whole metric is allowed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from dnnh.codes import as_bits

NORMALIZE = ("retrieved", "all_relevant", "capped")
EMPTY = ("zero", "skip")
TIES = ("index", "optimistic", "pessimistic")

_BLOCK_ROWS = 1 << 16  # rows validated and packed at a time; bounds the temporaries of checking


def check_choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def check_int(value: object, name: str, minimum: int) -> int:
    """An integer option; bools and floats are refused rather than truncated."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def to_words(bits: object, name: str) -> np.ndarray:
    """Validate a 0/1 (n, m) array and pack it into (n, ceil(m / 64)) uint64 words.

    The bit order inside a word is that of :func:`dnnh.codes.pack_bits` (bit k in byte k // 8,
    LSB first); only popcounts and ANDs are taken, so the order matters for nothing but
    consistency, which a test pins.
    """
    arr = np.asarray(bits)
    if arr.ndim != 2:
        as_bits(arr, name)  # raises the library's standard shape message
    n, m = arr.shape
    if m == 0:
        raise ValueError(f"{name} must have at least one column; got shape {arr.shape}")
    nbytes = (m + 7) // 8
    packed = np.zeros((n, -(-nbytes // 8) * 8), dtype=np.uint8)
    exact = arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer)
    for start in range(0, n, _BLOCK_ROWS):
        block = arr[start : start + _BLOCK_ROWS]
        if exact and block.size and (block.min() < 0 or block.max() > 1):
            as_bits(block, name)  # raises, naming the offending values
        block = block.astype(np.uint8, copy=False) if exact else as_bits(block, name)
        packed[start : start + len(block), :nbytes] = np.packbits(block, axis=1, bitorder="little")
    return packed.view(np.uint64)


@dataclass(frozen=True)
class Codes:
    query: np.ndarray  # (n_query, words) uint64
    db: np.ndarray  # (n_db, words) uint64
    nbits: int


def check_codes(query_bits: object, db_bits: object) -> Codes:
    q, d = np.asarray(query_bits), np.asarray(db_bits)
    for arr, name in ((q, "query_bits"), (d, "db_bits")):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D 0/1 array of shape (n, nbits); got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one code; got shape {arr.shape}")
    if q.shape[1] != d.shape[1]:
        raise ValueError(
            f"code width mismatch: query_bits have {q.shape[1]} bits per code but db_bits have {d.shape[1]}; "
            "queries and database must be encoded at the same code length"
        )
    return Codes(to_words(q, "query_bits"), to_words(d, "db_bits"), int(q.shape[1]))


@dataclass(frozen=True)
class Labels:
    """Labels ready for relevance tests: class ids (1-D int64) or multi-hot words (2-D uint64)."""

    query: np.ndarray
    db: np.ndarray

    @property
    def multilabel(self) -> bool:
        return self.query.ndim == 2


def _describe(arr: np.ndarray) -> str:
    if arr.ndim == 1:
        return f"1-D class ids ({len(arr)} of them, dtype {arr.dtype})"
    if arr.ndim == 2:
        return f"2-D multi-hot of shape {arr.shape}"
    return f"an array of shape {arr.shape}"


def check_labels(query_labels: object, db_labels: object, n_query: int, n_db: int) -> Labels:
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    for arr, name in ((ql, "query_labels"), (dl, "db_labels")):
        if arr.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be 1-D integer class ids or a 2-D 0/1 multi-hot array; got {_describe(arr)}"
            )
    if ql.ndim != dl.ndim:
        raise ValueError(
            "query_labels and db_labels must be the same kind (both 1-D class ids or both 2-D multi-hot); "
            f"got query_labels as {_describe(ql)} and db_labels as {_describe(dl)}"
        )
    for arr, name, n, codes in ((ql, "query_labels", n_query, "query_bits"), (dl, "db_labels", n_db, "db_bits")):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} rows but {codes} has {n} codes; expected one label row a code")
    if ql.ndim == 1:
        for arr, name in ((ql, "query_labels"), (dl, "db_labels")):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(
                    f"{name}: 1-D labels must be integer class ids; got dtype {arr.dtype}. "
                    "Pass multi-label data as a 2-D 0/1 multi-hot array"
                )
        return Labels(ql.astype(np.int64, copy=False), dl.astype(np.int64, copy=False))
    if ql.shape[1] != dl.shape[1]:
        raise ValueError(
            f"multi-hot labels must share one vocabulary: query_labels have {ql.shape[1]} label columns "
            f"but db_labels have {dl.shape[1]}"
        )
    return Labels(to_words(ql, "query_labels"), to_words(dl, "db_labels"))


def check_precision_at(ks: Iterable[int], n_db: int) -> tuple[int, ...]:
    """Cut-offs for precision@k; a k beyond the database is refused, since P@k would then be ambiguous."""
    if isinstance(ks, numbers.Integral):
        ks = (ks,)
    out = tuple(check_int(k, "precision_at entries", 1) for k in ks)
    too_big = [k for k in out if k > n_db]
    if too_big:
        raise ValueError(f"precision_at entries must be <= the database size {n_db}; got {too_big}")
    return out


DEFAULT_PRECISION_AT = (1, 10, 50, 100, 500, 1000, 5000)


def default_precision_at(n_db: int) -> tuple[int, ...]:
    return tuple(k for k in DEFAULT_PRECISION_AT if k <= n_db) or (n_db,)
