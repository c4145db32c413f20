"""1.1 - torch.nn "oracle" implementation (used to isolate credit and as the torch.nn variant
in tests): token embeddings, sinusoidal and learned positions."""

from __future__ import annotations

import math

import torch
from torch import nn

from . import recorded


@recorded
class TokenEmbedding(nn.Module):
    """``nn.Embedding`` scaled by ``sqrt(d_model)``: ``[B, T] -> [B, T, d_model]``."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens) * math.sqrt(self.d_model)


def sinusoidal_positional_encoding(
    seq_len: int, d_model: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``[seq_len, d_model]``: ``sin`` in even features, ``cos`` of the same angle in odd ones."""
    if d_model <= 0 or d_model % 2 != 0:
        raise ValueError(f"d_model must be a positive even number, got {d_model}")
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    # float64 with the reference's exact expression, so float32 tables agree bit for bit
    position = torch.arange(seq_len, dtype=torch.float64).unsqueeze(1)
    angle = position / base ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    # (T, d/2, 2) -> (T, d): sin, cos, sin, cos, ...
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2).to(dtype)


@recorded
class SinusoidalPositionalEncoding(nn.Module):
    """``dropout(x + pe[:T])`` with a fixed, non-persistent float32 buffer ``pe``."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        pe = sinusoidal_positional_encoding(max_len, d_model)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.size(1)
        if T > self.max_len:
            raise ValueError(f"sequence length T={T} exceeds max_len={self.max_len}")
        return self.dropout(x + self.pe[:T].to(x.dtype))


@recorded
class LearnedPositionalEmbedding(nn.Module):
    """``dropout(x + embedding(arange(T)))`` with an ``nn.Embedding(max_len, d_model)``."""

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0):
        super().__init__()
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.size(1)
        if T > self.max_len:
            raise ValueError(f"sequence length T={T} exceeds max_len={self.max_len}")
        positions = self.embedding(torch.arange(T, device=x.device))
        return self.dropout(x + positions.to(x.dtype))
