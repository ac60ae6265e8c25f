"""What the web service does, without the web: a run's encoder, its store, its dataset's images.

:class:`Service` is what :func:`dnnh.serve.create_app` puts behind HTTP, and what the load
benchmark calls directly to measure the in-process rate. Every method is thread-safe.
"""

from __future__ import annotations

import hmac
import sys
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from dnnh.codes import CodeSet, pack_bits, unpack_bits
from dnnh.data.dataset import label_text
from dnnh.runs import CODES, Run
from dnnh.serve.images import decode_upload, thumbnail_png
from dnnh.serve.limits import Limits
from dnnh.serve.store import Hit, Store

#: Default store folder inside the run.
STORE_DIR = "serve"
MAX_LABEL = 200


class NotFound(LookupError):
    """No alive item has the id asked for."""


class Busy(RuntimeError):
    """Every upload slot is taken (503 with Retry-After): the server decodes a bounded number at once."""


def _encoder_from_run(run: Run, engine: str | None) -> Any:
    from dnnh.encoder import Encoder

    return Encoder.from_run(run, engine=engine, num_workers=0)  # None: the one default


class RunParts:
    """A run's encoder and dataset, each loaded on first need and once (seeding may need both
    before the service does; an unavailable dataset is a note, not an error)."""

    def __init__(self, run: Run, engine: str | None = None, encoder: Any = None) -> None:
        self.run, self.engine, self._encoder = run, engine, encoder
        self._dataset: Any = None
        self.dataset_note: str | None = None

    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = _encoder_from_run(self.run, self.engine)
        return self._encoder

    def dataset(self) -> Any | None:
        if self._dataset is None and self.dataset_note is None:
            try:
                self._dataset = self.run.load_dataset()
            except (FileNotFoundError, ValueError, OSError) as exc:
                self.dataset_note = f"the run's dataset is unavailable ({exc}); items have no images"
        return self._dataset


def seed_items(run: Run, parts: RunParts, *, index: str | Path | None = None,
               log: Callable[[str], None] = lambda msg: None) -> tuple[np.ndarray, np.ndarray]:
    """The first items of a new store as ``(packed codes, ids)``: from ``index`` (a ``.dhi`` file),
    else the run's database codes (``codes_database.npz``) when the model that serves made them
    (:func:`run_codes_of`), else the run's database images encoded now with that model. Called
    when the store is made, and by a reseed."""
    nbits = int(run.model_config.nbits)
    if index is not None:
        from dnnh.index import HammingIndex

        loaded = HammingIndex.load(index)
        if loaded.nbits != nbits:
            raise ValueError(f"{index} holds {loaded.nbits}-bit codes but the model makes {nbits}-bit codes")
        return loaded.codes(), loaded.ids
    codes_path = run.path / CODES["database"]
    codes = run_codes_of(run, parts, log) if codes_path.exists() else None
    if codes is not None:
        return codes.codes, codes.ids
    dataset = parts.dataset()
    if dataset is None:
        raise FileNotFoundError(f"{codes_path} not found and {parts.dataset_note}; "
                                "pass --index or run `dnnh encode` first")
    log(f"encoding the run's {len(run.split.database)} database images (once: the store keeps them)")
    bits = parts.encoder().encode_items(dataset, np.asarray(run.split.database), role="database",
                                        progress=sys.stderr.isatty())
    return pack_bits(bits), np.asarray(run.split.database, np.int64)


def run_codes_of(run: Run, parts: RunParts, log: Callable[[str], None]) -> CodeSet | None:
    """The run's ``codes_database.npz`` when the encoder that serves made it: the weights it loaded,
    its engine (torch codes for ``auto``, which promises equal ones), the split's ids, arrays
    untouched. Otherwise None, with one line saying why (the database is then encoded now)."""
    from dnnh.encoder.names import AUTO, check_engine

    path = run.path / CODES["database"]
    encoder = parts.encoder()
    try:
        codes = CodeSet.load(path)
    except (ValueError, TypeError, OSError) as exc:
        log(f"note: {' '.join(str(exc).split())}; encoding the run's database instead")
        return None
    if codes.nbits != int(run.model_config.nbits):
        raise ValueError(f"{path} holds {codes.nbits}-bit codes but the model makes {run.model_config.nbits}-bit "
                         f"codes; run `dnnh encode --run {run.path}` again")
    origin = codes.origin or {}
    weights, engine = getattr(encoder, "weights_digest", None), encoder.backend.name
    engines = {engine, "torch"} if check_engine(parts.engine) == AUTO else {engine}
    if origin.get("weights") != weights or origin.get("engine") not in engines or not np.array_equal(
            codes.ids, run.split.database):
        made = (f"by weights {origin.get('weights')} and engine {origin.get('engine')}" if origin
                else "before codes recorded their origin")
        log(f"note: {path} was made {made}, not by the model served now (weights {weights}, engine {engine}); "
            "encoding the run's database instead")
        return None
    return codes


def encode_stored_images(encoder: Any, paths: list[Path], batch: int = 256) -> np.ndarray:
    """Packed codes of added items' stored images (their thumbnails: the uploads are not kept), for a reseed."""
    from dnnh.serve.images import decode_upload

    prep, limits, out = encoder.prep, Limits(), []
    for start in range(0, len(paths), batch):
        images = [decode_upload(p.read_bytes(), channels=int(prep.channels), input_size=int(prep.load_size),
                                max_pixels=limits.max_pixels, max_decode_bytes=limits.max_decode_bytes,
                                name=f"stored image {p.name}")[0] for p in paths[start:start + batch]]
        out.append(pack_bits(encoder.encode_images(np.stack(images), role="database")))
    return np.concatenate(out) if out else np.zeros((0, (encoder.nbits + 7) // 8), np.uint8)


class _Slot:
    __slots__ = ("image", "done", "bits", "error", "lead")

    def __init__(self, image: np.ndarray) -> None:
        self.image, self.done, self.bits, self.error, self.lead = image, threading.Event(), None, None, False


class QueryBatcher:
    """Encodes the query images of concurrent requests together, in the requests' own threads.

    The first request to arrive while no model call runs makes one at once with its image alone
    (no thread hop: a lone client waits for nothing). Requests arriving meanwhile queue up; when the
    call ends, the first of them wakes and encodes the whole queue (up to ``max_batch``) in one call,
    and so on. Sixteen concurrent requests cost a few model calls instead of sixteen, which is where
    a small model's time goes (per-call overhead, not arithmetic).
    """

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray], max_batch: int = 64) -> None:
        self._encode, self.max_batch = encode, int(max_batch)
        self._lock = threading.Lock()
        self._pending: list[_Slot] = []
        self._running = False
        self.batches = 0
        self.items = 0

    def encode(self, image: np.ndarray) -> np.ndarray:
        """0/1 bits (nbits,) of one uint8 image at the model's input size (S, S, C)."""
        slot = _Slot(image)
        with self._lock:
            self._pending.append(slot)
            slot.lead = not self._running
            self._running = True
        if not slot.lead:
            slot.done.wait()
        if slot.lead:
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.bits

    def _lead(self) -> None:
        """Encode the queue's head (this thread's image is in it), then wake the next leader."""
        with self._lock:
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
        try:
            bits = self._encode(np.stack([s.image for s in batch]))
            for s, b in zip(batch, bits):
                s.bits = b
        except BaseException as exc:  # handed to every request of the batch, which answers it
            for s in batch:
                s.error = exc
        with self._lock:
            self.batches += 1
            self.items += len(batch)
            successor = self._pending[0] if self._pending else None
            if successor is None:
                self._running = False
            else:
                successor.lead = True
        for s in batch:
            s.lead = False
            s.done.set()
        if successor is not None:
            successor.done.set()


class Service:
    """A run behind a store: search by image or by item, add and delete items, item images."""

    def __init__(self, run: Run, encoder: Any, store: Store, dataset: Any | None, *, token: str | None = None,
                 limits: Limits = Limits(), dataset_note: str | None = None) -> None:
        self.run, self.encoder, self.store, self.dataset = run, encoder, store, dataset
        self.limits = limits
        self.dataset_note = dataset_note
        self._token = token.encode() if token else None
        self.nbits = store.nbits
        prep = encoder.prep
        # uploads are resized to the side the run's preprocessing starts from (its crop, if any, follows)
        self.channels, self.input_size = int(prep.channels), int(prep.load_size)
        self._thumbs: OrderedDict[int, bytes] = OrderedDict()
        self._thumbs_lock = threading.Lock()
        self._class_names = list(getattr(dataset, "class_names", None) or [])
        self._labels = np.asarray(dataset.labels) if dataset is not None else None
        self.started = time.time()
        self.batcher = QueryBatcher(lambda images: self.encoder.encode_images(images, role="query"))
        self._upload_slots = threading.BoundedSemaphore(limits.max_concurrent_uploads)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, run: str | Path | Run, *, index: str | Path | None = None, store: str | Path | None = None,
             token: str | None = None, engine: str | None = None, limits: Limits = Limits(),
             encoder: Any = None, load_dataset: bool = True, log: Callable[[str], None] | None = None,
             store_options: dict | None = None, reseed: bool = False) -> "Service":
        """Open ``run``, load the model, lock and load its store (default ``RUN/serve``).

        A new store starts from ``index`` (a ``.dhi`` file), else the run's database codes
        (``codes_database.npz`` when this model made it, else encoded now with the run's model).
        The store records the weights the encoder loaded; a store of other weights is refused
        (:class:`~dnnh.serve.journal.StoreError`), or with ``reseed`` encoded again.
        """
        log = log or (lambda msg: print(msg, file=sys.stderr))
        run = run if isinstance(run, Run) else Run.open(run)
        store_path = Path(store) if store is not None else run.path / STORE_DIR
        nbits = int(run.model_config.nbits)
        parts = RunParts(run, engine, encoder)
        enc = parts.encoder()  # first: its weights decide whether the store's codes are this model's
        opened = Store.open(store_path, nbits=nbits, seed=lambda: seed_items(run, parts, index=index, log=log),
                            first_id=int(run.dataset.get("size", 0) or 0),
                            seed_name=str(Path(index).resolve()) if index is not None else None,
                            weights=getattr(enc, "weights_digest", None), reseed=reseed,
                            reencode=lambda paths: encode_stored_images(enc, paths), **(store_options or {}))
        if opened.reseeded is not None:
            log(f"store {store_path}: {opened.reseeded[0]} items of the run's database and {opened.reseeded[1]} added "
                f"items (from their stored images) encoded again with weights {opened.weights}")
        try:
            if int(enc.nbits) != nbits:
                raise ValueError(f"the model makes {enc.nbits}-bit codes but its config says {nbits}")
            dataset = parts.dataset() if load_dataset else None
            note = parts.dataset_note if load_dataset else "images of the run's dataset are not served"
            if note:
                log(f"note: {note}")
            return cls(run, enc, opened, dataset, token=token, limits=limits, dataset_note=note)
        except BaseException:
            opened.close()
            raise

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ auth

    @property
    def writable(self) -> bool:
        return self._token is not None

    def auth_problem(self, authorization: str | None) -> tuple[int, str] | None:
        """Why a write with this ``Authorization`` header is refused (status, message), or None."""
        if self._token is None:
            return 403, ("this server is read-only: start it with --token-file or DNNH_TOKEN set "
                         "to allow adding and deleting items")
        if not authorization:
            return 401, "writes need an 'Authorization: Bearer <token>' header"
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, "writes need an 'Authorization: Bearer <token>' header"
        if not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._token):
            return 401, "the bearer token is wrong"
        return None

    # ------------------------------------------------------------------ items

    def label(self, item_id: int) -> str | None:
        if self.store.is_added(item_id):
            return self.store.label(item_id)
        if self._labels is None or not 0 <= item_id < len(self._labels):
            return None
        return label_text(self._labels, self._class_names, item_id)

    def has_image(self, item_id: int) -> bool:
        return self.store.is_added(item_id) or (self.dataset is not None and 0 <= item_id < len(self.dataset))

    def item(self, item_id: int, distance: int | None = None) -> dict:
        out: dict[str, Any] = {"id": int(item_id)}
        if distance is not None:
            out["distance"] = int(distance)
        out["label"] = self.label(item_id)
        out["image_url"] = f"/api/items/{int(item_id)}/image" if self.has_image(item_id) else None
        return out

    def image_png(self, item_id: int) -> bytes:
        """The PNG of an alive item; :class:`NotFound` when there is none."""
        if self.store.code(item_id) is None:
            raise NotFound(f"no item has id {item_id}")
        if self.store.is_added(item_id):
            try:
                return self.store.image_path(item_id).read_bytes()
            except FileNotFoundError:
                raise NotFound(f"item {item_id} was deleted") from None
        if self.dataset is None or not 0 <= item_id < len(self.dataset):
            raise NotFound(f"item {item_id} has no image on this server")
        with self._thumbs_lock:
            png = self._thumbs.get(item_id)
            if png is not None:
                self._thumbs.move_to_end(item_id)
                return png
        png = thumbnail_png(self.dataset.load_image(item_id))
        with self._thumbs_lock:
            self._thumbs[item_id] = png
            while len(self._thumbs) > 4096:
                self._thumbs.popitem(last=False)
        return png

    # ------------------------------------------------------------------ search

    def check_k(self, k: int, radius: int | None) -> None:
        if not 1 <= k <= self.limits.k_max:
            raise ValueError(f"k must be between 1 and {self.limits.k_max}, got {k}")
        if radius is not None and radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")

    def _answer(self, code: np.ndarray, k: int, radius: int | None, timings: dict[str, float],
                first: int | None = None) -> dict:
        t = time.perf_counter()
        hits = self.store.search(code, k, radius)
        if first is not None:  # the query item itself leads, then the others by distance and id
            hits = [Hit(first, 0)] + [h for h in hits if h.id != first][:k - 1]
        timings["search"] = (time.perf_counter() - t) * 1000.0
        bits = unpack_bits(code.reshape(1, -1), self.nbits)[0]
        return {"results": [self.item(h.id, h.distance) for h in hits],
                "code": code.reshape(-1).tobytes().hex(), "bits": "".join("1" if b else "0" for b in bits),
                "nbits": self.nbits, "k": k, "radius": radius,
                "timings_ms": {key: round(value, 3) for key, value in timings.items()}}

    def decode(self, data: bytes, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
        return decode_upload(data, channels=self.channels, input_size=self.input_size,
                             max_pixels=self.limits.max_pixels, max_decode_bytes=self.limits.max_decode_bytes,
                             name=name)

    @contextmanager
    def upload_slot(self) -> Iterator[None]:
        """One of ``max_concurrent_uploads`` decoding slots, or :class:`Busy` after ``upload_wait_s``."""
        if not self._upload_slots.acquire(timeout=self.limits.upload_wait_s):
            raise Busy(f"the server is decoding {self.limits.max_concurrent_uploads} uploads already; retry shortly")
        try:
            yield
        finally:
            self._upload_slots.release()

    def search_image(self, data: bytes, k: int = 10, radius: int | None = None) -> dict:
        """Results for an uploaded image's bytes (:class:`ImageRejected` for a bad upload)."""
        self.check_k(k, radius)
        t0 = time.perf_counter()
        with self.upload_slot():
            small, _ = self.decode(data)
        t1 = time.perf_counter()
        code = pack_bits(self.batcher.encode(small)[None])
        t2 = time.perf_counter()
        return self._answer(code, k, radius, {"decode": (t1 - t0) * 1000.0, "encode": (t2 - t1) * 1000.0})

    def similar(self, item_id: int, k: int = 10, radius: int | None = None) -> dict:
        """Results for a stored item's code (:class:`NotFound` when no item has ``item_id``).

        The item itself comes first (distance 0), then the ``k - 1`` nearest others by distance
        and id: among several items at distance 0 the one asked about would otherwise land
        wherever its id falls."""
        self.check_k(k, radius)
        code = self.store.code(item_id)
        if code is None:
            raise NotFound(f"no item has id {item_id}")
        out = self._answer(code, k, radius, {"decode": 0.0, "encode": 0.0}, first=int(item_id))
        out["query"] = self.item(item_id)
        return out

    # ------------------------------------------------------------------ writes

    def add_images(self, files: list[tuple[str, bytes]], label: str | None = None) -> list[int]:
        """Decode, encode and store ``(name, bytes)`` images durably; returns their ids."""
        if label is not None:
            label = label.strip()
            if len(label) > MAX_LABEL:
                raise ValueError(f"label must be at most {MAX_LABEL} characters, got {len(label)}")
            label = label or None
        if not files:
            raise ValueError("send at least one file in the field 'image'")
        small, pngs = [], []
        with self.upload_slot():  # one image decoded at a time: the slot bounds one image's memory
            for i, (name, data) in enumerate(files):
                model_input, full = self.decode(data, name=f"image {i + 1} ({_safe_name(name)})" if len(files) > 1
                                                else "image")
                small.append(model_input)
                pngs.append(thumbnail_png(full))
                del full
        bits = self.encoder.encode_images(np.stack(small), role="database")
        return self.store.add(pack_bits(bits), pngs, label)

    def delete(self, item_id: int) -> None:
        if not self.store.delete(item_id):
            raise NotFound(f"no item has id {item_id}")

    # ------------------------------------------------------------------ health

    def health(self) -> dict:
        import torch

        main = self.store
        # No paths (the run's, the store's): anyone who can reach the server reads this.
        return {"status": "ok", "ntotal": main.ntotal, "nbits": self.nbits, "dataset": self.run.dataset.get("name"), "writable": self.writable,
                "input_size": self.input_size, "channels": self.channels,
                "k_max": self.limits.k_max, "max_upload_bytes": self.limits.max_upload_bytes,
                "max_pixels": self.limits.max_pixels, "max_decode_bytes": self.limits.max_decode_bytes,
                "max_concurrent_uploads": self.limits.max_concurrent_uploads, "next_id": main.next_id,
                "engine": getattr(getattr(self.encoder, "backend", None), "name", None),
                "threads": {"torch": torch.get_num_threads(), "index": main.num_threads},
                "query_batches": {"batches": self.batcher.batches, "images": self.batcher.items},
                "snapshot_error": main.snapshot_error, "note": self.dataset_note,
                "uptime_s": round(time.time() - self.started, 1)}


def _safe_name(name: str | None) -> str:
    """A client's file name for messages only (never a path): printable, short."""
    text = "".join(ch for ch in (name or "") if ch.isprintable())[:80]
    return text or "unnamed"
