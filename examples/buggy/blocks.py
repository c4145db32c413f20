"""1.6 - stacking attention, feed-forward and normalisation into Transformer layers.

References: Vaswani et al. 2017, figure 1 (post-norm encoder and decoder layers);
Radford et al. 2019 / karpathy/nanoGPT ``Block`` (pre-norm GPT block).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadAttention, causal_mask
from .feedforward import FeedForward
from .normalization import AddNorm, LayerNorm


class EncoderLayer(nn.Module):
    """Post-norm encoder layer: self-attention then feed-forward, each wrapped in Add & Norm.

    ``forward(x [B, T, d_model], mask) -> [B, T, d_model]``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.add_norm1 = AddNorm(d_model, dropout)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.add_norm2 = AddNorm(d_model, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.add_norm1(x, self.self_attn(x, x, x, mask))
        return self.add_norm2(x, self.ffn(x))


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: masked self-attention, cross-attention over the encoder's
    ``memory``, feed-forward; each followed by Add & Norm.

    ``forward(x [B, T, d_model], memory [B, S, d_model], tgt_mask, memory_mask)``
    returns ``[B, T, d_model]``.
    """

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
        # queries from the decoder, keys and values from the encoder output
        x = self.add_norm2(x, self.cross_attn(x, memory, memory, memory_mask))
        return self.add_norm3(x, self.ffn(x))


class TransformerBlock(nn.Module):
    """GPT-style pre-norm block, always causal.

    ``x = x + dropout(attn(norm1(x)))``; ``x = x + dropout(ffn(norm2(x)))``.
    ``mask`` (e.g. padding, ``[B, 1, T]``) is combined with the causal mask by ``&``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm2 = LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        allowed = causal_mask(x.size(1), device=x.device)  # (T, T)
        if mask is not None:
            allowed = allowed & mask  # broadcasts to (B, T, T)
        h = self.norm1(x)
        x = x + self.dropout(self.attn(h, h, h, allowed))
        return x + self.dropout(self.ffn(self.norm2(x)))
