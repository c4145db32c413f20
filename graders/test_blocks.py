"""Graders for blocks.py (curriculum 1.6): the post-norm encoder and decoder layers and the
pre-norm GPT block.

Each class grades one API name; each test is one rubric check whose docstring's first line is
the property in plain words. A layer is graded on its own wiring: every graded sub-module in it
(attention, feed-forward, Add & Norm, LayerNorm) is replaced by a trusted oracle with the same
weights (``build_pair(..., children=...)``), so a wrong LayerNorm costs only LayerNorm's points.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_grade.grading.compare import (
    case_str,
    expect_close,
    expect_prefix_unchanged,
    expect_rows_unchanged,
    expect_tensor,
    fail,
    hint_for,
)
from llm_grade.grading.strategies import (
    Sizes,
    causal,
    dtypes,
    masks,
    padding_from_lengths,
    randn,
    scales,
    seeds,
    sizes,
)
from llm_grade.grading.toolkit import (
    build_pair,
    expect_dropout_statistics,
    expect_gradients,
    expect_on_meta,
    expect_own_structure,
    same_inputs,
)

# d_model <= 8 keeps every example fast; the sub-modules are oracles, so widths matter little
small = sizes(max_heads=2)
small_cross = sizes(cross=True, max_heads=2)
# "changing X changes the output" needs room: LayerNorm of 1 or 2 features is (nearly) constant
wide_cross = sizes(cross=True, max_heads=2).filter(lambda s: s.d_model >= 4)
dropouts = st.sampled_from([0.0, 0.5])

ENCODER_HINT = (
    "post-norm: x = add_norm1(x, self_attn(x, x, x, mask)), then x = add_norm2(x, ffn(x)) — "
    "the residual is inside AddNorm (don't add x again), and the FFN reads the output of the "
    "first sub-layer."
)
DECODER_HINT = (
    "post-norm, three sub-layers: x = add_norm1(x, self_attn(x, x, x, tgt_mask)); "
    "x = add_norm2(x, cross_attn(x, memory, memory, memory_mask)); x = add_norm3(x, ffn(x)). "
    "cross-attention: queries from the decoder (x), keys and values from memory."
)
BLOCK_HINT = (
    "pre-norm: h = norm1(x); x = x + dropout(attn(h, h, h, allowed)); "
    "x = x + dropout(ffn(norm2(x))) — normalise the input of each sub-layer, not the residual "
    "stream, and add each sub-layer's output back onto the residual stream x."
)
ALWAYS_CAUSAL_HINT = (
    "TransformerBlock is always causal: allowed = causal_mask(T), and when a mask is given, "
    "combine them with allowed = allowed & mask (don't replace the causal mask)."
)
EVAL_DROPOUT_HINT = (
    " With dropout=0.5 in eval() the output must not change: use nn.Dropout modules (they "
    "check self.training), never F.dropout(..., training=True)."
)
INPLACE_HINT = (
    "Use out-of-place ops: x = x + sublayer(...) instead of x += ..., and never assign into "
    "x, memory or a mask."
)


def _structure(sub, ref, component, children, s, seed, dropout) -> None:
    kwargs = dict(d_model=s.d_model, n_heads=s.n_heads, d_ff=s.d_ff, dropout=dropout)
    x = randn((1, 2, s.d_model), seed=seed)
    expect_own_structure(
        sub,
        ref,
        component,
        kwargs,
        children=children(s, dropout),
        case=_case(s, dropout=str(dropout)),
        probe=(x, x) if component == "DecoderLayer" else (x,),
        seed=seed,
    )


def _case(s, dtype=None, *, cross=False, **extra) -> str:
    params = {"B": s.B, "T": s.T}
    if cross:
        params["S"] = s.S
    params.update(d_model=s.d_model, n_heads=s.n_heads, d_ff=s.d_ff)
    if dtype is not None:
        params["dtype"] = dtype
    params.update(extra)
    return case_str(**params)


def _padding(data, B: int, S: int) -> tuple[torch.Tensor, list[int]]:
    lengths = data.draw(st.lists(st.integers(1, S), min_size=B, max_size=B), label="lengths")
    return padding_from_lengths(lengths, S), lengths


# ----------------------------------------------------------------------------- EncoderLayer


def _encoder_layer_children(s, dropout: float) -> dict:
    mha = ("MultiHeadAttention", dict(d_model=s.d_model, n_heads=s.n_heads, dropout=dropout))
    add_norm = ("AddNorm", dict(d_model=s.d_model, dropout=dropout))
    return {
        "self_attn": mha,
        "add_norm1": add_norm,
        "ffn": ("FeedForward", dict(d_model=s.d_model, d_ff=s.d_ff, dropout=dropout)),
        "add_norm2": add_norm,
    }


def _encoder_layer(sub, ref, s, *, seed, dtype=torch.float64, dropout=0.0):
    return build_pair(
        sub,
        ref,
        "EncoderLayer",
        dtype=dtype,
        seed=seed,
        children=_encoder_layer_children(s, dropout),
        d_model=s.d_model,
        n_heads=s.n_heads,
        d_ff=s.d_ff,
        dropout=dropout,
    )


class TestEncoderLayer:
    component = "EncoderLayer"

    @given(s=small, seed=seeds, dtype=dtypes, scale=scales, dropout=dropouts, data=st.data())
    def test_matches_reference(self, sub, ref, s, seed, dtype, scale, dropout, data):
        """matches the reference in eval() (every mask shape, dropout on or off)"""
        pair = _encoder_layer(sub, ref, s, seed=seed, dtype=dtype, dropout=dropout)
        x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype, scale=scale)
        mask, mask_desc = data.draw(masks(s.B, s.T, s.T), label="mask")
        got = sub.call(pair.student, x, mask)
        expected = pair.reference(x, mask)
        candidates = []
        if mask is not None:
            no_mask_hint = "The mask is ignored: pass it on, self_attn(x, x, x, mask)."
            candidates.append((pair.reference(x, None), no_mask_hint))
        hint = ENCODER_HINT + (EVAL_DROPOUT_HINT if dropout else "")
        expect_close(
            got,
            expected,
            "EncoderLayer output",
            case=_case(s, dtype, dropout=str(dropout), scale=str(scale)) + f", mask={mask_desc}",
            hint=hint_for(got, candidates, hint),
        )

    @settings(max_examples=5)
    @given(s=small, seed=seeds, dropout=st.sampled_from([0.0, 0.3]))
    def test_structure(self, sub, ref, s, seed, dropout):
        """builds its own sub-layers from your classes, with its arguments, nothing shared"""
        _structure(sub, ref, "EncoderLayer", _encoder_layer_children, s, seed, dropout)

    @given(s=small, seed=seeds, data=st.data())
    def test_padding_invariance(self, sub, ref, s, seed, data):
        """with a [B, 1, T] padding mask, changing padded positions changes no other output"""
        pair = _encoder_layer(sub, ref, s, seed=seed)
        mask, lengths = _padding(data, s.B, s.T)
        keep = mask.squeeze(1)  # (B, T)
        x = randn((s.B, s.T, s.d_model), seed=seed)
        x2 = torch.where(keep.unsqueeze(-1), x, 5 * randn(x.shape, seed=seed + 1))
        case = _case(s) + f", padding mask [B, 1, T] with lengths {lengths}"
        out1 = expect_tensor(sub.call(pair.student, x, mask), "output", shape=x.shape, case=case)
        out2 = expect_tensor(sub.call(pair.student, x2, mask), "output", shape=x.shape, case=case)
        expect_rows_unchanged(
            out1,
            out2,
            keep,
            what="the vectors at padded positions",
            case=case,
            hint="Padded positions leak into the others: pass the mask to the self-attention, "
            "self_attn(x, x, x, mask); the FFN and AddNorm work on each position alone.",
        )

    @given(s=sizes(min_len=2, max_heads=2), seed=seeds)
    def test_gradients_reach_every_parameter(self, sub, ref, s, seed):
        """gradients reach every parameter of both sub-layers and both norms"""
        pair = _encoder_layer(sub, ref, s, seed=seed)
        x = randn((s.B, s.T, s.d_model), seed=seed)
        expect_gradients(sub, pair, x, None, case=_case(s))

    @given(s=small, seed=seeds, dtype=dtypes, data=st.data())
    def test_keeps_dtype_and_inputs(self, sub, ref, s, seed, dtype, data):
        """returns the input's dtype and leaves x and the mask unchanged"""
        pair = _encoder_layer(sub, ref, s, seed=seed, dtype=dtype)
        x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype)
        mask, mask_desc = data.draw(masks(s.B, s.T, s.T, kinds=("causal", "padding")))
        res = sub.call(pair.student, x, mask, echo_inputs=True)
        case = _case(s, dtype) + f", mask={mask_desc}"
        expect_tensor(res["out"], "EncoderLayer output", shape=x.shape, dtype=dtype, case=case)
        if not same_inputs([x, mask], res["args"]):
            fail("EncoderLayer changed one of its inputs in place.", case=case, hint=INPLACE_HINT)


# ----------------------------------------------------------------------------- DecoderLayer


def _decoder_layer_children(s, dropout: float) -> dict:
    mha = ("MultiHeadAttention", dict(d_model=s.d_model, n_heads=s.n_heads, dropout=dropout))
    add_norm = ("AddNorm", dict(d_model=s.d_model, dropout=dropout))
    return {
        "self_attn": mha,
        "add_norm1": add_norm,
        "cross_attn": mha,
        "add_norm2": add_norm,
        "ffn": ("FeedForward", dict(d_model=s.d_model, d_ff=s.d_ff, dropout=dropout)),
        "add_norm3": add_norm,
    }


def _decoder_layer(sub, ref, s, *, seed, dtype=torch.float64, dropout=0.0):
    return build_pair(
        sub,
        ref,
        "DecoderLayer",
        dtype=dtype,
        seed=seed,
        children=_decoder_layer_children(s, dropout),
        d_model=s.d_model,
        n_heads=s.n_heads,
        d_ff=s.d_ff,
        dropout=dropout,
    )


def _decoder_inputs(s, seed, dtype=torch.float64, scale=1.0):
    x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype, scale=scale)
    memory = randn((s.B, s.S, s.d_model), seed=seed + 1, dtype=dtype, scale=scale)
    return x, memory


class TestDecoderLayer:
    component = "DecoderLayer"

    @given(s=small_cross, seed=seeds, dtype=dtypes, scale=scales, dropout=dropouts, data=st.data())
    def test_matches_reference(self, sub, ref, s, seed, dtype, scale, dropout, data):
        """matches the reference in eval() (tgt_mask and memory_mask of every shape)"""
        pair = _decoder_layer(sub, ref, s, seed=seed, dtype=dtype, dropout=dropout)
        x, memory = _decoder_inputs(s, seed, dtype, scale)
        tgt_mask, tgt_desc = data.draw(masks(s.B, s.T, s.T), label="tgt_mask")
        memory_mask, mem_desc = data.draw(
            masks(s.B, s.T, s.S, kinds=("none", "padding", "random")), label="memory_mask"
        )
        got = sub.call(pair.student, x, memory, tgt_mask, memory_mask)
        expected = pair.reference(x, memory, tgt_mask, memory_mask)
        candidates = []
        if tgt_mask is not None:
            candidates.append(
                (
                    pair.reference(x, memory, None, memory_mask),
                    "tgt_mask is ignored: the masked self-attention is "
                    "self_attn(x, x, x, tgt_mask).",
                )
            )
        if memory_mask is not None:
            candidates.append(
                (
                    pair.reference(x, memory, tgt_mask, None),
                    "memory_mask is ignored: cross_attn(x, memory, memory, memory_mask).",
                )
            )
        hint = DECODER_HINT + (EVAL_DROPOUT_HINT if dropout else "")
        case = _case(s, dtype, cross=True, dropout=str(dropout), scale=str(scale))
        expect_close(
            got,
            expected,
            "DecoderLayer output",
            case=f"{case}, tgt_mask={tgt_desc}, memory_mask={mem_desc}",
            hint=hint_for(got, candidates, hint),
        )

    @settings(max_examples=5)
    @given(s=small, seed=seeds, dropout=st.sampled_from([0.0, 0.3]))
    def test_structure(self, sub, ref, s, seed, dropout):
        """builds its own sub-layers from your classes, with its arguments, nothing shared"""
        _structure(sub, ref, "DecoderLayer", _decoder_layer_children, s, seed, dropout)

    @given(s=small_cross, seed=seeds, data=st.data())
    def test_causality(self, sub, ref, s, seed, data):
        """with a causal tgt_mask, changing later target positions never changes earlier outputs"""
        pair = _decoder_layer(sub, ref, s, seed=seed)
        t = data.draw(st.integers(0, s.T - 1), label="position")
        x, memory = _decoder_inputs(s, seed)
        x2 = x.clone()
        x2[:, t + 1 :] = randn(x2[:, t + 1 :].shape, seed=seed + 7)
        tgt_mask = causal(s.T)
        case = _case(s, cross=True) + f", tgt_mask=causal_mask({s.T}), memory_mask=None"
        out1 = expect_tensor(
            sub.call(pair.student, x, memory, tgt_mask), "output", shape=x.shape, case=case
        )
        out2 = expect_tensor(
            sub.call(pair.student, x2, memory, tgt_mask), "output", shape=x.shape, case=case
        )
        expect_prefix_unchanged(
            out1,
            out2,
            t,
            what="target positions",
            case=case,
            hint="Future positions leak into the past: pass tgt_mask to the self-attention, "
            "self_attn(x, x, x, tgt_mask). Cross-attention reads memory only, so it cannot "
            "leak; the FFN works on each position alone.",
        )

    @given(s=wide_cross, seed=seeds, data=st.data())
    def test_attends_to_memory(self, sub, ref, s, seed, data):
        """reads memory: changing memory changes the output, changing masked memory does not"""
        pair = _decoder_layer(sub, ref, s, seed=seed)
        x, memory = _decoder_inputs(s, seed)
        memory_mask, lengths = _padding(data, s.B, s.S)
        keep = memory_mask.transpose(1, 2)  # (B, S, 1)
        case = _case(s, cross=True) + f", memory_mask: padding [B, 1, S] with lengths {lengths}"
        out = expect_tensor(
            sub.call(pair.student, x, memory, None, memory_mask), "output", shape=x.shape, case=case
        )
        other = randn(memory.shape, seed=seed + 3, scale=3.0)
        changed = sub.call(pair.student, x, other, None, memory_mask)
        changed = expect_tensor(changed, "output", shape=x.shape, case=case)
        cross_hint = (
            "cross-attention: queries from the decoder (x), keys and values from memory: "
            "cross_attn(x, memory, memory, memory_mask)."
        )
        if bool(((out - changed).abs() < 1e-7).all()):
            fail(
                "Replacing memory by other values left the output unchanged: the layer "
                "ignores the encoder's output.",
                case=case,
                hint=cross_hint,
            )
        padded = torch.where(keep, memory, 5 * randn(memory.shape, seed=seed + 5))
        expect_close(
            sub.call(pair.student, x, padded, None, memory_mask),
            out,
            "output after changing masked memory positions",
            case=case,
            hint="Masked memory positions must get zero weight: " + cross_hint,
        )

    @given(s=small_cross, seed=seeds, dtype=dtypes)
    def test_keeps_dtype_and_inputs(self, sub, ref, s, seed, dtype):
        """returns the input's dtype and leaves x, memory and the masks unchanged"""
        pair = _decoder_layer(sub, ref, s, seed=seed, dtype=dtype)
        x, memory = _decoder_inputs(s, seed, dtype)
        tgt_mask = causal(s.T)
        memory_mask = padding_from_lengths([s.S] * s.B, s.S)
        res = sub.call(pair.student, x, memory, tgt_mask, memory_mask, echo_inputs=True)
        case = _case(s, dtype, cross=True)
        expect_tensor(res["out"], "DecoderLayer output", shape=x.shape, dtype=dtype, case=case)
        if not same_inputs([x, memory, tgt_mask, memory_mask], res["args"]):
            fail("DecoderLayer changed one of its inputs in place.", case=case, hint=INPLACE_HINT)


# ------------------------------------------------------------------------- TransformerBlock


def _block_children(s, dropout: float) -> dict:
    norm = ("LayerNorm", dict(d_model=s.d_model))
    return {
        "norm1": norm,
        "attn": ("MultiHeadAttention", dict(d_model=s.d_model, n_heads=s.n_heads, dropout=dropout)),
        "norm2": norm,
        "ffn": ("FeedForward", dict(d_model=s.d_model, d_ff=s.d_ff, dropout=dropout)),
    }


def _block(sub, ref, s, *, seed, dtype=torch.float64, dropout=0.0, child_dropout=None):
    child_dropout = dropout if child_dropout is None else child_dropout
    return build_pair(
        sub,
        ref,
        "TransformerBlock",
        dtype=dtype,
        seed=seed,
        children=_block_children(s, child_dropout),
        d_model=s.d_model,
        n_heads=s.n_heads,
        d_ff=s.d_ff,
        dropout=dropout,
    )


@torch.no_grad()
def _block_with_mask_only(block, x, mask):
    """The reference block's formula with ``mask`` *replacing* the causal mask (a known bug)."""
    h = block.norm1(x)
    x = x + block.attn(h, h, h, mask)
    return x + block.ffn(block.norm2(x))


def _block_statistics(sub, pair, x, n, case) -> None:
    expect_dropout_statistics(
        sub,
        pair,
        (x,),
        replicas=n,
        case=case,
        what="the output",
        hint="The block's dropout applies to each sub-layer's output before its residual "
        "add, with the block's p: x = x + self.dropout(self.attn(h, h, h, allowed)); "
        "x = x + self.dropout(self.ffn(self.norm2(x))); not to the residual stream x.",
    )


class TestTransformerBlock:
    component = "TransformerBlock"

    @given(s=small, seed=seeds, dtype=dtypes, scale=scales, dropout=dropouts, data=st.data())
    def test_matches_reference(self, sub, ref, s, seed, dtype, scale, dropout, data):
        """matches the reference in eval() (no mask, padding and [B, T, T] masks)"""
        pair = _block(sub, ref, s, seed=seed, dtype=dtype, dropout=dropout)
        x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype, scale=scale)
        mask, mask_desc = data.draw(masks(s.B, s.T, s.T), label="mask")
        got = sub.call(pair.student, x, mask)
        expected = pair.reference(x, mask)
        full = torch.ones(s.T, s.T, dtype=torch.bool)
        candidates = [
            (
                _block_with_mask_only(pair.reference, x, full if mask is None else mask),
                ALWAYS_CAUSAL_HINT,
            )
        ]
        hint = BLOCK_HINT + (EVAL_DROPOUT_HINT if dropout else "")
        expect_close(
            got,
            expected,
            "TransformerBlock output",
            case=_case(s, dtype, dropout=str(dropout), scale=str(scale)) + f", mask={mask_desc}",
            hint=hint_for(got, candidates, hint),
        )

    @settings(max_examples=5)
    @given(s=small, seed=seeds, dropout=st.sampled_from([0.0, 0.3]))
    def test_structure(self, sub, ref, s, seed, dropout):
        """builds its own sub-layers from your classes, with its arguments, nothing shared"""
        _structure(sub, ref, "TransformerBlock", _block_children, s, seed, dropout)

    @given(s=small, seed=seeds, padded=st.booleans(), data=st.data())
    def test_causality(self, sub, ref, s, seed, padded, data):
        """always causal, with or without a mask: later positions never change earlier outputs"""
        pair = _block(sub, ref, s, seed=seed)
        t = data.draw(st.integers(0, s.T - 1), label="position")
        mask, mask_desc = None, "None"
        if padded:
            mask, lengths = _padding(data, s.B, s.T)
            mask_desc = f"padding mask [B, 1, T] with lengths {lengths}"
        x = randn((s.B, s.T, s.d_model), seed=seed)
        x2 = x.clone()
        x2[:, t + 1 :] = randn(x2[:, t + 1 :].shape, seed=seed + 7)
        case = _case(s) + f", mask={mask_desc}"
        out1 = expect_tensor(sub.call(pair.student, x, mask), "output", shape=x.shape, case=case)
        out2 = expect_tensor(sub.call(pair.student, x2, mask), "output", shape=x.shape, case=case)
        expect_prefix_unchanged(out1, out2, t, what="the input", case=case, hint=ALWAYS_CAUSAL_HINT)

    @settings(max_examples=6)
    @given(s=small, seed=seeds)
    def test_dropout_only_in_training(self, sub, ref, s, seed):
        """its own residual dropout is the identity in eval() and active in train()"""
        # the oracle sub-layers get no dropout: any randomness in train() is the block's own
        pair = _block(sub, ref, s, seed=seed, dropout=0.5, child_dropout=0.0)
        x = randn((s.B, max(s.T, 4), s.d_model), seed=seed)
        case = _case(s, dropout=0.5).replace(f"T={s.T}", f"T={x.shape[1]}")
        expect_close(
            sub.call(pair.student, x),
            pair.reference(x),
            "output in eval() with dropout=0.5",
            case=case,
            hint=EVAL_DROPOUT_HINT.strip(),
        )
        sub.configure(pair.student, train=True)
        got = expect_tensor(
            sub.call(pair.student, x), "output in train()", case=case, shape=x.shape
        )
        if torch.allclose(got, pair.reference(x)):
            fail(
                "With dropout=0.5 in train() mode the output equals the eval() output.",
                case=case + " (sub-layers without dropout of their own)",
                hint="The block applies its own dropout to each sub-layer's output before the "
                "residual add: x = x + self.dropout(self.attn(h, h, h, allowed)), with "
                "self.dropout = nn.Dropout(dropout).",
            )

    @settings(max_examples=4)
    @given(s=wide_cross, seed=seeds, p=st.sampled_from([0.2, 0.5]))
    def test_dropout_placement(self, sub, ref, s, seed, p):
        """in train(), its own dropout acts on each sub-layer's output, with the block's p"""
        s = Sizes(2, 4, 4, s.d_model, s.n_heads, s.d_ff)  # 32+ entries of each draw compared
        pair = _block(sub, ref, s, seed=seed, dropout=p, child_dropout=0.0)
        sub.configure(pair.student, train=True)
        n = 1000
        x = randn((s.B, s.T, s.d_model), seed=seed).repeat(n, 1, 1)
        case = _case(s, dropout=p) + f", train(), x repeated {n} times"
        case += " (sub-layers without dropout of their own)"
        inner = [
            m
            for part in (pair.reference.attn, pair.reference.ffn)
            for m in part.modules()
            if isinstance(m, torch.nn.Dropout)
        ]
        for m in inner:  # like the oracles: the sub-layers' own dropout off (restored below)
            m.p = 0.0
        try:
            _block_statistics(sub, pair, x, n, case)
        finally:
            for m in inner:
                m.p = p

    @settings(max_examples=4)
    @given(s=small, seed=seeds, padded=st.booleans())
    def test_runs_on_any_device(self, sub, ref, s, seed, padded):
        """runs on the device of its input (the meta device): the causal mask is made there"""
        pair = _block(sub, ref, s, seed=seed)
        x = randn((s.B, s.T, s.d_model), seed=seed)
        mask = padding_from_lengths([s.T] * s.B, s.T) if padded else None
        expect_on_meta(
            sub,
            pair.student,
            (x, mask),
            shape=x.shape,
            dtype=torch.float64,
            case=_case(s) + f", mask={'padding [B, 1, T]' if padded else 'None'}",
            what="TransformerBlock",
        )

    @given(s=small, seed=seeds, dtype=dtypes, padded=st.booleans())
    def test_keeps_dtype_and_inputs(self, sub, ref, s, seed, dtype, padded):
        """returns the input's dtype and leaves x and the mask unchanged"""
        pair = _block(sub, ref, s, seed=seed, dtype=dtype)
        x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype)
        mask = padding_from_lengths([s.T] * s.B, s.T) if padded else None
        res = sub.call(pair.student, x, mask, echo_inputs=True)
        case = _case(s, dtype) + f", mask={'padding [B, 1, T]' if padded else 'None'}"
        expect_tensor(res["out"], "TransformerBlock output", shape=x.shape, dtype=dtype, case=case)
        if not same_inputs([x, mask], res["args"]):
            fail(
                "TransformerBlock changed one of its inputs in place.",
                case=case,
                hint=INPLACE_HINT,
            )
