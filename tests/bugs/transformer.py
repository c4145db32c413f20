"""Typical bugs in the encoder-decoder Transformer, the GPT and greedy decoding."""

from bug import Bug

BUGS = [
    Bug(
        "encoder-shares-one-layer",
        "transformer",
        "        self.layers = nn.ModuleList(\n"
        "            EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)\n"
        "        )",
        "        self.layers = nn.ModuleList(\n"
        "            [EncoderLayer(d_model, n_heads, d_ff, dropout)] * n_layers\n"
        "        )",
        "Encoder",
        "repeats one layer",
    ),
    Bug(
        "encoder-runs-first-layer-only",
        "transformer",
        "        for layer in self.layers:\n            x = layer(x, mask)\n",
        "        for _ in self.layers:\n            x = self.layers[0](x, mask)\n",
        "Encoder",
        "its own weights",
    ),
    Bug(
        "encoder-mask-not-passed",
        "transformer",
        "        for layer in self.layers:\n            x = layer(x, mask)\n",
        "        for layer in self.layers:\n            x = layer(x)\n",
        "Encoder",
        "pass it to every layer",
    ),
    Bug(
        "decoder-memory-mask-not-passed",
        "transformer",
        "            x = layer(x, memory, tgt_mask, memory_mask)",
        "            x = layer(x, memory, tgt_mask)",
        "Decoder",
        "memory_mask",
    ),
    Bug(
        "transformer-decode-not-causal",
        "transformer",
        "        allowed = causal_mask(tgt.size(1), device=tgt.device)"
        "  # (T, T): never look ahead\n"
        "        if tgt_mask is not None:\n"
        "            allowed = allowed & tgt_mask\n",
        "        allowed = tgt_mask\n",
        "Transformer",
        "decode is always causal",
    ),
    Bug(
        "transformer-src-mask-not-memory-mask",
        "transformer",
        "        return self.out_proj(self.decode(tgt, memory, tgt_mask, src_mask))",
        "        return self.out_proj(self.decode(tgt, memory, tgt_mask))",
        "Transformer",
        "memory_mask",
    ),
    Bug(
        "transformer-encode-without-positions",
        "transformer",
        "        return self.encoder(self.pos_encoding(self.src_embed(src)), src_mask)",
        "        return self.encoder(self.src_embed(src), src_mask)",
        "Transformer",
        "add the positions",
    ),
    Bug(
        "gpt-missing-final-norm",
        "transformer",
        "        return self.lm_head(self.norm(x))",
        "        return self.lm_head(x)",
        "GPT",
        "final norm",
    ),
    Bug(
        "gpt-mask-not-passed",
        "transformer",
        "            x = block(x, mask)",
        "            x = block(x)",
        "GPT",
        "pass it to every block",
    ),
    Bug(
        "greedy-does-not-stop-at-eos",
        "transformer",
        "    while ys.size(1) < max_len and not bool(finished.all()):",
        "    while ys.size(1) < max_len:",
        "greedy_decode",
        "stop when every row has produced eos",
    ),
    Bug(
        "greedy-stops-at-first-eos",
        "transformer",
        "    while ys.size(1) < max_len and not bool(finished.all()):",
        "    while ys.size(1) < max_len and not bool(finished.any()):",
        "greedy_decode",
        "every row has produced eos",
    ),
    Bug(
        "greedy-does-not-pad-finished-rows",
        "transformer",
        "        next_token = torch.where("
        "finished, torch.full_like(next_token, eos_id), next_token)\n",
        "",
        "greedy_decode",
        "keep appending eos to finished rows",
    ),
    Bug(
        "greedy-feeds-last-token-only",
        "transformer",
        "model.decode(ys, memory, memory_mask=src_mask)",
        "model.decode(ys[:, -1:], memory, memory_mask=src_mask)",
        "greedy_decode",
        "feed the whole prefix ys",
    ),
    Bug(
        "greedy-off-by-one-max-len",
        "transformer",
        "    while ys.size(1) < max_len and not bool(finished.all()):",
        "    while ys.size(1) <= max_len and not bool(finished.all()):",
        "greedy_decode",
        "max_len",
    ),
    Bug(
        "greedy-ignores-src-mask",
        "transformer",
        "    memory = model.encode(src, src_mask)  # encode once, reuse at every step",
        "    memory = model.encode(src)  # encode once, reuse at every step",
        "greedy_decode",
        "src_mask is ignored",
    ),
    # ---- round two: what credit isolation hid, train mode, devices, magnitudes, arguments
    Bug(
        "gpt-lm-head-tied-to-embedding",
        "transformer",
        ("        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)\n"),
        (
            "        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)\n"
            "        self.lm_head.weight = self.tok_embed.embedding.weight\n"
        ),
        "GPT",
        "don't tie weights",
    ),
    Bug(
        "gpt-one-block-repeated",
        "transformer",
        (
            "            TransformerBlock(d_model, n_heads, d_ff, dropout) "
            "for _ in range(n_layers)\n"
        ),
        ("            [TransformerBlock(d_model, n_heads, d_ff, dropout)] * n_layers\n"),
        "GPT",
        "repeats one layer",
    ),
    Bug(
        "gpt-norm-is-torch-layernorm",
        "transformer",
        "        self.norm = LayerNorm(d_model)  # final norm",
        "        self.norm = nn.LayerNorm(d_model)  # final norm",
        "GPT",
        "torch.nn's LayerNorm",
    ),
    Bug(
        "decoder-one-layer-repeated",
        "transformer",
        ("            DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)\n"),
        ("            [DecoderLayer(d_model, n_heads, d_ff, dropout)] * n_layers\n"),
        "Decoder",
        "repeats one layer",
    ),
    Bug(
        "decoder-dropout-not-passed",
        "transformer",
        ("            DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)\n"),
        ("            DecoderLayer(d_model, n_heads, d_ff) for _ in range(n_layers)\n"),
        "Decoder",
        "built with dropout=0.0",
    ),
    Bug(
        "encoder-layers-reversed",
        "transformer",
        ("        for layer in self.layers:\n            x = layer(x, mask)"),
        ("        for layer in reversed(self.layers):\n            x = layer(x, mask)"),
        "Encoder",
        "in order",
    ),
    Bug(
        "transformer-pos-dropout-not-passed",
        "transformer",
        "        self.pos_encoding = SinusoidalPositionalEncoding(d_model, max_len, dropout)",
        "        self.pos_encoding = SinusoidalPositionalEncoding(d_model, max_len)",
        "Transformer",
        "built with dropout=0.0",
    ),
    Bug(
        "transformer-causal-mask-on-cpu",
        "transformer",
        "        allowed = causal_mask(tgt.size(1), device=tgt.device)  # (T, T): never look ahead",
        "        allowed = causal_mask(tgt.size(1))  # (T, T): never look ahead",
        "Transformer",
        "device=x.device",
    ),
    Bug(
        "gpt-accepts-zero-layers",
        "transformer",
        (
            "        super().__init__()\n"
            "        _check_positive(n_layers=n_layers)\n"
            "        self.tok_embed"
        ),
        ("        super().__init__()\n        self.tok_embed"),
        "GPT",
        "raise ValueError naming the argument",
    ),
    Bug(
        "greedy-calls-eval",
        "transformer",
        "    memory = model.encode(src, src_mask)  # encode once, reuse at every step",
        (
            "    model.eval()\n"
            "    memory = model.encode(src, src_mask)  # encode once, reuse at every step"
        ),
        "greedy_decode",
        "don't call model.eval()",
    ),
    Bug(
        "greedy-without-no-grad",
        "transformer",
        ("@torch.no_grad()\ndef greedy_decode("),
        "def greedy_decode(",
        "greedy_decode",
        "torch.no_grad",
    ),
    Bug(
        "greedy-accepts-bad-max-len",
        "transformer",
        (
            "    if max_len <= 0:\n"
            '        raise ValueError(f"max_len must be positive, got {max_len}")\n'
            "    memory"
        ),
        "    memory",
        "greedy_decode",
        "max_len must be positive",
    ),
]
