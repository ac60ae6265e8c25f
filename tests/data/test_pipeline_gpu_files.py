"""Image files for a GPU (issue 34.12): workers ship uint8 (a quarter of float32 over PCIe) and the GPU scales
them; the worker pool is sized from the cores there. Run on one faked GPU (tests/support/fake_cuda.py)."""

from __future__ import annotations

import numpy as np
import torch

from dnnh.data import load_dataset, pipeline
from dnnh.data.pipeline import BatchSource, Preprocessing, decode_workers
from support.builders import save_image
from support.fake_cuda import fake_gpu


def _folder(tmp_path):
    root = tmp_path / "d"
    for c in ("a", "b"):
        for i in range(6):
            save_image(root / c / f"{i}.png", np.random.default_rng(i + 10 * len(c)).integers(0, 256, (20, 20, 3),
                                                                                                   dtype=np.uint8))
    return load_dataset(root, image_size=16)


def test_workers_ship_uint8_to_a_gpu_which_normalises_them(tmp_path, monkeypatch):
    files = _folder(tmp_path)
    prep = Preprocessing.fit(files, np.arange(12), input_size=16)
    batches = [np.arange(0, 5), np.arange(5, 12)]
    want = list(BatchSource(files, prep, num_workers=1).batches(batches))  # the CPU's float batches
    preps = []
    real = pipeline._DecodeBatches.__init__

    def spy(self, dataset, batches, prep):
        preps.append(prep)
        real(self, dataset, batches, prep)
    monkeypatch.setattr(pipeline._DecodeBatches, "__init__", spy)
    with fake_gpu(monkeypatch) as counter:
        got = list(BatchSource(files, prep, num_workers=1, device="cuda:0").batches(batches))
        assert all(counter.on_device(x) for x in got)
    assert preps == [None]  # the workers do not normalise: they return the decoded uint8 images
    one = pipeline._DecodeBatches(files, batches, None)[0]
    assert one.dtype == torch.uint8 and one.shape == (5, 16, 16, 3)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert [x.dtype for x in got] == [torch.float32] * 2


def test_the_pool_is_the_cores_less_one_on_a_gpu_and_as_asked_on_the_cpu():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert decode_workers(2, cpu, cores=32) == 2  # the CPU trains on the other cores
    assert decode_workers(2, gpu, cores=32) == 16 and decode_workers(2, gpu, cores=8) == 7
    assert decode_workers(2, gpu, cores=2) == 2 and decode_workers(0, gpu, cores=32) == 0  # 0: in the process
    assert decode_workers(20, gpu, cores=8) == 20  # more than that: as asked
