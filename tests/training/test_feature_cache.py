"""The feature cache: computed once per key, read back without the backbone, refused when its key no
longer matches, written atomically, one writer at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from dnnh.data.dataset import ArrayDataset
from dnnh.data.pipeline import Preprocessing
from dnnh.encoder import Encoder
from dnnh.errors import ChangedDataError, DataError
from dnnh.nn import DNNH, build_backbone
from dnnh.training.feature_cache import FeatureKey, cached_features, read_entry

PREP = Preprocessing.fixed(32, 1, [0.449], [0.226], resize=37)
ITEMS = np.arange(0, 120)


class Counted:
    """Builds one seeded resnet18 and counts the builds and the images its forward computes features of
    (blank inputs left out: the inference copy is traced once on two zero images)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.builds, self.images = seed, 0, 0

    def __call__(self) -> torch.nn.Module:
        self.builds += 1
        torch.manual_seed(self.seed)
        net = build_backbone("resnet18")

        def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            # a plain function, not a bound method: deepcopy (the inference copy) would copy the counter too
            if bool(inputs[0].abs().amax(dim=(1, 2, 3)).gt(0).all()):
                self.images += len(output)

        net.register_forward_hook(count)
        return net


def key_of(dataset, **changes) -> FeatureKey:
    return replace(FeatureKey.of("resnet18", "ab" * 32, PREP, dataset.fingerprint()), **changes)


def test_features_equal_the_encoders_and_are_not_computed_twice(digits, tmp_path):
    backbone = Counted()
    table = cached_features(key_of(digits), digits, PREP, ITEMS, backbone, tmp_path, batch_size=50)
    assert backbone.builds == 1 and backbone.images == len(ITEMS) and table.features.shape == (len(ITEMS), 512)
    model = DNNH(12, backbone="resnet18", in_channels=1)
    model.net.backbone.load_state_dict(Counted()().state_dict())
    expected = Encoder(model, PREP).features(digits, ITEMS[::-1])
    np.testing.assert_array_equal(table.rows(ITEMS[::-1]), expected)
    again = cached_features(key_of(digits), digits, PREP, ITEMS[10:40], backbone, tmp_path)
    assert backbone.builds == 1 and backbone.images == len(ITEMS)  # read back: no backbone built, nothing computed
    assert isinstance(again.features, np.memmap) and np.array_equal(again.rows(ITEMS[10:40]), expected[::-1][10:40])


def test_more_items_compute_only_the_missing_ones_and_keep_the_old_rows(digits, tmp_path):
    backbone = Counted()
    first = cached_features(key_of(digits), digits, PREP, ITEMS, backbone, tmp_path).rows(ITEMS)
    wider = cached_features(key_of(digits), digits, PREP, np.arange(100, 150), backbone, tmp_path)
    assert backbone.images == len(ITEMS) + 30 and len(wider.items) == 150
    np.testing.assert_array_equal(wider.rows(ITEMS), first)
    assert len(list(tmp_path.glob("*.npy"))) == 1  # the old file went once the record named the new one


def test_float16_storage_halves_the_file(digits, tmp_path):
    full = cached_features(key_of(digits), digits, PREP, ITEMS, Counted(), tmp_path)
    half = cached_features(key_of(digits, storage="float16"), digits, PREP, ITEMS, Counted(), tmp_path)
    assert half.features.dtype == np.float16 and half.features.nbytes * 2 == full.features.nbytes
    np.testing.assert_allclose(half.rows(ITEMS), full.rows(ITEMS), rtol=2e-3, atol=1e-3)


def test_changed_data_is_refused_in_one_line(digits, tmp_path):
    cached_features(key_of(digits), digits, PREP, ITEMS, Counted(), tmp_path)
    images = digits.images.copy()
    images[5] = 255 - images[5]
    changed = ArrayDataset(images=images, labels=digits.labels, name=digits.name)
    with pytest.raises(ChangedDataError) as caught:
        cached_features(key_of(changed), changed, PREP, ITEMS, Counted(), tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "were computed from other data" in message and "images of digits changed" in message


def test_a_damaged_entry_is_refused_in_one_line(digits, tmp_path):
    table = cached_features(key_of(digits), digits, PREP, ITEMS, Counted(), tmp_path)
    rows = tmp_path / table.record["file"]
    np.save(rows, np.zeros((3, 512), dtype=np.float32))  # another array under the entry's name
    with pytest.raises(ChangedDataError, match=r"holds a float32 array of shape \(3, 512\), its record says"):
        read_entry(tmp_path, key_of(digits))
    table.path.write_text("{not json")
    with pytest.raises(DataError, match="cannot be read") as caught:
        read_entry(tmp_path, key_of(digits))
    assert "\n" not in str(caught.value)


def test_another_key_is_another_entry(digits, tmp_path):
    a = cached_features(key_of(digits), digits, PREP, ITEMS, Counted(), tmp_path)
    b = cached_features(key_of(digits, weights_sha256="cd" * 32), digits, PREP, ITEMS, Counted(seed=1), tmp_path)
    assert a.path != b.path and not np.array_equal(a.rows(ITEMS[:5]), b.rows(ITEMS[:5]))


def test_concurrent_writers_are_serialized_by_the_lock(digits, tmp_path):
    backbone, tables, errors = Counted(), [], []

    def ask() -> None:
        try:
            tables.append(cached_features(key_of(digits), digits, PREP, ITEMS, backbone, tmp_path))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(tables) == 2
    assert backbone.builds == 1 and backbone.images == len(ITEMS)  # the second waited, then read the first's
    np.testing.assert_array_equal(tables[0].rows(ITEMS), tables[1].rows(ITEMS))


KILLED_WRITER = """
import sys, time, numpy as np, torch
from dnnh.data.digits import load_digits
from dnnh.data.pipeline import Preprocessing
from dnnh.nn import build_backbone
from dnnh.training.feature_cache import FeatureKey, cached_features
torch.set_num_threads(1)
digits = load_digits()
prep = Preprocessing.fixed(32, 1, [0.449], [0.226], resize=37)
def slow():
    net = build_backbone("resnet18")
    calls = []
    def hook(module, inputs, output):
        calls.append(1)
        if len(calls) == 2:
            print("writing", flush=True)
            time.sleep(60)
    net.register_forward_hook(hook)
    return net
key = FeatureKey.of("resnet18", "ab" * 32, prep, digits.fingerprint())
cached_features(key, digits, prep, np.arange(200), slow, sys.argv[1], batch_size=64)
"""


def test_a_killed_write_leaves_nothing_that_loads(digits, tmp_path):
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert child.stdout.readline().strip() == "writing"  # the first batch's rows are in the temporary file
        assert [p.name for p in tmp_path.glob(".*.npy.*.tmp")]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert read_entry(tmp_path, key_of(digits)) is None and not list(tmp_path.glob("*.json"))
    backbone = Counted()
    table = cached_features(key_of(digits), digits, PREP, ITEMS, backbone, tmp_path)
    assert backbone.images == len(ITEMS) and table.covers(ITEMS)
    assert not list(tmp_path.glob(".*.tmp"))  # the killed writer's temporary file is cleaned up by the next write
    assert json.loads(table.path.read_text())["shape"] == [len(ITEMS), 512]


def test_waiting_for_the_lock_is_said_once(digits, tmp_path):
    from dnnh.locks import lock_folder

    lines = []
    holder = lock_folder(tmp_path, "feature cache").acquire()
    released = threading.Timer(1.0, holder.release)
    released.start()
    t0 = time.perf_counter()
    cached_features(key_of(digits), digits, PREP, ITEMS[:10], Counted(), tmp_path, log=lines.append)
    assert time.perf_counter() - t0 >= 0.9
    assert sum("waiting for it" in line for line in lines) == 1
