"""1.1 - turning token ids into vectors and telling the model where each token sits.

References: Vaswani et al. 2017, "Attention Is All You Need", sections 3.4 and 3.5.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TokenEmbedding(nn.Module):
    """Look up a learned vector per token id, scaled by sqrt(d_model) (paper, section 3.4).

    tokens ``LongTensor[B, T]`` -> ``[B, T, d_model]``.
    """

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # the scale keeps embeddings on the same footing as the positional signal added next
        return self.embedding(tokens) * math.sqrt(self.d_model)


def sinusoidal_positional_encoding(
    seq_len: int, d_model: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The fixed sine/cosine table ``[seq_len, d_model]``.

    ``PE[p, 2i] = sin(p / base**(2i/d_model))`` and ``PE[p, 2i+1] = cos(same angle)``:
    each pair of features is a clock ticking at its own frequency.
    """
    if d_model <= 0 or d_model % 2 != 0:
        raise ValueError(f"d_model must be a positive even number, got {d_model}")
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    # compute in float64 so the table is exact to the last bit of float32, then cast
    position = torch.arange(seq_len, dtype=torch.float64).unsqueeze(1)  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model/2,)
    angle = position / base ** (two_i / d_model)  # (T, d_model/2)
    pe = torch.empty(seq_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.cos(angle)
    pe[:, 1::2] = torch.sin(angle)
    return pe.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Add the fixed sinusoidal table to ``x [B, T, d_model]``, then apply dropout."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        # a buffer moves with .to(device) but is not a parameter; not saved in the state_dict
        pe = sinusoidal_positional_encoding(max_len, d_model)  # (max_len, d_model)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.size(1)
        if T > self.max_len:
            raise ValueError(f"sequence length T={T} exceeds max_len={self.max_len}")
        return self.dropout(x + self.pe[:T].to(x.dtype))


class LearnedPositionalEmbedding(nn.Module):
    """Add a learned vector per position (GPT-2 style) to ``x [B, T, d_model]``, then dropout."""

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
        positions = torch.arange(T, device=x.device)  # (T,)
        return self.dropout(x + self.embedding(positions).to(x.dtype))
