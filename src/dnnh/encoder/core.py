"""One way from images to codes: the :class:`Encoder`, which every caller uses.

Validation during training, ``dnnh eval``, ``encode``, ``index build --run``, ``search``, the
bench and the library all encode through it, so a code is the same bit whichever path made it.
It takes images in any of the forms they come in — uint8 arrays (n, H, W, C), image files, or
items of a dataset by index — preprocesses them as the run was trained (resize, scale,
per-channel mean/std), and runs them through a *backend* in bounded batches, with a progress
bar on long work.

The backend is the only part that computes: ``bits(batch, role)`` takes a preprocessed float
batch (n, C, H, W) and returns 0/1 codes (n, nbits) as uint8; ``features(batch)`` returns what
the hash layer reads (for the baselines run on learned features). :class:`TorchBackend` runs the
PyTorch model; another engine (onnxruntime, say) is another class with these two methods, and
no caller changes.

Engines are named in :data:`dnnh.encoder.names.ENGINES` and built from the one registry,
:data:`dnnh.encoder.backends.BACKENDS`; ``Encoder.from_run(run, engine=...)`` picks one,
``"auto"`` the fastest whose codes equal fp32 torch's (:mod:`dnnh.encoder.auto`). Every caller
that names no engine (the library, each command, the service, scoring) gets
:data:`~dnnh.encoder.names.DEFAULT_ENGINE`, fp32 torch: the codes training validated.
``encoder.reason`` says which engine computes and, for ``auto``, why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from dnnh.codes import CodeSet
from dnnh.data.pipeline import BatchSource, Preprocessing
from dnnh.data.progress import Progress
from dnnh.data.splits import Split
from dnnh.encoder.auto import open_backend
from dnnh.encoder.backends import EncoderBackend, TorchBackend, place_backend
from dnnh.encoder.names import ROLES
from dnnh.nn import DNNH
from dnnh.runs import Run


class Encoder:
    """Images -> 0/1 codes through one backend and one preprocessing; see the module docstring.

    ``model`` is a :class:`~dnnh.nn.DNNH` (wrapped in a :class:`TorchBackend`) or a backend.
    ``batch_size`` bounds the images in memory at once (default: 512 on the CPU, 2048 on a GPU,
    where larger batches keep it busy); ``num_workers`` decode image files of
    file-backed datasets in parallel processes. Items of in-memory datasets are preprocessed on
    the backend's device (a GPU's batches go up as uint8 and are normalised there).
    """

    def __init__(self, model: DNNH | EncoderBackend, prep: Preprocessing, *, batch_size: int | None = None,
                 num_workers: int = 2, reason: str | None = None) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend: EncoderBackend = TorchBackend(model) if isinstance(model, DNNH) else model
        self.device = torch.device(getattr(self.backend, "device", "cpu"))
        if batch_size is None:
            batch_size = 2048 if self.device.type == "cuda" else 512
        self.prep, self.batch_size, self.num_workers = prep, int(batch_size), int(num_workers)
        #: One line: which engine computes the codes and, when ``auto`` chose it, why.
        self.reason = reason or f"engine: {self.backend.name}"
        #: sha256 (16 hex) of the weights bytes :meth:`from_run` loaded (None: built from a model), which
        #: the codes' origin names: hashing the file after encoding could name weights a train saved since.
        self.weights_digest: str | None = None

    @classmethod
    def from_run(cls, run: Run | str | Path, engine: str | None = None, data: Any = None,
                 device: str | torch.device | None = None, **kwargs: Any) -> "Encoder":
        """The encoder of a run's best model (``run``: a :class:`~dnnh.runs.Run` or its folder).

        ``engine``: one of :data:`~dnnh.encoder.names.ENGINE_CHOICES`, None for the default
        (:func:`~dnnh.encoder.auto.open_backend`; ``data`` is handed to it). ``device``:
        where the torch engines compute (``auto``, ``cpu``, ``cuda``, ``cuda:N``; default: the
        torch engine on the CPU, torch-bf16 on CUDA where there is one), whatever device the
        run was trained on; ``auto`` on a GPU is the torch engine there (:func:`place_backend`).
        """
        run = run if isinstance(run, Run) else Run.open(run)
        kwargs.setdefault("num_workers", run.config.num_workers)
        place = None
        if device is not None:
            from dnnh.devices import resolve_device

            place = resolve_device(device)  # "cuda" and "cuda:0" are one device from here on
        mark = len(run.loaded_weights)
        choice = open_backend(engine, run, data, device=place)
        weights_digest = run.weights_loaded_since(mark)
        backend, reason = choice.backend, choice.reason
        if place is not None:
            reason = place_backend(backend, place, reason)
        encoder = cls(backend, run.prep, reason=reason, **kwargs)
        encoder.weights_digest = weights_digest
        return encoder

    @property
    def nbits(self) -> int:
        return self.backend.nbits

    def _run(self, batches: Iterable[torch.Tensor], n: int, role: str, progress: bool) -> np.ndarray:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        out = np.empty((n, self.nbits), dtype=np.uint8)
        pos = 0
        # a bar on a terminal, else a line on stderr every half minute (issue 36.15: 70,000 images in silence)
        with Progress(n, f"encoding {role}", shown=progress) as shown:
            for batch in batches:
                codes = self.backend.bits(batch, role)
                out[pos:pos + len(codes)] = codes
                pos += len(codes)
                shown.update(len(codes))
        return out

    def _chunks(self, indices: np.ndarray) -> list[np.ndarray]:
        return [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]

    def _source(self, data: Any) -> BatchSource:
        if isinstance(data, BatchSource):
            return data
        return BatchSource(data, self.prep, num_workers=self.num_workers, device=self.device)

    def encode_images(self, images: np.ndarray, role: str = "database", progress: bool = False) -> np.ndarray:
        """Codes of uint8 images (n, H, W, C) given directly (search queries, the library API)."""
        images = np.asarray(images)
        batches = (self.prep(images[i:i + self.batch_size]) for i in range(0, len(images), self.batch_size))
        return self._run(batches, len(images), role, progress)

    def encode_files(self, paths: Sequence[str | Path], role: str = "query", progress: bool = False) -> np.ndarray:
        """Codes of image files, each read and resized to the model's input."""
        from dnnh.data.images import read_image

        size = (self.prep.load_size, self.prep.load_size)  # before the crop, if the run has one

        def batches() -> Iterator[torch.Tensor]:
            for i in range(0, len(paths), self.batch_size):
                yield self.prep(np.stack([read_image(p, channels=self.prep.channels, size=size)
                                          for p in paths[i:i + self.batch_size]]))

        return self._run(batches(), len(paths), role, progress)

    def encode_items(self, data: Any, indices: np.ndarray, role: str = "database",
                     progress: bool = False) -> np.ndarray:
        """Codes of the items ``indices`` of ``data`` (a dataset, or a :class:`BatchSource` over one)."""
        indices = np.asarray(indices, dtype=np.int64)
        return self._run(self._source(data).batches(self._chunks(indices)), len(indices), role, progress)

    def features(self, data: Any, indices: np.ndarray) -> np.ndarray:
        """What the hash layer reads (the backbone's 50q features) for the items ``indices`` of ``data``."""
        indices = np.asarray(indices, dtype=np.int64)
        out = [self.backend.features(batch) for batch in self._source(data).batches(self._chunks(indices))]
        return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)

    def encode_split(self, dataset: Any, split: Split, progress: bool = False) -> tuple[CodeSet, CodeSet]:
        """Codes of the split's queries (query role) and database, with dataset ids and labels."""
        split.check_fits(len(dataset))
        source = self._source(dataset)
        out = []
        for role in ROLES:
            idx = getattr(split, role)
            bits = self.encode_items(source, idx, role=role, progress=progress)
            out.append(CodeSet.from_bits(bits, ids=idx, labels=dataset.labels[idx]))
        return out[0], out[1]
