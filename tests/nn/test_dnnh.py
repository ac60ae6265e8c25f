import pytest
import torch

from dnnh.nn import DNNH, PRESETS, build_nin


@pytest.mark.parametrize("preset,size", [("nin-small", 32), ("nin-cifar", 32), ("nin-imagenet", 224)])
def test_presets_produce_50q_features(preset, size):
    net = build_nin(preset, in_channels=3, out_channels=50 * 12)
    assert net(torch.randn(2, 3, size, size)).shape == (2, 600)


def test_nin_cifar_follows_design_layers():
    convs = [m for m in build_nin("nin-cifar", 3, 50 * 48) if isinstance(m, torch.nn.Conv2d)]
    shapes = [(c.out_channels, c.kernel_size[0], c.padding[0]) for c in convs]
    assert shapes == [(96, 5, 2), (96, 1, 0), (256, 5, 2), (256, 1, 0), (384, 1, 0), (384, 1, 0),
                      (1024, 3, 1), (2400, 1, 0)]


@pytest.mark.parametrize("channels,size", [(1, 8), (1, 28), (3, 32), (4, 40)])
def test_any_channel_count_and_size(channels, size):
    model = DNNH(24, backbone="nin-small", in_channels=channels)
    out = model(torch.randn(3, channels, size, size)).detach()
    assert out.shape == (3, 24)
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0


def test_encode_is_threshold_of_forward_at_half():
    torch.manual_seed(0)
    model = DNNH(12, backbone="nin-small", in_channels=1, eps=None).eval()
    x = torch.randn(6, 1, 16, 16)
    bits = model.encode(x)
    assert bits.dtype == torch.uint8
    assert torch.equal(bits, (model(x) > 0.5).to(torch.uint8))


def test_separate_query_network_encodes_queries_differently():
    torch.manual_seed(0)
    model = DNNH(12, backbone="nin-small", in_channels=1, eps=None, separate_query_network=True).eval()
    x = torch.randn(4, 1, 16, 16)
    assert not torch.allclose(model(x, role="query"), model(x, role="database"))


def test_errors_name_expected_shape():
    model = DNNH(12, in_channels=3)
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\)"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="at least"):
        model(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="unknown backbone"):
        DNNH(12, backbone="resnet")
    assert set(PRESETS) >= {"nin-small", "nin-cifar", "nin-imagenet"}


def test_batchnorm_option_normalises_every_conv_but_the_last():
    net = build_nin("nin-small", 3, 50 * 12, batchnorm=True)
    layers = list(net)
    convs = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Conv2d)]
    assert all(isinstance(layers[i + 1], torch.nn.BatchNorm2d) for i in convs[:-1])
    assert isinstance(layers[convs[-1] + 1], torch.nn.ReLU)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in build_nin("nin-small", 3, 600))


def test_under_bf16_autocast_the_backbone_runs_in_bf16_and_the_hash_head_in_fp32():
    """bf16's 8-bit mantissa would flip bits at the 0.5 cut and in the threshold's band: the head stays fp32."""
    import torch

    from dnnh.nn import DNNH

    torch.manual_seed(0)
    model = DNNH(12, backbone="nin-small", in_channels=1, eps=0.1).eval()
    seen = []
    model.net.backbone.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    x = torch.randn(4, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes, logits = model(x), model.logits(x)
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert codes.dtype == logits.dtype == torch.float32
