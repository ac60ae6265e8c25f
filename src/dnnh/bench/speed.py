"""Training speed as the time to reach a validation MAP, not as images per second.

Images/s says nothing about how much each image teaches: in-batch mining forms many triplets
per image and random three-stream sampling one, so the fair comparison is how long each takes
to reach the same quality. The clock is the sum of the epochs' training seconds as the history
records them (batches only: validation and checkpoint writing are measurement overhead, the
same for every method), read at the end of the first epoch whose validation MAP reaches the target.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

#: The pair the speed section of a report compares, when both are in a bench.
SPEED_PAIR = ("dnnh", "dnnh-random")


def time_to_reach(history: Sequence[Mapping], target: float) -> dict | None:
    """``{"epoch", "seconds"}`` at the end of the first epoch with ``val_map >= target``, else None.

    ``history`` is a training run's list of epoch records, each with ``seconds`` (that epoch's
    training time) and, on validated epochs, ``val_map``.

    >>> time_to_reach([{"seconds": 10, "val_map": 0.2}, {"seconds": 12, "val_map": 0.5}], 0.4)
    {'epoch': 2, 'seconds': 22.0}
    """
    if not math.isfinite(target):
        raise ValueError(f"target MAP must be a finite number, got {target}")
    clock = 0.0
    for position, record in enumerate(history, start=1):
        clock += float(record["seconds"])
        val = record.get("val_map")
        if val is not None and math.isfinite(val) and val >= target:
            return {"epoch": int(record.get("epoch", position)), "seconds": clock}
    return None


def best_val_map(history: Sequence[Mapping]) -> float | None:
    values = [r["val_map"] for r in history if r.get("val_map") is not None and math.isfinite(r["val_map"])]
    return max(values) if values else None


def compare_speed(histories: Mapping[str, Sequence[Mapping]], target: float | None = None) -> dict:
    """When each method of ``histories`` first reaches ``target`` validation MAP.

    Default target: the lowest of the methods' best validation MAPs, the highest level every one
    of them reaches, so each gets a time.
    """
    if not histories:
        raise ValueError("compare_speed needs at least one history")
    bests = {name: best_val_map(h) for name, h in histories.items()}
    if target is None:
        reached = [b for b in bests.values() if b is not None]
        if len(reached) < len(bests):
            missing = sorted(n for n, b in bests.items() if b is None)
            raise ValueError(f"no validation MAP in the history of {missing}: cannot pick a target")
        target = min(reached)
    return {"target_val_map": float(target),
            "methods": {name: {"best_val_map": bests[name], "reached": time_to_reach(h, target)}
                        for name, h in histories.items()}}
