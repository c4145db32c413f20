"""Graders for embeddings.py (curriculum 1.1): token embeddings, the sinusoidal table, and the
two ways of adding positions (fixed sinusoidal, learned).

Each class grades one API name; each test is one rubric check whose docstring's first line is
the property in plain words.
"""

from __future__ import annotations

import math

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llm_grade.grading.compare import (
    case_str,
    expect_close,
    expect_tensor,
    fail,
    fmt_values,
    tolerance,
)
from llm_grade.grading.outcomes import CheckFailure, LearnerError
from llm_grade.grading.strategies import dtypes, randn, scales, seeds, token_batches
from llm_grade.grading.toolkit import (
    build_pair,
    expect_gradients,
    expect_on_meta,
    raises_value_error,
    reference_of,
    same_inputs,
    started,
)

even_widths = st.integers(1, 8).map(lambda n: 2 * n)
"""An even ``d_model`` (2 to 16): the sinusoidal table pairs its features."""

bases = st.sampled_from([10000.0, 100.0, 2.0, 1e6, 37.5])

TABLE_HINT = (
    "PE[p, 2i] = sin(p / base**(2i/d_model)) and PE[p, 2i+1] = cos(the same angle): build the "
    "angles as positions [seq_len, 1] divided by base ** (torch.arange(0, d_model, 2) / d_model) "
    "[d_model/2], then fill pe[:, 0::2] with sin and pe[:, 1::2] with cos."
)
DROPOUT_TRAIN_HINT = (
    "Apply dropout to the sum, with nn.Dropout: return self.dropout(x + positions). In train() "
    "it zeroes entries and scales the kept ones by 1 / (1 - p); in eval() it does nothing."
)


def _f32_tol() -> dict[str, float]:
    """float32-level tolerances: what a comparison involving the float32 ``pe`` table allows."""
    return dict(tolerance("float32"))


def _expect_unchanged(before: list, res: dict, component: str, case: str) -> None:
    if not same_inputs(before, res["args"]):
        fail(
            f"{component} changed its input x in place.",
            case=case,
            hint="Return a new tensor: out = x + positions (never x += ..., x.add_(...) or "
            "x[...] = ...); the caller's tensor must stay unchanged.",
        )


def _expect_dropout_of_sum(got, total, p, *, what: str, case: str) -> None:
    """In train(), inverted dropout of ``total``: every entry is 0 or ``total / (1 - p)``, and
    some are 0."""
    kept = total / (1 - p)
    ok = (got.abs() <= 1e-6) | torch.isclose(got, kept, rtol=1e-5, atol=1e-5)
    if not bool(ok.all()):
        bad = (~ok).nonzero()[0].tolist()
        fail(
            f"In train() with dropout={p}, {what} is neither 0 nor (x + positions) / (1 - p) "
            f"at {bad}: got {got[tuple(bad)].item():.4g}, expected 0 or "
            f"{kept[tuple(bad)].item():.4g}.",
            case=case,
            hint=DROPOUT_TRAIN_HINT,
        )
    if not bool((got.abs() <= 1e-6).any()):
        fail(
            f"With dropout={p} in train() mode no entry of {what} was dropped.",
            case=case,
            hint=DROPOUT_TRAIN_HINT,
        )


# --------------------------------------------------------------------------- TokenEmbedding


class TestTokenEmbedding:
    component = "TokenEmbedding"

    @given(
        vocab=st.integers(1, 12),
        d_model=st.integers(1, 8),
        B=st.integers(1, 3),
        T=st.integers(1, 6),
        seed=seeds,
        dtype=dtypes,
        data=st.data(),
    )
    def test_matches_reference(self, sub, ref, vocab, d_model, B, T, seed, dtype, data):
        """looks each token up and scales it by sqrt(d_model), in the module's dtype"""
        pair = build_pair(
            sub, ref, "TokenEmbedding", dtype=dtype, seed=seed, vocab_size=vocab, d_model=d_model
        )
        tokens, _ = data.draw(token_batches(vocab=vocab, B=B, T=T), label="tokens")
        case = (
            case_str(vocab_size=vocab, d_model=d_model, B=B, T=T, dtype=dtype)
            + f"\n  tokens: {tokens.tolist()}"
        )
        res = sub.call(pair.student, tokens, echo_inputs=True)
        if not same_inputs([tokens], res["args"]):
            fail(
                "TokenEmbedding changed the token ids it was given.",
                case=case,
                hint="Don't modify `tokens` in place: only read them.",
            )
        expect_close(
            res["out"],
            pair.reference(tokens),
            "TokenEmbedding output",
            case=case,
            hint=f"Return self.embedding(tokens) * math.sqrt(self.d_model) (here sqrt({d_model}) "
            f"= {math.sqrt(d_model):.3f}): the scale is sqrt(d_model), not d_model or "
            "1/sqrt(d_model), and the table's dtype is the output's dtype.",
        )

    @given(
        bad=st.sampled_from(
            [("vocab_size", 0), ("vocab_size", -1), ("d_model", 0), ("d_model", -2)]
        )
    )
    def test_rejects_bad_arguments(self, sub, bad):
        """raises ValueError naming the argument when vocab_size or d_model is not positive"""
        started(lambda: sub.call(sub.build("TokenEmbedding", 3, 2), torch.tensor([[0, 2]])))
        arg, value = bad
        kwargs = {"vocab_size": 5, "d_model": 4, arg: value}
        raises_value_error(
            lambda: sub.build("TokenEmbedding", **kwargs),
            names=(arg,),
            what=f"TokenEmbedding({case_str(**kwargs)})",
            case=case_str(**kwargs),
            hint="Check the sizes in __init__, before creating nn.Embedding: raise "
            "ValueError(f'vocab_size must be positive, got {vocab_size}') (same for d_model).",
        )

    @settings(max_examples=5)
    @given(vocab=st.integers(1, 8), d_model=st.integers(1, 6), seed=seeds)
    def test_gradients_reach_every_parameter(self, sub, ref, vocab, d_model, seed):
        """gradients reach the embedding table (it is a trainable parameter)"""
        pair = build_pair(sub, ref, "TokenEmbedding", seed=seed, vocab_size=vocab, d_model=d_model)
        tokens = torch.arange(vocab).unsqueeze(0)  # every row of the table is used
        expect_gradients(sub, pair, tokens, case=case_str(vocab_size=vocab, d_model=d_model))


# --------------------------------------------------------------------------- the table


def _closed_form(seq_len: int, d_model: int, base: float) -> torch.Tensor:
    """The table from its definition, entry by entry in Python floats (float64)."""
    rows = []
    for p in range(seq_len):
        row = []
        for i in range(d_model // 2):
            angle = p / base ** (2 * i / d_model)
            row += [math.sin(angle), math.cos(angle)]
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64).reshape(seq_len, d_model)


def _table_case(seq_len, d_model, **extra) -> str:
    return case_str(seq_len=seq_len, d_model=d_model, **extra)


class TestSinusoidalPositionalEncodingFunction:
    component = "sinusoidal_positional_encoding"

    @given(seq_len=st.integers(1, 12), d_model=even_widths)
    def test_matches_closed_form(self, sub, seq_len, d_model):
        """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same angle), float32 by default"""
        case = _table_case(seq_len, d_model)
        got = expect_tensor(
            sub.call("sinusoidal_positional_encoding", seq_len, d_model),
            f"sinusoidal_positional_encoding({seq_len}, {d_model})",
            shape=(seq_len, d_model),
            dtype=torch.float32,
            case=case,
            hint="Return a [seq_len, d_model] table, float32 unless `dtype` says otherwise "
            "(the default is dtype=torch.float32).",
        )
        expected = _closed_form(seq_len, d_model, 10000.0).to(torch.float32)
        first = expected[0]
        if not torch.allclose(got[0], first, atol=1e-6):
            fail(
                "Position 0 should be [0, 1, 0, 1, ...]: every angle is 0 there.",
                case=case,
                detail=f"  expected PE[0]: {fmt_values(first)}\n  got PE[0]:      "
                f"{fmt_values(got[0])}",
                hint="sin goes in the even features (pe[:, 0::2] = sin), cos in the odd ones "
                "(pe[:, 1::2] = cos), and the angle for position p is p times a frequency, so "
                "it is 0 at p = 0.",
            )
        if bool((got.abs() > 1 + 1e-6).any()):
            where = (got.abs() > 1 + 1e-6).nonzero()[0].tolist()
            fail(
                f"PE{where} = {got[tuple(where)].item():.4g} lies outside [-1, 1].",
                case=case,
                hint="Every entry is a sine or a cosine: store sin(angle) and cos(angle), not "
                "the angle itself.",
            )
        bad = ~torch.isclose(got, expected, **_f32_tol())
        if bool(bad.any()):
            p, c = bad.nonzero()[0].tolist()
            i = c // 2
            detail = (
                f"PE[{p}, {c}] (p={p}, i={i}, {'cos' if c % 2 else 'sin'} of "
                f"p / 10000^({2 * i}/{d_model})): expected {expected[p, c].item():.6f}, "
                f"got {got[p, c].item():.6f}"
            )
            hint = TABLE_HINT
            if i > 0 and torch.allclose(got[:, :2], expected[:, :2], **_f32_tol()):
                hint = (
                    "Features 0 and 1 are right but later pairs are not, so the frequencies "
                    "are off: feature pair i uses 1 / base**(2i/d_model), where 2i is the even "
                    "feature index (torch.arange(0, d_model, 2)), divided by d_model. " + hint
                )
            fail(
                f"The table differs from the formula at {int(bad.sum())} of {bad.numel()} entries.",
                case=case,
                detail="  " + detail,
                hint=hint,
            )

    @settings(max_examples=10)
    @given(seq_len=st.integers(2, 12), d_model=even_widths, base=bases)
    def test_honours_base(self, sub, ref, seq_len, d_model, base):
        """uses the `base` argument in the angle, p / base**(2i/d_model)"""
        case = _table_case(seq_len, d_model, base=base, dtype=torch.float64)
        got = sub.call(
            "sinusoidal_positional_encoding", seq_len, d_model, base=base, dtype=torch.float64
        )
        expected = reference_of(ref, "sinusoidal_positional_encoding")(
            seq_len, d_model, base=base, dtype=torch.float64
        )
        expect_tensor(
            got,
            "the table",
            shape=expected.shape,
            case=case,
            hint="The table is [seq_len, d_model]: one row per position, one column per feature.",
        )
        expect_close(
            got.to(torch.float64) if isinstance(got, torch.Tensor) else got,
            expected,
            f"sinusoidal_positional_encoding(..., base={base:g})",
            case=case,
            check_dtype=False,
            **_f32_tol(),
            hint="Use `base` in the angle, p / base**(2i/d_model), instead of a hard-coded 10000.",
        )

    @settings(max_examples=8)
    @given(seq_len=st.integers(1, 12), d_model=even_widths, dtype=dtypes)
    def test_honours_dtype(self, sub, ref, seq_len, d_model, dtype):
        """returns a table of the requested dtype, accurate to that dtype"""
        case = _table_case(seq_len, d_model, dtype=dtype)
        got = sub.call("sinusoidal_positional_encoding", seq_len, d_model, dtype=dtype)
        expected = reference_of(ref, "sinusoidal_positional_encoding")(
            seq_len, d_model, dtype=dtype
        )
        expect_tensor(
            got,
            "the table",
            dtype=dtype,
            shape=expected.shape,
            case=case,
            hint="Honour `dtype`: compute the table in float64 and return table.to(dtype).",
        )
        expect_close(
            got,
            expected,
            f"sinusoidal_positional_encoding(..., dtype={dtype})",
            case=case,
            hint="Compute in float64 (angles and table) and cast the finished table to `dtype` (a "
            "float64 table built in float32 is off in the 7th digit).",
        )

    @given(d_model=st.sampled_from([1, 3, 5, 7, 15, 0, -2]), seq_len=st.integers(1, 5))
    def test_rejects_odd_d_model(self, sub, d_model, seq_len):
        """raises ValueError naming d_model when d_model is odd or not positive"""
        started(lambda: sub.call("sinusoidal_positional_encoding", 2, 4))
        raises_value_error(
            lambda: sub.call("sinusoidal_positional_encoding", seq_len, d_model),
            names=("d_model",),
            what=f"sinusoidal_positional_encoding({seq_len}, {d_model})",
            case=_table_case(seq_len, d_model),
            hint="Features come in (sin, cos) pairs, so d_model must be a positive even "
            "number: check d_model <= 0 or d_model % 2 != 0 first and raise "
            "ValueError(f'd_model must be a positive even number, got {d_model}').",
        )


# --------------------------------------------------------------------------- the modules


@st.composite
def positions_setup(draw, *, max_len_default: int | None = None, full: bool = False):
    """Sizes for a positional module: B, T, d_model (even), max_len > T (or the default);
    with ``full``, T == max_len (the last position of the table is used)."""
    B = draw(st.integers(1, 3), label="B")
    T = draw(st.integers(1, 6), label="T")
    d_model = draw(st.integers(1, 4).map(lambda n: 2 * n), label="d_model")
    extra = 0 if full else draw(st.sampled_from([1, 5, None]), label="max_len - T")
    max_len = max_len_default if extra is None else T + extra
    return B, T, d_model, max_len


def _positional_kwargs(component: str, d_model: int, max_len, dropout: float) -> dict:
    kwargs = {"d_model": d_model, "dropout": dropout}
    if max_len is not None:
        kwargs["max_len"] = max_len
    if component == "LearnedPositionalEmbedding":
        kwargs = {"max_len": max_len, **kwargs}
    return kwargs


def _positional_pair(sub, ref, component, *, dtype, seed, train=False, **kwargs):
    try:
        pair = build_pair(sub, ref, component, dtype=dtype, seed=seed, train=train, **kwargs)
        sub.flush()  # the build is queued: its state_dict check happens here
        return pair
    except CheckFailure as exc:
        if "`pe`" in exc.message:
            fail(
                f"{component}'s state_dict holds `pe`: the table must stay out of it.",
                case=case_str(**kwargs),
                hint="The table is fixed, not learned: register it with "
                "self.register_buffer('pe', table, persistent=False), not as an nn.Parameter "
                "nor a persistent buffer (this module's state_dict is empty).",
            )
        raise


def _matches_reference(sub, ref, component, setup, seed, x_dtype, module_dtype, scale, dropout):
    B, T, d_model, max_len = setup
    kwargs = _positional_kwargs(component, d_model, max_len, dropout)
    pair = _positional_pair(sub, ref, component, dtype=module_dtype, seed=seed, **kwargs)
    x = randn((B, T, d_model), seed=seed, dtype=x_dtype, scale=scale)
    case = case_str(B=B, T=T, **kwargs, module_dtype=module_dtype, x=x)
    res = sub.call(pair.student, x, echo_inputs=True)
    _expect_unchanged([x], res, component, case)
    expect_tensor(
        res["out"],
        f"{component} output",
        shape=x.shape,
        case=case,
        hint="The output has x's shape [B, T, d_model]: add the first T positions, "
        "[T, d_model], which broadcast over the batch.",
    )
    got = expect_tensor(
        res["out"],
        f"{component} output",
        dtype=x_dtype,
        case=case,
        hint="The output dtype is x's dtype, whatever the module's: cast the positions with "
        ".to(x.dtype) before adding them (a float64 table plus float32 x would be float64).",
    )
    return pair, x, got, case


POSITION_HINTS = {
    "SinusoidalPositionalEncoding": (
        "x + pe[:T]",
        "Return self.dropout(x + self.pe[:T].to(x.dtype)) with T = x.size(1): the table's "
        "first T rows, broadcast over the batch, cast to x's dtype. The table is "
        "sinusoidal_positional_encoding(max_len, d_model), built once in __init__.",
    ),
    "LearnedPositionalEmbedding": (
        "x + embedding(arange(T))",
        "Positions are 0..T-1 with T = x.size(1): self.embedding(torch.arange(T, "
        "device=x.device)) gives [T, d_model], which broadcasts over the batch; cast it to "
        "x.dtype and return self.dropout(x + positions).",
    ),
}
FULL_LENGTH_HINT = (
    "With T == max_len every position 0..max_len-1 is used and must work: raise ValueError "
    "only for T > max_len (not T >= max_len), and take the first T positions (pe[:T], "
    "arange(T)), not T - 1 or positions 1..T."
)


def _expect_positions(sub, ref, component, setup, seed, x_dtype, module_dtype, scale, dropout):
    """One comparison with the reference (in eval()): shape, dtype and values."""
    B, T, d_model, max_len = setup
    full = max_len == T
    try:
        pair, x, got, case = _matches_reference(
            sub, ref, component, setup, seed, x_dtype, module_dtype, scale, dropout
        )
    except LearnerError as exc:
        if full and exc.exc_type == "ValueError":
            fail(
                f"{component}(max_len={max_len}) refused a sequence of length T={T} == "
                f"max_len: {exc.exc_message}",
                case=case_str(B=B, T=T, d_model=d_model, max_len=max_len),
                hint=FULL_LENGTH_HINT,
            )
        raise
    what, hint = POSITION_HINTS[component]
    expect_close(
        got,
        pair.reference(x),
        what,
        case=case,
        **_f32_tol(),
        hint=FULL_LENGTH_HINT if full else hint,
    )


def _dropout_only_in_training(sub, ref, component, setup, seed):
    B, T, d_model, max_len = setup
    B, T = max(B, 4), max(T, 4)  # at least 32 entries: some are surely dropped
    max_len = None if max_len is None else max(max_len, T)
    kwargs = _positional_kwargs(component, d_model, max_len, 0.5)
    pair = _positional_pair(sub, ref, component, dtype=torch.float64, seed=seed, **kwargs)
    x = randn((B, T, d_model), seed=seed)
    case = case_str(B=B, T=T, **kwargs)
    expected = pair.reference(x)
    expect_close(
        sub.call(pair.student, x),
        expected,
        "output in eval() with dropout=0.5",
        case=case,
        atol=_f32_tol()["atol"],
        rtol=_f32_tol()["rtol"],
        hint="Dropout must do nothing in eval(): use nn.Dropout (it checks self.training) "
        "rather than F.dropout(..., training=True).",
    )
    sub.configure(pair.student, train=True)
    got = expect_tensor(sub.call(pair.student, x), "output in train()", shape=x.shape, case=case)
    _expect_dropout_of_sum(got, expected, 0.5, what="the output", case=case)


def _rejects_bad_arguments(sub, component, T, d_model, max_len, bad):
    valid = _positional_kwargs(component, d_model, 4, 0.0)
    started(lambda: sub.call(sub.build(component, **valid), torch.zeros(1, 2, d_model)))
    if bad == "too long":
        kwargs = _positional_kwargs(component, d_model, max_len, 0.0)
        module = sub.build(component, **kwargs)
        x = torch.zeros(1, max_len + T, d_model)
        what = f"forward on x of length T={max_len + T}"
        names, case = ("max_len", "T"), case_str(**kwargs, x=x)
        hint = (
            "The module only knows positions 0..max_len-1: in forward, check "
            "T = x.size(1) against self.max_len and raise ValueError naming max_len "
            "(e.g. f'sequence length T={T} exceeds max_len={self.max_len}')."
        )
        raises_value_error(
            lambda: sub.call(module, x), names=names, what=what, case=case, hint=hint
        )
        return
    arg, value = bad
    kwargs = _positional_kwargs(component, d_model, 4, 0.0)
    kwargs[arg] = value
    raises_value_error(
        lambda: sub.build(component, **kwargs),
        names=(arg,),
        what=f"{component}({case_str(**kwargs)})",
        case=case_str(**kwargs),
        hint="Validate in __init__, before building anything: max_len must be positive and "
        "0 <= dropout < 1; raise ValueError naming the argument.",
    )


bad_positional_args = st.sampled_from(
    [("max_len", 0), ("max_len", -3), ("dropout", -0.1), ("dropout", 1.5)]
)


class TestSinusoidalPositionalEncoding:
    component = "SinusoidalPositionalEncoding"

    @given(
        setup=positions_setup(),
        seed=seeds,
        dtype=dtypes,
        scale=scales,
        dropout=st.sampled_from([0.0, 0.1, 0.5]),
    )
    def test_matches_reference(self, sub, ref, setup, seed, dtype, scale, dropout):
        """adds the first T rows of the table to x and keeps `pe` out of state"""
        _expect_positions(sub, ref, self.component, setup, seed, dtype, dtype, scale, dropout)

    # always try the mixed case: a float64 module must still return float32 for float32 x
    @example(setup=(2, 3, 4, 8), seed=0, x_dtype=torch.float32)
    @settings(max_examples=8)
    @given(setup=positions_setup(), seed=seeds, x_dtype=dtypes)
    def test_keeps_x_dtype(self, sub, ref, setup, seed, x_dtype):
        """returns x's dtype when the module has the other float dtype"""
        other = torch.float32 if x_dtype == torch.float64 else torch.float64
        _expect_positions(sub, ref, self.component, setup, seed, x_dtype, other, 1.0, 0.0)

    @settings(max_examples=8)
    @given(setup=positions_setup(full=True), seed=seeds, dtype=dtypes)
    def test_full_length(self, sub, ref, setup, seed, dtype):
        """works for the longest sequence, T == max_len (every row of the table)"""
        _expect_positions(sub, ref, self.component, setup, seed, dtype, dtype, 1.0, 0.0)

    @settings(max_examples=8)
    @given(setup=positions_setup(), seed=seeds)
    def test_dropout_only_in_training(self, sub, ref, setup, seed):
        """dropout is the identity in eval() and drops entries of x + pe in train()"""
        _dropout_only_in_training(sub, ref, self.component, setup, seed)

    @settings(max_examples=4)
    @given(setup=positions_setup(), seed=seeds)
    def test_runs_on_any_device(self, sub, ref, setup, seed):
        """moves with the module: after .to(device) its table is there too (the meta device)"""
        B, T, d_model, max_len = setup
        kwargs = _positional_kwargs(self.component, d_model, max_len, 0.0)
        pair = _positional_pair(sub, ref, self.component, dtype=torch.float32, seed=seed, **kwargs)
        x = randn((B, T, d_model), seed=seed, dtype=torch.float32)
        expect_on_meta(
            sub,
            pair.student,
            (x,),
            shape=x.shape,
            dtype=torch.float32,
            case=case_str(B=B, T=T, **kwargs),
            what="SinusoidalPositionalEncoding",
        )

    @given(
        T=st.integers(1, 3), d_model=even_widths, max_len=st.integers(1, 6), bad=bad_positional_args
    )
    def test_rejects_bad_arguments(self, sub, T, d_model, max_len, bad):
        """raises ValueError naming the argument for max_len <= 0 or dropout outside [0, 1)"""
        _rejects_bad_arguments(sub, self.component, T, d_model, max_len, bad)

    @settings(max_examples=6)
    @given(T=st.integers(1, 3), d_model=even_widths, max_len=st.integers(1, 6))
    def test_rejects_too_long(self, sub, T, d_model, max_len):
        """raises ValueError naming max_len when T > max_len"""
        _rejects_bad_arguments(sub, self.component, T, d_model, max_len, "too long")


class TestLearnedPositionalEmbedding:
    component = "LearnedPositionalEmbedding"

    @given(
        setup=positions_setup(max_len_default=9),
        seed=seeds,
        dtype=dtypes,
        scale=scales,
        dropout=st.sampled_from([0.0, 0.1, 0.5]),
    )
    def test_matches_reference(self, sub, ref, setup, seed, dtype, scale, dropout):
        """adds the learned vector of position t (0..T-1) to x[:, t]"""
        _expect_positions(sub, ref, self.component, setup, seed, dtype, dtype, scale, dropout)

    # always try the mixed case: a float64 module must still return float32 for float32 x
    @example(setup=(2, 3, 4, 8), seed=0, x_dtype=torch.float32)
    @settings(max_examples=8)
    @given(setup=positions_setup(max_len_default=9), seed=seeds, x_dtype=dtypes)
    def test_keeps_x_dtype(self, sub, ref, setup, seed, x_dtype):
        """returns x's dtype when the module has the other float dtype"""
        other = torch.float32 if x_dtype == torch.float64 else torch.float64
        _expect_positions(sub, ref, self.component, setup, seed, x_dtype, other, 1.0, 0.0)

    @settings(max_examples=8)
    @given(setup=positions_setup(max_len_default=9, full=True), seed=seeds, dtype=dtypes)
    def test_full_length(self, sub, ref, setup, seed, dtype):
        """works for the longest sequence, T == max_len (every row of the table)"""
        _expect_positions(sub, ref, self.component, setup, seed, dtype, dtype, 1.0, 0.0)

    @settings(max_examples=8)
    @given(setup=positions_setup(max_len_default=9), seed=seeds)
    def test_dropout_only_in_training(self, sub, ref, setup, seed):
        """dropout is the identity in eval() and drops entries of x + positions in train()"""
        _dropout_only_in_training(sub, ref, self.component, setup, seed)

    @given(
        T=st.integers(1, 3), d_model=even_widths, max_len=st.integers(1, 6), bad=bad_positional_args
    )
    def test_rejects_bad_arguments(self, sub, T, d_model, max_len, bad):
        """raises ValueError naming the argument for max_len <= 0 or dropout outside [0, 1)"""
        _rejects_bad_arguments(sub, self.component, T, d_model, max_len, bad)

    @settings(max_examples=6)
    @given(T=st.integers(1, 3), d_model=even_widths, max_len=st.integers(1, 6))
    def test_rejects_too_long(self, sub, T, d_model, max_len):
        """raises ValueError naming max_len when T > max_len"""
        _rejects_bad_arguments(sub, self.component, T, d_model, max_len, "too long")

    @settings(max_examples=5)
    @given(setup=positions_setup(max_len_default=9), seed=seeds)
    def test_gradients_reach_every_parameter(self, sub, ref, setup, seed):
        """gradients reach the table of positions (it is a trainable parameter)"""
        B, T, d_model, max_len = setup
        kwargs = _positional_kwargs(self.component, d_model, max_len, 0.0)
        pair = _positional_pair(sub, ref, self.component, dtype=torch.float64, seed=seed, **kwargs)
        x = randn((B, T, d_model), seed=seed)
        expect_gradients(sub, pair, x, case=case_str(B=B, T=T, **kwargs))
