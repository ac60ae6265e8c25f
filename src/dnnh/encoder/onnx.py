"""The float network as an ONNX graph in memory: what the onnxruntime engines run.

:func:`trace` turns a torch module into an ONNX ModelProto with a dynamic batch axis (torch's
TorchScript-based exporter, ``dynamo=False``: plain ONNX with the weights as initializers, needing
nothing but onnx); :func:`float_graph` traces a network on preprocessed float32 images to its
features and outputs. ``dnnh export`` (:mod:`dnnh.export`) traces its image-to-codes graph with
the same :func:`trace` and writes it to a file.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import torch
from torch import nn

from dnnh.encoder.names import ROLES

ONNX_MISSING = "dnnh export needs onnx and onnxruntime: pip install 'dnnh[onnx]'"
#: Opset 17 is read by every onnxruntime since 1.11 and by the mobile runtimes; --opset changes it.
DEFAULT_OPSET = 17


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or a one-line ImportError that says how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ImportError(ONNX_MISSING) from None
    return onnx, onnxruntime


class _FeaturesAndOutputs(nn.Module):
    """Preprocessed float images -> (backbone features, outputs in [0, 1]): what the engines run.

    The outputs are the network's own (a grayscale image repeated into a pretrained backbone's three
    channels, its projection before divide-and-encode); the features are the backbone's, as
    :meth:`dnnh.encoder.TorchBackend.features` gives them.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self.net, "repeat_gray", False):
            x = x.expand(-1, 3, -1, -1)
        features = self.net.backbone(x)
        projection = getattr(self.net, "projection", None)
        return features, self.net.head(features if projection is None else projection(features))


def trace(module: nn.Module, example: torch.Tensor, inputs: list[str], outputs: list[str], opset: int):
    """``module`` traced on ``example`` into an ONNX ModelProto with a dynamic first axis."""
    onnx, _ = require_onnx()
    buf = io.BytesIO()
    module = module.eval()
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice and tracer chatter
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "N"} for name in inputs + outputs},
                          opset_version=int(opset), do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    _inline_shared_initializers(model)
    return model


def _inline_shared_initializers(model) -> None:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer under the node's output name.

    The exporter shares bit-identical weights (the all-zero biases of an untrained network) through
    Identity nodes; onnxruntime's quantiser wants every Conv bias to be an initializer.
    """
    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = type(inits[node.input[0]])()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
        else:
            keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)


def network_of(model, role: str) -> nn.Module:
    """The :class:`~dnnh.nn.dnnh.HashNetwork` that encodes ``role`` (the query copy where there is one)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return model.query_net if (role == "query" and model.query_net is not None) else model.net


def float_graph(net: nn.Module, input_size: int, channels: int, opset: int = DEFAULT_OPSET):
    """The network on preprocessed float32 ``input`` [N, C, S, S] -> ``features``, ``outputs`` (ModelProto)."""
    example = torch.zeros(2, int(channels), int(input_size), int(input_size))
    return trace(_FeaturesAndOutputs(net), example, ["input"], ["features", "outputs"], opset)
