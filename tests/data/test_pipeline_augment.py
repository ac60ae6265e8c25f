import numpy as np
import pytest
import torch

from dnnh.data.pipeline import random_erase, shift_augment


def _images(n=6, c=2, h=9, w=11):
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w) + 1.0  # no zeros inside


def test_shift_moves_each_image_as_a_whole_within_max_shift():
    x = _images()
    out = shift_augment(x, torch.Generator().manual_seed(0), max_shift=2)
    assert out.shape == x.shape
    for img, src in zip(out, x):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(img, _shifted(src, dy, dx))]
        assert matches, "every output is its input translated by at most max_shift, zero filled"


def _shifted(img, dy, dx):
    h, w = img.shape[1:]
    out = torch.zeros_like(img)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = img[:, ys, xs]
    return out


def test_flip_is_a_horizontal_mirror_of_some_images():
    x = _images(n=64)
    out = shift_augment(x, torch.Generator().manual_seed(1), max_shift=0, flip=True)
    flipped = [torch.equal(o, s.flip(2)) for o, s in zip(out, x)]
    kept = [torch.equal(o, s) for o, s in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54  # about half


def test_erase_replaces_one_rectangle_per_chosen_image():
    x = _images(n=200, h=32, w=32)
    out = random_erase(x, torch.Generator().manual_seed(2), p=1.0)
    for img, src in zip(out, x):
        changed = (img != src).any(0).numpy()  # the same rectangle across channels
        assert changed.any()
        rows, cols = np.nonzero(changed.any(1))[0], np.nonzero(changed.any(0))[0]
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert changed.sum() == box, "the erased pixels form one rectangle"
        assert 0.02 * 1024 * 0.5 <= box <= 0.4 * 1024 * 1.5  # the area range, up to rounding of the sides
        assert torch.equal(img[:, ~torch.from_numpy(changed)], src[:, ~torch.from_numpy(changed)])


def test_erase_probability_and_determinism():
    x = _images(n=400, h=16, w=16)
    none = random_erase(x, torch.Generator().manual_seed(3), p=0.0)
    assert torch.equal(none, x)
    half = random_erase(x, torch.Generator().manual_seed(3), p=0.5)
    erased = (half != x).flatten(1).any(1).float().mean().item()
    assert 0.4 < erased < 0.6
    again = random_erase(x, torch.Generator().manual_seed(3), p=0.5)
    assert torch.equal(half, again), "one generator state gives one augmentation (resume depends on it)"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        random_erase(x, torch.Generator(), p=1.5)


def test_shares_of_a_batch_augment_as_the_whole_batch_does():
    """Each process of a multi-process run draws for the whole batch and keeps its rows."""
    import torch

    from dnnh.data.pipeline import random_erase, shift_augment

    x = torch.randn(10, 3, 8, 8)
    whole = random_erase(shift_augment(x, torch.Generator().manual_seed(3), 2, flip=True),
                         torch.Generator().manual_seed(4), 0.7)
    parts = []
    for start, stop in ((0, 4), (4, 10)):
        shifted = shift_augment(x[start:stop], torch.Generator().manual_seed(3), 2, flip=True, share=(start, stop, 10))
        parts.append(random_erase(shifted, torch.Generator().manual_seed(4), 0.7, share=(start, stop, 10)))
    assert torch.equal(torch.cat(parts), whole)
