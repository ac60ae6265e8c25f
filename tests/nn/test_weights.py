"""Weights files: the documented rewrites load, anything else is refused in one line naming what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from dnnh.errors import DataError, DnnhError, InputError
from dnnh.nn import build_backbone
from dnnh.nn.weights import WeightsFile


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(0)
    state = build_backbone("resnet18").state_dict()
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)  # the file's classifier
    return state


def _same(model, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items() if k in state or "num_batches" not in k)


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("wrap", [
    lambda s: s,
    lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}, "epoch": 90},  # DataParallel checkpoint
    lambda s: {"model": {f"backbone.{k}": v for k, v in s.items()}},
    # MoCo: the query encoder's keys beside the momentum encoder's and the queue
    lambda s: {"state_dict": {**{f"module.encoder_q.{k}": v for k, v in s.items()},
                              **{f"module.encoder_k.{k}": v + 1 for k, v in s.items()},
                              "module.queue": torch.zeros(128, 10)}},
])
def test_wrappers_prefixes_and_head_are_unwrapped(wrap, resnet18_state, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(wrap(resnet18_state), path)
    model = build_backbone("resnet18", weights=path)
    assert _same(model, resnet18_state)
    assert model.weights_file == WeightsFile.of(path) and model.weights_file.size == path.stat().st_size


def test_safetensors_and_missing_batch_counters_load(resnet18_state, tmp_path):
    from safetensors.torch import save_file
    old = {k: v for k, v in resnet18_state.items() if not k.endswith("num_batches_tracked")}  # pre-0.4.1 files
    save_file(old, str(tmp_path / "model.safetensors"))
    assert _same(build_backbone("resnet18", weights=tmp_path / "model.safetensors"), old)


def test_torchvision_vit_old_mlp_spelling_is_renamed(tmp_path):
    with torch.device("meta"):
        keys = build_backbone("vit_b_16").state_dict()
    state = {k.replace(".mlp.0.", ".mlp.linear_1.").replace(".mlp.3.", ".mlp.linear_2."): torch.full(v.shape, 0.5)
             for k, v in keys.items()}
    torch.save(state, tmp_path / "vit_b_16.pth")
    model = build_backbone("vit_b_16", weights=tmp_path / "vit_b_16.pth")
    assert bool((model.encoder.layers.encoder_layer_3.mlp[3].weight == 0.5).all())


def test_partial_wrong_and_foreign_files_are_refused(resnet18_state, tmp_path):
    partial = {k: v for k, v in resnet18_state.items() if not k.startswith("layer4.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(DataError, match=r"partial.pth does not fit resnet18 .*missing \d+ keys: layer4.0.conv1.weight"
                       ) as e:
        build_backbone("resnet18", weights=tmp_path / "partial.pth")
    _one_line(e)
    extra = {**resnet18_state, "layer5.weight": torch.zeros(1)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="1 unexpected keys: layer5.weight"):
        build_backbone("resnet18", weights=tmp_path / "extra.pth")
    shaped = {**resnet18_state, "conv1.weight": torch.zeros(64, 1, 7, 7)}  # a grayscale conv1
    torch.save(shaped, tmp_path / "gray.pth")
    with pytest.raises(ValueError, match=r"wrong shapes: conv1.weight \(64, 1, 7, 7\) \(expected \(64, 3, 7, 7\)\)"):
        build_backbone("resnet18", weights=tmp_path / "gray.pth")
    torch.save(build_backbone("resnet34").state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(DataError, match=r"does not fit resnet18 .*; it fits resnet34 \(torchvision layout\)") as e:
        build_backbone("resnet18", weights=tmp_path / "resnet34.pth")
    _one_line(e)


def test_unreadable_files_are_refused_in_one_line(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pth")  # a pickled module, not its state dict
    cases = {
        "whole.pth": r"pickled object, not a state dict.*save its state_dict\(\)",
        "absent.pth": "does not exist",
        "weights.npz": "expected a .safetensors file or a torch state dict",
        "broken.pth": "not a readable torch file",
        "broken.safetensors": "not a readable safetensors file",
        "tensor.pth": "holds no state dict",
    }
    (tmp_path / "weights.npz").write_bytes(b"x")
    (tmp_path / "broken.pth").write_bytes(b"not a zip")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    for name, pattern in cases.items():
        with pytest.raises(DnnhError, match=pattern) as e:  # the command line prints it as one line
            build_backbone("resnet18", weights=tmp_path / name)
        _one_line(e)
    with pytest.raises(InputError, match="unknown pretrained backbone 'resnet101'"):
        build_backbone("resnet101")


def _read_with_timeout(path, seconds: float = 20.0):
    """read_state_dict(path) in a daemon thread: the exception it raised, or a failure if it never returns
    (a loop or a blocking open would otherwise hang the test run)."""
    import threading

    from dnnh.nn.weights import read_state_dict

    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            read_state_dict(path)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test to judge
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"reading {path} did not return within {seconds:.0f} s")
    return outcome[0]


@pytest.mark.parametrize("make", ["self", "pair", "deep"])
def test_a_dict_that_refers_to_itself_is_refused_not_followed_forever(make, tmp_path):
    """Issue 36.1. Before: the unwrapping followed state_dict back to the same dict at full CPU, forever.

    Read in a subprocess killed after a timeout, so that before the fix this fails instead of hanging."""
    import subprocess
    import sys

    first: dict = {}
    if make == "self":
        first["state_dict"] = first
    elif make == "pair":  # two dicts that wrap each other
        first["state_dict"] = {"model": first}
    else:  # no loop, but deeper than any checkpoint: refused rather than followed
        first = {"conv1.weight": torch.zeros(1)}
        for _ in range(12):
            first = {"state_dict": first}
    torch.save(first, tmp_path / "loop.pth")
    code = ("import sys\nfrom dnnh.nn.weights import read_state_dict\ntry:\n    read_state_dict(sys.argv[1])\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "loop.pth")], capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("reading a weights file whose dict refers to itself did not return within 120 s")
    out = done.stdout.strip()
    says = "nest more than 8 deep" if make == "deep" else "entry refers back to itself"
    assert out.startswith("DataError ") and "loop.pth" in out and says in out, done
    assert "\n" not in out


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_file_and_the_tensor(bad, resnet18_state, tmp_path):
    """Issue 36.2. Before: the file loaded, training wrote a NaN model and only scoring refused (blaming the run)."""
    state = {f"module.{k}": v.clone() for k, v in resnet18_state.items()}
    state["module.layer2.0.conv1.weight"][3, 1, 0, 0] = bad
    state["module.layer3.0.conv1.weight"][0, 0, 0, 0] = bad  # a later one is not the first named
    torch.save({"state_dict": state}, tmp_path / "diverged.pth")
    with pytest.raises(DataError) as e:
        build_backbone("resnet18", weights=tmp_path / "diverged.pth")
    message = _one_line(e)
    assert "diverged.pth" in message and "module.layer2.0.conv1.weight" in message and "layer3" not in message
    assert ("NaN" if bad != bad else "infinite") in message


def test_integer_tensors_and_finite_files_pass_the_finite_check(resnet18_state, tmp_path):
    """The check reads floating tensors only: batch counters (int64) are never 'non-finite'."""
    torch.save(resnet18_state, tmp_path / "fine.pth")
    assert _same(build_backbone("resnet18", weights=tmp_path / "fine.pth"), resnet18_state)


def test_what_is_not_a_weights_file_is_named_for_what_it_is(tmp_path):
    """Issue 36.5. Before: a 0-byte .pth was an internal IndexError; a directory, FIFO, symlink loop and /dev/zero
    were all 'does not exist' (and a FIFO must not be opened: that blocks until a writer comes)."""
    import os

    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "folder.pth").mkdir()
    os.mkfifo(tmp_path / "pipe.pth")
    os.symlink(tmp_path / "loop_b.pth", tmp_path / "loop_a.pth")
    os.symlink(tmp_path / "loop_a.pth", tmp_path / "loop_b.pth")
    os.symlink(tmp_path / "gone.pth", tmp_path / "dangling.pth")
    cases = {tmp_path / "empty.pth": "is empty (0 bytes)", tmp_path / "folder.pth": "is a directory",
             tmp_path / "pipe.pth": "is a named pipe (FIFO)", tmp_path / "loop_a.pth": "is a symbolic link loop",
             tmp_path / "dangling.pth": "is a symbolic link to", tmp_path / "absent.pth": "does not exist"}
    if os.path.exists("/dev/zero"):
        cases[Path("/dev/zero")] = "is a character device"
    for path, says in cases.items():
        error = _read_with_timeout(path)
        assert isinstance(error, DnnhError), (path, error)
        assert says in str(error) and str(path) in str(error) and "\n" not in str(error), (path, str(error))


def test_the_training_config_names_what_the_weights_path_is(tmp_path):
    """Issue 36.5 at the config (what `dnnh train --backbone-weights` builds first): before, 'does not exist'."""
    import os

    from dnnh.config import TrainConfig

    (tmp_path / "folder.pth").mkdir()
    os.mkfifo(tmp_path / "pipe.pth")
    for name, says in (("folder.pth", "is a directory"), ("pipe.pth", "is a named pipe (FIFO)")):
        with pytest.raises(DnnhError, match=re.escape(says)):
            TrainConfig(backbone="resnet18", backbone_weights=str(tmp_path / name), device="cpu", precision="fp32")


def test_a_malicious_pickle_is_refused_without_advising_weights_only_false(tmp_path, capfd):
    """Torch's refusal says to rerun with weights_only=False: for exactly the file that must never be loaded so.
    Before: that advice was passed on; after: save its state_dict() instead, and the payload never runs."""
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo PAYLOAD-RAN",))

    torch.save({"state_dict": {"conv1.weight": Payload()}}, tmp_path / "evil.pth")
    with open(tmp_path / "legacy.pth", "wb") as f:  # an old-style (not zip) pickle
        pickle.dump({"a": Payload()}, f, protocol=4)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pth")
    for name in ("evil.pth", "legacy.pth", "whole.pth"):
        with pytest.raises(DataError) as e:
            build_backbone("resnet18", weights=tmp_path / name)
        message = _one_line(e)
        assert "weights_only" not in message and "state_dict()" in message and name in message, message
    assert "PAYLOAD-RAN" not in capfd.readouterr().out
