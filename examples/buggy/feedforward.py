"""1.5 - the position-wise feed-forward network and its GELU non-linearity.

References: Hendrycks & Gimpel 2016, "Gaussian Error Linear Units"; Vaswani et al. 2017, 3.3.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU: ``x * Phi(x)`` with Phi the standard normal CDF (``approximate="none"``), or the
    tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``"tanh"``)."""
    if approximate == "none":
        # Phi(x) = (1 + erf(x / sqrt 2)) / 2
        return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + torch.tanh(inner))
    raise ValueError(f'approximate must be "none" or "tanh", got {approximate!r}')


class FeedForward(nn.Module):
    """``fc2(dropout(gelu(fc1(x))))``: expand to ``d_ff``, apply GELU, project back.

    Works on each position independently: ``[B, T, d_model] -> [B, T, d_model]``.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        if d_ff <= 0:
            raise ValueError(f"d_ff must be positive, got {d_ff}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.fc1 = nn.Linear(d_model, d_ff)  # expansion
        self.fc2 = nn.Linear(d_ff, d_model)  # projection back to the residual stream
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(gelu(self.fc1(x))))
