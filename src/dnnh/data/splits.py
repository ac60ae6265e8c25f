"""Seeded query / database / train / validation splits, saved beside a run so every method shares one.

The paper's protocol: per class (per concept for multi-label data) draw ``queries_per_class``
queries and ``train_per_class`` training images; every non-query item is the database, and the
training images are drawn from the database. A validation set for model selection is carved out
of the training images (it stays in the database), so the query set is never looked at while
training.

Every split is validated when it is made or read (:meth:`Split.validate`): a query that is also a
database or training item finds itself and inflates MAP, so such a split is refused, as are
duplicates, negative positions and, for files, anything but the format :meth:`Split.save` writes.

``auto_split`` (protocol ``auto``) is the default for a user's own data: the paper's counts when
every class has enough images, proportional ones otherwise (see its docstring).

``unseen_split`` (protocol ``unseen``) measures retrieval of classes training never saw
(Sablayrolles et al. 2017, "How should we evaluate supervised hashing?"): a seeded quarter of the
classes (at least two) is held out of training and validation, and the queries come from them.
The database holds every non-query item; :meth:`Split.unseen_database` is its held-out part,
against which the protocol's main figure is scored ("unseen@unseen"), the whole database giving
the second ("unseen@all", as in the authors' DSH_Analysis code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dnnh.atomic import atomic_write_text
from dnnh.errors import InputTypeError

SPLIT_FORMAT = "dnnh-split/1"
PARTS = ("query", "database", "train", "val")
AUTO_QUERY_FRACTION = 0.1  # auto: queries are about 10% of a class ...
AUTO_TRAIN_FRACTION = 0.8  # ... and training takes at most 80% of the rest, so the database keeps others


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays into one dataset. ``train`` and ``val`` are disjoint subsets of ``database``.

    ``counts`` records what a protocol drew per class (per concept for multi-label data):
    ``{"query": {class: n}, "train": {class: n}}`` (train before validation was carved out of
    it); None for protocols without per-class counts and for files written before counts were.
    ``source`` is the file the split was read from (named in error messages); it is not part of
    the split, so two splits are equal when their four index arrays are.
    """

    query: np.ndarray
    database: np.ndarray
    train: np.ndarray
    val: np.ndarray
    protocol: str = "paper"
    seed: int = 0
    counts: Mapping[str, Mapping[str, int]] | None = None
    source: Path | None = field(default=None, compare=False)
    held_out: tuple[int, ...] | None = None  # protocol unseen: the classes kept out of training and validation

    def __post_init__(self) -> None:
        for k in PARTS:
            arr = np.asarray(getattr(self, k))
            if arr.size and arr.dtype.kind not in "iu":
                raise InputTypeError(f"split part {k!r} must hold integer positions, got {arr.dtype}")
            object.__setattr__(self, k, arr.astype(np.int64).reshape(-1) if arr.ndim <= 1 else arr)
        if self.held_out is not None:
            object.__setattr__(self, "held_out", tuple(sorted(int(c) for c in self.held_out)))
        self.validate()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return all(np.array_equal(getattr(self, k), getattr(other, k)) for k in PARTS)

    __hash__ = None  # type: ignore[assignment]

    def _where(self) -> str:
        return f"split file {self.source}" if self.source is not None else "split"

    def validate(self) -> None:
        """Raise ValueError (naming the file when there is one) unless the split is usable.

        Checked: each part 1-D without duplicates or negative positions; no query among the
        database, training or validation items; training and validation disjoint and both inside
        the database.
        """
        where = self._where()
        for k in PARTS:
            arr = getattr(self, k)
            if arr.ndim != 1:
                raise ValueError(f"{where}: {k!r} must be a flat list of positions, got shape {arr.shape}")
            if arr.size and int(arr.min()) < 0:
                raise ValueError(f"{where}: {k!r} holds the negative position {int(arr.min())}")
            uniq, n = np.unique(arr, return_counts=True)
            if (n > 1).any():
                dup = uniq[n > 1]
                raise ValueError(f"{where}: {k!r} lists {len(dup)} position(s) more than once, e.g. {int(dup[0])}")
        for a, b in (("query", "database"), ("query", "train"), ("query", "val"), ("train", "val")):
            both = np.intersect1d(getattr(self, a), getattr(self, b))
            if both.size:
                why = " (a query would find itself)" if a == "query" else ""
                raise ValueError(f"{where}: {len(both)} position(s) are in both {a!r} and {b!r}, e.g. {int(both[0])}; "
                                 f"{a} and {b} must be disjoint{why}")
        for k in ("train", "val"):
            outside = np.setdiff1d(getattr(self, k), self.database)
            if outside.size:
                raise ValueError(f"{where}: {len(outside)} {k} position(s) are not in 'database', e.g. "
                                 f"{int(outside[0])}; training and validation items must be database items")

    def unseen_database(self, labels: np.ndarray) -> np.ndarray:
        """The database items of the held-out classes (the whole database when none are held out)."""
        if self.held_out is None:
            return self.database
        return self.database[np.isin(np.asarray(labels)[self.database], self.held_out)]

    def check_held_out(self, labels: np.ndarray) -> None:
        """Raise unless no training or validation item, and every query, is of a held-out class."""
        if self.held_out is None:
            return
        labels = np.asarray(labels)
        for part in ("train", "val"):
            seen = np.isin(labels[getattr(self, part)], self.held_out)
            if seen.any():
                raise ValueError(f"{self._where()}: {int(seen.sum())} {part} item(s) are of the held-out classes "
                                 f"{list(self.held_out)}, e.g. position {int(getattr(self, part)[seen][0])}")
        outside = ~np.isin(labels[self.query], self.held_out)
        if outside.any():
            raise ValueError(f"{self._where()}: {int(outside.sum())} queries are of classes that are not held out, "
                             f"e.g. position {int(self.query[outside][0])}")

    def describe_counts(self) -> str:
        """The per-class counts in words, e.g. "50 queries and 360 training images a class"."""
        if not self.counts:
            return ""
        q, t = list(self.counts.get("query", {}).values()), list(self.counts.get("train", {}).values())
        if not q or not t:
            return ""
        def span(v: list[int]) -> str:
            return str(v[0]) if min(v) == max(v) else f"{min(v)}-{max(v)}"
        return f"{span(q)} queries and {span(t)} training images a class ({len(q)} classes)"

    def summary(self) -> str:
        counts = "" if self.held_out is not None else self.describe_counts()
        held = (f"; classes {', '.join(map(str, self.held_out))} held out of training (the queries' classes)"
                if self.held_out is not None else "")
        return (f"{self.protocol} split (seed {self.seed}): {len(self.query)} queries, "
                f"{len(self.database)} database, {len(self.train)} train, {len(self.val)} validation"
                + (f"; {counts}" if counts else "") + held)

    def save(self, path: str | Path) -> None:
        """Write the split as JSON, atomically (temporary file renamed into place)."""
        payload: dict[str, Any] = {
            "format": SPLIT_FORMAT, "protocol": self.protocol, "seed": self.seed,
            **{k: getattr(self, k).tolist() for k in PARTS},
        }
        if self.counts is not None:
            payload["counts"] = {part: {str(c): int(n) for c, n in per.items()} for part, per in self.counts.items()}
        if self.held_out is not None:
            payload["held_out"] = list(self.held_out)
        atomic_write_text(Path(path), json.dumps(payload))

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        """Read and validate a file :meth:`save` wrote; every problem is one error naming ``path``."""
        path = Path(path)
        where = f"cannot read split file {path}"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"split file {path} does not exist") from None
        except OSError as exc:
            raise ValueError(f"{where}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{where}: not a UTF-8 JSON file") from None
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(payload, dict) or payload.get("format") != SPLIT_FORMAT:
            raise ValueError(f"{path} is not a dnnh split file (expected a JSON object with format {SPLIT_FORMAT!r})")
        missing = [k for k in PARTS if k not in payload]
        if missing:
            raise ValueError(f"split file {path} lacks {', '.join(repr(k) for k in missing)}; a split file holds "
                             f"lists {', '.join(PARTS)} (val may be empty)")
        arrays = {k: _positions(payload[k], path, k) for k in PARTS}
        protocol, seed = payload.get("protocol", "?"), payload.get("seed", 0)
        if not isinstance(protocol, str) or isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"split file {path}: 'protocol' must be a string and 'seed' an integer")
        counts = _counts(payload.get("counts"), path)
        held_out = payload.get("held_out")
        if held_out is not None and (not isinstance(held_out, list) or not held_out
                                     or not all(isinstance(c, int) and not isinstance(c, bool) for c in held_out)):
            raise ValueError(f"split file {path}: 'held_out' must be a non-empty list of class ids, got {held_out!r:.60}")
        return cls(protocol=protocol, seed=seed, counts=counts, source=path, held_out=held_out, **arrays)

    def check_fits(self, n_items: int) -> None:
        """Raise if the split indexes items a dataset of ``n_items`` does not have (naming the position)."""
        for k in PARTS:
            arr = getattr(self, k)
            if not arr.size:
                continue
            lo, hi = int(arr.min()), int(arr.max())
            bad = lo if lo < 0 else hi if hi >= n_items else None
            if bad is not None:
                raise ValueError(f"{self._where()}: {k!r} holds position {bad}, but the dataset has {n_items} items "
                                 f"(positions 0..{n_items - 1}); was the split made for another dataset?")


def _positions(value: object, path: Path, part: str) -> np.ndarray:
    """One part of a split file as int64, or an error naming the file and the part."""
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        bad = value if not isinstance(value, list) else next(v for v in value if not isinstance(v, int) or
                                                              isinstance(v, bool))
        raise ValueError(f"split file {path}: {part!r} must be a list of integer positions, found {bad!r:.40}")
    try:
        return np.asarray(value, dtype=np.int64)
    except OverflowError:
        raise ValueError(f"split file {path}: {part!r} holds a position too large for int64") from None


def _counts(value: object, path: Path) -> dict[str, dict[str, int]] | None:
    if value is None:
        return None
    ok = isinstance(value, dict) and all(
        isinstance(per, dict) and all(isinstance(n, int) and not isinstance(n, bool) for n in per.values())
        for per in value.values())
    if not ok:
        raise ValueError(f"split file {path}: 'counts' must map 'query'/'train' to {{class: count}}")
    return {str(part): {str(c): int(n) for c, n in per.items()}  # type: ignore[union-attr]
            for part, per in value.items()}  # type: ignore[union-attr]


def _carve_validation(train: np.ndarray, labels: np.ndarray, val_fraction: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if val_fraction == 0:  # a negative or NaN share is refused below, not taken for "none"
        return train, np.empty(0, dtype=np.int64)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    val_parts = []
    if labels.ndim == 1:
        for c in np.unique(labels[train]):
            members = train[labels[train] == c]
            n_val = max(1, int(round(len(members) * val_fraction))) if len(members) > 1 else 0
            val_parts.append(rng.permutation(members)[:n_val])
    else:
        n_val = max(1, int(round(len(train) * val_fraction)))
        val_parts.append(rng.permutation(train)[:n_val])
    if not val_parts:
        return train, np.empty(0, dtype=np.int64)
    val = np.sort(np.concatenate(val_parts)).astype(np.int64)
    return np.setdiff1d(train, val), val


PAPER_HINT = ("pass smaller --queries-per-class / --train-per-class, or --protocol auto to pick counts that fit "
              "(queries_per_class=, train_per_class=, protocol='auto' from Python)")


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _finish(labels: np.ndarray, query: list[np.ndarray], train: list[np.ndarray], universe: np.ndarray,
            val_fraction: float, rng: np.random.Generator, protocol: str, seed: int,
            counts: dict[str, dict[str, int]]) -> Split:
    query_idx = np.sort(np.concatenate(query)).astype(np.int64) if query else np.empty(0, np.int64)
    train_idx = np.sort(np.concatenate(train)).astype(np.int64) if train else np.empty(0, np.int64)
    train_idx, val_idx = _carve_validation(train_idx, labels, val_fraction, rng)
    return Split(query=query_idx, database=np.setdiff1d(universe, query_idx), train=train_idx, val=val_idx,
                 protocol=protocol, seed=seed, counts=counts)  # Split casts each part to int64


def _draw_single(labels: np.ndarray, classes: np.ndarray, n_query: np.ndarray, n_train: np.ndarray,
                 val_fraction: float, seed: int, protocol: str) -> Split:
    """Per class c: ``n_query[c]`` queries, then ``n_train[c]`` training images, from one permutation."""
    rng = np.random.default_rng(seed)
    query, train = [], []
    for c, q, t in zip(classes, n_query, n_train):
        members = rng.permutation(np.flatnonzero(labels == c))
        query.append(members[:q])
        train.append(members[q:q + t])
    counts = {"query": {str(int(c)): int(q) for c, q in zip(classes, n_query)},
              "train": {str(int(c)): int(t) for c, t in zip(classes, n_train)}}
    return _finish(labels, query, train, np.arange(len(labels)), val_fraction, rng, protocol, seed, counts)


def _draw_multi(labels: np.ndarray, how_many: Callable[[str, int, int], int], val_fraction: float, seed: int,
                protocol: str) -> Split:
    """Per label column j in turn, queries (then training images) among the not-yet-drawn items carrying it.

    ``how_many(part, j, free)`` is the count to draw for column j with ``free`` candidates left.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    universe = np.flatnonzero(labels.sum(axis=1) > 0)
    taken = np.zeros(n, dtype=bool)
    taken[np.setdiff1d(np.arange(n), universe)] = True
    drawn: dict[str, list[np.ndarray]] = {"query": [], "train": []}
    counts: dict[str, dict[str, int]] = {"query": {}, "train": {}}
    for part in ("query", "train"):
        for j in range(labels.shape[1]):
            free = np.flatnonzero((labels[:, j] == 1) & ~taken)
            count = how_many(part, j, len(free))
            pick = rng.choice(free, size=count, replace=False)
            taken[pick] = True
            drawn[part].append(pick)
            counts[part][str(j)] = int(count)
    return _finish(labels, drawn["query"], drawn["train"], universe, val_fraction, rng, protocol, seed, counts)


def paper_split(labels: np.ndarray, queries_per_class: int = 100, train_per_class: int = 500,
                val_fraction: float = 0.1, seed: int = 0, protocol: str = "paper") -> Split:
    """The paper's protocol for single-label (1-D) or multi-label (2-D 0/1) labels.

    Multi-label: for each label column in turn, queries (then training images) are drawn among the
    not-yet-drawn items carrying that label; items with no label at all are dropped.
    """
    labels = np.asarray(labels)
    q = _check_count(queries_per_class, "queries_per_class")
    t = _check_count(train_per_class, "train_per_class")
    if labels.ndim == 1:
        classes, sizes = np.unique(labels, return_counts=True)
        short = [(int(c), int(k)) for c, k in zip(classes, sizes) if k < q + t]
        if short:
            raise ValueError(f"the paper protocol needs {q + t} images per class ({q} queries + {t} train); "
                             f"classes short of that (class, count): {short[:5]}; {PAPER_HINT}")
        return _draw_single(labels, classes, np.full(len(classes), q), np.full(len(classes), t),
                            val_fraction, seed, protocol)

    def strict(part: str, j: int, free: int) -> int:
        count = q if part == "query" else t
        if free < count:
            raise ValueError(f"label {j} has only {free} unused items, {count} {part} items needed; {PAPER_HINT}")
        return count
    return _draw_multi(labels, strict, val_fraction, seed, protocol)


def auto_counts(size: int, queries_per_class: int = 100, train_per_class: int = 500) -> tuple[int, int]:
    """(queries, training images) the ``auto`` protocol draws from a class of ``size`` items when the
    paper counts do not fit every class: queries 10% of the class (at least 1, at most
    ``queries_per_class``, never the whole class), training at most 80% of the rest (at most
    ``train_per_class``), so the database keeps items that were not trained on."""
    q = min(queries_per_class, max(1, int(round(AUTO_QUERY_FRACTION * size))), max(0, size - 1))
    t = min(train_per_class, int(AUTO_TRAIN_FRACTION * (size - q)))
    return q, max(0, t)


def auto_split(labels: np.ndarray, queries_per_class: int = 100, train_per_class: int = 500,
               val_fraction: float = 0.1, seed: int = 0) -> Split:
    """The paper protocol when its counts fit every class (identical indices for the same seed),
    proportional counts per class (:func:`auto_counts`) otherwise; ``split.counts`` says which.

    So a folder of 500 images a class, short of the paper's 600, gets 50 queries and 360 training
    images a class instead of an error; a class of 10,000 still gets 100 and 500. Multi-label data
    applies the same rule per label column, counted among the items still free when it is drawn.
    """
    labels = np.asarray(labels)
    q = _check_count(queries_per_class, "queries_per_class")
    t = _check_count(train_per_class, "train_per_class")
    if labels.ndim == 1:
        classes, sizes = np.unique(labels, return_counts=True)
        if (sizes >= q + t).all():  # the paper's draw, without paper_split counting the classes again
            return _draw_single(labels, classes, np.full(len(classes), q), np.full(len(classes), t),
                                val_fraction, seed, "auto")
        chosen = np.asarray([auto_counts(int(k), q, t) for k in sizes], dtype=np.int64).reshape(-1, 2)
        if not chosen[:, 1].any():
            raise ValueError(f"every class is too small to train on (largest: {int(sizes.max())} items); "
                             "a split needs at least 3 images in some class")
        return _draw_single(labels, classes, chosen[:, 0], chosen[:, 1], val_fraction, seed, "auto")
    try:
        return paper_split(labels, q, t, val_fraction, seed, protocol="auto")
    except ValueError:
        pass
    column_sizes = labels.sum(axis=0)

    def proportional(part: str, j: int, free: int) -> int:
        return min(auto_counts(int(column_sizes[j]), q, t)[0 if part == "query" else 1], free)
    return _draw_multi(labels, proportional, val_fraction, seed, "auto")


def held_out_count(n_classes: int, n_held_out: int | None = None) -> int:
    """How many classes ``unseen`` holds out: ``n_held_out``, by default a quarter (rounded), at least 2;
    at least two classes must stay for training (a triplet needs two)."""
    n = max(2, int(round(n_classes / 4))) if n_held_out is None else _check_count(n_held_out, "n_held_out")
    if n_classes - n < 2:
        raise ValueError(f"protocol unseen holds out {n} of {n_classes} classes, leaving fewer than 2 to train on; "
                         "it needs at least 4 classes (or a smaller n_held_out)")
    return n


def unseen_split(labels: np.ndarray, queries_per_class: int = 100, train_per_class: int = 500,
                 val_fraction: float = 0.1, seed: int = 0, n_held_out: int | None = None) -> Split:
    """Protocol ``unseen``: classes held out of training, queries from them (single-label data).

    The held-out classes are a seeded draw (:func:`held_out_count` of them). Per held-out class
    ``queries_per_class`` queries (at most all but one of its items, so the database keeps some);
    per other class ``train_per_class`` training images (at most the whole class), from which the
    validation images are carved: neither ever sees a held-out class. The database is every
    non-query item; the protocol's figure ranks the queries against its held-out part
    (:meth:`Split.unseen_database`), the whole database giving the unseen@all figure.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError("protocol unseen holds whole classes out of training, so it needs single-label data "
                         "(one class an item); use --protocol paper or auto for multi-label data")
    q = _check_count(queries_per_class, "queries_per_class")
    t = _check_count(train_per_class, "train_per_class")
    classes, sizes = np.unique(labels, return_counts=True)
    n = held_out_count(len(classes), n_held_out)
    held = np.sort(np.random.default_rng([int(seed), 24]).choice(classes, size=n, replace=False))
    is_held = np.isin(classes, held)
    n_query = np.where(is_held, np.minimum(q, sizes - 1), 0)
    n_train = np.where(is_held, 0, np.minimum(t, sizes))
    split = _draw_single(labels, classes, n_query, n_train, val_fraction, seed, "unseen")
    counts = {"query": {str(int(c)): int(k) for c, k, h in zip(classes, n_query, is_held) if h},
              "train": {str(int(c)): int(k) for c, k, h in zip(classes, n_train, is_held) if not h}}
    out = Split(query=split.query, database=split.database, train=split.train, val=split.val, protocol="unseen",
                seed=seed, counts=counts, held_out=tuple(int(c) for c in held))
    out.check_held_out(labels)
    return out
