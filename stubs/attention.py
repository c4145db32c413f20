"""1.2-1.4 - attention from first principles: softmax, masks, one head, many heads.

References: Vaswani et al. 2017, section 3.2 ("Scaled Dot-Product Attention", "Multi-Head
Attention"); karpathy/nanoGPT ``CausalSelfAttention``.

Conventions for every function here:

- A mask is a ``torch.bool`` tensor with True = "may attend", broadcastable to
  ``[B, T_q, T_k]``: a ``[T_q, T_k]`` causal mask, a ``[B, 1, T_k]`` padding mask, or their
  ``&``. Fill the disallowed scores with ``-inf`` *before* the softmax, so those keys get
  exactly zero weight. A query row with no allowed key at all is never graded.
- No component here may call ``F.scaled_dot_product_attention`` or ``nn.MultiheadAttention``;
  ``softmax`` may not call ``torch.softmax``, ``F.softmax``, ``Tensor.softmax`` or
  ``F.log_softmax``. Calling your own ``softmax`` and ``scaled_dot_product_attention`` is fine.
"""

from __future__ import annotations

# math.sqrt is what the 1 / sqrt(d_k) scale needs
import math  # noqa: F401

import torch
from torch import nn


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Return ``exp(x) / sum(exp(x))`` along ``dim``; same shape and dtype as ``x``.

    Along ``dim`` the result is non-negative and sums to 1. It must be numerically stable:
    ``exp(1e4)`` overflows to ``inf``, so inputs like ``[1e4, 1e4]`` must still give
    ``[0.5, 0.5]``. The trick: subtract the maximum along ``dim`` (``keepdim=True``) before
    ``exp``. Softmax is shift-invariant, so the result is the same, and the largest exponent
    is now ``exp(0) = 1``. Entries equal to ``-inf`` (masked keys) must come out as exactly 0.
    A slice that is *all* ``-inf`` (a query with no allowed key) is never graded, but it must
    not raise.

    Not allowed: ``torch.softmax``, ``F.softmax``, ``Tensor.softmax``, ``F.log_softmax``.
    """
    raise NotImplementedError("softmax: not implemented yet - see the docstring in attention.py")


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Return a ``torch.bool`` tensor ``[seq_len, seq_len]``, True on and below the diagonal.

    Row ``i`` (query position ``i``) may attend to key positions ``0..i`` and never to the
    future. Example for ``seq_len=3``::

        [[ True, False, False],
         [ True,  True, False],
         [ True,  True,  True]]

    Create it on ``device`` (``None`` means the default device). Hint: ``torch.tril``.
    Raise ``ValueError`` naming ``seq_len`` if it is negative.
    """
    raise NotImplementedError(
        "causal_mask: not implemented yet - see the docstring in attention.py"
    )


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Return a ``torch.bool`` tensor ``[B, 1, T]``, True where ``tokens != pad_id``.

    ``tokens`` is ``LongTensor[B, T]``. The middle dimension of size 1 broadcasts over the
    queries: no query may attend to a padding key. Combine it with a causal mask by ``&``.
    """
    raise NotImplementedError(
        "padding_mask: not implemented yet - see the docstring in attention.py"
    )


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(out, weights)``: ``weights = softmax(q @ k^T / sqrt(d_k))``, ``out = weights @ v``.

    Shapes (``...`` is any batch of leading dimensions, e.g. ``B`` or ``B, n_heads``):

    - ``q [..., T_q, d_k]``, ``k [..., T_k, d_k]``, ``v [..., T_k, d_v]``
    - ``mask`` (optional, bool, True = may attend) broadcastable to ``[..., T_q, T_k]``
    - ``scores [..., T_q, T_k]``: transpose only the last two dimensions of ``k``
    - returns ``out [..., T_q, d_v]`` and ``weights [..., T_q, T_k]`` (after the softmax)

    ``d_k`` is ``q.size(-1)``; dividing by ``sqrt(d_k)`` keeps the scores' variance near 1 so
    the softmax does not saturate. Where ``mask`` is False set the score to ``-inf`` before the
    softmax (``masked_fill`` returns a new tensor; never fill ``q``, ``k`` or ``v`` in place).
    Use your own ``softmax`` over the last dimension (the keys).

    Not allowed: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``.
    """
    raise NotImplementedError(
        "scaled_dot_product_attention: not implemented yet - see the docstring in attention.py"
    )


class AttentionHead(nn.Module):
    """One attention head: project to ``d_head`` queries, keys and values, then attend.

    ``forward(x [B, T_q, d_model], context [B, T_k, d_model] = x, mask) -> [B, T_q, d_head]``.
    Not allowed: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``.
    """

    def __init__(self, d_model: int, d_head: int):
        """Create the three projections (already done for you; keep these names).

        - ``self.q_proj = nn.Linear(d_model, d_head, bias=False)``
        - ``self.k_proj = nn.Linear(d_model, d_head, bias=False)``
        - ``self.v_proj = nn.Linear(d_model, d_head, bias=False)``

        Your part: before creating them, raise ``ValueError`` naming the argument if
        ``d_model <= 0`` or ``d_head <= 0``.
        """
        super().__init__()
        # your argument checks (see the docstring) go here, before the layers are created
        self.q_proj = nn.Linear(d_model, d_head, bias=False)
        self.k_proj = nn.Linear(d_model, d_head, bias=False)
        self.v_proj = nn.Linear(d_model, d_head, bias=False)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend from ``x`` to ``context``; return ``[B, T_q, d_head]``.

        Queries come from ``x [B, T_q, d_model]`` (``q_proj``); keys and values come from
        ``context [B, T_k, d_model]`` (``k_proj``, ``v_proj``). ``context=None`` means
        self-attention: use ``x``. ``mask`` (bool, True = may attend) broadcasts to
        ``[B, T_q, T_k]``. Then it is ``scaled_dot_product_attention`` on the projections;
        return its ``out`` (not the weights).
        """
        raise NotImplementedError(
            "AttentionHead.forward: not implemented yet - see the docstring in attention.py"
        )


class MultiHeadAttention(nn.Module):
    """``n_heads`` heads attending in parallel over slices of ``d_model``, mixed by ``out_proj``.

    ``forward(query [B, T_q, d_model], key, value [B, T_k, d_model], mask) -> [B, T_q, d_model]``.
    Not allowed: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        """Check the arguments, then create the projections.

        Raise ``ValueError`` with a message naming the argument if ``n_heads <= 0``, if
        ``d_model`` is not a positive multiple of ``n_heads`` (``d_model % n_heads != 0``: the
        heads split ``d_model`` evenly), or unless ``0 <= dropout < 1``. Then create:

        - ``self.d_model = d_model``, ``self.n_heads = n_heads``,
          ``self.d_head = d_model // n_heads``
        - ``self.q_proj = nn.Linear(d_model, d_model, bias=bias)``
        - ``self.k_proj = nn.Linear(d_model, d_model, bias=bias)``
        - ``self.v_proj = nn.Linear(d_model, d_model, bias=bias)``
        - ``self.out_proj = nn.Linear(d_model, d_model, bias=bias)``: mixes the heads' outputs
        - ``self.dropout = nn.Dropout(dropout)``: applied to the attention weights

        One ``d_model x d_model`` projection computes all heads' queries at once: head ``h``
        owns output features ``h*d_head:(h+1)*d_head``.
        """
        super().__init__()
        raise NotImplementedError(
            "MultiHeadAttention.__init__: not implemented yet - see the docstring in attention.py"
        )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return ``out_proj(concat over heads of softmax(q_h k_h^T / sqrt(d_head)) v_h)``.

        Steps, with ``nh = n_heads`` and ``hs = d_head``:

        1. Project: ``q_proj(query) [B, T_q, d_model]``, ``k_proj(key)`` and ``v_proj(value)``
           ``[B, T_k, d_model]``.
        2. Split the heads: ``[B, T, d_model] -> [B, T, nh, hs] -> [B, nh, T, hs]``
           (``view`` then ``transpose(1, 2)``), so head ``h`` gets features
           ``h*hs:(h+1)*hs``.
        3. Scores ``[B, nh, T_q, T_k]`` scaled by ``1 / sqrt(hs)``. The caller's ``mask`` has no
           head dimension; insert it yourself: a 2-D ``[T_q, T_k]`` mask already broadcasts,
           a 3-D ``[B, T_q or 1, T_k]`` mask needs ``unsqueeze(1)`` to become
           ``[B, 1, T_q or 1, T_k]``. Disallowed scores get ``-inf``.
        4. Weights = your ``softmax`` over the keys, then ``self.dropout`` on the weights.
        5. ``weights @ v`` gives ``[B, nh, T_q, hs]``; put the heads back side by side:
           ``transpose(1, 2)`` then ``contiguous().view(B, T_q, d_model)``.
        6. Return ``out_proj`` of that: ``[B, T_q, d_model]``.

        ``key`` and ``value`` are the same tensor for self-attention (``query`` too) and the
        encoder's output for cross-attention; ``T_k`` may differ from ``T_q``.
        """
        raise NotImplementedError(
            "MultiHeadAttention.forward: not implemented yet - see the docstring in attention.py"
        )
