"""Weights files: the documented rewrites load, anything else is refused in one line naming what is wrong."""

from __future__ import annotations

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
        "whole.pth": r"pickled object, not a state dict: .*save its state_dict\(\)",
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
