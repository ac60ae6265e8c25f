"""16-bit and float images are scaled into 0..255, not clipped (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dnnh.data import load_dataset, read_image
from dnnh.data.images import scale_to_uint8

GRADIENT16 = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520


def _expected16(v: np.ndarray) -> np.ndarray:
    return np.rint(v.astype(np.float64) / 257).astype(np.uint8)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_gradient_scaled_not_clipped(tmp_path, ext):
    path = tmp_path / f"g.{ext}"
    Image.fromarray(GRADIENT16).save(path)
    assert Image.open(path).mode.startswith("I;16")
    gray = read_image(path, channels=1)[..., 0]
    np.testing.assert_array_equal(gray, _expected16(GRADIENT16))
    assert (gray == 255).mean() < 0.01  # clipping made 99.6% of the gradient 255
    rgb = read_image(path, channels=3)
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))


def test_16bit_big_endian_and_full_range(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 128, 129]], dtype=np.uint16)
    img = Image.frombytes("I;16B", (3, 2), values.astype(">u2").tobytes())
    img.save(tmp_path / "b.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "b.tif", channels=1)[..., 0], [[0, 1, 128], [255, 0, 1]])


def test_32bit_int_holding_16bit_samples(tmp_path):
    img = Image.fromarray(GRADIENT16.astype(np.int32))
    assert img.mode == "I"
    img.save(tmp_path / "i.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif", channels=1)[..., 0], _expected16(GRADIENT16))


def test_float_images_by_value_range(tmp_path):
    unit = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    Image.fromarray(unit).save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif", channels=1)[..., 0], np.rint(unit * 255.0))
    wide = np.linspace(-1, 3, 100, dtype=np.float32).reshape(10, 10)  # outside every fixed range: stretched
    Image.fromarray(wide).save(tmp_path / "w.tif")
    out = read_image(tmp_path / "w.tif", channels=1)[..., 0]
    assert out.min() == 0 and out.max() == 255 and (np.diff(out.reshape(-1).astype(int)) >= 0).all()


def test_scale_rules_directly():
    assert scale_to_uint8(np.array([0, 65535, 257], np.uint16)).tolist() == [0, 255, 1]
    assert scale_to_uint8(np.array([-32768, 32767], np.int16)).tolist() == [0, 255]
    assert scale_to_uint8(np.array([0.0, 127.6, 255.0], np.float32)).tolist() == [0, 128, 255]
    assert scale_to_uint8(np.array([0.0, 1000.0, 65535.0])).tolist() == [0, 4, 255]
    assert scale_to_uint8(np.array([np.nan, 0.5])).tolist() == [0, 128]
    assert scale_to_uint8(np.array([5.0, 5.0]) * -1).tolist() == [0, 0]
    assert scale_to_uint8(np.array([0, 2**31 - 1], np.int32)).tolist() == [0, 255]


def test_16bit_folder_images_batch_with_8bit_ones(tmp_path):
    Image.fromarray(GRADIENT16[:8, :8]).save((tmp_path / "a").mkdir() or tmp_path / "a" / "x.png")
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "a" / "y.png")
    batch = load_dataset(tmp_path).load_images([0, 1])
    assert batch.dtype == np.uint8 and batch.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(batch[0, ..., 0], _expected16(GRADIENT16[:8, :8]))
    assert (batch[1] == 200).all()
