"""Training augmentation as batched tensor ops on whatever device the batch is on.

Shift (with an optional flip) and random erasing take a whole batch and a torch generator and
do no per-image Python work, so on a GPU a step needs nothing from the host. Random numbers come
from ``generator`` on the generator's own device, drawn in a fixed order and shape: the same
generator state gives the same augmentation whichever device computes it, and on the CPU these
functions give, bit for bit, what the per-image loop before them gave
(tests/data/test_augment_device.py checks both against that loop).

``share``: training on several processes, each holds rows ``start..stop`` of a global batch of
``total``; the random numbers are drawn for the whole batch and each process keeps its rows, so
every image gets the augmentation it would get in one process.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Share = tuple[int, int, int]  # (start, stop, total): rows start..stop of a batch of ``total``


def batch_rows(x: torch.Tensor, share: Share | None) -> tuple[slice, int]:
    """The rows of the whole batch that ``x`` holds, and the whole batch's size (see the module docstring)."""
    if share is None:
        return slice(0, len(x)), len(x)
    start, stop, total = share
    if stop - start != len(x) or not 0 <= start <= stop <= total:
        raise ValueError(f"a share {share} of a batch does not fit {len(x)} images")
    return slice(start, stop), total


def shift_augment(x: torch.Tensor, generator: torch.Generator, max_shift: int, flip: bool = False,
                  share: Share | None = None) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero fill), optionally a horizontal flip.

    Zero is the normalised mean, so the filled border is neutral. Draws: one (dy, dx) pair an
    image, then (with ``flip``) one uniform an image, flipped where it is below 0.5.
    """
    rows, total = batch_rows(x, share)
    n, c, h, w = x.shape
    draw = generator.device
    offsets = torch.randint(0, 2 * max_shift + 1, (total, 2), generator=generator, device=draw)[rows].to(x.device)
    cols = torch.arange(w, device=x.device).expand(n, w)
    if flip:
        mirrored = (torch.rand(total, generator=generator, device=draw) < 0.5)[rows].to(x.device)
        cols = torch.where(mirrored.view(n, 1), (w - 1) - cols, cols)
    padded = F.pad(x, (max_shift,) * 4)
    ys = (offsets[:, :1] + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * max_shift)
    xs = (offsets[:, 1:] + cols).view(n, 1, 1, w).expand(n, c, h, w)
    out = padded.gather(2, ys).gather(3, xs)
    return out.contiguous(memory_format=torch.channels_last)


def random_erase(x: torch.Tensor, generator: torch.Generator, p: float, area: tuple[float, float] = (0.02, 0.4),
                 aspect: tuple[float, float] = (0.3, 3.3), share: Share | None = None) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability ``p`` an image gets one rectangle of noise.

    The rectangle covers ``area`` of the image (uniform) with a log-uniform aspect ratio; the
    noise is standard normal, which on normalised inputs has the data's scale. A network that must
    recognise a garment with a part hidden leans less on any one patch, which matters most when
    the training set is small (the paper protocol keeps 500 images a class).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"erase probability must be in [0, 1], got {p}")
    rows, n = batch_rows(x, share)
    _, c, h, w = x.shape
    if p == 0.0 or n == 0:
        return x
    draw = generator.device
    chosen = torch.rand(n, generator=generator, device=draw) < p
    frac = torch.empty(n, device=draw).uniform_(*area, generator=generator)
    ratio = torch.empty(n, device=draw).uniform_(math.log(aspect[0]), math.log(aspect[1]), generator=generator).exp()
    eh = torch.sqrt(frac * h * w * ratio).round().clamp(1, h).long()
    ew = torch.sqrt(frac * h * w / ratio).round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator, device=draw) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator, device=draw) * (w - ew + 1)).long()
    noise = torch.randn((n, c, h, w), generator=generator, dtype=x.dtype, device=draw)[rows].to(x.device)
    top, left, eh, ew, chosen = (t[rows].to(x.device).view(-1, 1, 1) for t in (top, left, eh, ew, chosen))
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + eh) & (xs >= left) & (xs < left + ew) & chosen
    return torch.where(inside.unsqueeze(1), noise, x).contiguous(memory_format=torch.channels_last)


def random_crop(x: torch.Tensor, generator: torch.Generator, size: int, flip: bool = True,
                share: Share | None = None) -> torch.Tensor:
    """A random ``size`` x ``size`` crop of each image, then (with ``flip``) a horizontal flip half the time.

    The training half of the 224 px pipeline (resize 256, random crop 224, flip: DeepHash-pytorch's
    ``RandomCrop`` and ``RandomHorizontalFlip``); evaluation takes the centre crop instead
    (:class:`dnnh.data.pipeline.Preprocessing`). Draws: one (top, left) pair an image, then (with
    ``flip``) one uniform an image, flipped where it is below 0.5.
    """
    rows, total = batch_rows(x, share)
    n, c, h, w = x.shape
    if size > min(h, w):
        raise ValueError(f"a {size}x{size} crop does not fit {h}x{w} images")
    draw = generator.device
    tops = torch.randint(0, h - size + 1, (total,), generator=generator, device=draw)[rows].to(x.device)
    lefts = torch.randint(0, w - size + 1, (total,), generator=generator, device=draw)[rows].to(x.device)
    cols = torch.arange(size, device=x.device).expand(n, size)
    if flip:
        mirrored = (torch.rand(total, generator=generator, device=draw) < 0.5)[rows].to(x.device)
        cols = torch.where(mirrored.view(n, 1), (size - 1) - cols, cols)
    ys = (tops.view(n, 1) + torch.arange(size, device=x.device)).view(n, 1, size, 1).expand(n, c, size, w)
    xs = (lefts.view(n, 1) + cols).view(n, 1, 1, size).expand(n, c, size, size)
    return x.gather(2, ys).gather(3, xs).contiguous(memory_format=torch.channels_last)
