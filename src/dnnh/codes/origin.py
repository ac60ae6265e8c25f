"""Where a run's codes came from, so that ``dnnh eval`` and ``dnnh encode`` reuse them instead of encoding again.

Scoring (the end of ``dnnh train``, ``dnnh eval``, ``dnnh encode``) writes, inside
``codes_query.npz`` and ``codes_database.npz``, a small ``origin`` record::

    {"weights": "<sha256 of the weights bytes the encoder loaded, 16 hex>",
     "data": "<kind>:<the data fingerprint's sha256>", "preprocessing": "<16 hex>", "engine": "torch",
     "arrays": "<sha256 of the file's codes, ids and labels, 16 hex>"}

``weights`` is the digest of the bytes the encoder read (:attr:`dnnh.encoder.Encoder.weights_digest`),
never of the file on disk after encoding: a ``train`` that saves a new best meanwhile would
otherwise stamp old codes with new weights. ``arrays`` is taken when the codes are encoded
(:meth:`dnnh.codes.CodeSet.stamp_origin`), not whenever a file is saved, so codes, ids or labels
edited later no longer match it: :meth:`~dnnh.codes.CodeSet.load` refuses such a file, and scoring
encodes again, saying why.

Encoding a 70,000-image split takes minutes; reading these two files takes milliseconds. Codes
are reused only when every field equals what encoding now would start from: the same weights
file (byte for byte), the same data (:mod:`dnnh.data.fingerprint`: paths, sizes, times, labels;
or an array's pixels and labels), the same preprocessing and an engine whose codes are these
(``auto`` promises codes equal to ``torch``'s, so it takes ``torch`` codes). Codes written
before the record existed carry none and are encoded again once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import numpy as np

KEY = "origin"
FIELDS = ("weights", "data", "preprocessing", "engine")
#: The record's digest of the arrays it describes (absent from records written before issue 36.9).
ARRAYS = "arrays"


def arrays_digest(codes: np.ndarray, ids: np.ndarray, labels: np.ndarray | None) -> str:
    """16 hex digits of the sha256 of packed codes, their ids and labels (shapes and dtypes included)."""
    h = hashlib.sha256()
    for name, array in (("codes", codes), ("ids", ids), ("labels", labels)):
        h.update(name.encode())
        if array is None:
            h.update(b"none")
            continue
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(memoryview(array).cast("B"))
    return h.hexdigest()[:16]


def codes_origin(weights_digest: str, fingerprint: Mapping[str, Any], preprocessing: Mapping[str, Any],
                 engine: str) -> dict[str, str]:
    """The record of codes computed by ``engine`` from these weights, data and preprocessing."""
    prep = hashlib.sha256(json.dumps(dict(preprocessing), sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"weights": weights_digest, "data": f"{fingerprint.get('kind')}:{fingerprint.get('sha256')}",
            "preprocessing": prep, "engine": engine}


def same_origin(saved: Mapping[str, Any] | None, now: Mapping[str, Any], engine: str) -> bool:
    """Whether codes of origin ``saved`` are the codes ``engine`` would compute from ``now``.

    A record without :data:`ARRAYS` (written before it held one) is not: its arrays cannot be
    checked, so they are encoded again once."""
    if not saved or not saved.get(ARRAYS):
        return False
    engines = {engine, "torch"} if engine == "auto" else {engine}
    return saved.get("engine") in engines and all(saved.get(k) == now.get(k) for k in FIELDS if k != "engine")


def encode_origin(record: Mapping[str, Any]) -> np.ndarray:
    """The record as the 0-d string array a ``.npz`` stores (no pickle)."""
    return np.array(json.dumps(dict(record), sort_keys=True))


def decode_origin(value: np.ndarray, where: str) -> dict[str, Any]:
    """The record back from its array; a ValueError naming ``where`` when it is not one."""
    try:
        record = json.loads(str(value[()]))
    except (ValueError, TypeError, IndexError):
        record = None
    if not isinstance(record, dict) or set(FIELDS) - set(record):
        raise ValueError(f"{where}: its 'origin' is not a dnnh codes record (expected {', '.join(FIELDS)})")
    return record
