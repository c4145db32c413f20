"""1.5 - torch.nn "oracle" implementation (used to isolate credit and as the torch.nn variant
in tests): ``nn.LayerNorm`` with the API's constructor, and the post-norm Add & Norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import recorded


@recorded
class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm(d_model, eps)``: parameters ``weight`` (ones) and ``bias`` (zeros)."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        super().__init__(d_model, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


@recorded
class AddNorm(nn.Module):
    """Post-norm residual: ``norm(x + dropout(sublayer_out))``."""

    def __init__(self, d_model: int, dropout: float = 0.0, eps: float = 1e-5):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.norm = LayerNorm(d_model, eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer_out: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(sublayer_out))
