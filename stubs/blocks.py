"""1.6 - stacking attention, feed-forward and normalisation into Transformer layers.

References: Vaswani et al. 2017, figure 1 (post-norm encoder and decoder layers);
Radford et al. 2019 / karpathy/nanoGPT ``Block`` (pre-norm GPT block).

Build every layer from your own parts below (imported for you). Not allowed here:
``nn.Transformer`` and its relatives (``nn.TransformerEncoderLayer``,
``nn.TransformerDecoderLayer``, ...), nor ``nn.MultiheadAttention``.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadAttention, causal_mask  # noqa: F401
from .feedforward import FeedForward  # noqa: F401
from .normalization import AddNorm, LayerNorm  # noqa: F401


class EncoderLayer(nn.Module):
    """Post-norm encoder layer: self-attention then feed-forward, each wrapped in Add & Norm.

    ``forward(x [B, T, d_model], mask) -> [B, T, d_model]``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        """Create the sub-layers, in this order and with these names:

        - ``self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)``
        - ``self.add_norm1 = AddNorm(d_model, dropout)``
        - ``self.ffn = FeedForward(d_model, d_ff, dropout)``
        - ``self.add_norm2 = AddNorm(d_model, dropout)``

        Argument checks come for free: your parts raise ``ValueError`` for bad values.
        """
        super().__init__()
        raise NotImplementedError(
            "EncoderLayer.__init__: not implemented yet - see the docstring in blocks.py"
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the layer's output ``[B, T, d_model]`` for ``x [B, T, d_model]``.

        Post-norm (the original paper)::

            x = add_norm1(x, self_attn(x, x, x, mask))   # every token attends to the sequence
            x = add_norm2(x, ffn(x))                      # then each token on its own

        ``mask`` (bool, True = may attend, e.g. a ``[B, 1, T]`` padding mask) is passed to the
        attention as it is; the encoder is not causal.
        """
        raise NotImplementedError(
            "EncoderLayer.forward: not implemented yet - see the docstring in blocks.py"
        )


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: masked self-attention, cross-attention over the encoder's
    ``memory``, feed-forward; each followed by Add & Norm.

    ``forward(x [B, T, d_model], memory [B, S, d_model], tgt_mask, memory_mask)``
    ``-> [B, T, d_model]``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        """Create the sub-layers, in this order and with these names:

        - ``self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)``
        - ``self.add_norm1 = AddNorm(d_model, dropout)``
        - ``self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)``
        - ``self.add_norm2 = AddNorm(d_model, dropout)``
        - ``self.ffn = FeedForward(d_model, d_ff, dropout)``
        - ``self.add_norm3 = AddNorm(d_model, dropout)``
        """
        super().__init__()
        raise NotImplementedError(
            "DecoderLayer.__init__: not implemented yet - see the docstring in blocks.py"
        )

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return ``[B, T, d_model]`` for the target states ``x [B, T, d_model]``.

        ``memory [B, S, d_model]`` is the encoder's output. Three sub-layers, each followed by
        its Add & Norm::

            x = add_norm1(x, self_attn(x, x, x, tgt_mask))                # masked self-attention
            x = add_norm2(x, cross_attn(x, memory, memory, memory_mask))  # cross-attention
            x = add_norm3(x, ffn(x))

        In cross-attention the queries come from the decoder (``x``) and the keys and values
        from ``memory``, so the weights are ``[B, n_heads, T, S]``. Use ``tgt_mask`` exactly as
        given (this layer does not add a causal mask itself: ``Transformer.decode`` passes one
        in); ``memory_mask`` is typically the source padding mask ``[B, 1, S]``.
        """
        raise NotImplementedError(
            "DecoderLayer.forward: not implemented yet - see the docstring in blocks.py"
        )


class TransformerBlock(nn.Module):
    """GPT-style pre-norm block, always causal.

    ``x = x + dropout(attn(norm1(x)))``; ``x = x + dropout(ffn(norm2(x)))``.
    ``mask`` (e.g. padding, ``[B, 1, T]``) is combined with the causal mask by ``&``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        """Create the sub-layers with these names:

        - ``self.norm1 = LayerNorm(d_model)``
        - ``self.attn = MultiHeadAttention(d_model, n_heads, dropout)``
        - ``self.norm2 = LayerNorm(d_model)``
        - ``self.ffn = FeedForward(d_model, d_ff, dropout)``
        - ``self.dropout = nn.Dropout(dropout)``: on each residual branch (it has no weights,
          so it is not in the state_dict)
        """
        super().__init__()
        raise NotImplementedError(
            "TransformerBlock.__init__: not implemented yet - see the docstring in blocks.py"
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``[B, T, d_model]`` for ``x [B, T, d_model]``.

        Pre-norm (GPT-2): normalise *before* each sub-layer and add the result to the
        untouched residual stream::

            allowed = causal_mask(T) on x's device, & mask when a mask is given   # [T,T] or [B,T,T]
            h = norm1(x)
            x = x + dropout(attn(h, h, h, allowed))
            x = x + dropout(ffn(norm2(x)))

        The block is always causal: a token never sees the tokens after it, whatever ``mask``
        says. Write ``x = x + ...`` (a new tensor), never ``x += ...`` on the caller's input.
        """
        raise NotImplementedError(
            "TransformerBlock.forward: not implemented yet - see the docstring in blocks.py"
        )
