"""Uploaded bytes to pixels, and pixels to the PNG thumbnails the service shows.

Uploads are decoded from memory (never written under a name a request chose) by the library's
own :func:`~dnnh.data.images.read_image`, so a query decodes exactly as ``dnnh search`` decodes a
file: the same modes, the same compositing, the same bilinear resize to the model's input.
Before any pixel is decoded the header's size is checked against the pixel limit, so a
decompression bomb costs a header read, not gigabytes.
"""

from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from dnnh.data.images import DECODE_ERRORS, CorruptImageError, read_image
from dnnh.serve.limits import decode_bytes

#: Thumbnails are at least this many pixels on their longer side (small images are scaled up,
#: nearest neighbour, by a whole factor) ...
THUMB_MIN = 96
#: ... and at most this many (large images are scaled down).
THUMB_MAX = 256


class ImageRejected(ValueError):
    """An upload the service will not decode; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, *, channels: int, input_size: int, max_pixels: int,
                  max_decode_bytes: int | None = None, name: str = "upload") -> tuple[np.ndarray, np.ndarray]:
    """``(model input (S, S, C), full image (H, W, C))`` as uint8 from an uploaded file's bytes.

    Raises :class:`ImageRejected`: 415 for anything Pillow cannot decode (or an empty file, or any
    error of a decoder: see :data:`dnnh.data.images.DECODE_ERRORS`), 413 for more than
    ``max_pixels`` pixels or a decode needing more than ``max_decode_bytes`` (by the header's size
    and mode, :func:`dnnh.serve.limits.decode_bytes`).
    """
    if not data:
        raise ImageRejected(415, f"{name} is empty; send an image file (PNG, JPEG, ...)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height, mode = img.size + (img.mode,)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(413, f"{name} has more pixels than this server decodes ({max_pixels:,})") from None
    except UnidentifiedImageError:
        raise ImageRejected(415, f"{name} is not an image this server can read (not a format Pillow "
                                 "recognises: send PNG, JPEG, GIF, BMP, TIFF or WebP)") from None
    except DECODE_ERRORS as exc:
        raise ImageRejected(415, f"{name} is not an image this server can read "
                                 f"({type(exc).__name__}: {_first_line(exc)})") from None
    if width < 1 or height < 1:
        raise ImageRejected(415, f"{name} has size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(413, f"{name} is {width}x{height} = {width * height:,} pixels, more than this "
                                 f"server decodes ({max_pixels:,})")
    need = decode_bytes(mode, width, height, channels)
    if max_decode_bytes is not None and need > max_decode_bytes:
        raise ImageRejected(413, f"{name} ({width}x{height}, mode {mode}) needs about {need / 2**20:,.0f} MB to decode, "
                                 f"more than this server spends on one image ({max_decode_bytes / 2**20:,.0f} MB, "
                                 "--max-decode-mb)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            full = read_image(io.BytesIO(data), channels=channels)
    except CorruptImageError as exc:
        if isinstance(exc.__cause__, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise ImageRejected(413, f"{name} has more pixels than this server decodes") from None
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise ImageRejected(415, f"{name} cannot be decoded ({type(cause).__name__}: {_first_line(cause)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(413, f"{name} has more pixels than this server decodes") from None
    return to_input(full, input_size), full


def to_input(full: np.ndarray, input_size: int) -> np.ndarray:
    """The model's input from a decoded image, resized as ``read_image(size=...)`` resizes."""
    if full.shape[:2] == (input_size, input_size):
        return full
    img = Image.fromarray(full[..., 0] if full.shape[2] == 1 else full)
    out = np.array(img.resize((input_size, input_size), Image.BILINEAR), dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


def thumbnail_png(image: np.ndarray) -> bytes:
    """A PNG of ``image`` (uint8 (H, W, C)) sized for a results grid (THUMB_MIN..THUMB_MAX px)."""
    arr = np.asarray(image, dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    longer = max(img.size)
    if longer < THUMB_MIN:
        factor = math.ceil(THUMB_MIN / longer)
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    elif longer > THUMB_MAX:
        img.thumbnail((THUMB_MAX, THUMB_MAX), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message, without the repr of our in-memory file."""
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc)).strip()
    return text.splitlines()[0][:200] if text else "no details"
