"""1.6 - torch.nn "oracle" implementation (used to isolate credit and as the torch.nn variant
in tests): post-norm encoder and decoder layers and the pre-norm GPT block, composed from the
oracle attention, feed-forward and normalisation modules (``nn.TransformerEncoderLayer`` has
other state_dict keys, so it cannot be used here)."""

from __future__ import annotations

import torch
from torch import nn

from . import recorded
from .attention import MultiHeadAttention, causal_mask
from .feedforward import FeedForward
from .normalization import AddNorm, LayerNorm


@recorded
class EncoderLayer(nn.Module):
    """``x = add_norm1(x, self_attn(x, x, x, mask))``; ``x = add_norm2(x, ffn(x))``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.add_norm1 = AddNorm(d_model, dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.add_norm2 = AddNorm(d_model, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.add_norm1(x, self.self_attn(x, x, x, mask))
        return self.add_norm2(x, self.ffn(x))


@recorded
class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over ``memory``, FFN; each then Add & Norm."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.add_norm1 = AddNorm(d_model, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.add_norm2 = AddNorm(d_model, dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.add_norm3 = AddNorm(d_model, dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.add_norm1(x, self.self_attn(x, x, x, tgt_mask))
        x = self.add_norm2(x, self.cross_attn(x, memory, memory, memory_mask))
        return self.add_norm3(x, self.ffn(x))


@recorded
class TransformerBlock(nn.Module):
    """GPT pre-norm block, always causal (``& mask`` when given)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm2 = LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        allowed = causal_mask(x.size(1), device=x.device)
        if mask is not None:
            allowed = allowed & mask
        h = self.norm1(x)
        x = x + self.dropout(self.attn(h, h, h, allowed))
        return x + self.dropout(self.ffn(self.norm2(x)))
