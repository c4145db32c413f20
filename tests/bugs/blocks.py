"""Typical bugs in the encoder and decoder layers and the GPT block (curriculum 1.6)."""

from bug import Bug

BUGS = [
    Bug(
        "encoder-layer-residual-outside-addnorm",
        "blocks",
        "        x = self.add_norm1(x, self.self_attn(x, x, x, mask))\n",
        "        x = self.add_norm1.norm(self.self_attn(x, x, x, mask))\n",
        "EncoderLayer",
        "the residual is inside AddNorm",
    ),
    Bug(
        "encoder-layer-pre-norm",
        "blocks",
        "        x = self.add_norm1(x, self.self_attn(x, x, x, mask))\n"
        "        return self.add_norm2(x, self.ffn(x))\n",
        "        h = self.add_norm1.norm(x)\n"
        "        x = x + self.self_attn(h, h, h, mask)\n"
        "        return x + self.ffn(self.add_norm2.norm(x))\n",
        "EncoderLayer",
        "post-norm",
    ),
    Bug(
        "encoder-layer-mask-not-passed",
        "blocks",
        "        x = self.add_norm1(x, self.self_attn(x, x, x, mask))\n",
        "        x = self.add_norm1(x, self.self_attn(x, x, x))\n",
        "EncoderLayer",
        "self_attn(x, x, x, mask)",
    ),
    Bug(
        "encoder-layer-ffn-reads-input",
        "blocks",
        "        x = self.add_norm1(x, self.self_attn(x, x, x, mask))\n"
        "        return self.add_norm2(x, self.ffn(x))\n",
        "        h = self.add_norm1(x, self.self_attn(x, x, x, mask))\n"
        "        return self.add_norm2(h, self.ffn(x))\n",
        "EncoderLayer",
        "the FFN reads the output of the first sub-layer",
    ),
    Bug(
        "decoder-layer-cross-attention-on-x",
        "blocks",
        "        x = self.add_norm2(x, self.cross_attn(x, memory, memory, memory_mask))",
        "        x = self.add_norm2(x, self.cross_attn(x, x, x))",
        "DecoderLayer",
        "keys and values from memory",
    ),
    Bug(
        "decoder-layer-self-attention-unmasked",
        "blocks",
        "        x = self.add_norm1(x, self.self_attn(x, x, x, tgt_mask))",
        "        x = self.add_norm1(x, self.self_attn(x, x, x))",
        "DecoderLayer",
        "tgt_mask",
    ),
    Bug(
        "decoder-layer-memory-mask-not-passed",
        "blocks",
        "        x = self.add_norm2(x, self.cross_attn(x, memory, memory, memory_mask))",
        "        x = self.add_norm2(x, self.cross_attn(x, memory, memory))",
        "DecoderLayer",
        "memory_mask",
    ),
    Bug(
        "decoder-layer-skips-cross-attention-norm",
        "blocks",
        "        x = self.add_norm2(x, self.cross_attn(x, memory, memory, memory_mask))",
        "        x = x + self.cross_attn(x, memory, memory, memory_mask)",
        "DecoderLayer",
        "add_norm2(x, cross_attn(x, memory, memory, memory_mask))",
    ),
    Bug(
        "block-mask-replaces-causal",
        "blocks",
        "            allowed = allowed & mask  # broadcasts to (B, T, T)",
        "            allowed = mask  # broadcasts to (B, T, T)",
        "TransformerBlock",
        "always causal",
    ),
    Bug(
        "block-never-causal",
        "blocks",
        "        allowed = causal_mask(x.size(1), device=x.device)  # (T, T)",
        "        allowed = torch.ones(x.size(1), x.size(1), dtype=torch.bool)  # (T, T)",
        "TransformerBlock",
        "always causal",
    ),
    Bug(
        "block-post-norm",
        "blocks",
        "        h = self.norm1(x)\n"
        "        x = x + self.dropout(self.attn(h, h, h, allowed))\n"
        "        return x + self.dropout(self.ffn(self.norm2(x)))",
        "        x = self.norm1(x + self.dropout(self.attn(x, x, x, allowed)))\n"
        "        return self.norm2(x + self.dropout(self.ffn(x)))",
        "TransformerBlock",
        "pre-norm",
    ),
    Bug(
        "block-missing-residual",
        "blocks",
        "        x = x + self.dropout(self.attn(h, h, h, allowed))",
        "        x = self.dropout(self.attn(h, h, h, allowed))",
        "TransformerBlock",
        "residual stream",
    ),
    Bug(
        "block-no-residual-dropout",
        "blocks",
        "        x = x + self.dropout(self.attn(h, h, h, allowed))\n"
        "        return x + self.dropout(self.ffn(self.norm2(x)))",
        "        x = x + self.attn(h, h, h, allowed)\n        return x + self.ffn(self.norm2(x))",
        "TransformerBlock",
        "self.dropout = nn.Dropout(dropout)",
    ),
    Bug(
        "block-dropout-in-eval",
        "blocks",
        "        return x + self.dropout(self.ffn(self.norm2(x)))",
        "        return x + nn.functional.dropout(self.ffn(self.norm2(x)), self.dropout.p, True)",
        "TransformerBlock",
        "eval()",
    ),
    Bug(
        "block-in-place-residual",
        "blocks",
        "        x = x + self.dropout(self.attn(h, h, h, allowed))",
        "        x += self.dropout(self.attn(h, h, h, allowed))",
        "TransformerBlock",
        "out-of-place",
    ),
    # ---- round two: what credit isolation hid, train mode, devices, magnitudes, arguments
    Bug(
        "block-norm1-is-torch-layernorm",
        "blocks",
        "        self.norm1 = LayerNorm(d_model)",
        "        self.norm1 = nn.LayerNorm(d_model)",
        "TransformerBlock",
        "torch.nn's LayerNorm",
    ),
    Bug(
        "block-norms-shared",
        "blocks",
        "        self.norm2 = LayerNorm(d_model)",
        "        self.norm2 = self.norm1",
        "TransformerBlock",
        "one and the same module",
    ),
    Bug(
        "block-dropout-on-the-residual",
        "blocks",
        "        return x + self.dropout(self.ffn(self.norm2(x)))",
        "        return self.dropout(x + self.ffn(self.norm2(x)))",
        "TransformerBlock",
        "before its residual add",
    ),
    Bug(
        "block-causal-mask-on-cpu",
        "blocks",
        "        allowed = causal_mask(x.size(1), device=x.device)  # (T, T)",
        "        allowed = causal_mask(x.size(1))  # (T, T)",
        "TransformerBlock",
        "device=x.device",
    ),
    Bug(
        "encoder-layer-attention-without-dropout",
        "blocks",
        (
            "        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)\n"
            "        self.add_norm1 = AddNorm(d_model, dropout)\n"
            "        self.ffn"
        ),
        (
            "        self.self_attn = MultiHeadAttention(d_model, n_heads)\n"
            "        self.add_norm1 = AddNorm(d_model, dropout)\n"
            "        self.ffn"
        ),
        "EncoderLayer",
        "built with dropout=0.0",
    ),
    Bug(
        "decoder-layer-add-norms-shared",
        "blocks",
        "        self.add_norm3 = AddNorm(d_model, dropout)",
        "        self.add_norm3 = self.add_norm2",
        "DecoderLayer",
        "one and the same module",
    ),
]
