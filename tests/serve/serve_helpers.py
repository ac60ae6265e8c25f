"""Helpers of the service tests: training a tiny run, query images, free ports, a test client."""

from __future__ import annotations

import io
import socket
import struct
import warnings
import zlib

import numpy as np
from PIL import Image

#: A digits run that trains in seconds (12 bits, 8x8 inputs, 2 epochs).
TINY = ["--data", "digits", "--queries-per-class", "5", "--train-per-class", "30", "--bits", "12",
        "--input-size", "8", "--epochs", "2", "--batch-size", "40", "--threads", "1", "--workers", "0", "--quiet"]
TOKEN = "test-token-0123456789abcdef"


def train_tiny(path) -> None:
    from dnnh.cli.main import main

    assert main(["train", "--run", str(path), *TINY]) == 0


def png_bytes(image: np.ndarray) -> bytes:
    arr = np.asarray(image, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in 60 bytes (its pixel data is missing)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_client(app, **kwargs):
    """FastAPI's TestClient, imported without the deprecation chatter of this starlette."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(app, **kwargs)
