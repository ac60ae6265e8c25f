"""From uint8 images to the float tensors a network takes, cached or streamed.

Small sets (every ArrayDataset) are preprocessed once into one tensor and batches are slices of
it (on a GPU: uint8 images copied there once, normalised per batch there). File datasets are
decoded per batch in DataLoader worker processes, so a 2-core run decodes on one core while the
other trains. Augmentation (:mod:`dnnh.data.augment`) runs on the batch's device with the
trainer's torch generator, which keeps a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dnnh.data.augment import Share, random_erase, shift_augment  # noqa: F401  (their home before issue 22)
from dnnh.data.dataset import ArrayDataset, FileDataset


def sized(dataset: ArrayDataset | FileDataset, input_size: int) -> ArrayDataset | FileDataset:
    """A file dataset whose files are resized on load, so images of mixed sizes stack into a batch."""
    if isinstance(dataset, FileDataset) and dataset.image_size is None:
        return replace(dataset, image_size=(input_size, input_size))
    return dataset


@dataclass
class Preprocessing:
    """Resize to ``input_size`` squared, scale to [0, 1], subtract the per-channel mean, divide by std.

    ``resize`` (the 224 px pipeline of DeepHash-pytorch and the pretrained backbones): resize to
    ``resize`` squared first, then take the centre ``input_size`` crop (256 then 224). Training
    reads :meth:`uncropped` images instead and crops at random (:func:`dnnh.data.augment.random_crop`).
    """

    input_size: int
    channels: int
    mean: list[float]
    std: list[float]
    resize: int | None = None

    @classmethod
    def fixed(cls, input_size: int, channels: int, mean: Sequence[float], std: Sequence[float],
              resize: int | None = None) -> "Preprocessing":
        """Given statistics (a pretrained network's ImageNet mean and std) instead of the data's."""
        if resize is not None and resize < input_size:
            raise ValueError(f"resize ({resize}) must be at least input_size ({input_size})")
        return cls(input_size=int(input_size), channels=int(channels), mean=[float(m) for m in mean],
                   std=[float(s) for s in std], resize=None if resize in (None, input_size) else int(resize))

    @property
    def load_size(self) -> int:
        """The side images are resized to before any crop."""
        return self.resize or self.input_size

    def uncropped(self) -> "Preprocessing":
        """The same preprocessing without the centre crop: training's images, cropped by the augmentation."""
        return replace(self, input_size=self.resize, resize=None) if self.resize else self

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
        out = asdict(self)
        if out["resize"] is None:  # runs without a crop keep the dict they had before the field
            del out["resize"]
        return out

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (n, H, W, C) -> float32 (n, C, input_size, input_size)."""
        return self.tensor(torch.from_numpy(np.ascontiguousarray(images)))

    def tensor(self, images: torch.Tensor) -> torch.Tensor:
        """The same on a uint8 tensor (n, H, W, C), computed on the device it is on."""
        if images.ndim != 4 or images.shape[3] != self.channels:
            raise ValueError(f"expected uint8 images (n, H, W, {self.channels}), got shape {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        side = self.load_size
        if x.shape[2:] != (side, side):
            shrinking = min(x.shape[2:]) > side
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=shrinking)
        if side > self.input_size:
            top = (side - self.input_size) // 2  # torchvision's CenterCrop rounds the offset the same way
            x = x[:, :, top:top + self.input_size, top:top + self.input_size]
        mean, std = self.statistics(x.device)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    def statistics(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and std as (1, C, 1, 1) float32 tensors on ``device``, made once per device.

        Made per batch, ``torch.tensor(mean, device="cuda")`` is a blocking copy from the host: the
        host waits for the GPU twice a batch (issue 34.8). The cache is not a field (not in
        :meth:`to_dict`, not compared); a changed mean or std makes new tensors.
        """
        cache = self.__dict__.setdefault("_statistics", {})
        key = (str(device), tuple(self.mean), tuple(self.std))
        if key not in cache:
            cache[key] = tuple(torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1).to(device)
                               for values in (self.mean, self.std))
        return cache[key]

    def __getstate__(self) -> dict:
        """Pickled (to a decoding worker, say) without the device tensors of :meth:`statistics`."""
        return {k: v for k, v in self.__dict__.items() if k != "_statistics"}

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
            images = self.dataset.load_images(self.batches[i])
            if self.prep is None:  # for a GPU: uint8 over PCIe (a quarter of float32), normalised there
                return torch.from_numpy(np.ascontiguousarray(images))
            return self.prep(images)
        except (ValueError, OSError) as exc:  # CorruptImageError, a missing file, mixed sizes
            return _Failed(exc)


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``array`` on ``device`` without making the host wait: on a GPU through pinned memory with a
    non-blocking copy (a pageable or blocking copy waits for every kernel queued before it); on
    the CPU the array itself, as a tensor."""
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cpu":
        return tensor
    if device.type == "cuda" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def decode_workers(asked: int, device: torch.device, cores: int | None = None) -> int:
    """Decoding processes for image files: ``asked`` on the CPU (the other cores train); on a GPU at
    least the cores less one, at most 16, since nothing else needs the host there and two workers
    cannot feed a 224 px backbone (issue 34.12). 0 stays 0 (decoding in the training process)."""
    if asked == 0 or device.type == "cpu":
        return asked
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(asked, min(cores - 1, 16))


class BatchSource:
    """Yields preprocessed image batches for lists of dataset indices, on ``device``.

    On the CPU (the default) a cached set is one float tensor and batches are slices of it. On a
    GPU a cached set is copied there once as uint8 (a quarter of the float size) and each batch
    is scaled and normalised there; the positions of all the batches of one call go up in one
    non-blocking copy, so a training step asks nothing of the host. Uncached arrays go up as
    uint8 batches; file datasets are decoded by a worker pool (:func:`decode_workers`), which on
    a GPU ships uint8 through pinned memory and leaves the scaling to the GPU.
    """

    def __init__(self, dataset: ArrayDataset | FileDataset, prep: Preprocessing, cache_indices: np.ndarray | None = None,
                 num_workers: int = 2, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dataset, self.prep = sized(dataset, prep.load_size), prep
        self.num_workers = decode_workers(num_workers, self.device)
        self.cache: torch.Tensor | None = None  # float batches on the CPU, uint8 images on a GPU
        self.position: np.ndarray | None = None
        if cache_indices is not None and isinstance(dataset, ArrayDataset):
            cache_indices = np.asarray(cache_indices)
            if self.on_gpu:
                self.cache = torch.from_numpy(dataset.load_images(cache_indices)).to(self.device)
            else:
                self.cache = torch.cat([prep(dataset.load_images(cache_indices[i:i + 4096]))
                                        for i in range(0, len(cache_indices), 4096)])
            self.position = np.full(len(dataset), -1, dtype=np.int64)
            self.position[cache_indices] = np.arange(len(cache_indices))

    @property
    def on_gpu(self) -> bool:
        return self.device.type != "cpu"

    def batches(self, batches: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        if self.cache is not None:
            yield from self._cached(batches)
            return
        if isinstance(self.dataset, ArrayDataset) or self.num_workers == 0:
            for b in batches:
                images = self.dataset.load_images(b)
                yield self.prep.tensor(to_device(images, self.device)) if self.on_gpu else self.prep(images)
            return
        decode = _DecodeBatches(self.dataset, batches, None if self.on_gpu else self.prep)
        loader = torch.utils.data.DataLoader(decode, batch_size=None, shuffle=False, num_workers=self.num_workers,
                                             prefetch_factor=4, persistent_workers=False,
                                             pin_memory=self.device.type == "cuda")
        for item in loader:
            if isinstance(item, _Failed):
                raise item.error
            yield self.prep.tensor(item.to(self.device, non_blocking=True)) if self.on_gpu else item

    def _cached(self, batches: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        """Batches cut from the cache (checked on the host first, so a bad index is one line, not a GPU fault)."""
        positions = [self.position[b] for b in batches]
        if any((pos < 0).any() for pos in positions):
            raise IndexError("batch asks for items outside the cached training set")
        if not self.on_gpu:
            for pos in positions:
                yield self.cache[torch.from_numpy(pos)]
            return
        if not positions:
            return
        on_device = to_device(np.concatenate(positions), self.device)  # one copy for all the batches
        start = 0
        for pos in positions:
            yield self.prep.tensor(self.cache[on_device[start:start + len(pos)]])
            start += len(pos)
