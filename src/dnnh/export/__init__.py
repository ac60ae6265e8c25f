"""A trained run outside Python's torch: one ONNX file.

:func:`export_onnx` writes a self-contained ONNX model that takes raw uint8 images
``[N, H, W, C]`` at the run's input size and returns the 0/1 ``bits`` and the packed ``codes``
(bit 0 in the least significant bit of byte 0, the bytes ``dnnh encode`` writes); the run's
preprocessing is inside the graph. The encoding engines (``onnxruntime`` and the others) are
the encoder's: :mod:`dnnh.encoder.backends`.

onnx and onnxruntime are an optional extra (``pip install 'dnnh[onnx]'``); without them the
exporter and the onnxruntime engines raise a one-line :class:`ImportError`.
"""

from dnnh.encoder.onnx import ONNX_MISSING
from dnnh.export.graph import DEFAULT_OPSET, export_onnx, read_metadata, require_onnx

__all__ = ["DEFAULT_OPSET", "ONNX_MISSING", "export_onnx", "read_metadata", "require_onnx"]
