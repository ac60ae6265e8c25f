"""Decoding one image file into uint8 (H, W, C), whatever its mode (L, RGB, RGBA, P, I;16 ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class CorruptImageError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def read_image(path: str | Path, channels: int = 3, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode ``path`` to uint8 (H, W, channels); RGBA is composited on white, palettes expanded."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and (img.height, img.width) != tuple(size):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"cannot decode image {path}: {exc}") from exc
    return arr[..., None] if arr.ndim == 2 else arr
