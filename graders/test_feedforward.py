"""Graders for feedforward.py (curriculum 1.5): the GELU non-linearity and the position-wise
feed-forward network.

Each class grades one API name; each test is one rubric check whose docstring's first line is
the property in plain words.
"""

from __future__ import annotations

import math

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llm_grade.grading.compare import case_str, expect_close, expect_tensor, fail, fmt_values
from llm_grade.grading.outcomes import LearnerError, NotImplementedYet
from llm_grade.grading.strategies import dtypes, randn, scales, seeds, sizes
from llm_grade.grading.toolkit import (
    build_pair,
    expect_dropout_statistics,
    expect_gradients,
    expect_rejects,
    reference_of,
    same_inputs,
)

shapes = st.lists(st.integers(1, 5), min_size=0, max_size=3)
"""Any shape, a 0-dim tensor included: gelu works elementwise."""

EXACT_HINT = (
    "The exact GELU is x * Phi(x), with Phi the standard normal CDF: "
    "Phi(x) = 0.5 * (1 + torch.erf(x / math.sqrt(2))). Mind the sqrt(2) inside erf; it is "
    "not ReLU, not x * sigmoid(1.702 x), and not the tanh formula, which is only for "
    'approximate="tanh".'
)
TANH_HINT = (
    'approximate="tanh" is 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))): the '
    "constants are math.sqrt(2 / math.pi) and 0.044715, and the cube is x**3 inside the tanh."
)
FFN_HINT = (
    "forward is fc2(dropout(gelu(fc1(x)))): expand with fc1, apply your gelu (the exact one, "
    'approximate="none"), dropout on the [B, T, d_ff] hidden activations, then fc2.'
)


def _gelu_case(x, scale=None, **extra) -> str:
    params = {"x": x, **extra}
    if scale is not None:
        params["scale"] = scale
    return case_str(**params) + f"\n  x (first values): {fmt_values(x)}"


def _with_zero(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its first entry set to 0 (gelu(0) = 0 is part of every comparison)."""
    x = x.clone()
    if x.numel():
        x.view(-1)[0] = 0.0
    return x


class TestGelu:
    component = "gelu"

    # a plain case first, whatever the example budget (with few examples, the smallest draws
    # alone can miss a ReLU or a missing sqrt(2))
    @example(shape=(2, 5), seed=1, dtype=torch.float64, scale=1.0, explicit=False)
    @given(shape=shapes, seed=seeds, dtype=dtypes, scale=scales, explicit=st.booleans())
    def test_matches_exact_formula(self, sub, shape, seed, dtype, scale, explicit):
        """computes x * Phi(x) (Phi = normal CDF) elementwise, any shape, in x's dtype"""
        x = _with_zero(randn(shape, seed=seed, dtype=dtype, scale=scale))
        kwargs = {"approximate": "none"} if explicit else {}
        case = _gelu_case(x, scale, **kwargs)
        res = sub.call("gelu", x, echo_inputs=True, **kwargs)
        if not same_inputs([x], res["args"]):
            fail(
                "gelu changed its input x in place.",
                case=case,
                hint="Build a new tensor (x * 0.5 * (1 + torch.erf(...))) instead of in-place "
                "ops such as x.mul_(...) or x *= ...",
            )
        expected = (x.double() * 0.5 * (1.0 + torch.erf(x.double() / math.sqrt(2.0)))).to(dtype)
        expect_close(res["out"], expected, "gelu(x)", case=case, hint=EXACT_HINT)

    @given(shape=shapes, seed=seeds, dtype=dtypes, scale=st.sampled_from([1.0, 3.0, 0.1, 10.0]))
    def test_tanh_approximation(self, sub, ref, shape, seed, dtype, scale):
        """approximate="tanh" gives the tanh formula, within 1e-3 of the exact GELU"""
        x = _with_zero(randn(shape, seed=seed, dtype=dtype, scale=scale))
        case = _gelu_case(x, scale, approximate="tanh")
        got = sub.call("gelu", x, approximate="tanh")
        expected = reference_of(ref, "gelu")(x, approximate="tanh")
        got = expect_tensor(
            got, 'gelu(x, approximate="tanh")', shape=x.shape, dtype=dtype, case=case
        )
        exact = x.double() * 0.5 * (1.0 + torch.erf(x.double() / math.sqrt(2.0)))
        gap = (got.double() - exact).abs()
        if bool((gap > 1e-3).any()):
            where = (gap == gap.max()).nonzero()[0].tolist()
            fail(
                f"The tanh approximation is {gap.max().item():.2e} away from the exact GELU "
                f"at {where} (it should stay within 1e-3).",
                case=case,
                detail=f"  x{where} = {x[tuple(where)].item():.4g}: exact "
                f"{exact[tuple(where)].item():.6g}, got {got[tuple(where)].item():.6g}",
                hint=TANH_HINT,
            )
        expect_close(got, expected, 'gelu(x, approximate="tanh")', case=case, hint=TANH_HINT)

    @given(approximate=st.sampled_from(["sigmoid", "exact", "erf", "Tanh", "", "None", None]))
    def test_rejects_unknown_approximate(self, sub, approximate):
        """raises ValueError naming `approximate` unless it is "none" or "tanh" (exact strings)"""
        x = torch.tensor([-1.0, 0.0, 2.0])
        try:
            sub.call("gelu", x)
        except NotImplementedYet:
            raise
        except LearnerError:
            pass  # a crash on valid input costs the other checks, not this one
        case = case_str(x=x, approximate=repr(approximate))
        hint = (
            'Accept exactly "none" and "tanh": compare approximate == "none" and '
            'approximate == "tanh", and raise ValueError(f\'approximate must be "none" or '
            '"tanh", got {approximate!r}\') otherwise, rather than treating every other value '
            "as one of the two."
        )
        try:
            got = sub.call("gelu", x, approximate=approximate)
        except NotImplementedYet:
            raise
        except LearnerError as exc:
            if exc.exc_type != "ValueError":
                fail(
                    f"gelu raised {exc.exc_type}: {exc.exc_message}; expected ValueError.",
                    case=case,
                    hint=hint,
                )
            if "approximate" not in exc.exc_message:
                fail(
                    f"The ValueError's message doesn't name the argument: {exc.exc_message!r}",
                    case=case,
                    hint="Name the argument and its value, e.g. "
                    'f\'approximate must be "none" or "tanh", got {approximate!r}\'.',
                )
            return
        shown = fmt_values(got) if isinstance(got, torch.Tensor) else repr(got)
        fail(
            f"gelu(x, approximate={approximate!r}) returned {shown} instead of raising ValueError.",
            case=case,
            hint=hint,
        )


def _ffn_kwargs(s, dropout=0.0) -> dict:
    return {"d_model": s.d_model, "d_ff": s.d_ff, "dropout": dropout}


class TestFeedForward:
    component = "FeedForward"

    @given(
        s=sizes(),
        seed=seeds,
        dtype=dtypes,
        scale=scales,
        dropout=st.sampled_from([0.0, 0.1, 0.5]),
    )
    def test_matches_reference(self, sub, ref, s, seed, dtype, scale, dropout):
        """matches fc2(gelu(fc1(x))) in eval(), in x's dtype, leaving x unchanged"""
        kwargs = _ffn_kwargs(s, dropout)
        pair = build_pair(sub, ref, "FeedForward", dtype=dtype, seed=seed, **kwargs)
        x = randn((s.B, s.T, s.d_model), seed=seed, dtype=dtype, scale=scale)
        case = case_str(B=s.B, T=s.T, **kwargs, dtype=dtype, scale=scale)
        res = sub.call(pair.student, x, echo_inputs=True)
        if not same_inputs([x], res["args"]):
            fail(
                "FeedForward changed its input x in place.",
                case=case,
                hint="Use out-of-place operations: the caller's x must stay unchanged.",
            )
        expect_close(res["out"], pair.reference(x), "FeedForward output", case=case, hint=FFN_HINT)

    @given(s=sizes(min_len=2), seed=seeds, data=st.data())
    def test_position_wise(self, sub, ref, s, seed, data):
        """each position is transformed on its own: permuting positions permutes the output"""
        kwargs = _ffn_kwargs(s)
        pair = build_pair(sub, ref, "FeedForward", seed=seed, **kwargs)
        perm = torch.tensor(data.draw(st.permutations(range(s.T)), label="permutation"))
        x = randn((s.B, s.T, s.d_model), seed=seed)
        case = case_str(B=s.B, T=s.T, **kwargs) + f", positions permuted by {perm.tolist()}"
        hint = (
            "The feed-forward network acts on the last dimension only (nn.Linear does): "
            "don't reshape, transpose or reduce across the T axis, so that position t's output "
            "depends on x[:, t] alone."
        )
        out = expect_tensor(sub.call(pair.student, x), "output", shape=x.shape, case=case)
        expect_close(
            sub.call(pair.student, x[:, perm]),
            out[:, perm],
            "output of the permuted x",
            case=case,
            hint=hint,
        )
        t = data.draw(st.integers(0, s.T - 1), label="position")
        expect_close(
            sub.call(pair.student, x[:, t : t + 1]),
            out[:, t : t + 1],
            f"output for position {t} alone",
            case=case_str(B=s.B, T=s.T, **kwargs) + f", x[:, {t}:{t + 1}] on its own",
            hint=hint,
        )

    @settings(max_examples=6)
    @given(s=sizes(), seed=seeds)
    def test_dropout_only_in_training(self, sub, ref, s, seed):
        """dropout is the identity in eval() and active in train()"""
        kwargs = _ffn_kwargs(s, 0.5)
        pair = build_pair(sub, ref, "FeedForward", seed=seed, **kwargs)
        x = randn((max(s.B, 2), max(s.T, 4), s.d_model), seed=seed)
        case = case_str(B=x.shape[0], T=x.shape[1], **kwargs)
        expected = pair.reference(x)
        expect_close(
            sub.call(pair.student, x),
            expected,
            "output in eval() with dropout=0.5",
            case=case,
            hint="Dropout must do nothing in eval(): use nn.Dropout (it checks self.training) "
            "rather than F.dropout(..., training=True).",
        )
        sub.configure(pair.student, train=True)
        got = expect_tensor(
            sub.call(pair.student, x), "output in train()", shape=x.shape, case=case
        )
        if torch.allclose(got, expected):
            fail(
                "With dropout=0.5 in train() mode the output equals the eval() output.",
                case=case,
                hint="Apply self.dropout = nn.Dropout(dropout) to the hidden activations, "
                "between gelu and fc2: fc2(self.dropout(gelu(fc1(x)))).",
            )

    @settings(max_examples=4)
    @given(s=sizes().filter(lambda s: s.d_model >= 4), seed=seeds, p=st.sampled_from([0.2, 0.5]))
    def test_dropout_placement(self, sub, ref, s, seed, p):
        """in train(), dropout acts between gelu and fc2, with the module's p"""
        kwargs = _ffn_kwargs(s, p)
        pair = build_pair(sub, ref, "FeedForward", seed=seed, train=True, **kwargs)
        n = 1000
        x = randn((2, 4, s.d_model), seed=seed).repeat(n, 1, 1)  # 32+ entries of each draw
        case = case_str(B=2, T=4, **kwargs) + f", train(), x repeated {n} times"
        hint = (
            "Dropout goes on the hidden activations, between gelu and fc2, with the module's "
            "p: fc2(self.dropout(gelu(fc1(x)))), self.dropout = nn.Dropout(dropout); not on x, "
            "before the gelu, or on fc2's output."
        )
        got = expect_tensor(
            sub.call(pair.student, x), "output in train()", shape=x.shape, case=case, hint=hint
        )
        if bool((got == 0).any()):  # fc2 adds a random bias after the dropout: never exactly 0
            fail(
                "In train() some outputs are exactly 0: dropout was applied to fc2's output.",
                case=case,
                hint=hint,
            )
        expect_dropout_statistics(
            sub, pair, (x,), replicas=n, case=case, hint=hint, what="the output"
        )

    @given(s=sizes(), seed=seeds)
    def test_gradients_reach_every_parameter(self, sub, ref, s, seed):
        """gradients reach the weights and biases of fc1 and fc2"""
        kwargs = _ffn_kwargs(s)
        pair = build_pair(sub, ref, "FeedForward", seed=seed, **kwargs)
        x = randn((s.B, s.T, s.d_model), seed=seed)
        expect_gradients(sub, pair, x, case=case_str(B=s.B, T=s.T, **kwargs))

    @settings(max_examples=5)
    @given(
        bad=st.sampled_from(
            [("d_model", 0), ("d_ff", 0), ("d_ff", -4), ("dropout", -0.1), ("dropout", 1.0)]
        )
    )
    def test_rejects_bad_arguments(self, sub, bad):
        """raises ValueError naming the argument for sizes <= 0 or dropout outside [0, 1)"""
        expect_rejects(
            sub, "FeedForward", dict(d_model=4, d_ff=8), dict([bad]), (torch.zeros(1, 2, 4),)
        )
