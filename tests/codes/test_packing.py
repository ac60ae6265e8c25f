import numpy as np
import pytest

from dnnh.codes import CodeSet, code_bytes, hamming_distances, pack_bits, unpack_bits


@pytest.mark.parametrize("nbits", [12, 24, 32, 48, 64])
def test_round_trip(nbits):
    bits = np.random.default_rng(nbits).integers(0, 2, (50, nbits)).astype(np.uint8)
    packed = pack_bits(bits)
    assert packed.dtype == np.uint8 and packed.shape == (50, code_bytes(nbits))
    assert np.array_equal(unpack_bits(packed, nbits), bits)


def test_bit_zero_is_least_significant_bit_of_byte_zero():
    bits = np.zeros((1, 16), dtype=np.uint8)
    bits[0, 0] = 1  # -> byte 0 == 0b00000001
    bits[0, 9] = 1  # -> byte 1 == 0b00000010
    assert pack_bits(bits).tolist() == [[1, 2]]


def test_padding_bits_are_zero_for_12_bits():
    packed = pack_bits(np.ones((1, 12), dtype=np.uint8))
    assert packed.tolist() == [[255, 15]]


def test_hamming_distances_match_bit_counts():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, (4, 24)), rng.integers(0, 2, (6, 24))
    expected = np.array([[int((x != y).sum()) for y in b] for x in a])
    assert np.array_equal(hamming_distances(pack_bits(a), pack_bits(b)), expected)


def test_errors():
    with pytest.raises(ValueError, match="only 0 and 1"):
        pack_bits(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="2-D"):
        pack_bits(np.array([0, 1]))
    with pytest.raises(ValueError, match="3 bytes"):
        unpack_bits(np.zeros((1, 2), dtype=np.uint8), 24)
    with pytest.raises(TypeError, match="uint8"):
        unpack_bits(np.zeros((1, 3), dtype=np.int64), 24)


def test_codeset_save_load_and_corrupt_file(tmp_path):
    bits = np.random.default_rng(0).integers(0, 2, (5, 12))
    CodeSet.from_bits(bits, ids=np.arange(10, 15), labels=np.arange(5)).save(tmp_path / "c.npz")
    back = CodeSet.load(tmp_path / "c.npz")
    assert back.nbits == 12 and np.array_equal(back.bits, bits) and back.ids.tolist() == [10, 11, 12, 13, 14]
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "bad.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read codes file"):
        CodeSet.load(tmp_path / "bad.npz")
