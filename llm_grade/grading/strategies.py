"""Hypothesis strategies shared by every grader: sizes, tensors, masks, token batches.

Tensor *values* come from a drawn seed and a drawn magnitude through ``torch.Generator``
(drawing thousands of floats one by one through Hypothesis would be slow and shrink badly);
sizes, dtypes, masks and magnitudes are drawn directly, so counterexamples shrink to the
smallest shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

FLOAT_DTYPES = (torch.float64, torch.float32)

seeds = st.integers(min_value=0, max_value=2**31 - 1)
"""A seed for ``torch.Generator``: tensor values come from it."""

dtypes = st.sampled_from(FLOAT_DTYPES)
"""float64 or float32 (float64 first, so shrinking prefers the exact dtype)."""

scales = st.sampled_from([1.0, 0.1, 10.0, 1e-3, 100.0])
"""Magnitude of generated values: typical, small, large."""


def randn(
    shape, *, seed: int, dtype: torch.dtype = torch.float64, scale: float = 1.0, offset: float = 0.0
) -> torch.Tensor:
    """Normal values ``offset + scale * N(0, 1)`` of ``shape``, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=g, dtype=torch.float64) * scale + offset).to(dtype)


@st.composite
def head_dims(draw, max_heads: int = 4, max_head_dim: int = 4) -> tuple[int, int]:
    """``(d_model, n_heads)`` with ``d_model % n_heads == 0``."""
    n_heads = draw(st.integers(1, max_heads))
    d_head = draw(st.integers(1, max_head_dim))
    return n_heads * d_head, n_heads


@dataclass(frozen=True)
class Sizes:
    """Shapes for an attention-like component."""

    B: int
    T: int
    S: int  # keys / source length (== T for self-attention)
    d_model: int
    n_heads: int
    d_ff: int

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


@st.composite
def sizes(
    draw,
    *,
    max_batch: int = 3,
    max_len: int = 6,
    min_len: int = 1,
    cross: bool = False,
    max_heads: int = 4,
) -> Sizes:
    """Batch, lengths and widths, kept small so hundreds of examples run in seconds."""
    B = draw(st.integers(1, max_batch))
    T = draw(st.integers(min_len, max_len))
    S = draw(st.integers(min_len, max_len)) if cross else T
    d_model, n_heads = draw(head_dims(max_heads=max_heads))
    d_ff = draw(st.integers(1, 3)) * d_model
    return Sizes(B, T, S, d_model, n_heads, d_ff)


MASK_KINDS = ("none", "causal", "padding", "causal+padding", "random")


def causal(T: int, S: int | None = None) -> torch.Tensor:
    """``[T, S]`` True on and below the diagonal (trusted; never the learner's causal_mask)."""
    return torch.ones(T, S or T, dtype=torch.bool).tril()


def padding_from_lengths(lengths: list[int], S: int) -> torch.Tensor:
    """``[B, 1, S]`` True for the first ``lengths[b]`` keys of each row."""
    return (torch.arange(S).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).unsqueeze(1)


@st.composite
def masks(draw, B: int, T: int, S: int, kinds: tuple[str, ...] = MASK_KINDS):
    """A boolean mask (True = may attend) broadcastable to ``[B, T, S]`` with at least one
    allowed key in every query row (rows with none are never graded), and its description."""
    kind = draw(st.sampled_from(kinds))
    if kind == "causal" and T != S:
        kind = "padding"
    if kind == "none":
        return None, "none"
    if kind == "causal":
        return causal(T), f"causal_mask({T})"
    lengths = draw(st.lists(st.integers(1, S), min_size=B, max_size=B))
    pad = padding_from_lengths(lengths, S)
    if kind == "padding":
        return pad, f"padding mask [B, 1, S] with lengths {lengths}"
    if kind == "causal+padding" and T == S:
        return causal(T) & pad, f"causal_mask({T}) & padding mask with lengths {lengths}"
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, T, S, generator=g) < 0.6
    mask[:, :, 0] = True  # every query row keeps a key, also once &-ed with a causal mask
    return mask, f"random [B, T, S] mask (seed {seed})"


@st.composite
def token_batches(draw, *, vocab: int, B: int, T: int, pad_id: int | None = None):
    """``LongTensor[B, T]`` of ids in ``[0, vocab)``; with ``pad_id``, each row ends in padding
    (at least one real token per row). Returns ``(tokens, lengths)``."""
    seed = draw(seeds)
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (B, T), generator=g)
    lengths = [T] * B
    if pad_id is not None:
        lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
        non_pad = torch.where(tokens == pad_id, (tokens + 1) % vocab, tokens)
        tokens = torch.where(
            torch.arange(T) < torch.tensor(lengths).unsqueeze(1),
            non_pad,
            torch.full_like(tokens, pad_id),
        )
    return tokens, lengths
