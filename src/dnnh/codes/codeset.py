"""A file of encoded items: packed codes with their dataset indices and labels (``.npz``).

``dnnh encode`` writes one; ``dnnh eval``, ``dnnh index build`` and the baselines read it. Keys:
``codes`` (uint8, (n, ceil(nbits/8)), FAISS bit order), ``nbits``, ``ids`` (int64 dataset
indices) and ``labels`` (1-D class ids or 2-D 0/1), written atomically.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnnh.codes.packing import code_bytes, pack_bits, unpack_bits


@dataclass
class CodeSet:
    codes: np.ndarray
    nbits: int
    ids: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.codes = np.asarray(self.codes)
        if self.codes.dtype != np.uint8 or self.codes.ndim != 2:
            raise TypeError(f"codes must be packed uint8 of shape (n, nbytes), got {self.codes.dtype} {self.codes.shape}")
        if self.codes.shape[1] != code_bytes(self.nbits):
            raise ValueError(f"{self.nbits}-bit codes take {code_bytes(self.nbits)} bytes, got {self.codes.shape[1]}")
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if len(self.ids) != len(self.codes):
            raise ValueError(f"{len(self.codes)} codes but {len(self.ids)} ids")

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

    def save(self, path: str | Path) -> None:
        from dnnh.atomic import atomic_write_bytes

        buf = io.BytesIO()
        arrays = {"codes": self.codes, "nbits": np.int64(self.nbits), "ids": self.ids}
        if self.labels is not None:
            arrays["labels"] = np.asarray(self.labels)
        np.savez(buf, **arrays)
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "CodeSet":
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"codes", "nbits", "ids"} - set(z.files)
                if missing:
                    raise ValueError(f"{path} is not a dnnh codes file: missing {sorted(missing)}")
                labels = z["labels"] if "labels" in z.files else None
                return cls(codes=z["codes"], nbits=int(z["nbits"]), ids=z["ids"], labels=labels)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"cannot read codes file {path}: {exc}") from exc
