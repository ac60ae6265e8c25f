"""What one request may cost the server (light: no torch, no numpy; the command line reads the defaults).

Memory is what a hostile client can spend cheaply: a 75 KB PNG can declare 36 megapixels at 16
bits. So an upload is bounded three ways before a pixel is decoded: its bytes (the whole body),
its pixels (the header's size), and the memory its decode needs (estimated from size and mode,
:func:`decode_bytes`); and at most ``max_concurrent_uploads`` are decoded at once, so the worst
case is ``max_concurrent_uploads x max_decode_bytes``. A request that finds every slot taken waits
``upload_wait_s`` and then answers 503 with ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_MAX_MEGAPIXELS = 40.0
DEFAULT_MAX_DECODE_MB = 640.0
DEFAULT_MAX_CONCURRENT_UPLOADS = 2
DEFAULT_K_MAX = 1000

_MB = 1024 * 1024

#: Bytes a pixel of each Pillow mode holds (what ``Image.load`` allocates).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
               "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4}


def decode_bytes(mode: str, width: int, height: int, channels: int) -> int:
    """Memory a decode of a ``mode`` image of ``width x height`` to ``channels`` needs at its peak:
    the decoded image and one copy in its own mode, then four bytes a channel for the converted
    copies (Pillow's and numpy's) and four for scratch, and eight more a pixel where alpha is composited. Measured on
    PNGs: 14-24 bytes a pixel; this estimate is at or above each (see tests/serve)."""
    per = _MODE_BYTES.get(mode, 2 if mode.startswith("I;16") else 4)
    alpha = 8 if mode in ("RGBA", "LA", "PA", "P", "RGBa", "La") else 0
    return width * height * (2 * per + 4 * channels + 4 + alpha)


@dataclass(frozen=True)
class Limits:
    """What requests may ask: upload bytes (whole body), decoded pixels and decode memory per image,
    uploads decoded at once (and how long one waits for a slot), results per search."""

    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * _MB)
    max_pixels: int = int(DEFAULT_MAX_MEGAPIXELS * 1_000_000)
    k_max: int = DEFAULT_K_MAX
    max_decode_bytes: int = int(DEFAULT_MAX_DECODE_MB * _MB)
    max_concurrent_uploads: int = DEFAULT_MAX_CONCURRENT_UPLOADS
    upload_wait_s: float = 2.0

    def __post_init__(self) -> None:
        if (self.max_upload_bytes < 1 or self.max_pixels < 1 or self.k_max < 1 or self.max_decode_bytes < 1
                or self.max_concurrent_uploads < 1 or not self.upload_wait_s >= 0):
            raise ValueError(f"limits must be positive, got {self}")
