"""Vision Transformers (Dosovitskiy et al. 2021), patch 16, in the two layouts users' files come in.

:class:`TimmViT` has timm's parameter names (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N.attn.qkv``, ``norm``; the files of ``vit_base_patch16_224`` and
``vit_small_patch16_224``), :class:`TorchvisionViT` torchvision's (``class_token``, ``conv_proj``,
``encoder.pos_embedding``, ``encoder.layers.encoder_layer_N.self_attention.in_proj_weight``,
``encoder.ln``; ``vit_b_16``). The computation is the same: patches, a class token, learned
position embeddings, pre-norm blocks, a final LayerNorm (eps 1e-6); the features are the class
token after that norm. The classifier (``head`` / ``heads.head``) is left out.

Position embeddings are stored for 224 px (a 14x14 grid). Another input side (a multiple of 16)
resamples them bicubically, with antialiasing, the way timm's ``resample_abs_pos_embed`` does for
``dynamic_img_size``, so small inputs work for quick runs and tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnnh.errors import InputError

PATCH = 16
GRID = 14  # 224 / 16


def resample_pos_embed(pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
    """(1, 1 + 14*14, D) -> (1, 1 + gh*gw, D): the class token's entry kept, the grid resized bicubically."""
    if grid == (GRID, GRID):
        return pos_embed
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    dim = patches.shape[-1]
    patches = patches.reshape(1, GRID, GRID, dim).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=grid, mode="bicubic", antialias=True, align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos_embed.dtype)
    return torch.cat([cls, patches], dim=1)


def _grid(x: Tensor) -> tuple[int, int]:
    h, w = x.shape[-2:]
    if h % PATCH or w % PATCH:
        raise InputError(f"a ViT with {PATCH}x{PATCH} patches needs sides that are multiples of {PATCH}, got {h}x{w}")
    return h // PATCH, w // PATCH


def _init_linear(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v over (N, heads, tokens, d). While torch.onnx traces, the same sum as
    MatMul and Softmax: ONNX has no attention operator below opset 14 and `dnnh export` promises 11."""
    if not torch.onnx.is_in_onnx_export():
        return F.scaled_dot_product_attention(q, k, v)
    weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)
    return torch.matmul(weights, v)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(_attention(q, k, v).transpose(1, 2).reshape(n, tokens, dim))


class _TimmBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), _Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), _Mlp(dim, 4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, stride=PATCH)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TimmViT(nn.Module):
    """timm's ``VisionTransformer`` (class-token pooling, no layer scale): images -> (N, dim)."""

    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.out_features = dim
        self.patch_embed = _PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + GRID * GRID, dim))
        self.blocks = nn.Sequential(*[_TimmBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        _init_linear(self)

    def forward(self, x: Tensor) -> Tensor:
        grid = _grid(x)
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + resample_pos_embed(self.pos_embed, grid)
        return self.norm(self.blocks(x))[:, 0]


class _TorchvisionBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        # torchvision's MLPBlock: Linear, GELU, Dropout, Linear, Dropout -> keys mlp.0 and mlp.3
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(4 * dim, dim),
                                 nn.Dropout(0.0))

    def forward(self, x: Tensor) -> Tensor:
        y = self.ln_1(x)
        x = x + (self._traced_attention(y) if torch.onnx.is_in_onnx_export()
                 else self.self_attention(y, y, y, need_weights=False)[0])
        return x + self.mlp(self.ln_2(x))

    def _traced_attention(self, y: Tensor) -> Tensor:
        """nn.MultiheadAttention's self-attention written out for torch.onnx (its own uses Unflatten,
        which ONNX has from opset 13): the same in_proj, heads, softmax and out_proj."""
        mha, (n, tokens, dim) = self.self_attention, y.shape
        heads = mha.num_heads
        qkv = F.linear(y, mha.in_proj_weight, mha.in_proj_bias).reshape(n, tokens, 3, heads, dim // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return mha.out_proj(_attention(q, k, v).transpose(1, 2).reshape(n, tokens, dim))


class _TorchvisionEncoder(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, 1 + GRID * GRID, dim).normal_(std=0.02))
        self.layers = nn.Sequential()
        for i in range(depth):
            self.layers.add_module(f"encoder_layer_{i}", _TorchvisionBlock(dim, heads))
        self.ln = nn.LayerNorm(dim, eps=1e-6)


class TorchvisionViT(nn.Module):
    """torchvision's ``VisionTransformer``: images -> the class token after ``encoder.ln``, (N, dim)."""

    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.out_features = dim
        self.conv_proj = nn.Conv2d(3, dim, PATCH, stride=PATCH)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = _TorchvisionEncoder(dim, depth, heads)
        _init_linear(self.encoder)

    def forward(self, x: Tensor) -> Tensor:
        grid = _grid(x)
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + resample_pos_embed(self.encoder.pos_embedding, grid)
        return self.encoder.ln(self.encoder.layers(x))[:, 0]


def vit_base_patch16_224() -> TimmViT:
    return TimmViT(768, 12, 12)


def vit_small_patch16_224() -> TimmViT:
    return TimmViT(384, 12, 6)


def vit_b_16() -> TorchvisionViT:
    return TorchvisionViT(768, 12, 12)
