"""1.5 - residual connections and layer normalisation.

References: Ba et al. 2016, "Layer Normalization"; Vaswani et al. 2017, 3.1 ("Add & Norm").
"""

from __future__ import annotations

import torch
from torch import nn


class LayerNorm(nn.Module):
    """Normalise each vector over its last dimension, then scale and shift.

    ``(x - mean) / sqrt(var + eps) * weight + bias`` with the *biased* variance (divide by N).
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))  # gain, starts as identity
        self.bias = nn.Parameter(torch.zeros(d_model))  # shift, starts at zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = x.var(dim=-1, keepdim=True)  # (..., 1)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


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
