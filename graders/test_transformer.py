"""Graders for transformer.py: the encoder and decoder stacks, the encoder-decoder Transformer,
the GPT, and greedy decoding.

Each class grades one API name; each test is one rubric check whose docstring's first line is
the property in plain words. A model is graded on its own wiring: its graded sub-modules
(layers, embeddings, positional encodings, stacks, norms) are trusted oracles with the same
weights, and ``greedy_decode`` runs on engine specimens and oracle models, never on the
learner's own Transformer.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_grade.grading.compare import (
    case_str,
    dtype_name,
    expect_close,
    expect_prefix_unchanged,
    expect_rows_unchanged,
    expect_tensor,
    fail,
    hint_for,
    tolerance,
)
from llm_grade.grading.outcomes import LearnerError, NotImplementedYet, WorkerFailure
from llm_grade.grading.strategies import (
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
    expect_gradients,
    expect_on_meta,
    expect_own_structure,
    expect_rejects,
    raises_value_error,
    randomize_,
    reference_of,
    started,
)
from llm_grade.grading.training import learns_one_batch
from llm_grade.oracles.transformer import Transformer as TrustedTransformer
from llm_grade.sandbox.specimens import ScriptedSeq2Seq

# isort: split
# helpers beside this file: graders/ is on sys.path (pytest inserts a test file's folder)
from decoding_support import (
    SRC_MASK_HINT,
    _expect_decoded,
    _pick_eos,
    _run_scripted,
    scripted,
)
from transformer_support import (
    AUTOCAST_HINT,
    CAUSAL_DECODE_HINT,
    DECODE_HINT,
    DECODER_HINT,
    ENCODE_HINT,
    ENCODER_HINT,
    EVAL_DROPOUT_HINT,
    GPT_HINT,
    MEMORY_MASK_HINT,
    OWN_LAYER_HINT,
    REVERSED_HINT,
    _change_tokens,
    _decode_not_causal,
    _decoder,
    _encoder,
    _expect_own_layers,
    _first_layer_only,
    _gpt,
    _gpt_children,
    _gpt_without_final_norm,
    _layers_reversed,
    _model_case,
    _stack_case,
    _tokens,
    _transformer,
    _transformer_children,
    gpts,
    n_layers_,
    seq2seq,
    wide_gpts,
)

# ----------------------------------------------------------------------------- Encoder


class TestEncoder:
    component = "Encoder"

    @given(
        s=sizes(max_heads=2),
        n_layers=n_layers_,
        seed=seeds,
        dtype=dtypes,
        scale=scales,
        dropout=st.sampled_from([0.0, 0.5]),
        data=st.data(),
    )
    def test_matches_reference(self, sub, ref, s, n_layers, seed, dtype, scale, dropout, data):
        """matches the reference in eval() (1 or 2 layers, every mask shape)"""
        pair = _encoder(sub, ref, s, n_layers, seed=seed, dtype=dtype, dropout=dropout)
        x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype, scale=scale)
        mask, mask_desc = data.draw(masks(s.B, s.T, s.T), label="mask")
        got = sub.call(pair.student, x, mask)
        candidates = [
            (_first_layer_only(pair.reference, x, mask), OWN_LAYER_HINT),
            (_layers_reversed(pair.reference, x, mask) if n_layers > 1 else None, REVERSED_HINT),
        ]
        if mask is not None:
            candidates.append(
                (
                    pair.reference(x, None),
                    "The mask is ignored: pass it to every layer, x = layer(x, mask).",
                )
            )
        hint = ENCODER_HINT + (EVAL_DROPOUT_HINT if dropout else "")
        expect_close(
            got,
            pair.reference(x, mask),
            "Encoder output",
            case=_stack_case(s, n_layers, dtype, dropout=str(dropout), scale=str(scale))
            + f", mask={mask_desc}",
            hint=hint_for(got, candidates, hint),
        )

    @settings(max_examples=6)
    @given(s=sizes(max_heads=2), n_layers=st.integers(2, 3), seed=seeds)
    def test_independent_layers(self, sub, ref, s, n_layers, seed):
        """builds n_layers layers, each its own module with its own weights"""
        _expect_own_layers(sub, ref, "Encoder", s, n_layers, seed)

    @given(s=sizes(max_heads=2), n_layers=n_layers_, seed=seeds, data=st.data())
    def test_padding_invariance(self, sub, ref, s, n_layers, seed, data):
        """with a [B, 1, T] padding mask, changing padded positions changes no other output"""
        pair = _encoder(sub, ref, s, n_layers, seed=seed)
        lengths = data.draw(st.lists(st.integers(1, s.T), min_size=s.B, max_size=s.B))
        mask = padding_from_lengths(lengths, s.T)
        keep = mask.squeeze(1)  # (B, T)
        x = randn((s.B, s.T, s.d_model), seed=seed)
        x2 = torch.where(keep.unsqueeze(-1), x, 5 * randn(x.shape, seed=seed + 1))
        case = _stack_case(s, n_layers) + f", padding mask [B, 1, T] with lengths {lengths}"
        out1 = expect_tensor(sub.call(pair.student, x, mask), "output", shape=x.shape, case=case)
        out2 = expect_tensor(sub.call(pair.student, x2, mask), "output", shape=x.shape, case=case)
        expect_rows_unchanged(
            out1,
            out2,
            keep,
            what="the vectors at padded positions",
            case=case,
            hint="Padded positions leak into the others: pass the mask to every layer, "
            "x = layer(x, mask).",
        )

    @settings(max_examples=5)
    @given(n_layers=st.sampled_from([0, -1]), dropout=st.sampled_from([0.0, 0.1]))
    def test_rejects_bad_arguments(self, sub, n_layers, dropout):
        """raises ValueError naming n_layers when it is not positive"""
        valid = dict(n_layers=1, d_model=4, n_heads=2, d_ff=8, dropout=dropout)
        expect_rejects(sub, "Encoder", valid, dict(n_layers=n_layers), (torch.zeros(1, 2, 4),))


# ----------------------------------------------------------------------------- Decoder


class TestDecoder:
    component = "Decoder"

    @given(
        s=sizes(cross=True, max_heads=2),
        n_layers=n_layers_,
        seed=seeds,
        dtype=dtypes,
        scale=scales,
        dropout=st.sampled_from([0.0, 0.5]),
        data=st.data(),
    )
    def test_matches_reference(self, sub, ref, s, n_layers, seed, dtype, scale, dropout, data):
        """matches the reference in eval() (1 or 2 layers, tgt_mask and memory_mask)"""
        pair = _decoder(sub, ref, s, n_layers, seed=seed, dtype=dtype, dropout=dropout)
        x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype, scale=scale)
        memory = randn((s.B, s.S, s.d_model), seed=seed + 1, dtype=dtype, scale=scale)
        tgt_mask, tgt_desc = data.draw(masks(s.B, s.T, s.T), label="tgt_mask")
        memory_mask, mem_desc = data.draw(
            masks(s.B, s.T, s.S, kinds=("none", "padding", "random")), label="memory_mask"
        )
        got = sub.call(pair.student, x, memory, tgt_mask, memory_mask)
        r = pair.reference
        candidates = [
            (_first_layer_only(r, x, memory, tgt_mask, memory_mask), OWN_LAYER_HINT),
            (
                _layers_reversed(r, x, memory, tgt_mask, memory_mask) if n_layers > 1 else None,
                REVERSED_HINT,
            ),
        ]
        if tgt_mask is not None:
            candidates.append(
                (
                    r(x, memory, None, memory_mask),
                    "tgt_mask is ignored: pass it to every "
                    "layer, x = layer(x, memory, tgt_mask, memory_mask).",
                )
            )
        if memory_mask is not None:
            candidates.append(
                (
                    r(x, memory, tgt_mask, None),
                    "memory_mask is ignored: pass it to every "
                    "layer, x = layer(x, memory, tgt_mask, memory_mask).",
                )
            )
        hint = DECODER_HINT + (EVAL_DROPOUT_HINT if dropout else "")
        case = _stack_case(s, n_layers, dtype, cross=True, dropout=str(dropout), scale=str(scale))
        expect_close(
            got,
            r(x, memory, tgt_mask, memory_mask),
            "Decoder output",
            case=f"{case}, tgt_mask={tgt_desc}, memory_mask={mem_desc}",
            hint=hint_for(got, candidates, hint),
        )

    @settings(max_examples=6)
    @given(s=sizes(max_heads=2), n_layers=st.integers(2, 3), seed=seeds)
    def test_independent_layers(self, sub, ref, s, n_layers, seed):
        """builds n_layers layers, each its own module with its own weights"""
        _expect_own_layers(sub, ref, "Decoder", s, n_layers, seed)

    @settings(max_examples=5)
    @given(n_layers=st.sampled_from([0, -1]), dropout=st.sampled_from([0.0, 0.1]))
    def test_rejects_bad_arguments(self, sub, n_layers, dropout):
        """raises ValueError naming n_layers when it is not positive"""
        valid = dict(n_layers=1, d_model=4, n_heads=2, d_ff=8, dropout=dropout)
        expect_rejects(sub, "Decoder", valid, dict(n_layers=n_layers), (torch.zeros(1, 2, 4),) * 2)


# ----------------------------------------------------------------------------- Transformer


class TestTransformer:
    component = "Transformer"

    @given(
        m=seq2seq(),
        seed=seeds,
        dtype=dtypes,
        dropout=st.sampled_from([0.1, 0.5]),
        src_padded=st.booleans(),
        tgt_padded=st.booleans(),
        data=st.data(),
    )
    def test_matches_reference(
        self, sub, ref, m, seed, dtype, dropout, src_padded, tgt_padded, data
    ):
        """encode, decode and forward match the reference in eval() (with and without masks)"""
        s, kw = m
        pair = _transformer(sub, ref, kw, seed=seed, dtype=dtype, dropout=dropout)
        r = pair.reference
        src, src_mask, src_desc = _tokens(data, kw["src_vocab_size"], s.B, s.S, src_padded, "src")
        tgt, tgt_mask, tgt_desc = _tokens(data, kw["tgt_vocab_size"], s.B, s.T, tgt_padded, "tgt")
        case = _model_case(s, kw, dtype, dropout=str(dropout))
        case += f"\n  src_mask={src_desc}, tgt_mask={tgt_desc}\n  src={src.tolist()}"
        case += f"\n  tgt={tgt.tolist()}"
        eval_hint = EVAL_DROPOUT_HINT
        with torch.no_grad():
            memory = r.encode(src, src_mask)
            states = r.decode(tgt, memory, tgt_mask, src_mask)
            logits = r(src, tgt, src_mask, tgt_mask)
            no_memory_mask = r.out_proj(r.decode(tgt, memory, tgt_mask, None))
        got = sub.call(pair.student, src, src_mask, method="encode")
        expect_close(got, memory, "encode(src, src_mask)", case=case, hint=ENCODE_HINT + eval_hint)
        got = sub.call(pair.student, tgt, memory, tgt_mask, src_mask, method="decode")
        candidates = [(_decode_not_causal(r, tgt, memory, tgt_mask, src_mask), CAUSAL_DECODE_HINT)]
        expect_close(
            got,
            states,
            "decode(tgt, memory, tgt_mask, memory_mask)",
            case=case,
            hint=hint_for(got, candidates, DECODE_HINT + eval_hint),
        )
        got = sub.call(pair.student, src, tgt, src_mask, tgt_mask)
        candidates = [(no_memory_mask, MEMORY_MASK_HINT)] if src_mask is not None else []
        expect_close(
            got,
            logits,
            "forward(src, tgt, src_mask, tgt_mask)",
            case=case,
            hint=hint_for(got, candidates, MEMORY_MASK_HINT + eval_hint),
        )

    @settings(max_examples=2)
    @given(seed=seeds, n_layers=st.integers(1, 2), n_heads=st.sampled_from([1, 2]))
    def test_learns_one_batch(self, sub, ref, seed, n_layers, n_heads):
        """trains: AdamW on one fixed batch lowers the loss, and every weight gets a gradient

        Your whole model, your own code all the way down (llm_grade/grading/training.py)."""
        sizes = dict(src_vocab_size=16, tgt_vocab_size=12, d_model=16, d_ff=32, max_len=16)
        learns_one_batch(sub, ref, "Transformer", sizes, n_heads, n_layers, seed)

    @settings(max_examples=5)
    @given(m=seq2seq(), seed=seeds, same_vocab=st.booleans(), dropout=st.sampled_from([0.0, 0.3]))
    def test_structure(self, sub, ref, m, seed, same_vocab, dropout):
        """builds its own embeddings, encoder, decoder and out_proj, with its arguments"""
        s, kw = m
        kw = {**kw, "n_layers": 2}  # two layers: a layer repeated in the stack shows
        if same_vocab:  # then sharing src_embed, tgt_embed and out_proj would load
            kw = {**kw, "tgt_vocab_size": kw["src_vocab_size"]}
        expect_own_structure(
            sub,
            ref,
            "Transformer",
            {**kw, "dropout": dropout},
            children=_transformer_children(kw, dropout),
            case=case_str(**kw, dropout=dropout),
            probe=(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long)),
            seed=seed,
        )

    @given(m=seq2seq(), seed=seeds, tgt_padded=st.booleans(), data=st.data())
    def test_decode_is_always_causal(self, sub, ref, m, seed, tgt_padded, data):
        """decode and forward are causal even with tgt_mask=None (later tokens change nothing)"""
        s, kw = m
        pair = _transformer(sub, ref, kw, seed=seed)
        t = data.draw(st.integers(0, s.T - 1), label="position")
        src, _, _ = _tokens(data, kw["src_vocab_size"], s.B, s.S, False, "src")
        tgt, tgt_mask, tgt_desc = _tokens(data, kw["tgt_vocab_size"], s.B, s.T, tgt_padded, "tgt")
        later = (torch.arange(s.T) > t).expand(s.B, s.T)
        tgt2 = _change_tokens(tgt, later, kw["tgt_vocab_size"], seed)
        with torch.no_grad():
            memory = pair.reference.encode(src)
        case = _model_case(s, kw) + f", tgt_mask={tgt_desc}\n  tgt={tgt.tolist()}"
        case += f"\n  changed tgt={tgt2.tolist()}"
        for what, args in (
            ("decode", lambda y: (y, memory, tgt_mask)),
            ("forward", lambda y: (src, y, None, tgt_mask)),
        ):
            method = "decode" if what == "decode" else None
            outs = [
                expect_tensor(
                    sub.call(pair.student, *args(y), method=method), f"{what} output", case=case
                )
                for y in (tgt, tgt2)
            ]
            expect_prefix_unchanged(
                *outs,
                t,
                what=f"target tokens (in {what})",
                case=case,
                hint=CAUSAL_DECODE_HINT,
            )

    @settings(max_examples=4)
    @given(m=seq2seq(), seed=seeds, tgt_padded=st.booleans(), data=st.data())
    def test_runs_on_any_device(self, sub, ref, m, seed, tgt_padded, data):
        """decode runs on the device of its inputs (meta): its causal mask is made there"""
        s, kw = m
        kw = {**kw, "n_layers": 1}  # the wiring is the same for any depth
        pair = _transformer(sub, ref, kw, seed=seed)
        src, _, _ = _tokens(data, kw["src_vocab_size"], s.B, s.S, False, "src")
        tgt, tgt_mask, tgt_desc = _tokens(data, kw["tgt_vocab_size"], s.B, s.T, tgt_padded, "tgt")
        with torch.no_grad():
            memory = pair.reference.encode(src)
        expect_on_meta(
            sub,
            pair.student,
            (tgt, memory, tgt_mask),
            method="decode",
            shape=(s.B, s.T, s.d_model),
            dtype=torch.float64,
            case=_model_case(s, kw) + f", tgt_mask={tgt_desc}",
            what="Transformer.decode",
        )

    @given(m=seq2seq(), seed=seeds, data=st.data())
    def test_src_padding_invariance(self, sub, ref, m, seed, data):
        """with src_mask, changing padded source tokens leaves the logits unchanged"""
        s, kw = m
        pair = _transformer(sub, ref, kw, seed=seed)
        src, src_mask, src_desc = _tokens(data, kw["src_vocab_size"], s.B, s.S, True, "src")
        tgt, _, _ = _tokens(data, kw["tgt_vocab_size"], s.B, s.T, False, "tgt")
        src2 = _change_tokens(src, ~src_mask.squeeze(1), kw["src_vocab_size"], seed)
        case = _model_case(s, kw) + f", src_mask={src_desc}, tgt_mask=None"
        case += f"\n  src={src.tolist()}\n  changed src={src2.tolist()}"
        out = expect_tensor(
            sub.call(pair.student, src, tgt, src_mask),
            "logits",
            shape=(s.B, s.T, kw["tgt_vocab_size"]),
            case=case,
        )
        expect_close(
            sub.call(pair.student, src2, tgt, src_mask),
            out,
            "logits after changing padded source tokens",
            case=case,
            hint=MEMORY_MASK_HINT,
        )

    @given(m=seq2seq(), seed=seeds, src_padded=st.booleans(), data=st.data())
    def test_forward_is_decode_of_encode(self, sub, ref, m, seed, src_padded, data):
        """forward == out_proj(decode(tgt, encode(src, src_mask), tgt_mask, src_mask))"""
        s, kw = m
        pair = _transformer(sub, ref, kw, seed=seed)
        src, src_mask, src_desc = _tokens(data, kw["src_vocab_size"], s.B, s.S, src_padded, "src")
        tgt, tgt_mask, tgt_desc = _tokens(data, kw["tgt_vocab_size"], s.B, s.T, True, "tgt")
        case = _model_case(s, kw) + f", src_mask={src_desc}, tgt_mask={tgt_desc}"
        memory = expect_tensor(
            sub.call(pair.student, src, src_mask, method="encode"),
            "encode(src, src_mask)",
            shape=(s.B, s.S, s.d_model),
            case=case,
            hint=ENCODE_HINT,
        )
        states = expect_tensor(
            sub.call(pair.student, tgt, memory, tgt_mask, src_mask, method="decode"),
            "decode(tgt, memory, tgt_mask, src_mask)",
            shape=(s.B, s.T, s.d_model),
            case=case,
            hint=DECODE_HINT,
        )
        composed = expect_tensor(
            sub.call(pair.student, states, method="out_proj"),
            "out_proj(decode(...))",
            shape=(s.B, s.T, kw["tgt_vocab_size"]),
            case=case,
        )
        expect_close(
            sub.call(pair.student, src, tgt, src_mask, tgt_mask),
            composed,
            "forward(src, tgt, src_mask, tgt_mask) compared with out_proj(decode(tgt, "
            "encode(src, src_mask), tgt_mask, src_mask))",
            case=case,
            hint=MEMORY_MASK_HINT,
        )

    @settings(max_examples=5)
    @given(bad=st.sampled_from([("n_layers", 0), ("n_layers", -1), ("max_len", 0)]))
    def test_rejects_bad_arguments(self, sub, bad):
        """raises ValueError naming the argument when n_layers or max_len is not positive"""
        valid = dict(
            src_vocab_size=5,
            tgt_vocab_size=6,
            d_model=4,
            n_heads=2,
            n_layers=1,
            d_ff=8,
            max_len=8,
        )
        expect_rejects(
            sub, "Transformer", valid, dict([bad]), (torch.zeros(1, 2, dtype=torch.long),) * 2
        )


# ----------------------------------------------------------------------------- GPT


class TestGPT:
    component = "GPT"

    @given(
        m=gpts(),
        seed=seeds,
        dtype=dtypes,
        dropout=st.sampled_from([0.0, 0.5]),
        padded=st.booleans(),
        data=st.data(),
    )
    def test_matches_reference(self, sub, ref, m, seed, dtype, dropout, padded, data):
        """matches the reference in eval() (with and without a padding mask)"""
        s, kw = m
        pair = _gpt(sub, ref, kw, seed=seed, dtype=dtype, dropout=dropout)
        tokens, mask, mask_desc = _tokens(data, kw["vocab_size"], s.B, s.T, padded, "tokens")
        got = sub.call(pair.student, tokens, mask)
        r = pair.reference
        with torch.no_grad():
            expected = r(tokens, mask)
            candidates = [
                (
                    _gpt_without_final_norm(r, tokens, mask),
                    "The final norm is missing: logits = lm_head(norm(x)) after the last block.",
                )
            ]
            if mask is not None:
                candidates.append(
                    (
                        r(tokens, None),
                        "The mask is ignored: pass it to every block, x = block(x, mask).",
                    )
                )
        case = case_str(B=s.B, T=s.T, **kw, dtype=dtype, dropout=str(dropout))
        case += f", mask={mask_desc}\n  tokens={tokens.tolist()}"
        expect_close(
            got,
            expected,
            "GPT logits",
            case=case,
            hint=hint_for(got, candidates, GPT_HINT + (EVAL_DROPOUT_HINT if dropout else "")),
        )

    @given(
        m=wide_gpts(),
        seed=seeds,
        precision=st.sampled_from([torch.float16, torch.bfloat16]),
        padded=st.booleans(),
        data=st.data(),
    )
    def test_mixed_precision(self, sub, ref, m, seed, precision, padded, data):
        """the whole model, all of it your own code, runs under torch.autocast and stays
        close to its own float32 result"""
        # It is graded only once every component is implemented, and only where the model
        # runs in float32: a component that crashes or gives NaN costs its own checks.
        # end to end on purpose: no trusted oracle inside, and the model is compared with
        # itself, so a wrong (but float32-consistent) component costs only its own checks
        sub.use_oracles([])
        s, kw = m
        pair = build_pair(sub, ref, "GPT", dtype=torch.float32, seed=seed, **kw)
        tokens, mask, mask_desc = _tokens(data, kw["vocab_size"], s.B, s.T, padded, "tokens")
        case = case_str(B=s.B, T=s.T, **kw, autocast=precision)
        case += f", mask={mask_desc}\n  tokens={tokens.tolist()}"
        sub.flush()  # the model must build and load the weights: that is this check's too
        try:
            full = sub.call(pair.student, tokens, mask)
        except (LearnerError, WorkerFailure):
            return  # the model does not run in float32: other checks say why, not this one
        if type(full) is not torch.Tensor or not bool(full.isfinite().all()):
            return  # likewise: what autocast changes can only be judged on a working model
        low = sub.call(pair.student, tokens, mask, autocast=precision)
        low = expect_tensor(
            low, "GPT logits under autocast", case=case, shape=full.shape, hint=AUTOCAST_HINT
        )
        if low.dtype not in (precision, torch.float32):
            fail(
                f"Under autocast({dtype_name(precision)}) the logits came back as "
                f"{dtype_name(low.dtype)}.",
                case=case,
                hint=AUTOCAST_HINT,
            )
        tol = tolerance(precision)
        expect_close(
            low.float(),
            full,
            f"GPT logits under autocast({dtype_name(precision)}) vs your float32 logits",
            case=case,
            atol=tol["atol"],
            rtol=tol["rtol"],
            hint=AUTOCAST_HINT,
        )

    @settings(max_examples=2)
    @given(seed=seeds, n_layers=st.integers(1, 2), n_heads=st.sampled_from([1, 2]))
    def test_learns_one_batch(self, sub, ref, seed, n_layers, n_heads):
        """trains: AdamW on one fixed batch lowers the loss, and every weight gets a gradient

        Your whole model, your own code all the way down (llm_grade/grading/training.py)."""
        sizes = dict(vocab_size=16, d_model=16, d_ff=32, max_len=16)
        learns_one_batch(sub, ref, "GPT", sizes, n_heads, n_layers, seed)

    @settings(max_examples=5)
    @given(m=gpts(), seed=seeds, dropout=st.sampled_from([0.0, 0.3]))
    def test_structure(self, sub, ref, m, seed, dropout):
        """builds its own embeddings, blocks, norm and lm_head, with its arguments (no tying)"""
        s, kw = m
        kw = {**kw, "n_layers": 2}  # two blocks: a block repeated in the stack shows
        expect_own_structure(
            sub,
            ref,
            "GPT",
            {**kw, "dropout": dropout},
            children=_gpt_children(kw, dropout),
            case=case_str(**kw, dropout=dropout),
            probe=(torch.zeros(1, 1, dtype=torch.long),),
            seed=seed,
        )

    @given(m=gpts(), seed=seeds, padded=st.booleans(), data=st.data())
    def test_causality(self, sub, ref, m, seed, padded, data):
        """later tokens never change earlier logits (with or without a padding mask)"""
        s, kw = m
        pair = _gpt(sub, ref, kw, seed=seed)
        t = data.draw(st.integers(0, s.T - 1), label="position")
        tokens, mask, mask_desc = _tokens(data, kw["vocab_size"], s.B, s.T, padded, "tokens")
        later = (torch.arange(s.T) > t).expand(s.B, s.T)
        tokens2 = _change_tokens(tokens, later, kw["vocab_size"], seed)
        case = case_str(B=s.B, T=s.T, **kw) + f", mask={mask_desc}"
        case += f"\n  tokens={tokens.tolist()}\n  changed tokens={tokens2.tolist()}"
        outs = [
            expect_tensor(sub.call(pair.student, x, mask), "logits", case=case)
            for x in (tokens, tokens2)
        ]
        expect_prefix_unchanged(
            *outs,
            t,
            what="tokens",
            case=case,
            hint="Every block is causal and positions only mix inside the blocks: embed, "
            "run the blocks, normalise and project position by position. " + GPT_HINT,
        )

    @given(m=gpts(), seed=seeds, mask_seed=seeds)
    def test_padding_invariance(self, sub, ref, m, seed, mask_seed):
        """with a [B, 1, T] padding mask, tokens at padded positions change no other logits"""
        s, kw = m
        pair = _gpt(sub, ref, kw, seed=seed)
        g = torch.Generator().manual_seed(mask_seed)
        keep = torch.rand(s.B, s.T, generator=g) < 0.6
        keep[:, 0] = True  # every position keeps a key it may attend to
        mask = keep.unsqueeze(1)  # (B, 1, T)
        tokens = torch.randint(0, kw["vocab_size"], (s.B, s.T), generator=g)
        tokens2 = _change_tokens(tokens, ~keep, kw["vocab_size"], seed)
        case = case_str(B=s.B, T=s.T, **kw) + f", mask [B, 1, T]={keep.int().tolist()}"
        case += f"\n  tokens={tokens.tolist()}\n  changed tokens={tokens2.tolist()}"
        outs = [
            expect_tensor(sub.call(pair.student, x, mask), "logits", case=case)
            for x in (tokens, tokens2)
        ]
        expect_rows_unchanged(
            *outs,
            keep,
            what="tokens at padded positions",
            case=case,
            hint="Padded tokens leak into the others: pass the mask to every block, "
            "x = block(x, mask).",
        )

    @given(m=gpts(), seed=seeds)
    def test_gradients_reach_every_parameter(self, sub, ref, m, seed):
        """gradients reach the embeddings, every block, the final norm and lm_head"""
        s, kw = m
        pair = _gpt(sub, ref, kw, seed=seed)
        tokens = torch.randint(
            0, kw["vocab_size"], (s.B, s.T), generator=torch.Generator().manual_seed(seed)
        )
        expect_gradients(sub, pair, tokens, None, case=case_str(B=s.B, T=s.T, **kw))

    @settings(max_examples=6)
    @given(m=gpts(), extra=st.integers(1, 3), seed=seeds)
    def test_rejects_too_long(self, sub, ref, m, extra, seed):
        """raises ValueError for sequences longer than max_len"""
        s, kw = m
        pair = _gpt(sub, ref, kw, seed=seed)
        T = kw["max_len"] + extra
        tokens = torch.randint(
            0, kw["vocab_size"], (s.B, T), generator=torch.Generator().manual_seed(seed)
        )
        case = case_str(B=s.B, T=T, **kw)
        hint = (
            "Positions only go up to max_len - 1: let pos_embed raise ValueError for T > "
            "max_len (or check T yourself and raise ValueError naming max_len)."
        )
        try:
            sub.call(pair.student, tokens)
        except NotImplementedYet:
            raise
        except LearnerError as exc:
            if exc.exc_type == "ValueError":
                return
            fail(
                f"Expected ValueError, got {exc.exc_type}: {exc.exc_message}", case=case, hint=hint
            )
        fail(
            f"GPT(max_len={kw['max_len']}) accepted a sequence of length {T}.", case=case, hint=hint
        )

    @settings(max_examples=5)
    @given(bad=st.sampled_from([("n_layers", 0), ("n_layers", -1), ("max_len", 0)]))
    def test_rejects_bad_arguments(self, sub, bad):
        """raises ValueError naming the argument when n_layers or max_len is not positive"""
        valid = dict(vocab_size=5, d_model=4, n_heads=2, n_layers=1, d_ff=8, max_len=8)
        expect_rejects(sub, "GPT", valid, dict([bad]), (torch.zeros(1, 2, dtype=torch.long),))


# ----------------------------------------------------------------------------- greedy_decode


class TestGreedyDecode:
    component = "greedy_decode"

    @given(case=scripted())
    def test_follows_the_model(self, sub, ref, case):
        """appends the argmax of the last position's logits, from bos until eos or max_len"""
        spec, call = case
        note = (
            "a scripted seq2seq (next token: a function of the whole prefix and of src); row b "
            f"emits eos once the prefix has eos_after[b] tokens, eos_after={spec['eos_after']} "
            "(-1: never)"
        )
        _run_scripted(sub, ref, spec, call, note=note)

    @given(case=scripted(eos_from_model=False), data=st.data())
    def test_stops_and_pads_with_eos(self, sub, ref, case, data):
        """stops as soon as every row has produced eos; finished rows are padded with eos"""
        spec, call = case
        decode = reference_of(ref, "greedy_decode")
        free = decode(ScriptedSeq2Seq(**spec), **{**call, "eos_id": -1})  # never stops early
        call = {**call, "eos_id": _pick_eos(data, free, call["bos_id"], spec["vocab"])}
        note = (
            "a scripted seq2seq (next token: a function of the whole prefix and of src) that "
            "goes on after eos unless told otherwise; its output without eos would be "
            f"{free.tolist()}"
        )
        _run_scripted(sub, ref, spec, call, note=note)

    @given(
        s=sizes(cross=True, max_heads=2).filter(lambda s: s.d_model % 2 == 0),
        vocab=st.integers(4, 12),
        max_len=st.integers(2, 8),
        padded=st.booleans(),
        seed=seeds,
        data=st.data(),
    )
    def test_decodes_a_transformer(self, sub, ref, s, vocab, max_len, padded, seed, data):
        """decodes a real Transformer (in eval()) exactly like the reference, with src_mask"""
        kw = dict(
            src_vocab_size=vocab,
            tgt_vocab_size=vocab,
            d_model=s.d_model,
            n_heads=s.n_heads,
            n_layers=1,
            d_ff=s.d_ff,
            max_len=max_len + s.S,
        )
        weights = randomize_(reference_of(ref, "Transformer")(**kw), seed).double().state_dict()
        trusted = TrustedTransformer(**kw).double().eval()
        trusted.load_state_dict(weights)
        model = sub.oracle("Transformer", **kw)
        sub.configure(model, dtype=torch.float64, train=False)
        sub.load_state_dict(model, weights)
        src, src_mask, src_desc = _tokens(data, vocab, s.B, s.S, padded, "src")
        bos_id = data.draw(st.integers(0, vocab - 1), label="bos_id")
        decode = reference_of(ref, "greedy_decode")
        # eos: a token the model really produces, so rows finish at different steps
        free = decode(trusted, src, max_len, bos_id, -1, src_mask)  # never stops early
        eos_id = _pick_eos(data, free, bos_id, vocab)
        expected = decode(trusted, src, max_len, bos_id, eos_id, src_mask)
        got = sub.call("greedy_decode", model, src, max_len, bos_id, eos_id, src_mask)
        candidates = ()
        if src_mask is not None:
            no_mask = decode(trusted, src, max_len, bos_id, eos_id, None)
            candidates = ((no_mask, SRC_MASK_HINT),)
        case = case_str(B=s.B, S=s.S, max_len=max_len, bos_id=bos_id, eos_id=eos_id)
        case += f", src_mask={src_desc}\n  model: Transformer({case_str(**kw)}) in eval(), "
        case += "random weights"
        case += f"\n  src={src.tolist()}"
        _expect_decoded(
            got,
            expected,
            case=case,
            max_len=max_len,
            bos_id=bos_id,
            eos_id=eos_id,
            candidates=candidates,
        )

    @settings(max_examples=4)
    @given(case=scripted(), max_len=st.sampled_from([0, -1]))
    def test_rejects_bad_max_len(self, sub, case, max_len):
        """raises ValueError naming max_len when it is not positive"""
        spec, call = case
        model = sub.specimen("ScriptedSeq2Seq", **spec)
        args = (call["src"], max_len, call["bos_id"], call["eos_id"], call["src_mask"])
        started(lambda: sub.call("greedy_decode", model, call["src"], 1, *args[2:]))
        raises_value_error(
            lambda: sub.call("greedy_decode", model, *args),
            names=("max_len",),
            what=f"greedy_decode(..., max_len={max_len})",
            case=f"max_len={max_len}",
            hint="Check max_len first: raise ValueError(f'max_len must be positive, got "
            "{max_len}') before decoding anything.",
        )

    @settings(max_examples=6)
    @given(case=scripted(), train=st.booleans())
    def test_keeps_the_mode(self, sub, ref, case, train):
        """leaves the model in the mode the caller chose (it never calls eval() or train())"""
        spec, call = case
        model = sub.specimen("ScriptedSeq2Seq", **spec)
        sub.configure(model, train=train)
        args = (call["src"], call["max_len"], call["bos_id"], call["eos_id"], call["src_mask"])
        sub.call("greedy_decode", model, *args)
        state = sub.call(model, method="report")
        if not (isinstance(state, dict) and type(state.get("training")) is bool):
            fail("The model's state could not be read after greedy_decode.", case="")
        if state["training"] != train:
            fail(
                f"The model was in {'train' if train else 'eval'}() mode before greedy_decode "
                f"and in {'train' if state['training'] else 'eval'}() mode after it.",
                case=f"model in {'train' if train else 'eval'}() mode",
                hint="Don't call model.eval() or model.train() inside greedy_decode: the caller "
                "chooses the mode (API.md); only wrap the loop in torch.no_grad().",
            )

    @settings(max_examples=6)
    @given(case=scripted())
    def test_runs_without_gradients(self, sub, ref, case):
        """runs the model without gradients (torch.no_grad), even when the caller has them on"""
        spec, call = case
        model = sub.specimen("ScriptedSeq2Seq", **spec)
        args = (call["src"], call["max_len"], call["bos_id"], call["eos_id"], call["src_mask"])
        sub.call("greedy_decode", model, *args, grad=True)
        state = sub.call(model, method="report")
        if not (isinstance(state, dict) and type(state.get("decode_with_grad")) is int):
            fail("The model's state could not be read after greedy_decode.", case="")
        if state["decode_with_grad"]:
            fail(
                f"greedy_decode called model.decode {state['decode_with_grad']} time(s) with "
                "gradients enabled.",
                case="called with torch.is_grad_enabled() == True",
                hint="Decoding needs no gradients: decorate greedy_decode with "
                "@torch.no_grad() (or run the loop inside `with torch.no_grad():`).",
            )
