"""Typical embedding and positional-encoding bugs (curriculum 1.1)."""

from bug import Bug

BUGS = [
    Bug(
        "token-embedding-missing-sqrt-scale",
        "embeddings",
        "        return self.embedding(tokens) * math.sqrt(self.d_model)",
        "        return self.embedding(tokens)",
        "TokenEmbedding",
        "sqrt(d_model)",
    ),
    Bug(
        "token-embedding-scale-by-d-model",
        "embeddings",
        "        return self.embedding(tokens) * math.sqrt(self.d_model)",
        "        return self.embedding(tokens) * self.d_model",
        "TokenEmbedding",
        "not d_model",
    ),
    Bug(
        "token-embedding-no-size-check",
        "embeddings",
        "        if vocab_size <= 0:\n",
        "        if False:\n",
        "TokenEmbedding",
        "vocab_size must be positive",
    ),
    Bug(
        "pe-sin-cos-swapped",
        "embeddings",
        "    pe[:, 0::2] = torch.sin(angle)  # even features: sine\n"
        "    pe[:, 1::2] = torch.cos(angle)  # odd features: cosine of the same angle",
        "    pe[:, 0::2] = torch.cos(angle)\n    pe[:, 1::2] = torch.sin(angle)",
        "sinusoidal_positional_encoding",
        "sin goes in the even features",
    ),
    Bug(
        "pe-exponent-i-over-d-model",
        "embeddings",
        "    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)",
        "    two_i = torch.arange(0, d_model // 2, dtype=torch.float64)",
        "sinusoidal_positional_encoding",
        "even feature index",
    ),
    Bug(
        "pe-base-hard-coded",
        "embeddings",
        "    angle = position / base ** (two_i / d_model)",
        "    angle = position / 10000.0 ** (two_i / d_model)",
        "sinusoidal_positional_encoding",
        "base",
    ),
    Bug(
        "pe-ignores-dtype",
        "embeddings",
        "    return pe.to(dtype)",
        "    return pe.to(torch.float32)",
        "sinusoidal_positional_encoding",
        "Honour `dtype`",
    ),
    Bug(
        "pe-computed-in-float32",
        "embeddings",
        "    position = torch.arange(seq_len, dtype=torch.float64).unsqueeze(1)  # (T, 1)\n"
        "    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (d_model/2,)",
        "    position = torch.arange(seq_len, dtype=torch.float32).unsqueeze(1)  # (T, 1)\n"
        "    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # (d_model/2,)",
        "sinusoidal_positional_encoding",
        "compute in float64",
    ),
    Bug(
        "pe-odd-d-model-accepted",
        "embeddings",
        "    if d_model <= 0 or d_model % 2 != 0:\n",
        "    if d_model <= 0:\n",
        "sinusoidal_positional_encoding",
        "positive even number",
    ),
    Bug(
        "spe-table-in-state-dict",
        "embeddings",
        'self.register_buffer("pe", pe, persistent=False)',
        'self.register_buffer("pe", pe)',
        "SinusoidalPositionalEncoding",
        "persistent=False",
        # build_pair checks Transformer's state_dict keys before it swaps in the oracle
        # pos_encoding, so the stray `pos_encoding.pe` key costs Transformer too
        also=("Transformer",),
    ),
    Bug(
        "spe-table-not-cast-to-input-dtype",
        "embeddings",
        "        return self.dropout(x + self.pe[:T].to(x.dtype))",
        "        return self.dropout(x + self.pe[:T])",
        "SinusoidalPositionalEncoding",
        ".to(x.dtype)",
    ),
    Bug(
        "spe-adds-in-place",
        "embeddings",
        "        return self.dropout(x + self.pe[:T].to(x.dtype))",
        "        x += self.pe[:T].to(x.dtype)\n        return self.dropout(x)",
        "SinusoidalPositionalEncoding",
        "in place",
    ),
    Bug(
        "spe-no-length-check",
        "embeddings",
        "        if T > self.max_len:\n"
        '            raise ValueError(f"sequence length T={T} '
        'exceeds max_len={self.max_len}")\n'
        "        return self.dropout(x + self.pe[:T].to(x.dtype))",
        "        return self.dropout(x + self.pe[:T].to(x.dtype))",
        "SinusoidalPositionalEncoding",
        "max_len",
    ),
    Bug(
        "lpe-positions-start-at-one",
        "embeddings",
        "        positions = torch.arange(T, device=x.device)  # (T,)",
        "        positions = torch.arange(1, T + 1, device=x.device)  # (T,)",
        "LearnedPositionalEmbedding",
        "position",
    ),
    Bug(
        "lpe-dropout-always-on",
        "embeddings",
        "        return self.dropout(x + self.embedding(positions).to(x.dtype))",
        "        return torch.nn.functional.dropout(\n"
        "            x + self.embedding(positions).to(x.dtype), self.dropout.p, training=True\n"
        "        )",
        "LearnedPositionalEmbedding",
        "eval()",
    ),
    Bug(
        "lpe-dropout-on-positions-only",
        "embeddings",
        "        return self.dropout(x + self.embedding(positions).to(x.dtype))",
        "        return x + self.dropout(self.embedding(positions).to(x.dtype))",
        "LearnedPositionalEmbedding",
        "dropout to the sum",
    ),
    # ---- round two: what credit isolation hid, train mode, devices, magnitudes, arguments
    Bug(
        "spe-rejects-full-length",
        "embeddings",
        (
            "        if T > self.max_len:\n"
            '            raise ValueError(f"sequence length T={T} '
            'exceeds max_len={self.max_len}")\n'
            "        return self.dropout(x + self.pe"
        ),
        (
            "        if T >= self.max_len:\n"
            '            raise ValueError(f"sequence length T={T} '
            'exceeds max_len={self.max_len}")\n'
            "        return self.dropout(x + self.pe"
        ),
        "SinusoidalPositionalEncoding",
        "not t >= max_len",
    ),
    Bug(
        "spe-table-as-plain-attribute",
        "embeddings",
        '        self.register_buffer("pe", pe, persistent=False)',
        "        self.pe = pe",
        "SinusoidalPositionalEncoding",
        "register_buffer",
    ),
    Bug(
        "lpe-positions-frozen",
        "embeddings",
        "        self.embedding = nn.Embedding(max_len, d_model)",
        "        self.embedding = nn.Embedding(max_len, d_model).requires_grad_(False)",
        "LearnedPositionalEmbedding",
        "no gradient reaches",
    ),
    Bug(
        "token-embedding-frozen",
        "embeddings",
        "        self.embedding = nn.Embedding(vocab_size, d_model)",
        "        self.embedding = nn.Embedding(vocab_size, d_model).requires_grad_(False)",
        "TokenEmbedding",
        "no gradient reaches",
    ),
    Bug(
        "pe-ignores-base",
        "embeddings",
        "    angle = position / base ** (two_i / d_model)  # (T, d_model/2)",
        "    angle = position / 10000.0 ** (two_i / d_model)  # (T, d_model/2)",
        "sinusoidal_positional_encoding",
        "use `base`",
    ),
    Bug(
        "spe-length-from-the-batch-axis",
        "embeddings",
        (
            "        T = x.size(1)\n        if T > self.max_len:\n"
            '            raise ValueError(f"sequence length T={T} '
            'exceeds max_len={self.max_len}")\n'
            "        return self.dropout(x + self.pe"
        ),
        (
            "        T = x.size(0)\n        if T > self.max_len:\n"
            '            raise ValueError(f"sequence length T={T} '
            'exceeds max_len={self.max_len}")\n'
            "        return self.dropout(x + self.pe"
        ),
        "SinusoidalPositionalEncoding",
        "T = x.size(1)",
    ),
]
