"""The query batcher: concurrent requests share model calls, each gets its own code, errors reach all."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dnnh.serve.service import QueryBatcher


def test_concurrent_requests_share_calls_and_each_gets_its_own_answer():
    calls = []

    def encode(images):
        calls.append(len(images))
        time.sleep(0.01)  # a model call long enough for others to queue up
        return images.reshape(len(images), -1)[:, :4] % 2

    batcher = QueryBatcher(encode, max_batch=8)
    images = [np.full((2, 2, 1), i, np.uint8) for i in range(40)]
    out = [None] * len(images)

    def ask(i):
        out[i] = batcher.encode(images[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.tolist() for o in out] == [[i % 2] * 4 for i in range(len(images))]
    assert sum(calls) == 40 and max(calls) > 1 and max(calls) <= 8 and len(calls) < 40
    assert batcher.batches == len(calls) and batcher.items == 40
    assert batcher.encode(images[3]).tolist() == [1, 1, 1, 1]  # alone: a batch of one, in this thread
    assert calls[-1] == 1


def test_an_error_reaches_every_request_of_its_batch_and_the_batcher_goes_on():
    fail = threading.Event()
    fail.set()

    def encode(images):
        time.sleep(0.01)
        if fail.is_set():
            raise RuntimeError("model broke")
        return np.zeros((len(images), 3), np.uint8)

    batcher = QueryBatcher(encode)
    errors = []

    def ask():
        try:
            batcher.encode(np.zeros((2, 2, 1), np.uint8))
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["model broke"] * 6
    fail.clear()
    assert batcher.encode(np.zeros((2, 2, 1), np.uint8)).tolist() == [0, 0, 0]
    with pytest.raises(RuntimeError):
        fail.set()
        batcher.encode(np.zeros((2, 2, 1), np.uint8))
