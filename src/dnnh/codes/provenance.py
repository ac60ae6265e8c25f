"""Where a shard of codes came from, so that ``dnnh index build`` never merges parts of different encodes.

``dnnh encode --shard I/N`` writes, inside each part, a small ``provenance`` record::

    {"run": "<run folder name>", "weights": "<sha256 of the weights the encoder loaded, 16 hex>",
     "split": "database", "part": I, "of": N, "engine": "torch", "precision": "fp32 on cpu",
     "set": "<16 hex>", "codes": "<sha256 of this part's codes, ids and labels, 16 hex>"}

``set`` names the whole set: a digest of the weights, the database's ids, N, the engine and its
precision, so every part of one encode carries the same set id whichever process or machine wrote
it, and a part of another encode (another run, the same run retrained, another split or N, another
engine: ``torch`` and ``onnxruntime-int8`` codes differ in a few bits) carries another, even where
its shape, nbits and ids look alike. ``codes`` ties the record to the part's own arrays, so a record
copied from a sibling onto other codes is found out. :func:`check_set` refuses a set whose parts
disagree, whose part numbers contradict their file names, or whose arrays are not the ones their
records describe. Files written before provenance existed carry none: a set of only such files is
built with a note saying nothing shows they are one encode; a mix is refused.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dnnh.codes.origin import arrays_digest

KEY = "provenance"
FIELDS = ("run", "weights", "split", "part", "of", "set")
#: The record's digest of the part's arrays (absent from parts written before issue 36.4, as are engine, precision).
CODES_DIGEST = "codes"
#: The number format each engine computes in (the int8 one also depends on the CPU: see :func:`engine_precision`).
ENGINE_FORMATS = {"torch": "fp32", "torch-bf16": "bf16", "onnxruntime": "fp32", "onnxruntime-int8": "int8"}


def file_digest(path: Path, length: int = 16) -> str:
    """The first ``length`` hex digits of the sha256 of a file (read in 1 MB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def bytes_digest(data: bytes, length: int = 16) -> str:
    """:func:`file_digest` of bytes already read (the weights an encoder loaded)."""
    return hashlib.sha256(data).hexdigest()[:length]


def engine_precision(engine: str, device: str) -> str:
    """What an engine's codes were computed in, as far as it changes bits: its number format (int8
    with 7-bit weights on a CPU without VNNI or AMX-INT8) and the device type (a GPU's convolutions
    run in TF32 by default)."""
    fmt = ENGINE_FORMATS.get(engine, engine)
    if engine == "onnxruntime-int8":
        from dnnh import machine

        fmt = "int8" if machine.int8_accumulates_exactly() else "int8 (7-bit weights)"
    return f"{fmt} on {str(device).split(':')[0]}"


def shard_provenance(run_name: str, weights_digest: str, split: str, database_ids: np.ndarray, part: int,
                     of: int, *, engine: str, precision: str) -> dict[str, Any]:
    """The record of part ``part`` of ``of`` of an encode of ``database_ids`` with the given weights
    by ``engine`` in ``precision`` (:func:`engine_precision`). The part's own digest is added by
    :meth:`dnnh.codes.CodeSet.stamp_provenance` once it is encoded."""
    h = hashlib.sha256()
    h.update(weights_digest.encode())
    h.update(split.encode())
    h.update(np.ascontiguousarray(database_ids, dtype="<i8").tobytes())
    h.update(str(int(of)).encode())
    h.update(f"{engine}|{precision}".encode())
    return {"run": run_name, "weights": weights_digest, "split": split, "part": int(part), "of": int(of),
            "engine": engine, "precision": precision, "set": h.hexdigest()[:16]}


def encode_provenance(record: dict[str, Any]) -> np.ndarray:
    """The record as the 0-d string array a ``.npz`` stores (no pickle)."""
    return np.array(json.dumps(record, sort_keys=True))


def decode_provenance(value: np.ndarray, where: str) -> dict[str, Any]:
    """The record back from its array; a ValueError naming ``where`` when it is not one."""
    try:
        record = json.loads(str(value[()]))
    except (ValueError, TypeError, IndexError):
        record = None
    if not isinstance(record, dict) or set(FIELDS) - set(record):
        raise ValueError(f"{where}: its 'provenance' is not a dnnh shard record (expected {', '.join(FIELDS)})")
    return record


def read_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance record of a codes file (None when it has none), without reading its codes."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not a .npz archive")
        with loaded as z:
            if KEY not in z.files:
                return None
            value = z[KEY]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:  # not the .npz dnnh writes
        raise ValueError(f"cannot read codes file {path}: {exc}; expected a part `dnnh encode --shard` "
                         "writes") from None
    return decode_provenance(value, f"codes file {path}")


def describe(record: dict[str, Any]) -> str:
    """The fields of a record that tell two encodes apart, for messages."""
    made = f", engine {record['engine']} ({record.get('precision')})" if "engine" in record else ""
    return f"run {record['run']}, weights {record['weights']}{made}, set {record['set']}"


def check_set(parts: Sequence[tuple[Path, tuple[int, int]]]) -> str | None:
    """Refuse shard files (path, (i, n) from the file name) that are not parts of one encode.

    Reads every part whole once (its arrays are checked against its record's digest). Returns a
    note for a set none of whose parts carries provenance (None otherwise): it is built, but
    nothing shows that its parts are of one encode."""
    records = [(path, named, read_provenance(path)) for path, named in parts]
    carrying = [r for r in records if r[2] is not None]
    if not carrying:  # written before provenance: the names were all there was to check
        return (f"the {len(records)} parts carry no provenance (written before dnnh recorded it), so nothing shows "
                "they are parts of one encode of one run; encode them again with this dnnh to have that checked")
    if len(carrying) != len(records):
        bare = next(path for path, _, rec in records if rec is None)
        raise ValueError(f"{bare} carries no provenance but other parts do: it is not from the same "
                         "`dnnh encode --shard` set; encode it again")
    first_path, _, first = carrying[0]
    for path, (i, n), rec in carrying:
        if (rec["part"], rec["of"]) != (i, n):
            raise ValueError(f"{path} is named part {i} of {n} but holds part {rec['part']} of {rec['of']}; "
                             "was it renamed?")
        if rec["set"] != first["set"]:
            raise ValueError(f"{path} is part of another encode ({describe(rec)}) than {first_path.name} "
                             f"({describe(first)}); give the parts of one `dnnh encode --shard I/N` set")
    for path, _, rec in carrying:
        digest = part_digest(path)
        if rec.get(CODES_DIGEST) and rec[CODES_DIGEST] != digest:
            raise ValueError(f"{path} is not a part of the set of {first_path.name} ({describe(first)}): its codes, ids "
                             f"or labels are not the ones its provenance record describes (digest {digest}, recorded "
                             f"{rec[CODES_DIGEST]}): the record was copied from another part, or the part edited; "
                             "encode that part again")
    return None


def part_digest(path: Path) -> str:
    """:meth:`dnnh.codes.CodeSet.content_digest` of a codes file, read here (CodeSet imports this module)."""
    with np.load(path, allow_pickle=False) as z:
        labels = np.asarray(z["labels"]) if "labels" in z.files else None
        return arrays_digest(z["codes"], np.asarray(z["ids"]).astype(np.int64), labels)
