"""Encoding images to 0/1 codes with a trained model, in bounded batches, and loading a run back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from dnnh.data.pipeline import BatchSource, Preprocessing
from dnnh.data.splits import Split
from dnnh.nn import DNNH
from dnnh.training.checkpoint import load_weights, read_json
from dnnh.training.config import TrainConfig


def encode_indices(model: DNNH, source: BatchSource, indices: np.ndarray, role: str = "database",
                   batch_size: int = 512, progress: bool = False) -> np.ndarray:
    """(len(indices), bits) uint8 0/1 codes of the dataset items ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    chunks = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    out = np.empty((len(indices), model.bits), dtype=np.uint8)
    pos = 0
    with tqdm(total=len(indices), desc=f"encoding {role}", unit="img", disable=not progress, leave=False) as bar:
        for images in source.batches(chunks):
            codes = model.encode(images, role=role).numpy()
            out[pos:pos + len(codes)] = codes
            pos += len(codes)
            bar.update(len(codes))
    return out


def encode_images(model: DNNH, prep: Preprocessing, images: np.ndarray, role: str = "database",
                  batch_size: int = 512) -> np.ndarray:
    """Codes of uint8 images (n, H, W, C) given directly (search queries, the library API)."""
    out = [model.encode(prep(images[i:i + batch_size]), role=role).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.empty((0, model.bits), dtype=np.uint8)


def encode_image_files(model: DNNH, prep: Preprocessing, paths: list[Path], role: str = "query") -> np.ndarray:
    """Codes of image files (search queries, ``dnnh encode --images``), each resized to the model's input."""
    from dnnh.data.images import read_image

    size = (prep.input_size, prep.input_size)
    images = np.stack([read_image(p, channels=prep.channels, size=size) for p in paths])
    return encode_images(model, prep, images, role=role)


@dataclass
class TrainedRun:
    """A run directory loaded back: the best model, its preprocessing, config and split."""

    path: Path
    model: DNNH
    prep: Preprocessing
    config: TrainConfig
    split: Split
    dataset_name: str

    @classmethod
    def load(cls, run_dir: str | Path) -> "TrainedRun":
        from dnnh.training.train import build_model

        run_dir = Path(run_dir)
        saved = read_json(run_dir / "config.json")
        config = TrainConfig.from_dict(saved["config"])
        prep = Preprocessing(**saved["preprocessing"])
        model = build_model(config, prep.channels)
        weights = run_dir / "model.safetensors"
        if not weights.exists():
            raise FileNotFoundError(f"{weights} not found: the run has not finished an epoch yet")
        load_weights(model, weights)
        model.eval()
        return cls(path=run_dir, model=model, prep=prep, config=config, split=Split.load(run_dir / "split.json"),
                   dataset_name=saved["dataset"]["name"])
