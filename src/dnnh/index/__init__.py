"""Exact Hamming-distance search over packed binary codes (:class:`HammingIndex`).

numba (extra ``fast``) or FAISS (extra ``faiss``) speed up the scans when installed; numpy alone
gives the same answers. :func:`available_engines` says which engines this installation can use.
"""

from dnnh.index.fileformat import IndexFormatError
from dnnh.index.index import HammingIndex
from dnnh.index.search import available_engines

__all__ = ["HammingIndex", "IndexFormatError", "available_engines"]
