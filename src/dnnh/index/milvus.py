"""``MilvusIndex``: :class:`~dnnh.index.HammingIndex`'s contract on a Milvus collection.

The same calls (``add``, ``search``, ``range_search``, ``remove``, ``ntotal``, ``reset``) on the same
packed codes, answered by Milvus: a local file (``uri="codes.db"``) runs Milvus Lite in a child
process of this one; ``uri="http://host:19530"`` talks to a Milvus server or cluster, which shards,
replicates and serves many clients. Needs the extra: ``pip install 'dnnh[milvus]'``.

Example (as for ``HammingIndex``; ties here come out by id)::

    index = MilvusIndex(12, uri="/tmp/codes.db", collection="demo")
    index.add(pack_bits(np.array([[0] * 12, [1] + [0] * 11, [0] * 12])), ids=np.array([7, 8, 9]))
    index.search(pack_bits(np.array([[0] * 12])), k=4)
    # -> distances [[0, 0, 1, -1]] (int32), ids [[7, 9, 8, -1]] (int64)
    index.close()

How Milvus's own contract is bridged (the tests check each point against ``HammingIndex``):

- **Storage.** One row per item in a collection with an auto-generated primary key ``pk``, the
  item's ``id`` (INT64, need not be unique, as in ``HammingIndex``) and ``code``, a
  ``BINARY_VECTOR`` indexed ``BIN_FLAT`` with the ``HAMMING`` metric: exact, no training. Packed
  codes go in byte for byte (bit 0 in the LSB of byte 0); a Hamming distance counts differing bits
  and does not depend on where in a byte a bit sits, so Milvus's distances equal ours.
- **Code lengths that are not a multiple of 8.** Milvus wants ``dim`` (bits) a multiple of 8, so a
  12-bit code is stored as a 16-bit vector: its packed 2 bytes, whose top 4 bits are zero. Zero
  padding bits are zero in every code and query, so they never change a distance.
- **Range search radius.** Milvus answers ``range_filter <= d < radius`` (exclusive); ours is
  inclusive (``d <= radius``), so Milvus is asked for ``radius + 1``.
- **Range search size.** Milvus returns at most top-k (16384) hits per query even in a range
  search. A query that fills the limit is asked again over halves of its distance range, then over
  halves of the primary-key range, until no part is full: the answer is always complete.
- **Order.** Rows ascend by distance, equal distances by id. ``HammingIndex`` breaks k-NN ties by
  insertion order (and orders a radius search by distance, code, insertion); which of several
  equidistant items fill the last places of a k-NN row is Milvus's choice, so ids may differ from
  ``HammingIndex``'s only among equal distances.
- **Limits.** ``k`` above Milvus's top-k limit (16384) is refused with a clear error; queries go
  in batches of at most 16384 (Milvus's nq limit) and at most ~262k results per request.
- **Default ids** continue after the largest id the collection has held since the last reset, as
  in ``HammingIndex``; that largest id is kept in a small side collection
  ``<collection>__dnnh_meta`` (Milvus Lite has no collection properties), so it survives a reopen.
  Clients adding to the same collection at the same time should pass their own ids.
- **Not carried over:** ``HammingIndex``'s ``strategy=`` argument (Milvus always scans),
  ``save``/``load`` (the collection is the storage) and ``memory_usage``.
- **Reopening** the same ``uri`` and ``collection`` sees the stored items; the code length is
  recorded in the collection's description and a different ``nbits`` is refused.
- **Consistency.** The collection is created with ``Strong`` consistency: a search sees every
  add and remove made before it.
- **Milvus Lite** allows one process per file: the process holds a lock file beside it
  (``.<name>.db.lock``, as dnnh's own files), so a second process gets one line naming the
  holder's PID; :meth:`MilvusIndex.close` stops this process's Milvus Lite server when the last
  index open on that file closes.
- **Addresses.** ``uri`` is a path ending in ``.db`` or an ``http://``, ``https://``, ``tcp://`` or
  ``unix:`` address; anything else, a folder as the database file, a host that does not resolve
  and a port where nothing answers are each one line (ValueError or ConnectionError), before or
  instead of pymilvus's own exceptions.
"""

from __future__ import annotations

import re
import socket
import threading
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from dnnh.index.index import HammingIndex, _as_int, check_default_ids
from dnnh.index.layout import check_nbits, check_packed
from dnnh.locks import FileLock, lock_file

MISSING = "MilvusIndex needs pymilvus and milvus-lite: pip install 'dnnh[milvus]'"

MAX_TOPK = 16384        # Milvus's limit on top-k (also the most hits a range search returns per query)
MAX_NQ = 16384          # Milvus's limit on queries per search request
MAX_HITS = 1 << 18      # results asked for per request, to keep messages and memory bounded
INSERT_ROWS = 50_000    # rows per insert request
REMOVE_IDS = 4096       # ids per delete expression

_DESCRIPTION = "dnnh.MilvusIndex nbits={nbits}"
_DESCRIPTION_RE = re.compile(r"^dnnh\.MilvusIndex nbits=(\d+)$")
_META_SUFFIX = "__dnnh_meta"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT64_MAX = (1 << 63) - 1
_PK_MAX = _INT64_MAX  # auto-generated primary keys are non-negative int64

_lite_lock = threading.Lock()
_lite_open: dict[str, int] = {}  # Milvus Lite file -> MilvusIndex objects open on it in this process
_lite_files: dict[str, FileLock] = {}  # Milvus Lite file -> this process's lock on it


def _import_pymilvus():  # noqa: ANN202
    try:
        import pymilvus
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return pymilvus


def _import_milvus_lite():  # noqa: ANN202
    try:
        with warnings.catch_warnings():  # milvus-lite 2.5 imports pkg_resources, which warns it is deprecated
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from milvus_lite.server_manager import server_manager_instance
    except ImportError as exc:
        hint = " (milvus-lite 2.5 imports pkg_resources: pip install 'setuptools<81')" if "pkg_resources" in str(exc) else ""
        raise ImportError(MISSING + hint) from exc
    return server_manager_instance


def is_lite_uri(uri: str | Path) -> bool:
    """A local file path ending in ``.db`` (Milvus Lite) rather than a server address."""
    return isinstance(uri, Path) or (str(uri).endswith(".db") and "://" not in str(uri))


SCHEMES = ("http", "https", "tcp", "unix")


def check_server_uri(uri: str) -> tuple[str, int | None]:
    """``(host, port)`` of a server address, or one line saying what is wrong with it."""
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"Milvus uri {uri!r} is neither a Milvus Lite file (a path ending in .db) nor a server "
                         f"address ({', '.join(s + '://' for s in SCHEMES[:3])}host:port or unix:path)")
    if parts.scheme == "unix":
        return "", None
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"Milvus uri {uri!r} has a port that is not a number 0..65535") from None
    if not parts.hostname:
        raise ValueError(f"Milvus uri {uri!r} names no host (write it as http://host:19530)")
    return parts.hostname, port


def _unreachable(uri: str, host: str, port: int | None) -> ConnectionError:
    """Why nothing answered at ``uri``: a host that does not resolve, or a port where nothing listens."""
    try:
        socket.getaddrinfo(host, port or 19530)
    except socket.gaierror as exc:
        return ConnectionError(f"cannot reach Milvus at {uri}: host {host!r} does not resolve ({exc.strerror})")
    return ConnectionError(f"cannot reach Milvus at {uri}: nothing answers on {host}:{port or 19530} "
                           "(is the server running, and is the port right?)")


def _id_list(ids: np.ndarray) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


class MilvusIndex:
    """Exact k-NN and radius search over ``nbits``-bit packed codes stored in a Milvus collection.

    ``uri``: a path ending in ``.db`` (Milvus Lite, started in a child process) or a server address
    such as ``"http://host:19530"``. ``collection``: the collection's name (letters, digits,
    underscores); reopening an existing one sees its items. ``token``, ``db_name`` and ``timeout``
    go to ``pymilvus.MilvusClient`` for servers with authentication or several databases.

    See the module's docstring for how Milvus's contract is made to match ``HammingIndex``'s.
    """

    max_topk = MAX_TOPK

    def __init__(self, nbits: int, *, uri: str | Path, collection: str = "dnnh_codes", token: str = "",
                 db_name: str = "", timeout: float | None = None) -> None:
        self.nbits = check_nbits(nbits)
        if not isinstance(collection, str) or not _NAME_RE.match(collection) or len(collection) + len(_META_SUFFIX) > 255:
            raise ValueError(f"collection must be a Milvus collection name (a letter or _, then letters, digits "
                             f"or _; at most {255 - len(_META_SUFFIX)} characters), got {collection!r}")
        self.collection = collection
        self.dim = (self.nbits + 7) // 8 * 8  # Milvus's BINARY_VECTOR dim: bits, a multiple of 8
        self._meta = collection + _META_SUFFIX
        self._lite_path: str | None = None
        self.uri = str(uri)
        self._client = self._connect(uri, token, db_name, timeout)
        try:
            if self._client.has_collection(collection):
                self._check_existing()
            else:
                self._create()
            self._next_id = self._largest_held() + 1
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ connection

    def _connect(self, uri: str | Path, token: str, db_name: str, timeout: float | None):  # noqa: ANN202
        pymilvus = _import_pymilvus()
        if not is_lite_uri(uri):
            host, port = check_server_uri(str(uri))
            try:
                return pymilvus.MilvusClient(uri=str(uri), token=token, db_name=db_name, timeout=timeout)
            except pymilvus.MilvusException as exc:
                if getattr(exc, "code", None) == 2:  # "Fail connecting to server"
                    raise _unreachable(str(uri), host, port) from None
                raise
        _import_milvus_lite()
        path = Path(uri).expanduser().absolute()
        if not path.parent.is_dir():
            raise FileNotFoundError(f"Milvus Lite file {path}: directory {path.parent} does not exist")
        if path.is_dir():
            raise ValueError(f"Milvus Lite file {path} is a folder; give a file path ending in .db")
        key = str(path.resolve())
        with _lite_lock:
            if key not in _lite_open:  # the first index on this file in this process takes the file's lock
                _lite_files[key] = lock_file(path, "Milvus Lite file").acquire()
            try:
                client = pymilvus.MilvusClient(uri=str(path), token=token, db_name=db_name, timeout=timeout)
            except Exception as exc:
                if key not in _lite_open:
                    _lite_files.pop(key).release()
                raise ValueError(f"could not start Milvus Lite on {path}: {exc}") from None
            _lite_open[key] = _lite_open.get(key, 0) + 1
        self._lite_path = key
        return client

    def close(self) -> None:
        """Release the connection; the last index closed on a Milvus Lite file stops its server."""
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()
        key, self._lite_path = self._lite_path, None
        if key is None:
            return
        with _lite_lock:
            left = _lite_open.get(key, 1) - 1
            if left > 0:
                _lite_open[key] = left
                return
            _lite_open.pop(key, None)
            try:
                _import_milvus_lite().release_server(key)
            finally:
                held = _lite_files.pop(key, None)
                if held is not None:
                    held.release()

    def __enter__(self) -> "MilvusIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self):  # noqa: ANN201
        """The ``pymilvus.MilvusClient`` in use (raises once the index is closed)."""
        if self._client is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._client

    # ------------------------------------------------------------------ collections

    def _create(self) -> None:
        self._create_collection(self.collection, self.dim, _DESCRIPTION.format(nbits=self.nbits))
        self._create_collection(self._meta, 8, f"dnnh.MilvusIndex next default id of {self.collection}")

    def _create_collection(self, name: str, dim: int, description: str) -> None:
        from pymilvus import DataType

        c = self.client
        schema = c.create_schema(auto_id=True, enable_dynamic_field=False, description=description)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("id", DataType.INT64)
        schema.add_field("code", DataType.BINARY_VECTOR, dim=dim)
        c.create_collection(name, schema=schema, consistency_level="Strong")
        params = c.prepare_index_params()
        params.add_index(field_name="code", index_type="BIN_FLAT", metric_type="HAMMING")
        # BIN_FLAT builds nothing; sync=False skips pymilvus's 0.5 s poll of the index state
        c.create_index(name, params, sync=False)
        c.load_collection(name)

    def _check_existing(self) -> None:
        info = self.client.describe_collection(self.collection)
        match = _DESCRIPTION_RE.match(str(info.get("description", "")))
        where = f"collection {self.collection!r} at {self.uri}"
        if match is None:
            raise ValueError(f"{where} was not made by MilvusIndex (its description is "
                             f"{info.get('description')!r}); pick another collection name")
        stored = int(match.group(1))
        if stored != self.nbits:
            raise ValueError(f"{where} holds {stored}-bit codes; open it with nbits={stored}, not {self.nbits}")
        dims = [f.get("params", {}).get("dim") for f in info.get("fields", []) if f.get("name") == "code"]
        if not dims or int(dims[0]) != self.dim:
            raise ValueError(f"{where} has a code field of dim {dims[0] if dims else None}, expected {self.dim}")
        if not self.client.has_collection(self._meta):
            self._create_collection(self._meta, 8, f"dnnh.MilvusIndex next default id of {self.collection}")

    def _largest_held(self) -> int:
        """The largest id the collection has held since the last reset (-1: none), from the side collection.

        It keeps the largest id rather than the next one, so that an id of 2**63-1 still fits in INT64.
        """
        rows = self.client.query(self._meta, filter="id >= 0", output_fields=["id"], limit=16384)
        return max((int(r["id"]) for r in rows), default=-1)

    def _store_largest(self, largest: int) -> None:
        """Insert the new maximum, then drop older ones: a crash between the two leaves a readable maximum."""
        self.client.insert(self._meta, [{"id": int(largest), "code": b"\x00"}])
        self.client.delete(self._meta, filter=f"id < {int(largest)}")

    @classmethod
    def for_build(cls, nbits: int, *, uri: str | Path, collection: str = "dnnh_codes", replace: bool = False,
                  **kwargs: object) -> "MilvusIndex":
        """An index to build a collection from scratch: an empty collection, or with ``replace`` an
        existing one emptied first (:meth:`reset`). A collection already holding items is refused:
        adding the same codes again would store every item twice, and a build cut short (kill -9)
        left part of them. ``dnnh index build --backend milvus`` opens it so: rerunning it is
        refused or, with ``--replace``, leaves exactly the codes given."""
        index = cls(nbits, uri=uri, collection=collection, **kwargs)  # type: ignore[arg-type]
        try:
            held = index.ntotal
            if held and not replace:
                raise ValueError(f"collection {collection!r} at {index.uri} already holds {held:,} items (an earlier "
                                 "build, or one cut short); building again would store them twice: pass --replace "
                                 "to rebuild it from these codes, or choose another --collection")
            if held or replace:
                index.reset()
        except BaseException:
            index.close()
            raise
        return index

    # ------------------------------------------------------------------ contents

    def reset(self) -> None:
        """Remove every item (drops and recreates the collection); default ids start again from 0."""
        for name in (self.collection, self._meta):
            self.client.drop_collection(name)
        self._create()
        self._next_id = 0

    @property
    def ntotal(self) -> int:
        """Items stored (asked of Milvus: other clients' adds and removes count)."""
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def __len__(self) -> int:
        return self.ntotal

    def add(self, codes: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Append items: ``codes`` (n, ceil(nbits/8)) uint8 as ``pack_bits`` makes them, nothing else.

        ``ids`` (n non-negative integers) default to 0, 1, 2, ... continuing after the largest id the
        collection has held since the last reset; ids need not be unique (``remove`` drops them all).
        """
        codes = check_packed(codes, self.nbits, "codes")
        n = len(codes)
        new_ids = None if ids is None else HammingIndex._check_ids(ids, n)
        if n == 0:
            return
        held = self._largest_held()  # another client may have added since this one last looked
        start = max(self._next_id, held + 1)
        if new_ids is None:
            check_default_ids(start, n)
            new_ids = np.arange(start, start + n, dtype=np.int64)
        largest = max(start - 1, int(new_ids.max()))
        if largest > held:  # recorded before the items go in: a failed insert skips ids, never reuses them
            self._store_largest(largest)
        self._next_id = largest + 1
        width = codes.shape[1]
        for s in range(0, n, INSERT_ROWS):
            block = np.ascontiguousarray(codes[s:s + INSERT_ROWS]).tobytes()
            rows = [{"id": i, "code": block[j * width:(j + 1) * width]}
                    for j, i in enumerate(new_ids[s:s + INSERT_ROWS].tolist())]
            self.client.insert(self.collection, rows)

    def remove(self, ids: object) -> int:
        """Drop every item whose id is in ``ids`` (an int or a 1-D integer array); returns how many."""
        arr = np.atleast_1d(np.asarray(ids))
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise TypeError(f"ids to remove must be an integer or a 1-D integer array, got {arr.dtype} shape {arr.shape}")
        arr = np.unique(arr)
        arr = arr[(arr >= 0) & (arr <= _INT64_MAX)] if arr.size else arr  # others are never stored
        removed = 0
        for s in range(0, len(arr), REMOVE_IDS):
            expr = f"id in {_id_list(arr[s:s + REMOVE_IDS])}"
            count = int(self.client.query(self.collection, filter=expr, output_fields=["count(*)"])[0]["count(*)"])
            if count:
                self.client.delete(self.collection, filter=expr)
                removed += count
        return removed

    @classmethod
    def from_codeset(cls, codeset: object, **kwargs: object) -> "MilvusIndex":
        """An index over a :class:`dnnh.codes.CodeSet` (added to whatever the collection holds)."""
        index = cls(codeset.nbits, **kwargs)  # type: ignore[attr-defined,arg-type]
        index.add(codeset.codes, ids=codeset.ids)  # type: ignore[attr-defined]
        return index

    # ------------------------------------------------------------------ search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest items of each query: ``(distances, ids)``, int32 and int64 of shape (nq, k).

        Rows ascend by distance, then id. Where fewer than k items exist the row is padded with id -1
        and distance -1. ``k`` is at most 16384 (Milvus's top-k limit).
        """
        k = _as_int(k, "k", 1)
        if k > self.max_topk:
            raise ValueError(f"k={k} is above Milvus's top-k limit ({self.max_topk}); use range_search for "
                             "large answers, or HammingIndex, which has no such limit")
        q = check_packed(queries, self.nbits, "queries")
        nq = len(q)
        dist = np.full((nq, k), -1, np.int32)
        ids = np.full((nq, k), -1, np.int64)
        step = max(1, min(MAX_NQ, MAX_HITS // k))
        for s in range(0, nq, step):
            for row, hits in enumerate(self._search(q[s:s + step], k, {})):
                d, i = self._sorted(hits)
                dist[s + row, :len(d)] = d
                ids[s + row, :len(i)] = i
        return dist, ids

    def range_search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every item within ``radius`` of each query, INCLUSIVE (distance <= radius), like ``HammingIndex``.

        Returns ``(lims, distances, ids)``: query i's results are ``distances[lims[i]:lims[i+1]]``
        (int32) and ``ids[...]`` (int64), ordered by distance, then id. Complete however many items
        match (see the module's docstring).
        """
        radius = min(_as_int(radius, "radius", 0), self.nbits)
        q = check_packed(queries, self.nbits, "queries")
        nq = len(q)
        limit = self.max_topk
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        step = max(1, min(MAX_NQ, MAX_HITS // limit))
        for s in range(0, nq, step):
            block = q[s:s + step]
            for row, hits in enumerate(self._search(block, limit, {"radius": radius + 1})):
                if len(hits) < limit:
                    parts.append(self._sorted(hits))
                else:  # the limit truncated this query's answer: split it until every part fits
                    d, i = (np.concatenate(x) for x in zip(*self._range_all(block[row:row + 1], 0, radius, 0, _PK_MAX)))
                    order = np.lexsort((i, d))
                    parts.append((d[order], i[order]))
        lims = np.zeros(nq + 1, np.int64)
        lims[1:] = np.cumsum([len(d) for d, _ in parts], dtype=np.int64)
        if not parts:
            return lims, np.zeros(0, np.int32), np.zeros(0, np.int64)
        return lims, np.concatenate([d for d, _ in parts]), np.concatenate([i for _, i in parts])

    def _range_all(self, query: np.ndarray, lo: int, hi: int, pk_lo: int, pk_hi: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """All hits with ``lo <= d <= hi`` and ``pk_lo <= pk <= pk_hi``, in as many requests as needed."""
        params: dict[str, int] = {"radius": hi + 1}
        if lo > 0:
            params["range_filter"] = lo
        expr = "" if (pk_lo, pk_hi) == (0, _PK_MAX) else f"pk >= {pk_lo} and pk <= {pk_hi}"
        hits = self._search(query, self.max_topk, params, expr)[0]
        if len(hits) < self.max_topk:
            return [self._sorted(hits)]
        if hi > lo:
            mid = (lo + hi) // 2
            return self._range_all(query, lo, mid, pk_lo, pk_hi) + self._range_all(query, mid + 1, hi, pk_lo, pk_hi)
        # one distance, too many items: split the primary keys at the median of those returned
        pks = np.sort(np.asarray([h["id"] for h in hits], dtype=np.int64))
        mid = int(pks[(len(pks) - 1) // 2])
        if mid >= pk_hi:  # unreachable: returned keys are distinct and within [pk_lo, pk_hi]
            raise RuntimeError("Milvus returned more hits than distinct primary keys in range")
        return self._range_all(query, lo, hi, pk_lo, mid) + self._range_all(query, lo, hi, mid + 1, pk_hi)

    def _search(self, queries: np.ndarray, limit: int, params: dict, expr: str = "") -> list:
        if len(queries) == 0:
            return []
        width = queries.shape[1]
        flat = np.ascontiguousarray(queries).tobytes()
        data = [flat[j * width:(j + 1) * width] for j in range(len(queries))]
        return self.client.search(self.collection, data=data, filter=expr, limit=limit, output_fields=["id"],
                                  anns_field="code", search_params={"metric_type": "HAMMING", "params": params})

    @staticmethod
    def _sorted(hits: list) -> tuple[np.ndarray, np.ndarray]:
        d = np.rint(np.asarray([h["distance"] for h in hits], dtype=np.float64)).astype(np.int32)
        i = np.asarray([h["entity"]["id"] for h in hits], dtype=np.int64)
        order = np.lexsort((i, d))
        return d[order], i[order]

    def __repr__(self) -> str:
        state = "closed" if self._client is None else "open"
        return f"MilvusIndex(nbits={self.nbits}, uri={self.uri!r}, collection={self.collection!r}, {state})"
