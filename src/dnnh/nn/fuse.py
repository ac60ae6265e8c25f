"""An inference copy of a trained network: what encoding runs, so that it runs at the hardware's pace.

Why: the eval-mode model is the training graph with its training-time costs left in. A profile
of nin-small's eval forward at 32 px on the 2-core AMD EPYC (issue 26) showed the convolutions
in NCHW taking the slow oneDNN path: the same model in channels-last memory format alone
encoded 1.4x faster in fp32 and 1.9x in bf16; batch normalisation after a convolution is one
more pass over every activation; dropout is a module call that does nothing in eval mode; and
bf16 autocast re-casts every weight to bf16 on every batch. :func:`fuse_for_inference` removes
all four once, on a copy:

* every BatchNorm that directly follows a convolution (``Conv1d/2d/3d``) or a ``Linear`` is
  folded into it with its running (eval-mode) statistics, ``w' = w * g / sqrt(var + eps)``,
  ``b' = (b - mean) * g / sqrt(var + eps) + beta`` (computed in float64), and replaced by
  ``nn.Identity``;
* dropout modules become ``nn.Identity``;
* 4-d weights are stored channels-last (callers give channels-last input too);
* ``dtype=torch.bfloat16``: the weights are cast once. For a :class:`~dnnh.nn.DNNH` only the
  backbones are cast (the hash head and a pretrained backbone's projection stay fp32, as under
  the training's autocast: the cut at 0.5 is where bf16 would flip bits), each behind a cast of
  its input.

"Directly follows" is found two ways. In an ``nn.Sequential`` a convolution immediately before
a BatchNorm is a pair by construction. Elsewhere (ResNet's ``conv1``/``bn1`` attributes, a
head's ``linear``/``code_norm``) one forward pass on ``example`` (a :class:`DNNH` makes its
own: two zero images of its smallest size, both roles) records which module produced each
BatchNorm's input; a pair is folded only when the producer and the BatchNorm each run once, the
BatchNorm's input is the producer's output tensor itself, and no operation outside that
BatchNorm reads it (a skip connection taking the convolution's raw output would otherwise
change). Without an example, only the ``nn.Sequential`` pairs are folded.

What it preserves: the copy computes the eval-mode model's function. In fp32 its outputs equal
the eval-mode model's up to float rounding (the fold reorders a multiply and an add), so codes
are identical except for ties, outputs within about 1e-6 of the threshold, where summation
order decides; ``tests/nn/test_fuse.py`` checks this on NIN, NIN with batch norm and ResNet-18.
A BatchNorm without running statistics (``track_running_stats=False``, which uses the batch's
statistics in eval mode too) is left alone. The trained model is never touched: not its
weights, buffers, training flag or memory format. The copy is in eval mode with gradients off.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from dnnh.nn.backbones import BACKBONES
from dnnh.nn.dnnh import DNNH, HashNetwork

_PRODUCERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
#: SyncBatchNorm (training on several GPUs, :meth:`dnnh.training.distributed.Distributed.prepare`) is a batch
#: norm like the others in eval mode: it folds the same way (issue 34.11).
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class CastInput(nn.Module):
    """``module`` run on its input cast to ``dtype`` (a bf16 backbone fed by fp32 preprocessing)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(self.dtype))

    def __getattr__(self, name: str) -> Any:  # out_features and the like, as the wrapped module has them
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)


def fuse_for_inference(model: nn.Module, example: torch.Tensor | None = None, *,
                       dtype: torch.dtype | None = None, channels_last: bool = True) -> nn.Module:
    """The inference copy of ``model`` described in the module docstring; ``model`` is unchanged.

    ``example``: an input to find BatchNorms outside ``nn.Sequential`` with (None: a DNNH makes its
    own, any other module folds its Sequential pairs only). ``dtype``: cast the weights once
    (``torch.bfloat16``); None keeps them as they are.
    """
    fused = copy.deepcopy(model)
    for module in fused.modules():
        # A module compiled in place keeps a compiled call bound to the *original* (deepcopy does not
        # rebind it): the copy runs eager.
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
    fused.eval()
    fused.requires_grad_(False)
    pairs = _sequential_pairs(fused)
    traced = _traced_pairs(fused, example)
    pairs.update(traced)
    names = dict(fused.named_modules())
    for norm_name, producer_name in pairs.items():
        _fold(names[producer_name], names[norm_name])
        _replace(fused, norm_name, nn.Identity())
    for name, module in list(fused.named_modules()):
        if isinstance(module, _DROPOUTS):
            _replace(fused, name, nn.Identity())
    if channels_last:
        fused.to(memory_format=torch.channels_last)
    if dtype is not None:
        _cast(fused, dtype)
    return fused


def folded_pairs(model: nn.Module, example: torch.Tensor | None = None) -> dict[str, str]:
    """BatchNorm name -> the name of the convolution or Linear it would be folded into (nothing is changed)."""
    probe = copy.deepcopy(model).eval()
    pairs = _sequential_pairs(probe)
    pairs.update(_traced_pairs(probe, example))
    return pairs


# --- finding pairs -------------------------------------------------------------------------------

def _foldable(norm: nn.Module) -> bool:
    return isinstance(norm, _NORMS) and norm.track_running_stats and norm.running_mean is not None


def _sequential_pairs(model: nn.Module) -> dict[str, str]:
    pairs = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (first_name, first), (second_name, second) in zip(children, children[1:]):
            # Linear + BatchNorm1d only by tracing: in a Sequential the Linear's output may be 3-d,
            # where BatchNorm1d normalises another axis than the Linear's features.
            if isinstance(first, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and _foldable(second) \
                    and second.num_features == first.out_channels:
                prefix = f"{name}." if name else ""
                pairs[prefix + second_name] = prefix + first_name
    return pairs


class _Reads(TorchFunctionMode):
    """Counts, per watched tensor, the torch operations that read it outside its BatchNorm's forward."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[int, str] = {}  # id(tensor) -> producer name
        self.outside: dict[str, int] = {}  # producer name -> reads outside the BatchNorm
        self.inside: int | None = None  # id of the tensor whose BatchNorm is running

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in (*args, *kwargs.values()):
            key = id(value)
            if key in self.watched and key != self.inside:
                self.outside[self.watched[key]] = self.outside.get(self.watched[key], 0) + 1
        return func(*args, **kwargs)


def _example_of(model: nn.Module) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """The inputs a DNNH is traced on (both roles); nothing for other modules."""
    if not isinstance(model, DNNH):
        return []
    spec = BACKBONES.get(model.backbone_name)
    step = spec.multiple_of if spec is not None else 1
    side = -(-model.min_size // step) * step
    device = next(model.parameters()).device
    x = torch.zeros(2, model.in_channels, side, side, device=device)
    return [(x, {"role": "database"})] + ([(x, {"role": "query"})] if model.query_net is not None else [])


def _traced_pairs(model: nn.Module, example: torch.Tensor | None) -> dict[str, str]:
    calls = [(example, {})] if example is not None else _example_of(model)
    if not calls:
        return {}
    modules = dict(model.named_modules())
    names = {module: name for name, module in modules.items()}
    reads = _Reads()
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> (producer, output: kept alive, ids unique)
    runs: dict[str, int] = {}
    found: dict[str, str] = {}

    def after_producer(module, inputs, output):
        name = names[module]
        runs[name] = runs.get(name, 0) + 1
        if isinstance(output, torch.Tensor):
            produced[id(output)] = (name, output)
            reads.watched[id(output)] = name

    def before_norm(module, inputs):
        reads.inside = id(inputs[0]) if inputs else None  # first: what this hook reads is not a read outside
        name = names[module]
        runs[name] = runs.get(name, 0) + 1
        source = produced.get(id(inputs[0])) if inputs else None
        if source is not None and _foldable(module):
            producer = modules[source[0]]
            width = producer.out_channels if isinstance(producer, _PRODUCERS[:3]) else producer.out_features
            linear_ok = not isinstance(producer, nn.Linear) or inputs[0].ndim == 2
            if width == module.num_features and linear_ok:
                found[name] = source[0]

    def after_norm(module, inputs, output):
        reads.inside = None

    handles = []
    for module in names:
        if isinstance(module, _PRODUCERS):
            handles.append(module.register_forward_hook(after_producer))
        elif isinstance(module, _NORMS):
            handles += [module.register_forward_pre_hook(before_norm), module.register_forward_hook(after_norm)]
    try:
        with torch.no_grad(), reads:
            for x, kwargs in calls:
                model(x, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return {norm: producer for norm, producer in found.items()
            if runs.get(norm) == 1 and runs.get(producer) == 1 and not reads.outside.get(producer)}


# --- changing the copy ---------------------------------------------------------------------------

@torch.no_grad()
def _fold(producer: nn.Module, norm: nn.Module) -> None:
    """Fold ``norm``'s eval-mode affine map into ``producer``'s weight and bias (float64 arithmetic)."""
    weight = producer.weight
    var, mean = norm.running_var.double(), norm.running_mean.double()
    gamma = norm.weight.double() if norm.weight is not None else torch.ones_like(var)
    beta = norm.bias.double() if norm.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + norm.eps)
    bias = producer.bias.double() if producer.bias is not None else torch.zeros_like(var)
    shape = (-1,) + (1,) * (weight.ndim - 1)
    weight.copy_(weight.double() * scale.reshape(shape))
    new_bias = ((bias - mean) * scale + beta).to(weight.dtype)
    if producer.bias is None:
        producer.bias = nn.Parameter(new_bias, requires_grad=False)
    else:
        producer.bias.copy_(new_bias)


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def _cast(model: nn.Module, dtype: torch.dtype) -> None:
    networks = [m for m in model.modules() if isinstance(m, HashNetwork)]
    if not networks:
        model.to(dtype)
        return
    for net in networks:  # the backbone alone (see the module docstring)
        net.backbone = CastInput(net.backbone.to(dtype), dtype)
