"""A file of encoded items: packed codes with their dataset indices and labels (``.npz``).

``dnnh encode`` writes one; ``dnnh eval``, ``dnnh index build`` and the baselines read it. Keys:
``codes`` (uint8, (n, ceil(nbits/8)), FAISS bit order), ``nbits``, ``ids`` (int64 dataset
indices) and ``labels`` (1-D class ids or 2-D 0/1), for a shard its ``provenance``
(:mod:`dnnh.codes.provenance`) and for a run's scored codes their ``origin``
(:mod:`dnnh.codes.origin`: weights, data, preprocessing, engine), written atomically. Both
records hold a digest of the arrays they describe (:meth:`CodeSet.content_digest`), taken when the
codes were encoded: :meth:`CodeSet.load` refuses a file whose arrays no longer match its record
(edited after dnnh wrote it, or a record copied from another file), naming it.

Reading is strict because a codes file decides what ``eval`` scores: ids must be integers (a
float id would be truncated onto another item), labels must be one per code, and a file that is
not a zip archive or holds pickled objects is refused with a message naming it (never numpy's
advice to turn pickles on).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnnh.codes.packing import code_bytes, pack_bits, unpack_bits
from dnnh.codes.origin import ARRAYS, KEY as ORIGIN, arrays_digest, decode_origin, encode_origin
from dnnh.codes.provenance import CODES_DIGEST, KEY, decode_provenance, encode_provenance
from dnnh.errors import DataError, InputTypeError


@dataclass
class CodeSet:
    codes: np.ndarray
    nbits: int
    ids: np.ndarray
    labels: np.ndarray | None = None
    #: Where a shard came from (:mod:`dnnh.codes.provenance`); None for whole files.
    provenance: dict | None = None
    #: What a run's codes were computed from (:mod:`dnnh.codes.origin`), so scoring can reuse them.
    origin: dict | None = None

    def __post_init__(self) -> None:
        self.codes = np.asarray(self.codes)
        if self.codes.dtype != np.uint8 or self.codes.ndim != 2:
            raise InputTypeError(f"codes must be packed uint8 of shape (n, nbytes), got {self.codes.dtype} {self.codes.shape}")
        if self.codes.shape[1] != code_bytes(self.nbits):
            raise ValueError(f"{self.nbits}-bit codes take {code_bytes(self.nbits)} bytes, got {self.codes.shape[1]}")
        ids = np.asarray(self.ids)
        if ids.size and ids.dtype.kind not in "iu":
            raise InputTypeError(f"ids must be integers (dataset indices), got {ids.dtype}; float ids would be truncated")
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
        if ids.dtype.kind == "u" and ids.size and int(ids.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"ids must fit int64, got {int(ids.max())}")
        self.ids = ids.astype(np.int64)
        if len(self.ids) != len(self.codes):
            raise ValueError(f"{len(self.codes)} codes but {len(self.ids)} ids")
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.ndim not in (1, 2) or len(self.labels) != len(self.codes):
                raise ValueError(f"{len(self.codes)} codes but labels of shape {self.labels.shape} "
                                 "(expected one label, or one 0/1 row, per code)")

    @classmethod
    def from_bits(cls, bits: np.ndarray, ids: np.ndarray | None = None, labels: np.ndarray | None = None) -> "CodeSet":
        bits = np.asarray(bits)
        ids = np.arange(len(bits)) if ids is None else ids
        return cls(codes=pack_bits(bits), nbits=int(bits.shape[1]), ids=ids, labels=labels)

    @property
    def bits(self) -> np.ndarray:
        return unpack_bits(self.codes, self.nbits)

    def __len__(self) -> int:
        return len(self.codes)

    def content_digest(self) -> str:
        """The digest of the codes, ids and labels that the origin and provenance records hold."""
        return arrays_digest(self.codes, self.ids, self.labels)

    def stamp_origin(self, record: dict | None) -> None:
        """Give these codes their origin ``record`` (None: none), with the digest of their arrays now.

        Called where the codes were just encoded; :meth:`save` never re-stamps, so arrays edited
        after encoding keep a record that no longer matches them."""
        self.origin = None if record is None else {**record, ARRAYS: self.content_digest()}

    def stamp_provenance(self, record: dict) -> None:
        """Give this shard its provenance ``record`` with the digest of its arrays now (see :meth:`stamp_origin`)."""
        self.provenance = {**record, CODES_DIGEST: self.content_digest()}

    def unaltered_problem(self) -> str | None:
        """Why the arrays are not the ones their origin or provenance record describes (None: they are).

        Records written before they held a digest cannot be checked and pass."""
        digest = None
        for name, record, key in (("origin", self.origin, ARRAYS), ("provenance", self.provenance, CODES_DIGEST)):
            if record is None or not record.get(key):
                continue
            digest = digest or self.content_digest()
            if record[key] != digest:
                return (f"its codes, ids or labels are not the ones its {name} record describes (digest {digest}, "
                        f"recorded {record[key]}): it was changed after dnnh wrote it, or the record was copied "
                        "from another file")
        return None

    def save(self, path: str | Path) -> None:
        from dnnh.atomic import atomic_write_bytes

        buf = io.BytesIO()
        arrays = {"codes": self.codes, "nbits": np.int64(self.nbits), "ids": self.ids}
        if self.labels is not None:
            arrays["labels"] = np.asarray(self.labels)
        if self.provenance is not None:
            arrays[KEY] = encode_provenance(self.provenance)
        if self.origin is not None:
            arrays[ORIGIN] = encode_origin(self.origin)
        np.savez(buf, **arrays)
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "CodeSet":
        """Read a file :meth:`save` wrote; every problem is a ValueError/TypeError naming ``path``.

        ``verify``: refuse (:class:`~dnnh.errors.DataError`) a file whose arrays are not the ones its
        records describe (:meth:`unaltered_problem`); off only where the caller checks it itself."""
        where = f"cannot read codes file {path}"
        try:
            with open(path, "rb") as fh:
                magic = fh.read(4)
        except FileNotFoundError:
            raise FileNotFoundError(f"codes file {path} does not exist") from None
        except OSError as exc:
            raise ValueError(f"{where}: {exc.strerror or exc}") from exc
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ValueError(f"{where}: not a .npz archive (expected the file dnnh encode writes)")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"codes", "nbits", "ids"} - set(z.files)
                if missing:
                    raise ValueError(f"{path} is not a dnnh codes file: missing {sorted(missing)}")
                arrays = {}
                for key in ("codes", "nbits", "ids", "labels", KEY, ORIGIN):
                    if key in z.files:
                        try:
                            arrays[key] = z[key]
                        except ValueError as exc:
                            if "pickle" in str(exc):  # numpy refuses object arrays; don't relay its advice
                                raise ValueError(f"{where}: array {key!r} holds Python objects (a pickle), "
                                                 "which is refused; expected numeric arrays") from None
                            raise ValueError(f"{where}: array {key!r}: {exc}") from None
                        if not isinstance(arrays[key], np.ndarray):  # a zip member that is not a .npy
                            raise ValueError(f"{where}: {key!r} is not a numpy array; expected the file "
                                             "dnnh encode writes")
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        nbits = arrays["nbits"]
        if nbits.shape != () or nbits.dtype.kind not in "iu":
            raise ValueError(f"{where}: 'nbits' must be one integer, got {nbits.dtype} {nbits.shape}")
        provenance = decode_provenance(arrays[KEY], where) if KEY in arrays else None
        origin = decode_origin(arrays[ORIGIN], where) if ORIGIN in arrays else None
        try:
            loaded = cls(codes=arrays["codes"], nbits=int(nbits), ids=arrays["ids"], labels=arrays.get("labels"),
                         provenance=provenance, origin=origin)
        except TypeError as exc:
            raise InputTypeError(f"{where}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        problem = loaded.unaltered_problem() if verify else None
        if problem:
            raise DataError(f"codes file {path}: {problem}; encode it again (dnnh encode), or drop the record to "
                            "keep a deliberate edit")
        return loaded
