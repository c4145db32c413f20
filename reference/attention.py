"""1.2-1.4 - attention from first principles: softmax, masks, one head, many heads.

References: Vaswani et al. 2017, section 3.2; karpathy/nanoGPT ``CausalSelfAttention``.
Masks are boolean with True = "may attend", broadcastable to ``[B, T_q, T_k]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, stable for large inputs; ``-inf`` entries give 0.

    Subtracting the row maximum first changes nothing mathematically (softmax is
    shift-invariant) but keeps ``exp`` from overflowing.
    """
    x_max = x.amax(dim=dim, keepdim=True)
    # a row that is all -inf has max -inf; use 0 there so we never compute -inf - -inf = nan
    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))
    exp = torch.exp(x - x_max)
    return exp / exp.sum(dim=dim, keepdim=True)


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``BoolTensor[T, T]``, True on and below the diagonal: position i may see 0..i."""
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``BoolTensor[B, 1, T]``, True where ``tokens != pad_id``; the 1 broadcasts over queries."""
    return (tokens != pad_id).unsqueeze(1)


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q @ k^T / sqrt(d_k)) @ v``.

    q ``[..., T_q, d_k]``, k ``[..., T_k, d_k]``, v ``[..., T_k, d_v]``, mask broadcastable to
    ``[..., T_q, T_k]``. Returns ``(out [..., T_q, d_v], weights [..., T_q, T_k])``.
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        # disallowed keys get -inf, so the softmax gives them exactly zero weight
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    return weights @ v, weights


class AttentionHead(nn.Module):
    """One attention head: project to ``d_head`` queries, keys and values, then attend.

    ``forward(x [B, T_q, d_model], context [B, T_k, d_model] = x, mask) -> [B, T_q, d_head]``.
    """

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
        if context is None:
            context = x  # self-attention
        q = self.q_proj(x)  # (B, T_q, d_head)
        k = self.k_proj(context)  # (B, T_k, d_head)
        v = self.v_proj(context)  # (B, T_k, d_head)
        out, _ = scaled_dot_product_attention(q, k, v, mask)
        return out


class MultiHeadAttention(nn.Module):
    """``n_heads`` heads attend in parallel over slices of ``d_model``; ``out_proj`` mixes them.

    ``forward(query [B, T_q, d_model], key, value [B, T_k, d_model], mask) -> [B, T_q, d_model]``.
    """

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
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # output projection
        self.dropout = nn.Dropout(dropout)  # regularisation of the attention weights

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        # (B, T, d_model) -> (B, T, nh, hs) -> (B, nh, T, hs): head h owns features h*hs:(h+1)*hs
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T_q, _ = query.shape
        q = self._split_heads(self.q_proj(query))  # (B, nh, T_q, hs)
        k = self._split_heads(self.k_proj(key))  # (B, nh, T_k, hs)
        v = self._split_heads(self.v_proj(value))  # (B, nh, T_k, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, nh, T_q, T_k)
        if mask is not None:
            # [T_q, T_k] or [B, T_q|1, T_k] -> insert the head dimension: [B|1, 1, T_q|1, T_k]
            if mask.dim() == 3:
                mask = mask.unsqueeze(1)
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = self.dropout(softmax(scores, dim=-1))
        out = weights @ v  # (B, nh, T_q, hs)
        # re-assemble the heads side by side: (B, nh, T_q, hs) -> (B, T_q, d_model)
        out = out.transpose(1, 2).contiguous().view(B, T_q, self.d_model)
        return self.out_proj(out)
