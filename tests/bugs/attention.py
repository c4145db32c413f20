"""Typical attention bugs (curriculum 1.2 - 1.4)."""

from bug import Bug

BUGS = [
    Bug(
        "softmax-no-max-subtraction",
        "attention",
        "    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))\n",
        "    x_max = torch.zeros_like(x_max)\n",
        "softmax",
        "subtract the maximum",
    ),
    Bug(
        "softmax-wrong-dim",
        "attention",
        "    return exp / exp.sum(dim=dim, keepdim=True)",
        "    return exp / exp.sum(dim=0, keepdim=True)",
        "softmax",
        "dim",
    ),
    Bug(
        "softmax-sum-without-keepdim",
        "attention",
        "    return exp / exp.sum(dim=dim, keepdim=True)",
        "    return exp / exp.sum(dim=-1, keepdim=True)",
        "softmax",
        "dim",
    ),
    Bug(
        "causal-mask-upper-triangular",
        "attention",
        "return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()",
        "return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu()",
        "causal_mask",
        "tril()",
    ),
    Bug(
        "causal-mask-strict",
        "attention",
        "return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()",
        "return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril(-1)",
        "causal_mask",
        "keep the diagonal",
    ),
    Bug(
        "padding-mask-inverted",
        "attention",
        "    return (tokens != pad_id).unsqueeze(1)",
        "    return (tokens == pad_id).unsqueeze(1)",
        "padding_mask",
        "tokens != pad_id",
    ),
    Bug(
        "sdpa-no-scale",
        "attention",
        "    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)",
        "    scores = q @ k.transpose(-2, -1)  # (..., T_q, T_k)",
        "scaled_dot_product_attention",
        "sqrt(d_k)",
    ),
    Bug(
        "sdpa-inverted-mask",
        "attention",
        '        scores = scores.masked_fill(~mask, float("-inf"))\n    weights = softmax',
        '        scores = scores.masked_fill(mask, float("-inf"))\n    weights = softmax',
        "scaled_dot_product_attention",
        "True",
    ),
    Bug(
        "mha-mask-after-softmax",
        "attention",
        '            scores = scores.masked_fill(~mask, float("-inf"))\n'
        "        weights = self.dropout(softmax(scores, dim=-1))",
        "            pass\n        weights = self.dropout(softmax(scores, dim=-1))\n"
        "        if mask is not None:\n            weights = weights.masked_fill(~mask, 0.0)",
        "MultiHeadAttention",
        "before",
    ),
    Bug(
        "mha-heads-reshape-without-transpose",
        "attention",
        "        out = out.transpose(1, 2).contiguous().view(B, T_q, self.d_model)",
        "        out = out.contiguous().view(B, T_q, self.d_model)",
        "MultiHeadAttention",
        "transpose",
    ),
    Bug(
        "mha-missing-out-proj",
        "attention",
        "        return self.out_proj(out)",
        "        return out",
        "MultiHeadAttention",
        "out_proj",
    ),
    Bug(
        "mha-scale-by-d-model",
        "attention",
        "        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, nh, T_q, T_k)",
        "        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_model)  # (B, nh, T_q, T_k)",
        "MultiHeadAttention",
        "d_head",
    ),
    Bug(
        "mha-no-dropout-layer-in-train",
        "attention",
        "        weights = self.dropout(softmax(scores, dim=-1))",
        "        weights = softmax(scores, dim=-1)",
        "MultiHeadAttention",
        "dropout",
    ),
    Bug(
        "head-context-ignored",
        "attention",
        "        k = self.k_proj(context)  # (B, T_k, d_head)\n"
        "        v = self.v_proj(context)  # (B, T_k, d_head)",
        "        k = self.k_proj(x)  # (B, T_k, d_head)\n"
        "        v = self.v_proj(x)  # (B, T_k, d_head)",
        "AttentionHead",
        "context",
    ),
]
