"""Where a shard of codes came from, so that ``dnnh index build`` never merges parts of different encodes.

``dnnh encode --shard I/N`` writes, inside each part, a small ``provenance`` record::

    {"run": "<run folder name>", "weights": "<sha256 of model.safetensors, 16 hex>",
     "split": "database", "part": I, "of": N, "set": "<16 hex>"}

``set`` names the whole set: a digest of the weights, the database's ids and N, so every part of one
encode carries the same set id whichever process or machine wrote it, and a part of another encode
(another run, the same run retrained, another split or another N) carries another, even where its
shape, nbits and ids look alike. :func:`check_set` reads only this record of each file (not the
codes) and refuses a set whose parts disagree, or whose part numbers contradict their file names.
Files written before provenance existed carry none: a set of only such files is accepted as before,
a mix is refused.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

KEY = "provenance"
FIELDS = ("run", "weights", "split", "part", "of", "set")


def file_digest(path: Path, length: int = 16) -> str:
    """The first ``length`` hex digits of the sha256 of a file (read in 1 MB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def shard_provenance(run_name: str, weights_digest: str, split: str, database_ids: np.ndarray, part: int,
                     of: int) -> dict[str, Any]:
    """The record of part ``part`` of ``of`` of an encode of ``database_ids`` with the given weights."""
    h = hashlib.sha256()
    h.update(weights_digest.encode())
    h.update(split.encode())
    h.update(np.ascontiguousarray(database_ids, dtype="<i8").tobytes())
    h.update(str(int(of)).encode())
    return {"run": run_name, "weights": weights_digest, "split": split, "part": int(part), "of": int(of),
            "set": h.hexdigest()[:16]}


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


def check_set(parts: Sequence[tuple[Path, tuple[int, int]]]) -> None:
    """Refuse shard files (path, (i, n) from the file name) that are not parts of one encode."""
    records = [(path, named, read_provenance(path)) for path, named in parts]
    carrying = [r for r in records if r[2] is not None]
    if not carrying:
        return  # written before provenance: the names were all there was to check
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
            raise ValueError(f"{path} is part of another encode (run {rec['run']}, weights {rec['weights']}, set "
                             f"{rec['set']}) than {first_path.name} (run {first['run']}, weights {first['weights']}, "
                             f"set {first['set']}); give the parts of one `dnnh encode --shard I/N` set")
