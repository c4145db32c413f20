"""The full models: the encoder-decoder Transformer, a GPT, and greedy decoding.

References: Vaswani et al. 2017, figure 1 and section 3 (encoder-decoder); Radford et al. 2019
and karpathy/nanoGPT ``GPT`` (decoder-only). Curriculum: the "Main Block" and "Flow summary"
(token-by-token autoregressive decoding).

Everything here is assembled from your own parts (imported for you). Not allowed:
``nn.Transformer`` and its relatives (``nn.TransformerEncoder``, ``nn.TransformerDecoder``,
their layers), nor ``nn.MultiheadAttention``.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import causal_mask  # noqa: F401
from .blocks import DecoderLayer, EncoderLayer, TransformerBlock  # noqa: F401
from .embeddings import (  # noqa: F401
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
)
from .normalization import LayerNorm  # noqa: F401


class Encoder(nn.Module):
    """A stack of ``n_layers`` encoder layers: ``[B, S, d_model] -> [B, S, d_model]``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        """Raise ``ValueError`` naming ``n_layers`` if ``n_layers <= 0``, then create:

        - ``self.layers = nn.ModuleList(...)`` of ``n_layers`` independent
          ``EncoderLayer(d_model, n_heads, d_ff, dropout)`` (a plain Python list would hide
          the layers from ``parameters()``, ``.to(device)`` and the state_dict).
        """
        super().__init__()
        raise NotImplementedError(
            "Encoder.__init__: not implemented yet - see the docstring in transformer.py"
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pass ``x [B, S, d_model]`` through every layer in order, each with the same ``mask``.

        Returns ``[B, S, d_model]``, the "memory" the decoder attends to.
        """
        raise NotImplementedError(
            "Encoder.forward: not implemented yet - see the docstring in transformer.py"
        )


class Decoder(nn.Module):
    """A stack of ``n_layers`` decoder layers: ``[B, T, d_model] -> [B, T, d_model]``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        """Raise ``ValueError`` naming ``n_layers`` if ``n_layers <= 0``, then create:

        - ``self.layers = nn.ModuleList(...)`` of ``n_layers`` independent
          ``DecoderLayer(d_model, n_heads, d_ff, dropout)``.
        """
        super().__init__()
        raise NotImplementedError(
            "Decoder.__init__: not implemented yet - see the docstring in transformer.py"
        )

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pass ``x [B, T, d_model]`` through every layer in order; return ``[B, T, d_model]``.

        Every layer gets the same ``memory [B, S, d_model]``, ``tgt_mask`` and ``memory_mask``.
        """
        raise NotImplementedError(
            "Decoder.forward: not implemented yet - see the docstring in transformer.py"
        )


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
        """Create the parts with these names (the defaults are the paper's base model):

        - ``self.src_embed = TokenEmbedding(src_vocab_size, d_model)``
        - ``self.tgt_embed = TokenEmbedding(tgt_vocab_size, d_model)``
        - ``self.pos_encoding = SinusoidalPositionalEncoding(d_model, max_len, dropout)``:
          one table, shared by the source and the target
        - ``self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, dropout)``
        - ``self.decoder = Decoder(n_layers, d_model, n_heads, d_ff, dropout)``
        - ``self.out_proj = nn.Linear(d_model, tgt_vocab_size)``: decoder state -> logits

        Bad arguments are rejected by the parts themselves.
        """
        super().__init__()
        raise NotImplementedError(
            "Transformer.__init__: not implemented yet - see the docstring in transformer.py"
        )

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``src [B, S]`` token ids -> memory ``[B, S, d_model]``.

        Embed the tokens (``src_embed``), add the positions (``pos_encoding``), then run the
        ``encoder`` with ``src_mask`` (e.g. ``padding_mask(src, pad_id)``, ``[B, 1, S]``).
        """
        raise NotImplementedError(
            "Transformer.encode: not implemented yet - see the docstring in transformer.py"
        )

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``tgt [B, T]`` ids and memory ``[B, S, d_model]`` -> decoder states ``[B, T, d_model]``.

        The decoder is always causal: build ``causal_mask(T)`` on ``tgt``'s device and, when a
        ``tgt_mask`` (target padding, ``[B, 1, T]``) is given, combine the two with ``&``.
        Embed ``tgt`` (``tgt_embed``), add the positions (``pos_encoding``), then run the
        ``decoder`` with ``memory``, that combined mask and ``memory_mask``. No ``out_proj``
        here: ``decode`` returns states, not logits.
        """
        raise NotImplementedError(
            "Transformer.decode: not implemented yet - see the docstring in transformer.py"
        )

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``src [B, S]``, ``tgt [B, T]`` -> logits ``[B, T, tgt_vocab_size]``.

        Encode ``src`` with ``src_mask``; decode ``tgt`` against that memory with ``tgt_mask``,
        using ``src_mask`` again as the memory mask (padding keys of the source stay hidden in
        cross-attention too); finally apply ``out_proj``. Return raw logits: no softmax.
        """
        raise NotImplementedError(
            "Transformer.forward: not implemented yet - see the docstring in transformer.py"
        )


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
        """Raise ``ValueError`` naming ``n_layers`` if ``n_layers <= 0``, then create:

        - ``self.tok_embed = TokenEmbedding(vocab_size, d_model)``
        - ``self.pos_embed = LearnedPositionalEmbedding(max_len, d_model, dropout)``
        - ``self.blocks = nn.ModuleList(...)`` of ``n_layers``
          ``TransformerBlock(d_model, n_heads, d_ff, dropout)``
        - ``self.norm = LayerNorm(d_model)``: the final norm (pre-norm blocks leave the
          residual stream un-normalised)
        - ``self.lm_head = nn.Linear(d_model, vocab_size, bias=False)``
        """
        super().__init__()
        raise NotImplementedError(
            "GPT.__init__: not implemented yet - see the docstring in transformer.py"
        )

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens [B, T]`` -> logits ``[B, T, vocab_size]``; ``[b, t]`` predicts token ``t+1``.

        ``x = pos_embed(tok_embed(tokens))`` (``[B, T, d_model]``), then every block in order
        with the same ``mask`` (optional padding, ``[B, 1, T]``; each block adds the causal
        mask itself), then ``lm_head(norm(x))``. Return raw logits: no softmax.
        """
        raise NotImplementedError(
            "GPT.forward: not implemented yet - see the docstring in transformer.py"
        )


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

    ``model`` is a ``Transformer``: use its ``encode``, ``decode`` and ``out_proj``. The
    ``@torch.no_grad()`` decorator already turns gradient tracking off. Steps:

    1. Raise ``ValueError`` naming ``max_len`` if ``max_len <= 0``.
    2. Encode ``src [B, S]`` once (with ``src_mask``) and reuse the memory at every step.
    3. Start every row with ``bos_id``: ``ys`` is ``LongTensor[B, 1]`` on ``src``'s device.
    4. While ``ys`` is shorter than ``max_len`` and some row has not produced ``eos_id`` yet:
       decode ``ys`` against the memory (``memory_mask=src_mask``), take ``out_proj`` of the
       *last* position only, its ``argmax`` over the vocabulary is each row's next token;
       a row that already finished gets ``eos_id`` instead; append the column to ``ys``.
    5. Return ``ys``: it includes the leading ``bos_id`` and is at most ``max_len`` long.
    """
    raise NotImplementedError(
        "greedy_decode: not implemented yet - see the docstring in transformer.py"
    )
