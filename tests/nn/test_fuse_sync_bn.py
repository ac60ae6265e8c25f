"""A model trained on several GPUs carries SyncBatchNorm; its inference copy folds it like BatchNorm (issue 34.11)."""

from __future__ import annotations

import torch

from dnnh.nn import DNNH
from dnnh.nn.fuse import fuse_for_inference


def test_sync_batch_norm_folds_into_its_convolution_and_computes_the_eval_model():
    torch.manual_seed(0)
    plain = DNNH(12, backbone="nin-small", in_channels=1, batchnorm=True)
    for module in plain.modules():  # statistics a training would have left, not the initial 0 and 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(DNNH(12, backbone="nin-small", in_channels=1, batchnorm=True))
    synced.load_state_dict(plain.state_dict())
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    fused = fuse_for_inference(synced)
    assert not any(isinstance(m, (torch.nn.SyncBatchNorm, torch.nn.BatchNorm2d)) for m in fused.modules())
    x = torch.randn(5, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain.eval()(x), rtol=1e-4, atol=1e-5)
