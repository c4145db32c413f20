"""Helpers of the transformer.py graders (graders/test_transformer.py): the hints, the
Hypothesis strategies for tiny stacks, Transformers and GPTs, and the reference/learner pairs
they are graded on (every graded sub-module a trusted oracle with the same weights).

Trusted side: grader helpers. They reach learner code only through the submission handle
``sub``; ``ref`` is the reference package.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from llm_grade.grading.compare import case_str
from llm_grade.grading.strategies import padding_from_lengths, randn, sizes, token_batches
from llm_grade.grading.toolkit import build_pair, expect_own_structure

PAD = 0  # the padding id of every token batch below

ENCODER_HINT = (
    "Run the layers in order, each on the previous one's output and each with the mask: "
    "for layer in self.layers: x = layer(x, mask)."
)
DECODER_HINT = (
    "Run the layers in order, each on the previous one's output, all with the same memory "
    "and masks: for layer in self.layers: x = layer(x, memory, tgt_mask, memory_mask)."
)
OWN_LAYER_HINT = (
    "Each layer has its own weights: run every layer of self.layers (not layers[0] n times)."
)
ENCODE_HINT = (
    "encode(src, src_mask) = encoder(pos_encoding(src_embed(src)), src_mask): embed the source "
    "tokens, add the positions, run the encoder with the mask."
)
DECODE_HINT = (
    "decode = decoder(pos_encoding(tgt_embed(tgt)), memory, causal_mask(T) & tgt_mask, "
    "memory_mask): the target side uses tgt_embed, and decode is always causal."
)
CAUSAL_DECODE_HINT = (
    "decode is always causal: build allowed = causal_mask(T) and combine causal_mask(T) & "
    "tgt_mask when a tgt_mask is given, then pass allowed to the decoder."
)
MEMORY_MASK_HINT = (
    "src_mask is both the encoder's mask and the decoder's memory_mask: forward = "
    "out_proj(decode(tgt, encode(src, src_mask), tgt_mask, src_mask))."
)
GPT_HINT = (
    "x = pos_embed(tok_embed(tokens)); every block in order with the mask, "
    "x = block(x, mask); then logits = lm_head(norm(x))."
)
EVAL_DROPOUT_HINT = (
    " With dropout in eval() the output must not change: use nn.Dropout modules (they check "
    "self.training), never F.dropout(..., training=True)."
)

# d_model <= 8 and even (sinusoidal encodings need pairs of features); few heads and layers
widths = sizes(cross=True, max_heads=2).filter(lambda s: s.d_model % 2 == 0)
n_layers_ = st.integers(1, 2)
vocabs = st.integers(3, 12)


def _change_tokens(tokens: torch.Tensor, where: torch.Tensor, vocab: int, seed: int):
    """``tokens`` with every position where ``where`` is True set to a different id."""
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, vocab, tokens.shape, generator=g)
    return torch.where(where, (tokens + shift) % vocab, tokens)


def _stack_kwargs(s, n_layers: int, dropout: float) -> dict:
    return dict(
        n_layers=n_layers, d_model=s.d_model, n_heads=s.n_heads, d_ff=s.d_ff, dropout=dropout
    )


def _layer_kwargs(s, dropout: float) -> dict:
    return dict(d_model=s.d_model, n_heads=s.n_heads, d_ff=s.d_ff, dropout=dropout)


def _stack_case(s, n_layers, dtype=None, *, cross=False, **extra) -> str:
    params = {"B": s.B, "T": s.T}
    if cross:
        params["S"] = s.S
    params.update(n_layers=n_layers, d_model=s.d_model, n_heads=s.n_heads, d_ff=s.d_ff)
    if dtype is not None:
        params["dtype"] = dtype
    params.update(extra)
    return case_str(**params)


def _expect_own_layers(sub, ref, component: str, s, n_layers: int, seed: int) -> None:
    """Every layer of the stack its own module with its own weights, built with the stack's
    arguments (see :func:`expect_own_structure`)."""
    layer = "EncoderLayer" if component == "Encoder" else "DecoderLayer"
    dropout = 0.3 if seed % 2 else 0.0
    x = randn((1, 2, s.d_model), seed=seed)
    expect_own_structure(
        sub,
        ref,
        component,
        _stack_kwargs(s, n_layers, dropout),
        children={f"layers.{i}": (layer, _layer_kwargs(s, dropout)) for i in range(n_layers)},
        case=_stack_case(s, n_layers, dropout=str(dropout)),
        probe=(x, x) if component == "Decoder" else (x,),
        seed=seed,
    )


# ----------------------------------------------------------------------------- Encoder


def _encoder(sub, ref, s, n_layers, *, seed, dtype=torch.float64, dropout=0.0):
    layer = ("EncoderLayer", _layer_kwargs(s, dropout))
    return build_pair(
        sub,
        ref,
        "Encoder",
        dtype=dtype,
        seed=seed,
        children={f"layers.{i}": layer for i in range(n_layers)},
        **_stack_kwargs(s, n_layers, dropout),
    )


@torch.no_grad()
def _first_layer_only(stack, x, *args):
    for _ in stack.layers:
        x = stack.layers[0](x, *args)
    return x


@torch.no_grad()
def _layers_reversed(stack, x, *args):
    for layer in reversed(stack.layers):
        x = layer(x, *args)
    return x


REVERSED_HINT = (
    "The layers run in the wrong order: run them in order, layer 0 first, then 1, ...: for "
    "layer in self.layers (not reversed(self.layers), not a list built backwards)."
)


# ----------------------------------------------------------------------------- Decoder


def _decoder(sub, ref, s, n_layers, *, seed, dtype=torch.float64, dropout=0.0):
    layer = ("DecoderLayer", _layer_kwargs(s, dropout))
    return build_pair(
        sub,
        ref,
        "Decoder",
        dtype=dtype,
        seed=seed,
        children={f"layers.{i}": layer for i in range(n_layers)},
        **_stack_kwargs(s, n_layers, dropout),
    )


# ----------------------------------------------------------------------------- Transformer


@st.composite
def seq2seq(draw):
    """Sizes and constructor arguments of a tiny Transformer."""
    s = draw(widths)
    kwargs = dict(
        src_vocab_size=draw(vocabs),
        tgt_vocab_size=draw(vocabs),
        d_model=s.d_model,
        n_heads=s.n_heads,
        n_layers=draw(n_layers_),
        d_ff=s.d_ff,
        max_len=max(s.S, s.T) + draw(st.integers(0, 3)),
    )
    return s, kwargs


def _transformer_children(kw: dict, dropout: float) -> dict:
    d_model = kw["d_model"]
    stack = dict(
        n_layers=kw["n_layers"],
        d_model=d_model,
        n_heads=kw["n_heads"],
        d_ff=kw["d_ff"],
        dropout=dropout,
    )
    return {
        "src_embed": ("TokenEmbedding", dict(vocab_size=kw["src_vocab_size"], d_model=d_model)),
        "tgt_embed": ("TokenEmbedding", dict(vocab_size=kw["tgt_vocab_size"], d_model=d_model)),
        "pos_encoding": (
            "SinusoidalPositionalEncoding",
            dict(d_model=d_model, max_len=kw["max_len"], dropout=dropout),
        ),
        "encoder": ("Encoder", stack),
        "decoder": ("Decoder", stack),
    }


def _transformer(sub, ref, kw, *, seed, dtype=torch.float64, dropout=0.1):
    # Transformer's default dropout is 0.1: build_pair puts both models in eval()
    return build_pair(
        sub,
        ref,
        "Transformer",
        dtype=dtype,
        seed=seed,
        children=_transformer_children(kw, dropout),
        dropout=dropout,
        **kw,
    )


def _tokens(data, vocab: int, B: int, T: int, padded: bool, label: str):
    """``(tokens [B, T], mask [B, 1, T] or None, description)``."""
    tokens, lengths = data.draw(
        token_batches(vocab=vocab, B=B, T=T, pad_id=PAD if padded else None), label=label
    )
    if not padded:
        return tokens, None, "None"
    return tokens, padding_from_lengths(lengths, T), f"padding [B, 1, T] with lengths {lengths}"


def _model_case(s, kw, dtype=None, **extra) -> str:
    params = dict(B=s.B, S=s.S, T=s.T, **kw)
    if dtype is not None:
        params["dtype"] = dtype
    params.update(extra)
    return case_str(**params)


@torch.no_grad()
def _decode_not_causal(model, tgt, memory, tgt_mask, memory_mask):
    """The reference's decode without the causal mask (a known bug)."""
    x = model.pos_encoding(model.tgt_embed(tgt))
    return model.decoder(x, memory, tgt_mask, memory_mask)


# ----------------------------------------------------------------------------- GPT


@st.composite
def gpts(draw):
    """Sizes and constructor arguments of a tiny GPT."""
    s = draw(sizes(max_heads=2))
    kwargs = dict(
        vocab_size=draw(vocabs),
        d_model=s.d_model,
        n_heads=s.n_heads,
        n_layers=draw(n_layers_),
        d_ff=s.d_ff,
        max_len=s.T + draw(st.integers(0, 3)),
    )
    return s, kwargs


@st.composite
def wide_gpts(draw):
    """A small GPT, but wide enough (d_model >= 16) that float16 rounding is not blown up by
    normalizing rows of two or four numbers (a property of LayerNorm, not a learner's bug)."""
    s, kwargs = draw(gpts())
    n_heads = draw(st.sampled_from([1, 2, 4]))
    d_model = n_heads * draw(st.sampled_from([4, 8, 16]))
    d_model = max(d_model, 16)
    kwargs.update(d_model=d_model, n_heads=n_heads, d_ff=2 * d_model)
    return s, kwargs


def _gpt_children(kw, dropout: float) -> dict:
    d_model = kw["d_model"]
    block = (
        "TransformerBlock",
        dict(d_model=d_model, n_heads=kw["n_heads"], d_ff=kw["d_ff"], dropout=dropout),
    )
    children = {
        "tok_embed": ("TokenEmbedding", dict(vocab_size=kw["vocab_size"], d_model=d_model)),
        "pos_embed": (
            "LearnedPositionalEmbedding",
            dict(max_len=kw["max_len"], d_model=d_model, dropout=dropout),
        ),
        **{f"blocks.{i}": block for i in range(kw["n_layers"])},
        "norm": ("LayerNorm", dict(d_model=d_model)),
    }
    return children


def _gpt(sub, ref, kw, *, seed, dtype=torch.float64, dropout=0.0):
    children = _gpt_children(kw, dropout)
    return build_pair(
        sub, ref, "GPT", dtype=dtype, seed=seed, children=children, dropout=dropout, **kw
    )


@torch.no_grad()
def _gpt_without_final_norm(model, tokens, mask):
    x = model.pos_embed(model.tok_embed(tokens))
    for block in model.blocks:
        x = block(x, mask)
    return model.lm_head(x)


AUTOCAST_HINT = (
    "Under torch.autocast, matrix products run in float16/bfloat16. Keep every constant and "
    "new tensor in the dtype of the tensor it meets: a mask value of -1e9 does not fit in "
    "float16 (use float('-inf') or torch.finfo(scores.dtype).min), and torch.zeros(...) or "
    "torch.tensor(...) without dtype=x.dtype / device=x.device breaks or silently upcasts. "
    "A softmax that does not subtract the row maximum overflows in float16."
)
