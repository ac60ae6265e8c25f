"""Decoding one image file into uint8 (H, W, C), whatever its mode (L, RGB, RGBA, P, I;16 ...)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

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
            arr = np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only arrays
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot decode image {path}: {exc}") from exc
    return arr[..., None] if arr.ndim == 2 else arr


def check_image(path: str | Path) -> str | None:
    """Why ``path`` cannot be used as an image (missing, unreadable, undecodable), or None if it decodes.

    The whole file is decoded (a header check misses truncated files); JPEGs are decoded at 1/8
    scale via ``draft``, which still reads every byte but costs a fraction of a full decode.
    """
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except FileNotFoundError:
        return "file not found"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot decode: {exc}"
    return None


def check_images(paths: Sequence[str | Path], workers: int | None = None) -> list[str | None]:
    """:func:`check_image` for each path, in threads (Pillow releases the GIL while decoding)."""
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 64:
        return [check_image(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check_image, paths))
