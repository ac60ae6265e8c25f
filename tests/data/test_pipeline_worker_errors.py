"""A bad image met in a DataLoader worker is the loader's one-line error, not a worker traceback (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
from dnnh.data import CorruptImageError, load_dataset
from dnnh.data.pipeline import BatchSource, Preprocessing
from support.builders import save_image


def test_truncated_png_in_a_worker_is_one_line(tmp_path):
    root = tmp_path / "d"
    for c in ("a", "b"):
        for i in range(4):
            save_image(root / c / f"{i}.png", np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    blob = (root / "b" / "1.png").read_bytes()
    (root / "b" / "1.png").write_bytes(blob[: len(blob) // 2])
    ds = load_dataset(root, image_size=16)
    prep = Preprocessing.fit(ds, np.arange(4), input_size=16)
    source = BatchSource(ds, prep, num_workers=2)
    batches = [np.arange(0, 4), np.arange(4, 8)]
    with pytest.raises(CorruptImageError) as info:
        for _ in source.batches(batches):
            pass
    message = str(info.value)
    assert "\n" not in message and "b/1.png" in message and message.startswith("cannot decode image")
