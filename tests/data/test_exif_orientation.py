"""EXIF orientation is applied wherever an image file is decoded (issue 36, "also found").

Phones store a portrait photo's pixels sideways and an Orientation tag that says how to turn them.
Before, every decoder ignored it: training, encoding, search and the service saw the photo on
its side. The files here hold a known upright pattern stored rotated, with the tag that undoes the
rotation; each reader must give the upright pattern back.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dnnh.data import read_image
from dnnh.data.folders import load_image_folder

ORIENTATION = 0x0112
#: Orientation tag -> what turns the upright image into the stored pixels (the inverse of the tag).
STORED = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
          2: Image.Transpose.FLIP_LEFT_RIGHT}


def upright_pattern(height: int = 32, width: int = 48) -> np.ndarray:
    """A tall-not-wide RGB pattern no rotation or flip maps onto itself: 8x8 blocks of distinct shades."""
    rows, cols = np.mgrid[0:height, 0:width] // 8
    r = (rows * 40 + 20).astype(np.uint8)
    g = (cols * 40 + 20).astype(np.uint8)
    b = np.full((height, width), 128, np.uint8)
    return np.stack([r, g, b], axis=2)


def jpeg_with_orientation(upright: np.ndarray, tag: int, fmt: str = "JPEG") -> bytes:
    stored = Image.fromarray(upright)
    if STORED[tag] is not None:
        stored = stored.transpose(STORED[tag])
    exif = Image.Exif()
    exif[ORIENTATION] = tag
    buf = io.BytesIO()
    stored.save(buf, format=fmt, exif=exif, **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))
    return buf.getvalue()


def assert_upright(got: np.ndarray, upright: np.ndarray) -> None:
    assert got.shape == upright.shape, f"decoded {got.shape[:2]}, upright is {upright.shape[:2]} (sideways?)"
    assert np.abs(got.astype(int) - upright.astype(int)).max() <= 8  # JPEG at quality 100 is near, not exact


@pytest.mark.parametrize("tag", [6, 8, 3, 2])
def test_read_image_applies_the_orientation_tag(tmp_path, tag):
    upright = upright_pattern()
    path = tmp_path / f"photo-{tag}.jpg"
    path.write_bytes(jpeg_with_orientation(upright, tag))
    with Image.open(path) as raw:
        assert raw.getexif()[ORIENTATION] == tag
        if tag in (6, 8):
            assert raw.size == (upright.shape[0], upright.shape[1])  # stored sideways
    assert_upright(read_image(path, channels=3), upright)
    gray = read_image(path, channels=1)
    assert gray.shape == upright.shape[:2] + (1,)


def test_a_png_with_an_orientation_tag_is_turned_too(tmp_path):
    upright = upright_pattern()
    path = tmp_path / "photo.png"
    path.write_bytes(jpeg_with_orientation(upright, 6, fmt="PNG"))
    np.testing.assert_array_equal(read_image(path), upright)  # lossless: exactly


def test_the_resize_to_the_training_size_comes_after_the_turn(tmp_path):
    upright = upright_pattern(32, 48)
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_with_orientation(upright, 6))
    small = read_image(path, size=(16, 24))
    want = np.asarray(Image.fromarray(upright).resize((24, 16), Image.BILINEAR))
    assert np.abs(small.astype(int) - want.astype(int)).max() <= 8


def test_an_image_folder_dataset_reads_its_photos_upright(tmp_path):
    """Training and `dnnh encode` read folder images through the dataset."""
    upright = upright_pattern()
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "photo.jpg").write_bytes(jpeg_with_orientation(upright, 6))
        Image.fromarray(upright).save(tmp_path / c / "plain.png")
    dataset = load_image_folder(tmp_path, channels=3)
    images = dataset.load_images(range(len(dataset)))  # stacks: every image has the same (upright) shape
    for image in images:
        assert_upright(image, upright)


def test_the_encoder_codes_a_turned_file_as_its_upright_twin(tiny_run, digits, tmp_path):
    """`dnnh encode`/`dnnh search IMAGE` and `Encoder.encode_files`: the tagged file and the upright
    file get the same codes (before, the turned digits were encoded on their side)."""
    from dnnh.encoder import Encoder

    upright, turned = [], []
    for i in range(20):
        big = np.kron(digits.images[i, :, :, 0], np.ones((2, 2), np.uint8))  # 16x16, nearest: a lossless PNG
        Image.fromarray(big).save(tmp_path / f"up{i}.png")
        (tmp_path / f"turned{i}.png").write_bytes(jpeg_with_orientation(big, 6, fmt="PNG"))
        upright.append(tmp_path / f"up{i}.png")
        turned.append(tmp_path / f"turned{i}.png")
    encoder = Encoder.from_run(tiny_run, num_workers=0)
    np.testing.assert_array_equal(encoder.encode_files(turned), encoder.encode_files(upright))


def test_an_upload_to_the_service_is_decoded_upright():
    """`dnnh serve`: searches and adds decode uploads by the same reader (model input and thumbnail)."""
    from dnnh.serve.images import decode_upload

    upright = upright_pattern()
    model_input, full = decode_upload(jpeg_with_orientation(upright, 6), channels=3, input_size=16,
                                      max_pixels=10**6, max_decode_bytes=10**8)
    assert_upright(full, upright)
    assert model_input.shape == (16, 16, 3)


def test_the_exported_model_says_its_images_are_upright(tiny_run, tmp_path):
    """`dnnh export`'s documented preprocessing (metadata, README) includes the EXIF turn."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from pathlib import Path

    from dnnh.export import export_onnx, read_metadata

    export_onnx(tiny_run, tmp_path / "m.onnx")
    assert "EXIF orientation applied" in read_metadata(tmp_path / "m.onnx")["input_layout"]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "ImageOps.exif_transpose(Image.open(" in readme
