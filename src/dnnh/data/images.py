"""Decoding one image file into uint8 (H, W, C), whatever its mode (L, RGB, RGBA, P, I;16 ...), upright.

Every decode applies the file's EXIF Orientation tag first (:func:`turn_upright`), so a phone's
portrait photo, stored sideways with a tag, is read as it is seen: in training, encoding, search
and the service alike (they all decode here).

High-depth images are scaled into 0..255, never clipped (Pillow's own ``convert("L")`` clips a
16-bit image, turning almost every pixel of a gradient into 255):

- 16-bit modes (``I;16``, ``I;16B``, ...): by the mode's range, ``round(v / 257)`` (65535 -> 255);
  the signed ``I;16S`` is shifted by 32768 first.
- ``I`` (32-bit int, how some decoders hand over 16-bit files): values within 0..65535 are taken
  as 16-bit samples (``/ 257``); otherwise the int32 range is mapped linearly onto 0..255.
- ``F`` (float32): by the values' range: within 0..1 -> ``* 255``, within 0..255 -> as is, within
  0..65535 -> ``/ 257``; anything else (negative or larger values) is stretched from the image's
  own minimum..maximum. NaN becomes 0.
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dnnh.errors import DataError


class CorruptImageError(DataError):
    """An image file that cannot be decoded; the message names the file."""


#: What a decoder may raise for a file it cannot decode. Pillow's plugins raise more than OSError
#: (a DDS variant: NotImplementedError; short reads: EOFError or struct.error; bad tables:
#: IndexError, KeyError, TypeError, ZeroDivisionError); each is a bad image, never an internal error.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, NotImplementedError, struct.error,
    IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError, MemoryError, Image.DecompressionBombError)


_HIGH_DEPTH_MODES = ("I", "F")
#: What a missing or misplaced image file should have been (said in its one-line error).
EXPECTED = "an image file Pillow reads: PNG, JPEG, BMP, TIFF, WebP, ..."


def _scale_16bit(arr: np.ndarray, offset: int, chunk: int = 1 << 20) -> np.ndarray:
    """``(v + offset) // 257`` as uint8, a million samples at a time (temporaries stay small)."""
    flat = np.ascontiguousarray(arr).reshape(-1)
    out = np.empty(flat.shape, np.uint8)
    for start in range(0, len(flat), chunk):
        wide = flat[start:start + chunk].astype(np.int32)
        wide += offset
        wide //= 257
        out[start:start + chunk] = wide
    return out.reshape(arr.shape)


def scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """A high-depth (H, W) array as uint8 0..255, by the rules in the module docstring."""
    arr = np.asarray(values)
    # 16-bit samples in integers: round(v / 257) == (v + 128) // 257 exactly (no ties), at 4 bytes a
    # pixel instead of float64's 8 and its temporaries (a 36-megapixel 16-bit PNG cost 1 GB).
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 1:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 2:
        return _scale_16bit(arr, 128 + (32768 if arr.dtype.kind == "i" else 0))
    if arr.dtype.kind in "iu":
        wide = arr.astype(np.float64)
        lo, hi = (float(wide.min()), float(wide.max())) if wide.size else (0.0, 0.0)
        if lo >= 0 and hi <= 65535:
            scaled = wide / 257.0
        elif lo >= 0:
            scaled = wide * (255.0 / (2.0**31 - 1))
        else:
            scaled = (wide + 2.0**31) * (255.0 / (2.0**32 - 1))
    else:
        wide = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(wide.min()), float(wide.max())) if wide.size else (0.0, 0.0)
        if lo >= 0 and hi <= 1:
            scaled = wide * 255.0
        elif lo >= 0 and hi <= 255:
            scaled = wide
        elif lo >= 0 and hi <= 65535:
            scaled = wide / 257.0
        else:
            scaled = (wide - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(wide)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)  # the clip only guards rounding


def turn_upright(img: Image.Image) -> None:
    """Apply the EXIF Orientation tag in place, as every image viewer does: phones store a portrait
    photo's pixels sideways with a tag that says how to turn them. An unreadable EXIF block leaves
    the pixels as stored (they decode; only the tag is lost)."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except DECODE_ERRORS:
        pass


def read_image(path: str | Path, channels: int = 3, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode ``path`` to uint8 (H, W, channels), upright (its EXIF orientation applied); RGBA is
    composited on white, palettes expanded, 16-bit and float images scaled (module docstring); then
    resized to ``size`` (H, W), bilinear."""
    try:
        with Image.open(path) as img:
            img.load()
            turn_upright(img)
            if img.mode.startswith(_HIGH_DEPTH_MODES):
                img = Image.fromarray(scale_to_uint8(np.asarray(img)))  # uint8 (H, W): mode L
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and (img.height, img.width) != tuple(size):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only arrays
    except FileNotFoundError:  # one line naming the file and what should be there, not "[Errno 2] ..."
        raise FileNotFoundError(f"image file {path} does not exist (expected {EXPECTED})") from None
    except IsADirectoryError:
        raise CorruptImageError(f"{path} is a folder, not an image file (expected {EXPECTED})") from None
    except PermissionError:
        raise CorruptImageError(f"cannot read image {path}: permission denied") from None
    except DECODE_ERRORS as exc:
        raise CorruptImageError(f"cannot decode image {path}: {_reason(exc)}") from exc
    return arr[..., None] if arr.ndim == 2 else arr


def _reason(exc: BaseException) -> str:
    """An error's message for a one-line report, with its kind where the message alone says little."""
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    if text and isinstance(exc, (OSError, ValueError, SyntaxError)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
    except DECODE_ERRORS as exc:
        return f"cannot decode: {_reason(exc)}"
    return None


def _each_in_threads(check, paths: Sequence[str | Path], workers: int) -> list[str | None]:
    """``check`` of each path, in ``workers`` threads when there are enough paths to pay for them."""
    if workers <= 1 or len(paths) < 64:
        return [check(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check, paths))


def check_images(paths: Sequence[str | Path], workers: int | None = None) -> list[str | None]:
    """:func:`check_image` for each path, in threads (Pillow releases the GIL while decoding)."""
    return _each_in_threads(check_image, paths, min(4, os.cpu_count() or 1) if workers is None else workers)


def check_header(path: str | Path) -> str | None:
    """Why ``path`` is unusable judged without decoding (missing, unknown format, bad header or PNG
    chunk checksums, a zero size), or None. Much cheaper than :func:`check_image`, which decodes
    and so also catches a JPEG cut short."""
    try:
        with Image.open(path) as img:
            if img.width < 1 or img.height < 1:
                return f"image has size {img.width}x{img.height}"
            img.verify()
    except FileNotFoundError:
        return "file not found"
    except IsADirectoryError:
        return "a folder, not an image file"
    except DECODE_ERRORS as exc:
        return f"cannot read: {_reason(exc)}"
    return None


def check_headers(paths: Sequence[str | Path], workers: int | None = None) -> list[str | None]:
    """:func:`check_header` for each path, in threads (the work is mostly file I/O)."""
    return _each_in_threads(check_header, paths, min(8, os.cpu_count() or 1) if workers is None else workers)
