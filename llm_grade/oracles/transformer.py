"""torch.nn "oracle" implementation (used to isolate credit and as the torch.nn variant in
tests): the encoder-decoder Transformer, a GPT and greedy decoding, composed from the oracle
blocks (``nn.Transformer*`` has other state_dict keys, so it cannot be used here)."""

from __future__ import annotations

import torch
from torch import nn

from . import recorded
from .attention import causal_mask
from .blocks import DecoderLayer, EncoderLayer, TransformerBlock
from .embeddings import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, TokenEmbedding
from .normalization import LayerNorm


def _check_n_layers(n_layers: int) -> None:
    if n_layers <= 0:
        raise ValueError(f"n_layers must be positive, got {n_layers}")


@recorded
class Encoder(nn.Module):
    """``n_layers`` encoder layers in sequence: ``[B, S, d_model] -> [B, S, d_model]``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        _check_n_layers(n_layers)
        self.layers = nn.ModuleList(
            [EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)]
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


@recorded
class Decoder(nn.Module):
    """``n_layers`` decoder layers in sequence: ``[B, T, d_model] -> [B, T, d_model]``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        _check_n_layers(n_layers)
        self.layers = nn.ModuleList(
            [DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)]
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


@recorded
class Transformer(nn.Module):
    """Encoder-decoder Transformer: ``(src [B, S], tgt [B, T]) -> logits [B, T, tgt_vocab]``;
    ``src_mask`` masks the encoder and the memory, the decoder is always causal."""

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
        self.out_proj = nn.Linear(d_model, tgt_vocab_size)

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
        """``tgt [B, T]``, memory ``[B, S, d_model]`` -> ``[B, T, d_model]``, causal & tgt_mask."""
        allowed = causal_mask(tgt.size(1), device=tgt.device)
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


@recorded
class GPT(nn.Module):
    """Decoder-only language model: ``tokens [B, T] -> logits [B, T, vocab_size]``."""

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
        _check_n_layers(n_layers)
        self.tok_embed = TokenEmbedding(vocab_size, d_model)
        self.pos_embed = LearnedPositionalEmbedding(max_len, d_model, dropout)
        self.blocks = nn.ModuleList(
            [TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)]
        )
        self.norm = LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.pos_embed(self.tok_embed(tokens))
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
    """``LongTensor[B, <= max_len]``: ``bos_id``, then the argmax token at each step, until
    every row has produced ``eos_id`` (finished rows are padded with it) or ``max_len``."""
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    memory = model.encode(src, src_mask)
    ys = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    while ys.size(1) < max_len and not bool(done.all()):
        logits = model.out_proj(model.decode(ys, memory, memory_mask=src_mask))
        next_token = logits[:, -1].argmax(dim=-1).masked_fill(done, eos_id)
        ys = torch.cat([ys, next_token.unsqueeze(1)], dim=1)
        done = done | (next_token == eos_id)
    return ys
