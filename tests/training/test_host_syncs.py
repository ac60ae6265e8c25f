"""A training step on a GPU makes the host wait at most once, to draw the loss, and never without progress shown.

No GPU here: the run takes dnnh's CUDA code paths on one faked GPU (tests/support/fake_cuda.py),
and :class:`dnnh.testing.syncs.HostSyncCounter` records every call that would make the host wait
for the device: blocking host-to-device copies, ``.item()``/``.tolist()``/``int()``/``float()``/
``bool()`` of a device tensor, ``nonzero`` and other data-shaped results, boolean-mask indexing.
Each interval from one ``backward`` to the next holds one whole step (issue 34.8).
"""

from __future__ import annotations

import sys

import pytest
import torch

from dnnh.config import LOSSES, MINING_STRATEGIES, TrainConfig
from dnnh.data import progress as progress_module
from dnnh.testing.syncs import HostSyncCounter
from dnnh.training.train import train

from support.fake_cuda import fake_gpu

TINY = dict(bits=12, input_size=8, epochs=1, batch_size=40, per_class=4, num_workers=0, threads=1, device="cuda")
#: The default recipes, each mining strategy, and every loss (on the modern recipe's batches).
CASES = ([("paper", {"batch_size": 20}), ("modern", {})]
         + [("modern", {"triplets": strategy}) for strategy in MINING_STRATEGIES if strategy != "all"]
         + [("modern", {"loss": loss}) for loss in LOSSES if loss != "triplet"]
         + [("modern", {"separate_query_network": True, "batchnorm": True, "erase": 0.5, "augment": "shift-flip"}),
            ("modern", {"precision": "fp16"}), ("paper", {"batch_size": 20, "precision": "fp16"})])  # loss scaling


def case_id(case) -> str:
    recipe, options = case
    return "-".join([recipe, *(f"{k}={v}" for k, v in options.items())])


def steps_of(monkeypatch, tmp_path, digits, split, recipe: str, options: dict, progress: str) -> list[list[str]]:
    """The waits of each step of one epoch, with progress off, as a bar, or as plain lines."""
    said: list[str] = []
    if progress != "none":  # the worst case: the loss drawn at every step
        monkeypatch.setattr(progress_module, "NOTE_EVERY_S", 0.0)
        monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)
        monkeypatch.setattr(sys.stderr, "isatty", lambda: progress == "bar")
    if options.get("precision") == "fp16":  # the loss scaler is enabled only where torch sees CUDA
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with fake_gpu(monkeypatch) as counter:
        config = TrainConfig.from_recipe(recipe, **{**TINY, **options})  # "cuda" resolves on the faked GPU only
        assert config.device == "cuda:0"
        train(config, digits, split, tmp_path / "run", progress=progress != "none", log=said.append)
    if progress == "lines":
        assert any("images," in line and "loss" in line for line in said)
    return counter.per_step()


#: Without progress every case; the loss drawn (a bar, or plain lines in a log) for the default recipes.
RUNS = [(case, "none") for case in CASES] + [(case, shown) for case in CASES[:2] for shown in ("bar", "lines")]


@pytest.mark.parametrize(("case", "progress"), RUNS, ids=[f"{case_id(c)}-{p}" for c, p in RUNS])
def test_a_step_waits_for_the_gpu_only_to_draw_the_loss(case, progress, monkeypatch, tmp_path, digits, small_split):
    steps = steps_of(monkeypatch, tmp_path, digits, small_split, *case, progress)
    assert len(steps) >= 4, "too few steps to tell"
    allowed = [] if progress == "none" else ["item"]
    waits = [s for s in steps if s != allowed and s != []]
    assert not waits, f"steps that wait for the GPU: {waits[:3]}"
    if progress != "none":
        assert all(s == ["item"] for s in steps)  # drawn each step here, so read each step, once


def test_the_counter_sees_each_kind_of_wait_on_device_tensors_only():
    with HostSyncCounter(fake=True) as counter:
        host = torch.arange(6.0)
        gpu = host.to("cuda")  # blocking: counted
        async_gpu = host.to("cuda", non_blocking=True)  # not counted
        mask = gpu > 2
        gpu[mask], gpu[(mask,)], float(gpu.sum()), gpu.sum().item(), torch.nonzero(gpu)
        made = torch.tensor([1.0, 2.0], device="cuda")
        host[host > 2], host.sum().item(), int(host[0])  # host tensors: nothing waits
        gpu.cpu(), (gpu + async_gpu + made.sum()).tolist()
        doubled = async_gpu * 2  # a result of a device tensor lives there too
    assert counter.syncs == ["h2d", "mask-index", "mask-index", "__float__", "item", "nonzero", "h2d", "d2h", "tolist"]
    assert counter.on_device(gpu) and counter.on_device(doubled) and not counter.on_device(host)
