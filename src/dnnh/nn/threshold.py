"""The piece-wise threshold g of DNNH (Lai et al. 2015, eq. 3).

g(s) = 0 below 0.5 - eps, s inside [0.5 - eps, 0.5 + eps], 1 above 0.5 + eps. It pushes sigmoid
outputs that are already decided onto exact 0/1, so the triplet loss trains on values that are
closer to the binary codes used at test time, while outputs near 0.5 keep a gradient of 1.
Outside the band the gradient is 0, as g is flat there; autograd through ``torch.where`` gives
exactly that without a custom backward.
"""

from __future__ import annotations

import torch
from torch import nn


class PiecewiseThreshold(nn.Module):
    def __init__(self, eps: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= eps <= 0.5:
            raise ValueError(f"eps must be in [0, 0.5] (band around 0.5 inside [0, 1]), got {eps}")
        self.eps = float(eps)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        low, high = 0.5 - self.eps, 0.5 + self.eps
        inside = (s >= low) & (s <= high)
        saturated = (s > high).to(s.dtype)
        return torch.where(inside, s, saturated)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
