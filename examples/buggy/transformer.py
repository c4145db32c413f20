"""The full models: the encoder-decoder Transformer, a GPT, and greedy decoding.

References: Vaswani et al. 2017 (encoder-decoder); karpathy/nanoGPT ``GPT`` (decoder-only).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import causal_mask
from .blocks import DecoderLayer, EncoderLayer, TransformerBlock
from .embeddings import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, TokenEmbedding
from .normalization import LayerNorm


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


class Encoder(nn.Module):
    """A stack of ``n_layers`` encoder layers: ``[B, S, d_model] -> [B, S, d_model]``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        _check_positive(n_layers=n_layers)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


class Decoder(nn.Module):
    """A stack of ``n_layers`` decoder layers: ``[B, T, d_model] -> [B, T, d_model]``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        _check_positive(n_layers=n_layers)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask)
        return x


class Transformer(nn.Module):
    """The encoder-decoder Transformer of "Attention Is All You Need".

    ``forward(src [B, S], tgt [B, T], src_mask, tgt_mask) -> logits [B, T, tgt_vocab_size]``.
    ``src_mask`` (``[B, 1, S]``) masks the encoder and the decoder's memory; the decoder is
    always causal and ``tgt_mask`` (``[B, 1, T]`` padding) is combined with that by ``&``.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 512,
        n_heads: int = 8,
        n_layers: int = 6,
        d_ff: int = 2048,
        dropout: float = 0.1,
        max_len: int = 5000,
    ):
        super().__init__()
        self.src_embed = TokenEmbedding(src_vocab_size, d_model)
        self.tgt_embed = TokenEmbedding(tgt_vocab_size, d_model)
        self.pos_encoding = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, dropout)
        self.decoder = Decoder(n_layers, d_model, n_heads, d_ff, dropout)
        self.out_proj = nn.Linear(d_model, tgt_vocab_size)  # decoder state -> vocabulary logits

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``src [B, S]`` -> memory ``[B, S, d_model]``."""
        return self.encoder(self.pos_encoding(self.src_embed(src)), src_mask)

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``tgt [B, T]`` and memory ``[B, S, d_model]`` -> decoder states ``[B, T, d_model]``."""
        allowed = causal_mask(tgt.size(1), device=tgt.device)  # (T, T): never look ahead
        if tgt_mask is not None:
            allowed = allowed & tgt_mask
        return self.decoder(self.pos_encoding(self.tgt_embed(tgt)), memory, allowed, memory_mask)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        memory = self.encode(src, src_mask)
        return self.out_proj(self.decode(tgt, memory, tgt_mask, src_mask))


class GPT(nn.Module):
    """A decoder-only language model: ``tokens [B, T] -> logits [B, T, vocab_size]``."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        n_heads: int = 4,
        n_layers: int = 4,
        d_ff: int = 1024,
        max_len: int = 1024,
        dropout: float = 0.0,
    ):
        super().__init__()
        _check_positive(n_layers=n_layers)
        self.tok_embed = TokenEmbedding(vocab_size, d_model)
        self.pos_embed = LearnedPositionalEmbedding(max_len, d_model, dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
        )
        self.norm = LayerNorm(d_model)  # final norm: pre-norm blocks leave the stream un-normalised
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.pos_embed(self.tok_embed(tokens))  # (B, T, d_model)
        for block in self.blocks:
            x = block(x, mask)
        return self.lm_head(self.norm(x))


@torch.no_grad()
def greedy_decode(
    model: Transformer,
    src: torch.Tensor,
    max_len: int,
    bos_id: int,
    eos_id: int,
    src_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate ``LongTensor[B, <= max_len]`` token by token, always taking the most likely token.

    Every row starts with ``bos_id``; generation stops once every row has produced ``eos_id``
    or the length reaches ``max_len``; finished rows are padded with ``eos_id``.
    """
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    memory = model.encode(src, src_mask)  # encode once, reuse at every step
    ys = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    finished = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)  # (B,)
    while ys.size(1) < max_len and not bool(finished.all()):
        logits = model.out_proj(model.decode(ys, memory, memory_mask=src_mask))  # (B, t, V)
        next_token = logits[:, -1].argmax(dim=-1)  # (B,)
        next_token = torch.where(finished, torch.full_like(next_token, eos_id), next_token)
        ys = torch.cat([ys, next_token.unsqueeze(1)], dim=1)
        finished |= next_token == eos_id
    return ys

