"""The batched augmentation (dnnh.data.augment) draws and computes exactly what the per-image loop
before it did, so moving augmentation onto a device changed no CPU run; and it runs where the
batch is (CUDA cases are marked and skipped without a GPU)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dnnh.data.augment import random_erase, shift_augment


def loop_shift(x, generator, max_shift, flip=False, share=None):
    """The per-image translation dnnh trained with before issue 22 (verbatim but for the share helper)."""
    start, stop, total = share or (0, len(x), len(x))
    _, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (total, 2), generator=generator)[start:stop]
    out = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])
    if flip:
        mask = (torch.rand(total, generator=generator) < 0.5)[start:stop]
        out[mask] = out[mask].flip(3)
    return out.contiguous(memory_format=torch.channels_last)


def loop_erase(x, generator, p, area=(0.02, 0.4), aspect=(0.3, 3.3), share=None):
    """Random erasing as dnnh computed it before issue 22 (CPU tensors only)."""
    start, stop, n = share or (0, len(x), len(x))
    _, c, h, w = x.shape
    if p == 0.0 or n == 0:
        return x
    chosen = torch.rand(n, generator=generator) < p
    frac = torch.empty(n).uniform_(*area, generator=generator)
    ratio = torch.empty(n).uniform_(math.log(aspect[0]), math.log(aspect[1]), generator=generator).exp()
    eh = torch.sqrt(frac * h * w * ratio).round().clamp(1, h).long()
    ew = torch.sqrt(frac * h * w / ratio).round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    out = x.clone()
    noise = torch.randn((n, c, h, w), generator=generator, dtype=x.dtype)
    for i in range(start, stop):  # one rectangle per chosen image, pasted from that image's noise
        if chosen[i]:
            t, l, hh, ww = int(top[i]), int(left[i]), int(eh[i]), int(ew[i])
            out[i - start, :, t:t + hh, l:l + ww] = noise[i, :, t:t + hh, l:l + ww]
    return out.contiguous(memory_format=torch.channels_last)


def _batch(n=37, c=3, h=12, w=10, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed)).contiguous(
        memory_format=torch.channels_last)


@pytest.mark.parametrize("max_shift,flip", [(2, False), (2, True), (0, True), (3, True)])
def test_batched_shift_equals_the_loop_bit_for_bit_and_leaves_the_generator_where_it_did(max_shift, flip):
    x = _batch()
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    got, want = shift_augment(x, g1, max_shift, flip=flip), loop_shift(x, g2, max_shift, flip=flip)
    assert torch.equal(got, want) and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(g1.get_state(), g2.get_state())  # the next batch draws the same numbers too


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_batched_erase_equals_the_loop_bit_for_bit(p):
    x = _batch(seed=1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    got, want = random_erase(x, g1, p), loop_erase(x, g2, p)
    assert torch.equal(got, want)
    assert torch.equal(g1.get_state(), g2.get_state())
    if p == 1.0:
        assert (got != x).any(dim=(1, 2, 3)).all()  # every image lost a rectangle


def test_shares_of_a_batch_augment_as_the_whole_batch_does():
    x = _batch(n=12)
    whole = random_erase(shift_augment(x, torch.Generator().manual_seed(5), 2, flip=True),
                         torch.Generator().manual_seed(6), 0.7)
    for start, stop in [(0, 4), (4, 8), (8, 12)]:
        share = (start, stop, 12)
        part = random_erase(shift_augment(x[start:stop], torch.Generator().manual_seed(5), 2, flip=True, share=share),
                            torch.Generator().manual_seed(6), 0.7, share=share)
        assert torch.equal(part, whole[start:stop])
        ref = loop_erase(loop_shift(x[start:stop], torch.Generator().manual_seed(5), 2, flip=True, share=share),
                         torch.Generator().manual_seed(6), 0.7, share=share)
        assert torch.equal(part, ref)
    with pytest.raises(ValueError, match="does not fit"):
        shift_augment(x[:3], torch.Generator(), 2, share=(0, 4, 12))


def test_a_sequence_of_batches_matches_the_loop_as_in_an_epoch():
    """Shift-flip then erase on batch after batch from one generator: what a training epoch does."""
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    for i in range(5):
        x = _batch(n=20 + i, seed=i)
        got = random_erase(shift_augment(x, g1, 2, flip=True), g1, 0.5)
        want = loop_erase(loop_shift(x, g2, 2, flip=True), g2, 0.5)
        assert torch.equal(got, want)


def test_the_batched_shift_moves_whole_images_with_zero_fill():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5) + 1
    out = shift_augment(x, torch.Generator().manual_seed(0), 1, flip=False)
    for img, src in zip(out, x):
        kept = img[img != 0]
        assert len(kept) >= 16  # a shift of at most 1 keeps at least a 4x4 block
        assert np.isin(kept.numpy(), src.numpy()).all()


@pytest.mark.cuda
def test_augmentation_runs_on_the_gpu_with_a_gpu_generator():
    x = _batch().cuda()
    g1, g2 = torch.Generator(device="cuda").manual_seed(7), torch.Generator(device="cuda").manual_seed(7)
    a = random_erase(shift_augment(x, g1, 2, flip=True), g1, 0.5)
    b = random_erase(shift_augment(x, g2, 2, flip=True), g2, 0.5)
    assert a.device.type == "cuda" and torch.equal(a, b)  # the same seed, the same augmentation
    # a CPU generator drives a GPU batch too: the same numbers as on the CPU
    cpu = random_erase(shift_augment(x.cpu(), torch.Generator().manual_seed(3), 2, flip=True),
                       torch.Generator().manual_seed(4), 0.5)
    gpu = random_erase(shift_augment(x, torch.Generator().manual_seed(3), 2, flip=True),
                       torch.Generator().manual_seed(4), 0.5)
    assert torch.equal(gpu.cpu(), cpu)
