"""Data fingerprints: what a run was trained on, so that changed data is refused instead of scored.

A split stores positions (item 1796 is a query); if the folder behind them changes (an image
added, one removed, a file replaced) the same positions point at other files and labels, and
evaluation silently scores the wrong thing. A run records ``dataset.fingerprint()`` and compares
it with the data it is given later; :func:`fingerprint_difference` says in one line what changed.

- Files (folders, manifests, NUS-WIDE): a sha256 over every item *in dataset order* (a split's
  positions index that order) of its path relative to the dataset's root, its size, its
  modification time (``st_mtime_ns``) and its label. Only ``os.stat`` per file, no reading, so a
  200k-image set fingerprints in seconds. Copying the data without keeping times (``cp`` without
  ``-p``) changes the fingerprint; the message then reports every file as changed, which says so.
  Up to :data:`PER_FILE_LIMIT` items the fingerprint also keeps 8 bytes per file, so the message
  can count files added, removed and changed.
- Arrays (digits, MNIST, CIFAR-10, SVHN): the name, the sha256 of the labels and the sha256 of
  the pixels (a second for CIFAR-10's 184 MB).
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any, Mapping

import numpy as np

FINGERPRINT_FORMAT = 1
PER_FILE_LIMIT = 20_000  # up to this many files, 8 bytes each are kept for a precise difference


def _sha(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_sha(arr: np.ndarray) -> str:
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def array_fingerprint(dataset: Any) -> dict[str, Any]:
    """Fingerprint of an in-memory dataset (see the module docstring)."""
    labels_sha, images_sha = _array_sha(dataset.labels), _array_sha(dataset.images)
    return {"kind": "array", "format": FINGERPRINT_FORMAT, "name": dataset.name, "n": len(dataset),
            "sha256": _sha(f"{dataset.name}\n{labels_sha}\n{images_sha}".encode()),
            "labels_sha256": labels_sha, "images_sha256": images_sha}


def _relative(path: os.PathLike | str, root: str | None) -> str:
    if root is not None:
        rel = os.path.relpath(path, root)
        if not rel.startswith(".." + os.sep) and rel != "..":
            return rel.replace(os.sep, "/")
    return os.fspath(path).replace(os.sep, "/")


def files_fingerprint(dataset: Any) -> dict[str, Any]:
    """Fingerprint of a file dataset (see the module docstring)."""
    root = os.path.abspath(dataset.root) if dataset.root is not None else None
    labels = np.asarray(dataset.labels)
    whole, names = hashlib.sha256(), hashlib.sha256()
    per_file = bytearray() if len(dataset.paths) <= PER_FILE_LIMIT else None
    for i, path in enumerate(dataset.paths):
        rel = _relative(os.path.abspath(path), root)
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        label = ",".join(str(int(v)) for v in np.atleast_1d(labels[i]))
        name_part = rel.encode("utf-8", "surrogateescape")
        content_part = f"{size}\t{mtime}\t{label}".encode()
        whole.update(name_part + b"\t" + content_part + b"\n")
        names.update(name_part + b"\n")
        if per_file is not None:
            per_file += hashlib.blake2b(name_part, digest_size=4).digest()
            per_file += hashlib.blake2b(content_part, digest_size=4).digest()
    out: dict[str, Any] = {"kind": "files", "format": FINGERPRINT_FORMAT, "name": dataset.name,
                           "n": len(dataset.paths), "sha256": whole.hexdigest(), "paths_sha256": names.hexdigest()}
    if per_file is not None:
        out["files"] = base64.b64encode(bytes(per_file)).decode("ascii")
    return out


def _per_file(fp: Mapping[str, Any]) -> list[tuple[bytes, bytes]] | None:
    raw = fp.get("files")
    if not isinstance(raw, str):
        return None
    try:
        blob = base64.b64decode(raw, validate=True)
    except ValueError:
        return None
    if len(blob) % 8:
        return None
    return [(blob[i:i + 4], blob[i + 4:i + 8]) for i in range(0, len(blob), 8)]


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def fingerprint_difference(saved: Mapping[str, Any] | None, now: Mapping[str, Any]) -> str | None:
    """None when ``now`` is the data ``saved`` was taken of, else one line saying what changed.

    E.g. "3 files added, 1 removed, 2 changed (size, time or label) since the run was trained".
    A missing saved fingerprint (a run from before fingerprints) counts as unchanged: there is
    nothing to compare, and refusing every old run would be worse.
    """
    if not saved:
        return None
    if saved.get("sha256") == now.get("sha256") and saved.get("kind") == now.get("kind"):
        return None
    since = "since the run was trained"
    if saved.get("kind") != now.get("kind"):
        what = {"array": "an in-memory dataset", "files": "image files"}
        return (f"the run was trained on {what.get(saved.get('kind'), saved.get('kind'))} "
                f"({saved.get('name')}), this is {what.get(now.get('kind'), now.get('kind'))} ({now.get('name')})")
    n_then, n_now = int(saved.get("n", -1)), int(now.get("n", -1))
    if saved["kind"] == "array":
        if saved.get("name") != now.get("name"):
            return f"the run was trained on {saved.get('name')}, this is {now.get('name')}"
        if n_then != n_now:
            return f"{saved.get('name')} had {n_then:,} items when the run was trained, it has {n_now:,} now"
        parts = [k for k, key in (("labels", "labels_sha256"), ("images", "images_sha256"))
                 if saved.get(key) != now.get(key)]
        return f"the {' and '.join(parts) or 'data'} of {now.get('name')} changed {since}"
    then_files, now_files = _per_file(saved), _per_file(now)
    if then_files is not None and now_files is not None:
        then_map, now_map = dict(then_files), dict(now_files)
        added = sum(1 for k in now_map if k not in then_map)
        removed = sum(1 for k in then_map if k not in now_map)
        changed = sum(1 for k, v in now_map.items() if k in then_map and then_map[k] != v)
        if added or removed or changed:
            parts = [f"{_plural(added, 'file')} added" if added else "",
                     f"{removed:,} removed" if removed else "",
                     f"{changed:,} changed (size, time or label)" if changed else ""]
            return f"{', '.join(p for p in parts if p)} {since}"
        return f"the same files are listed in another order {since}"
    if n_then != n_now:
        return f"{n_then:,} files when the run was trained, {n_now:,} now"
    if saved.get("paths_sha256") == now.get("paths_sha256"):
        return f"the same {n_now:,} files, but some changed (size, time or label) {since}"
    return f"the data's fingerprint changed {since} (other files or another order)"
