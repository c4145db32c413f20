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
    # ---- round two: what credit isolation hid, train mode, devices, magnitudes, arguments
    Bug(
        "softmax-global-max",
        "attention",
        "    x_max = x.amax(dim=dim, keepdim=True)",
        "    x_max = x.amax()",
        "softmax",
        "each row's own maximum",
    ),
    Bug(
        "causal-mask-ignores-device",
        "attention",
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()",
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()",
        "causal_mask",
        "device argument is ignored",
    ),
    Bug(
        "causal-mask-accepts-negative-length",
        "attention",
        (
            "    if seq_len < 0:\n"
            '        raise ValueError(f"seq_len must be >= 0, got {seq_len}")\n'
            "    return torch.ones"
        ),
        "    return torch.ones",
        "causal_mask",
        "cannot be negative",
    ),
    Bug(
        "sdpa-global-max-softmax",
        "attention",
        ("    weights = softmax(scores, dim=-1)\n    return weights @ v, weights"),
        (
            "    e = torch.exp(scores - scores.max())\n"
            "    weights = e / e.sum(dim=-1, keepdim=True)\n"
            "    return weights @ v, weights"
        ),
        "scaled_dot_product_attention",
        "own stable softmax",
    ),
    Bug(
        "mha-dropout-on-the-scores",
        "attention",
        "        weights = self.dropout(softmax(scores, dim=-1))",
        "        weights = softmax(self.dropout(scores), dim=-1)",
        "MultiHeadAttention",
        "dropout belongs on the attention weights",
    ),
    Bug(
        "mha-dropout-on-the-values",
        "attention",
        ("        weights = self.dropout(softmax(scores, dim=-1))\n        out = weights @ v"),
        ("        weights = softmax(scores, dim=-1)\n        out = weights @ self.dropout(v)"),
        "MultiHeadAttention",
        "dropout applies to the attention weights",
    ),
    Bug(
        "mha-dropout-p-hard-coded",
        "attention",
        "        self.dropout = nn.Dropout(dropout)  # regularisation of the attention weights",
        "        self.dropout = nn.Dropout(0.1)  # regularisation of the attention weights",
        "MultiHeadAttention",
        "with the module's p",
    ),
    Bug(
        "mha-accepts-zero-heads",
        "attention",
        (
            "        if n_heads <= 0:\n"
            '            raise ValueError(f"n_heads must be positive, got {n_heads}")\n'
            "        if d_model <= 0 or d_model % n_heads != 0:"
        ),
        "        if n_heads > 0 and (d_model <= 0 or d_model % n_heads != 0):",
        "MultiHeadAttention",
        "raise ValueError naming the argument",
    ),
    Bug(
        "head-accepts-zero-d-head",
        "attention",
        (
            "        if d_head <= 0:\n"
            '            raise ValueError(f"d_head must be positive, got {d_head}")\n'
        ),
        "",
        "AttentionHead",
        "raise ValueError naming the argument",
    ),
]
