"""Binary codes: 0/1 bit matrices and their packed uint8 form (FAISS's bit order)."""

from dnnh.codes.packing import as_bits, code_bytes, hamming_distances, pack_bits, unpack_bits
from dnnh.codes.codeset import CodeSet

__all__ = ["CodeSet", "as_bits", "code_bytes", "hamming_distances", "pack_bits", "unpack_bits"]
