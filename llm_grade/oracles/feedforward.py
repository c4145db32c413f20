"""1.5 - torch.nn "oracle" implementation (used to isolate credit and as the torch.nn variant
in tests): GELU via ``F.gelu`` and the position-wise MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import recorded


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``F.gelu``: exact erf form (``"none"``) or the tanh approximation (``"tanh"``)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f'approximate must be "none" or "tanh", got {approximate!r}')
    return F.gelu(x, approximate=approximate)


@recorded
class FeedForward(nn.Module):
    """``fc2(dropout(F.gelu(fc1(x))))``: ``[B, T, d_model] -> [B, T, d_model]``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        if d_ff <= 0:
            raise ValueError(f"d_ff must be positive, got {d_ff}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x))))
