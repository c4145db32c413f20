"""1.1 - turning token ids into vectors and telling the model where each token sits.

References: Vaswani et al. 2017, "Attention Is All You Need", sections 3.4 (embeddings) and
3.5 (positional encoding); Radford et al. 2019 (GPT-2's learned position embeddings).

Attention has no notion of order: shuffle the tokens and it computes the same thing for each
one. So every token vector gets a position signal added to it, either a fixed sine/cosine table
(``SinusoidalPositionalEncoding``) or a learned vector per position
(``LearnedPositionalEmbedding``).
"""

from __future__ import annotations

# math.sqrt is what TokenEmbedding's scale needs
import math  # noqa: F401

import torch
from torch import nn


class TokenEmbedding(nn.Module):
    """Look up a learned vector per token id, scaled by ``sqrt(d_model)`` (paper, section 3.4).

    tokens ``LongTensor[B, T]`` -> ``[B, T, d_model]``.
    """

    def __init__(self, vocab_size: int, d_model: int):
        """Create the lookup table (already done for you; keep these names).

        - ``self.d_model = d_model``
        - ``self.embedding = nn.Embedding(vocab_size, d_model)``

        Your part: before creating them, raise ``ValueError`` if ``vocab_size <= 0`` or
        ``d_model <= 0``, with a message naming the argument
        (e.g. ``"vocab_size must be positive, got 0"``).
        """
        super().__init__()
        # your argument checks (see the docstring) go here, before the table is created
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return ``embedding(tokens) * sqrt(d_model)``.

        ``tokens`` is a ``LongTensor[B, T]`` of ids in ``[0, vocab_size)``; the result is
        ``[B, T, d_model]``. The scale keeps the embeddings on the same footing as the
        positional signal that is added to them next.
        """
        raise NotImplementedError(
            "TokenEmbedding.forward: not implemented yet - see the docstring in embeddings.py"
        )


def sinusoidal_positional_encoding(
    seq_len: int, d_model: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Return the fixed sine/cosine table, shape ``[seq_len, d_model]``, dtype ``dtype``.

    For position ``p`` in ``0..seq_len-1`` and ``i`` in ``0..d_model/2-1``::

        angle     = p / base ** (2i / d_model)
        PE[p, 2i]   = sin(angle)     # even features
        PE[p, 2i+1] = cos(angle)     # odd features: cosine of the SAME angle

    Each pair of features is a clock ticking at its own frequency. Build it without a Python
    loop: a column of positions ``[seq_len, 1]`` divided by a row of frequencies
    ``[d_model/2]`` broadcasts to all the angles ``[seq_len, d_model/2]``; then fill the even
    and odd columns (slicing ``0::2`` and ``1::2``). Compute in float64 and cast to ``dtype`` at
    the end, so the float32 table is exact to the last bit.

    Raise ``ValueError`` naming ``d_model`` if it is odd or not positive, and naming
    ``seq_len`` if it is negative (``seq_len=0`` gives an empty ``[0, d_model]`` table).
    """
    raise NotImplementedError(
        "sinusoidal_positional_encoding: not implemented yet - see the docstring in embeddings.py"
    )


class SinusoidalPositionalEncoding(nn.Module):
    """Add the fixed sinusoidal table to ``x [B, T, d_model]``, then apply dropout."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        """Precompute the table once.

        Validate first: raise ``ValueError`` naming ``max_len`` if ``max_len <= 0`` and naming
        ``dropout`` unless ``0 <= dropout < 1`` (an odd ``d_model`` is already rejected by
        ``sinusoidal_positional_encoding``). Then create:

        - ``self.max_len = max_len``
        - ``self.dropout = nn.Dropout(dropout)``
        - a buffer ``pe`` of shape ``[max_len, d_model]`` holding
          ``sinusoidal_positional_encoding(max_len, d_model)``, registered with
          ``self.register_buffer("pe", ..., persistent=False)``. A buffer moves with
          ``.to(device)`` but is not a parameter (nothing to learn), and ``persistent=False``
          keeps it out of the state_dict: this module's state_dict is empty.
        """
        super().__init__()
        raise NotImplementedError(
            "SinusoidalPositionalEncoding.__init__: not implemented yet - "
            "see the docstring in embeddings.py"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``dropout(x + pe[:T])`` for ``x [B, T, d_model]``; same shape as ``x``.

        ``pe[:T]`` is ``[T, d_model]`` and broadcasts over the batch. The table is float32:
        cast it to ``x.dtype`` so a float64 input gives a float64 output. Do not add in place
        (no ``x +=``): the caller's tensor must stay unchanged.
        Raise ``ValueError`` naming ``max_len`` if ``T > max_len``.
        """
        raise NotImplementedError(
            "SinusoidalPositionalEncoding.forward: not implemented yet - "
            "see the docstring in embeddings.py"
        )


class LearnedPositionalEmbedding(nn.Module):
    """Add a learned vector per position (GPT-2 style) to ``x [B, T, d_model]``, then dropout."""

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0):
        """Create the position table (already done for you; keep these names).

        - ``self.max_len = max_len``
        - ``self.embedding = nn.Embedding(max_len, d_model)``: row ``p`` is position ``p``'s vector
        - ``self.dropout = nn.Dropout(dropout)``

        Your part: before creating them, raise ``ValueError`` naming ``max_len`` if
        ``max_len <= 0`` and naming ``dropout`` unless ``0 <= dropout < 1``.
        """
        super().__init__()
        # your argument checks (see the docstring) go here, before the layers are created
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``dropout(x + embedding(arange(T)))`` for ``x [B, T, d_model]``; same shape.

        The positions ``0..T-1`` must live on ``x.device`` (``torch.arange(T, device=...)``);
        their vectors ``[T, d_model]`` broadcast over the batch. Cast them to ``x.dtype`` so the
        output dtype is the input dtype, and do not modify ``x`` in place.
        Raise ``ValueError`` naming ``max_len`` if ``T > max_len``.
        """
        raise NotImplementedError(
            "LearnedPositionalEmbedding.forward: not implemented yet - "
            "see the docstring in embeddings.py"
        )
