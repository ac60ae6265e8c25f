"""Exact Hamming-distance search over packed binary codes (:class:`HammingIndex`).

numba (a core dependency) or FAISS (extra ``faiss``) speed up the scans; numpy alone
gives the same answers. :func:`available_kernels` says which scan kernels this installation can use
(``available_engines``, its old name, still imports).
:class:`MilvusIndex` (extra ``milvus``) answers the same calls from a Milvus Lite file or a Milvus server.
"""

from dnnh.index.fileformat import IndexFormatError
from dnnh.index.index import HammingIndex
from dnnh.index.search import available_engines, available_kernels

__all__ = ["HammingIndex", "IndexFormatError", "MilvusIndex", "available_engines", "available_kernels"]


def __getattr__(name: str) -> object:
    """``MilvusIndex`` is imported on first use: ``import dnnh.index`` never imports pymilvus."""
    if name == "MilvusIndex":
        from dnnh.index.milvus import MilvusIndex

        return MilvusIndex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
