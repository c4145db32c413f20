"""1.2-1.4 - torch.nn "oracle" implementation (used to isolate credit and as the torch.nn
variant in tests): softmax, masks, one head, many heads, with ``F.softmax`` and
``F.scaled_dot_product_attention``. Masks are boolean, True = "may attend".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import recorded


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``F.softmax`` (stable; ``-inf`` entries give 0)."""
    return F.softmax(x, dim=dim)


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``BoolTensor[T, T]``, True on and below the diagonal."""
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``BoolTensor[B, 1, T]``, True where ``tokens != pad_id``."""
    return tokens.ne(pad_id).unsqueeze(1)


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out [..., T_q, d_v], weights [..., T_q, T_k])``; ``out`` from
    ``F.scaled_dot_product_attention``, ``weights`` from ``F.softmax`` of the scaled scores."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.softmax(scores, dim=-1)
    # F.scaled_dot_product_attention does not broadcast q against k, v or a wider mask
    batch = torch.broadcast_shapes(weights.shape[:-2], v.shape[:-2])
    q, k, v = (t.expand(*batch, *t.shape[-2:]) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), weights


@recorded
class AttentionHead(nn.Module):
    """One head: ``x [B, T_q, d_model]``, ``context [B, T_k, d_model]`` (default ``x``)
    -> ``[B, T_q, d_head]``."""

    def __init__(self, d_model: int, d_head: int):
        super().__init__()
        if d_model <= 0:
            raise ValueError(f"d_model must be positive, got {d_model}")
        if d_head <= 0:
            raise ValueError(f"d_head must be positive, got {d_head}")
        self.q_proj = nn.Linear(d_model, d_head, bias=False)
        self.k_proj = nn.Linear(d_model, d_head, bias=False)
        self.v_proj = nn.Linear(d_model, d_head, bias=False)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        context = x if context is None else context
        return F.scaled_dot_product_attention(
            self.q_proj(x), self.k_proj(context), self.v_proj(context), attn_mask=mask
        )


@recorded
class MultiHeadAttention(nn.Module):
    """``n_heads`` heads via ``F.scaled_dot_product_attention``, mixed by ``out_proj``;
    dropout (training only) applies to the attention weights."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_heads <= 0:
            raise ValueError(f"n_heads must be positive, got {n_heads}")
        if d_model <= 0 or d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be a positive multiple of n_heads={n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)  # its p is passed to F.scaled_dot_product_attention

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, d_model) -> (B, n_heads, T, d_head): head h owns features h*d_head:(h+1)*d_head
        return x.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = self._split_heads(self.q_proj(query))
        k = self._split_heads(self.k_proj(key))
        v = self._split_heads(self.v_proj(value))
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(1)  # [B, T_q|1, T_k] -> [B, 1, T_q|1, T_k]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).flatten(-2))  # (B, T_q, d_model)
