"""The pretrained backbones against the references: a file saved from torchvision's (or timm's) model
loads into dnnh's, and the features equal the reference's truncated forward on the same input.

Inputs are small (the convolutional networks pool adaptively; the ViTs resample their position
embeddings, as timm's ``dynamic_img_size`` does) so the whole file runs in well under a minute.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnh.nn import build_backbone
from dnnh.nn.weights import WeightsFile

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def _check(name: str, reference: nn.Module, truncated, size: int, tmp_path, suffix: str = ".pth") -> None:
    torch.manual_seed(0)
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    else:
        torch.save(reference.state_dict(), path)
    ours = build_backbone(name, weights=path)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = truncated(reference.eval(), x)
    got = _features(ours, x)
    assert got.shape == (2, ours.out_features)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert ours.weights_file == WeightsFile.of(path)


def _tv_cnn(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "fc"):
        model.fc = nn.Identity()
    else:  # VGG, AlexNet: the second 4096 layer and its ReLU (DeepHash-pytorch's classifier[:6])
        model.classifier = model.classifier[:6]
    return model(x)


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("resnet34", 32), ("resnet50", 64),
                                       ("vgg16", 32), ("vgg16_bn", 32), ("alexnet", 64)])
def test_torchvision_cnn_equals_reference(name, size, torchvision_models, tmp_path):
    torch.manual_seed(1)
    reference = getattr(torchvision_models, name)(weights=None)
    for m in reference.modules():  # non-trivial batch-norm statistics, so eval-mode BN is tested
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    _check(name, reference, _tv_cnn, size, tmp_path)


def test_torchvision_vit_b_16_equals_reference(torchvision_models, tmp_path):
    reference = torchvision_models.vit_b_16(weights=None)

    def truncated(model, x):
        model.heads = nn.Identity()
        return model(x)
    _check("vit_b_16", reference, truncated, 224, tmp_path)


@pytest.mark.parametrize("name,size", [("vit_small_patch16_224", 224), ("vit_base_patch16_224", 64)])
def test_timm_vit_equals_reference(name, size, timm, tmp_path):
    reference = timm.create_model(name, pretrained=False, dynamic_img_size=size != 224)
    _check(name, reference, lambda m, x: m.forward_head(m.forward_features(x), pre_logits=True), size, tmp_path,
           suffix=".safetensors")
