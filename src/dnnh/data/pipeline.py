"""From uint8 images to the float tensors a network takes, cached or streamed.

Small sets (every ArrayDataset) are preprocessed once into one tensor and batches are slices of
it. File datasets are decoded per batch in DataLoader worker processes, so a 2-core run decodes
on one core while the other trains. Augmentation runs in the main process on tensors with the
trainer's torch generator, which keeps a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dnnh.data.dataset import ArrayDataset, FileDataset


def sized(dataset: ArrayDataset | FileDataset, input_size: int) -> ArrayDataset | FileDataset:
    """A file dataset whose files are resized on load, so images of mixed sizes stack into a batch."""
    if isinstance(dataset, FileDataset) and dataset.image_size is None:
        return replace(dataset, image_size=(input_size, input_size))
    return dataset


@dataclass
class Preprocessing:
    """Resize to ``input_size`` squared, scale to [0, 1], subtract the per-channel mean, divide by std."""

    input_size: int
    channels: int
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, dataset: ArrayDataset | FileDataset, indices: np.ndarray, input_size: int,
            max_images: int = 5000, seed: int = 0) -> "Preprocessing":
        """Channel statistics from (up to ``max_images`` of) the training images."""
        idx = np.asarray(indices)
        if len(idx) > max_images:
            idx = np.sort(np.random.default_rng(seed).choice(idx, max_images, replace=False))
        images = sized(dataset, input_size).load_images(idx).astype(np.float64) / 255.0
        mean = images.mean(axis=(0, 1, 2))
        std = images.std(axis=(0, 1, 2))
        std = np.where(std < 1e-6, 1.0, std)
        return cls(input_size=int(input_size), channels=int(images.shape[3]),
                   mean=[float(m) for m in mean], std=[float(s) for s in std])

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (n, H, W, C) -> float32 (n, C, input_size, input_size)."""
        if images.ndim != 4 or images.shape[3] != self.channels:
            raise ValueError(f"expected uint8 images (n, H, W, {self.channels}), got shape {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[2:] != (self.input_size, self.input_size):
            shrinking = min(x.shape[2:]) > self.input_size
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=shrinking)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


class _Failed:
    """A worker's error carried back as a value: DataLoader would re-raise it with the worker's whole
    traceback pasted into the message (50 lines for one unreadable image); the main process raises
    the original one-line error instead."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _DecodeBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item is a whole batch, so a worker decodes one batch per task."""

    def __init__(self, dataset: FileDataset, batches: Sequence[np.ndarray], prep: Preprocessing) -> None:
        self.dataset, self.batches, self.prep = dataset, batches, prep

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor | _Failed:
        try:
            return self.prep(self.dataset.load_images(self.batches[i]))
        except (ValueError, OSError) as exc:  # CorruptImageError, a missing file, mixed sizes
            return _Failed(exc)


class BatchSource:
    """Yields preprocessed image batches for lists of dataset indices."""

    def __init__(self, dataset: ArrayDataset | FileDataset, prep: Preprocessing, cache_indices: np.ndarray | None = None,
                 num_workers: int = 2) -> None:
        self.dataset, self.prep, self.num_workers = sized(dataset, prep.input_size), prep, num_workers
        self.cache: torch.Tensor | None = None
        self.position: np.ndarray | None = None
        if cache_indices is not None and isinstance(dataset, ArrayDataset):
            cache_indices = np.asarray(cache_indices)
            self.cache = torch.cat([prep(dataset.load_images(cache_indices[i:i + 4096]))
                                    for i in range(0, len(cache_indices), 4096)])
            self.position = np.full(len(dataset), -1, dtype=np.int64)
            self.position[cache_indices] = np.arange(len(cache_indices))

    def batches(self, batches: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        if self.cache is not None:
            for b in batches:
                pos = self.position[b]
                if (pos < 0).any():
                    raise IndexError("batch asks for items outside the cached training set")
                yield self.cache[torch.from_numpy(pos)]
            return
        if isinstance(self.dataset, ArrayDataset) or self.num_workers == 0:
            for b in batches:
                yield self.prep(self.dataset.load_images(b))
            return
        loader = torch.utils.data.DataLoader(_DecodeBatches(self.dataset, batches, self.prep), batch_size=None,
                                             shuffle=False, num_workers=self.num_workers, prefetch_factor=4,
                                             persistent_workers=False)
        for item in loader:
            if isinstance(item, _Failed):
                raise item.error
            yield item


Share = tuple[int, int, int]  # (start, stop, total): rows start..stop of a batch of ``total``


def _share(x: torch.Tensor, share: Share | None) -> tuple[slice, int]:
    """The rows of the whole batch that ``x`` holds, and the whole batch's size.

    Training on several processes, each holds a share of one global batch; drawing the random
    numbers for the whole batch and keeping its own rows gives every image the augmentation it
    would get in one process, so N processes train as one does.
    """
    if share is None:
        return slice(0, len(x)), len(x)
    start, stop, total = share
    if stop - start != len(x) or not 0 <= start <= stop <= total:
        raise ValueError(f"a share {share} of a batch does not fit {len(x)} images")
    return slice(start, stop), total


def shift_augment(x: torch.Tensor, generator: torch.Generator, max_shift: int, flip: bool = False,
                  share: Share | None = None) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero fill), optionally a horizontal flip.

    Zero is the normalised mean, so the filled border is neutral. ``share``: see :func:`_share`.
    """
    rows, total = _share(x, share)
    _, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (total, 2), generator=generator)[rows]
    out = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])
    if flip:
        mask = (torch.rand(total, generator=generator) < 0.5)[rows]
        out[mask] = out[mask].flip(3)
    return out.contiguous(memory_format=torch.channels_last)


def random_erase(x: torch.Tensor, generator: torch.Generator, p: float, area: tuple[float, float] = (0.02, 0.4),
                 aspect: tuple[float, float] = (0.3, 3.3), share: Share | None = None) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability ``p`` an image gets one rectangle of noise.

    The rectangle covers ``area`` of the image (uniform) with a log-uniform aspect ratio; the
    noise is standard normal, which on normalised inputs has the data's scale. A network that must
    recognise a garment with a part hidden leans less on any one patch, which matters most when
    the training set is small (the paper protocol keeps 500 images a class). ``share``: see
    :func:`_share`.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"erase probability must be in [0, 1], got {p}")
    rows, n = _share(x, share)
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
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    inside = ((ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1))
              & (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1)) & chosen.view(n, 1, 1))
    noise = torch.randn((n, c, h, w), generator=generator, dtype=x.dtype)
    return torch.where(inside[rows].unsqueeze(1), noise[rows], x).contiguous(memory_format=torch.channels_last)
