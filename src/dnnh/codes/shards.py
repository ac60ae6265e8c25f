"""Shard files: one owner for how a share of a database's codes is named and how a set is checked.

``dnnh encode --shard I/N`` writes share I of N as ``codes_database.part-III-of-NNN.npz``
(:func:`shard_name`); ``dnnh index build --codes`` reads the parts one at a time and refuses a
set that mixes sets, repeats a part or lacks one (:func:`check_shards`).
"""

from __future__ import annotations

import re
from pathlib import Path

#: What a shard's file name ends with: ``.part-I-of-N.npz``.
SHARD_NAME = re.compile(r"\.part-(\d+)-of-(\d+)\.npz$")


def shard_name(i: int, n: int, stem: str = "codes_database") -> str:
    """The file name of share ``i`` of ``n`` (0 <= i < n)."""
    if not 0 <= int(i) < int(n):
        raise ValueError(f"a shard is share I of N with 0 <= I < N, got {i} of {n}")
    return f"{stem}.part-{int(i):03d}-of-{int(n):03d}.npz"


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """(i, n) of a shard's file name, or None when ``name`` is not one."""
    match = SHARD_NAME.search(name)
    return (int(match[1]), int(match[2])) if match else None


def check_shards(paths: list[Path]) -> None:
    """Refuse a set of shard files (``*.part-I-of-N.npz``) that mixes sets, repeats or lacks a part.

    Paths none of which is a shard pass (plain codes files).
    """
    named = [(parsed, p) for p in paths if (parsed := parse_shard_name(Path(p).name)) is not None]
    if not named:
        return
    counts = {n for (_, n), _ in named}
    if len(counts) > 1 or len(named) != len(paths):
        raise ValueError(f"--codes mixes shard sets ({', '.join(sorted(Path(p).name for p in paths))}); give the "
                         "parts of one `dnnh encode --shard I/N` set")
    n = counts.pop()
    have = sorted(i for (i, _), _ in named)
    missing = sorted(set(range(n)) - set(have))
    if missing or len(have) != len(set(have)):
        raise ValueError(f"--codes holds parts {have} of {n}: missing {missing}" if missing else
                         f"--codes names a part twice: {have}")
