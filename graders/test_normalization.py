"""Graders for normalization.py (curriculum 1.5): LayerNorm and the post-norm residual AddNorm.

Each class grades one API name; each test is one rubric check whose docstring's first line is
the property in plain words.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_grade.grading.compare import case_str, expect_close, expect_tensor, fail, fmt_values
from llm_grade.grading.strategies import dtypes, randn, scales, seeds
from llm_grade.grading.toolkit import (
    build_pair,
    expect_dropout_statistics,
    expect_gradients,
    expect_own_structure,
    expect_rejects,
    raises_value_error,
    same_inputs,
    started,
)

lead_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2)
"""Leading dimensions in front of d_model: [d], [T, d] or [B, T, d]."""

widths = st.integers(1, 8)
offsets = st.sampled_from([0.0, 3.0, -20.0])

LN_HINT = (
    "Normalise over the last dimension only: mean = x.mean(-1, keepdim=True), "
    "var = ((x - mean) ** 2).mean(-1, keepdim=True) (the biased variance: divide by N, not N-1), "
    "then (x - mean) / torch.sqrt(var + eps) * weight + bias, with eps inside the square root."
)
NONFINITE_HINT = (
    "NaN or inf in LayerNorm comes from a division by zero: divide by torch.sqrt(var + eps), "
    "eps inside the square root, with the biased variance (divide by N; with d_model = 1 the "
    "unbiased N - 1 is 0)."
)
EPS_HINT = (
    "eps goes inside the square root and is the module's own: "
    "(x - mean) / torch.sqrt(var + self.eps), not / (torch.sqrt(var) + eps) nor a hard-coded "
    "1e-5. The variance is the biased one (divide by N)."
)


def _ln_case(x, **params) -> str:
    return case_str(x=x, **params) + f"\n  x (first values): {fmt_values(x)}"


def _expect_unchanged(before: list, res: dict, component: str, case: str) -> None:
    if not same_inputs(before, res["args"]):
        fail(
            f"{component} changed one of its inputs in place.",
            case=case,
            hint="Compute new tensors (x - mean, not x.sub_(mean) or x -= mean): the caller's "
            "tensors must stay unchanged.",
        )


def _identity_affine(sub, student, d_model: int, dtype: torch.dtype) -> None:
    """weight = 1, bias = 0: the learner's module then computes the bare normalisation."""
    sub.load_state_dict(
        student,
        {"weight": torch.ones(d_model, dtype=dtype), "bias": torch.zeros(d_model, dtype=dtype)},
    )


class TestLayerNorm:
    component = "LayerNorm"

    @given(
        lead=lead_shapes,
        d_model=widths,
        seed=seeds,
        dtype=dtypes,
        scale=st.sampled_from([1.0, 0.1, 10.0, 100.0]),
        offset=offsets,
    )
    def test_matches_reference(self, sub, ref, lead, d_model, seed, dtype, scale, offset):
        """matches the reference with random weight and bias, any leading shape, in x's dtype"""
        pair = build_pair(sub, ref, "LayerNorm", dtype=dtype, seed=seed, d_model=d_model)
        x = randn((*lead, d_model), seed=seed, dtype=dtype, scale=scale, offset=offset)
        case = _ln_case(x, d_model=d_model, scale=scale, offset=offset)
        res = sub.call(pair.student, x, echo_inputs=True)
        _expect_unchanged([x], res, "LayerNorm", case)
        expect_close(res["out"], pair.reference(x), "LayerNorm output", case=case, hint=LN_HINT)

    @given(
        lead=lead_shapes,
        d_model=st.integers(2, 8),
        seed=seeds,
        scale=st.sampled_from([1.0, 0.1, 10.0]),
        offset=offsets,
    )
    def test_normalizes_each_row(self, sub, ref, lead, d_model, seed, scale, offset):
        """with weight 1 and bias 0 every row has mean 0 and (biased) variance 1"""
        pair = build_pair(sub, ref, "LayerNorm", seed=seed, d_model=d_model)
        _identity_affine(sub, pair.student, d_model, torch.float64)
        x = randn((*lead, 3, d_model), seed=seed, scale=scale, offset=offset)
        case = _ln_case(x, d_model=d_model, scale=scale, offset=offset) + ", weight=1, bias=0"
        got = expect_tensor(
            sub.call(pair.student, x),
            "LayerNorm output",
            shape=x.shape,
            case=case,
            hint=NONFINITE_HINT,
        )
        mean = got.mean(-1)
        if not torch.allclose(mean, torch.zeros_like(mean), atol=1e-7):
            row = (mean.abs() == mean.abs().max()).nonzero()[0].tolist()
            fail(
                f"Row {row} of the output has mean {mean[tuple(row)].item():.3g}, expected 0.",
                case=case,
                detail=f"  output{row}: {fmt_values(got[tuple(row)])}",
                hint="Subtract the mean of each vector over the last dimension: "
                "x.mean(dim=-1, keepdim=True) (not over the batch or time axis, not over "
                "the whole tensor).",
            )
        v = ((x - x.mean(-1, keepdim=True)) ** 2).mean(-1)
        expected = v / (v + 1e-5)  # 1 up to the effect of eps (rows have std >= 0.1)
        var = ((got - mean.unsqueeze(-1)) ** 2).mean(-1)
        if not torch.allclose(var, expected, rtol=1e-6, atol=1e-9):
            row = ((var - expected).abs() == (var - expected).abs().max()).nonzero()[0].tolist()
            fail(
                f"Row {row} of the output has biased variance {var[tuple(row)].item():.6f}, "
                f"expected {expected[tuple(row)].item():.6f} (1, up to eps).",
                case=case,
                detail=f"  output{row}: {fmt_values(got[tuple(row)])}",
                hint="Divide by the standard deviation of each vector: "
                "torch.sqrt(var + eps) with the biased variance var = ((x - mean) ** 2)"
                ".mean(-1, keepdim=True) (divide by N, not N-1: Tensor.var is unbiased unless "
                "you pass correction=0).",
            )

    @given(
        lead=lead_shapes,
        d_model=st.integers(2, 8),
        seed=seeds,
        data=st.data(),
    )
    def test_shift_and_scale_invariant(self, sub, ref, lead, d_model, seed, data):
        """adding a constant to a row or multiplying it by a positive number changes nothing"""
        pair = build_pair(sub, ref, "LayerNorm", seed=seed, d_model=d_model, eps=1e-10)
        x = randn((*lead, 2, d_model), seed=seed)
        # rows with variance 1 around a random mean: eps = 1e-10 is then far below every
        # row's variance, scaled or not, and the invariance is exact to rounding
        x = x - x.mean(-1, keepdim=True)
        x = x / x.pow(2).mean(-1, keepdim=True).sqrt() + randn((*lead, 2, 1), seed=seed + 1)
        a = data.draw(st.sampled_from([0.5, 2.0, 10.0, 100.0]), label="scale a")
        c = data.draw(st.sampled_from([1.0, -5.0, 100.0]), label="shift c")
        # every row gets its own positive factor and shift, around a and c
        g = torch.Generator().manual_seed(seed)
        factor = a * (1 + torch.rand((*lead, 2, 1), generator=g, dtype=torch.float64))
        shift = c * torch.randn((*lead, 2, 1), generator=g, dtype=torch.float64)
        y = factor * x + shift
        case = _ln_case(x, d_model=d_model, eps=1e-10) + (
            f"\n  y = a * x + c per row, a in [{a:g}, {2 * a:g}], c ~ {c:g} * N(0, 1)"
        )
        first = expect_tensor(
            sub.call(pair.student, x), "LayerNorm(x)", shape=x.shape, case=case, hint=NONFINITE_HINT
        )
        expect_close(
            sub.call(pair.student, y),
            first,
            "LayerNorm(a * x + c), compared with LayerNorm(x)",
            case=case,
            atol=1e-7,
            rtol=1e-6,
            hint="LayerNorm removes each vector's own mean and divides by its own standard "
            "deviation, both over the last dimension (dim=-1, keepdim=True); statistics over "
            "another axis, or a missing mean subtraction, break this.",
        )

    @given(
        lead=lead_shapes,
        d_model=st.integers(2, 8),
        seed=seeds,
        dtype=dtypes,
        offset=st.sampled_from([0.0, 0.5]),
    )
    def test_small_variance_rows(self, sub, ref, lead, d_model, seed, dtype, offset):
        """rows with a tiny spread (std 1e-3, variance below eps) still match the reference"""
        pair = build_pair(sub, ref, "LayerNorm", dtype=dtype, seed=seed, d_model=d_model)
        if dtype == torch.float32:
            offset = 0.0  # float32 has ~7 digits: an offset would drown a 1e-3 spread
        x = randn((*lead, 2, d_model), seed=seed, dtype=dtype, scale=1e-3, offset=offset)
        case = _ln_case(x, d_model=d_model, eps=1e-5) + ", rows with small variance (std 1e-3)"
        expect_close(
            sub.call(pair.student, x),
            pair.reference(x),
            "LayerNorm output",
            case=case,
            hint="When the variance is about eps, where eps sits decides the result: " + EPS_HINT,
        )

    @settings(max_examples=10)
    @given(
        lead=lead_shapes,
        d_model=st.integers(2, 8),
        seed=seeds,
        dtype=dtypes,
        data=st.data(),
    )
    def test_stable_per_row(self, sub, ref, lead, d_model, seed, dtype, data):
        """rows at very different offsets (up to 1e4) and spreads (1e-3 to 1e4) all match"""
        pair = build_pair(sub, ref, "LayerNorm", dtype=dtype, seed=seed, d_model=d_model)
        # (offset, spread) per row: far apart, yet each within what the dtype resolves (two
        # correct implementations, e.g. F.layer_norm's, agree to 1e-10 / 1e-5 on these)
        if dtype == torch.float64:
            kinds = [(1e4, 1.0), (-1e4, 10.0), (1e3, 0.01), (0.0, 1e-3), (0.0, 1e4), (5.0, 0.1)]
        else:  # float32 holds ~7 digits: the spread stays within 1/3 of the offset
            kinds = [(100.0, 30.0), (-100.0, 100.0), (0.0, 1.0), (10.0, 3.0), (0.0, 1e3)]
        g = torch.Generator().manual_seed(seed)
        rows = (*lead, 3, 1)
        pick = torch.randint(0, len(kinds), rows, generator=g)
        pick[..., 0, :] = 0  # a row far from 0 is always there
        offsets = torch.tensor([k[0] for k in kinds], dtype=torch.float64)
        spreads = torch.tensor([k[1] for k in kinds], dtype=torch.float64)
        x = randn((*lead, 3, d_model), seed=seed) * spreads[pick] + offsets[pick]
        x = x.to(dtype)
        shown = ", ".join(
            f"{offsets[k].item():g} ± {spreads[k].item():g}" for k in pick.flatten()[:4]
        )
        case = _ln_case(x, d_model=d_model) + f"\n  rows (offset ± spread): {shown}, …"
        expect_close(
            sub.call(pair.student, x),
            pair.reference(x),
            "LayerNorm output for rows at very different offsets and spreads",
            case=case,
            hint="Compute each row's variance as the mean of (x - mean)**2, after subtracting "
            "the row's mean: E[x**2] - E[x]**2 cancels catastrophically when a row sits far "
            "from 0 (offset 1e4, spread 1e-3). Statistics are per row (dim=-1, keepdim=True).",
        )

    @given(
        lead=lead_shapes,
        d_model=st.integers(2, 8),
        seed=seeds,
        dtype=dtypes,
        eps=st.sampled_from([1e-2, 0.1, 1.0, 1e-8]),
    )
    def test_uses_eps(self, sub, ref, lead, d_model, seed, dtype, eps):
        """uses the eps it is given, inside the square root"""
        pair = build_pair(sub, ref, "LayerNorm", dtype=dtype, seed=seed, d_model=d_model, eps=eps)
        # rows whose variance is about eps, so eps visibly matters
        x = randn((*lead, 2, d_model), seed=seed, dtype=dtype, scale=max(eps, 1e-4) ** 0.5)
        case = _ln_case(x, d_model=d_model, eps=eps)
        expect_close(
            sub.call(pair.student, x),
            pair.reference(x),
            "LayerNorm output",
            case=case,
            hint=EPS_HINT,
        )

    @settings(max_examples=4)
    @given(d_model=st.integers(1, 8), bad_eps=st.sampled_from([0.0, -1e-5, -1.0]))
    def test_rejects_bad_eps(self, sub, d_model, bad_eps):
        """raises ValueError naming eps when eps <= 0"""
        case = case_str(d_model=d_model, eps=bad_eps)
        hint = (
            "eps must be positive (it keeps the division finite): in __init__ raise "
            "ValueError(f'eps must be positive, got {eps}') before creating the parameters."
        )
        started(lambda: sub.call(sub.build("LayerNorm", d_model=d_model), torch.zeros(1, d_model)))
        raises_value_error(
            lambda: (sub.build("LayerNorm", d_model=d_model, eps=bad_eps), sub.flush()),
            names=("eps",),
            what=f"LayerNorm(d_model={d_model}, eps={bad_eps})",
            case=case,
            hint=hint,
        )

    @settings(max_examples=4)
    @given(d_model=st.integers(1, 8))
    def test_starts_as_identity(self, sub, d_model):
        """starts with weight = 1 and bias = 0 (a fresh LayerNorm only normalises)"""
        module = sub.build("LayerNorm", d_model=d_model)
        started(lambda: sub.call(module, torch.zeros(1, d_model)))  # a stub: not implemented
        state = sub.state_dict(module)
        case = case_str(d_model=d_model)
        for key, value in (("weight", 1.0), ("bias", 0.0)):
            got = state.get(key) if isinstance(state, dict) else None
            if type(got) is not torch.Tensor or tuple(got.shape) != (d_model,):
                fail(
                    f"A new LayerNorm({d_model}) has no `{key}` of shape ({d_model},).",
                    case=case,
                    hint="self.weight = nn.Parameter(torch.ones(d_model)); self.bias = "
                    "nn.Parameter(torch.zeros(d_model)).",
                )
            if not bool((got == value).all()):
                fail(
                    f"A new LayerNorm starts with {key} = {fmt_values(got)}, expected all "
                    f"{value:g}.",
                    case=case,
                    hint="Start as the identity: weight = torch.ones(d_model) and bias = "
                    "torch.zeros(d_model) (ones for the gain, zeros for the shift).",
                )

    @settings(max_examples=5)
    @given(lead=lead_shapes, d_model=st.integers(2, 8), seed=seeds)
    def test_gradients_reach_every_parameter(self, sub, ref, lead, d_model, seed):
        """gradients reach weight and bias (both are trainable parameters)"""
        pair = build_pair(sub, ref, "LayerNorm", seed=seed, d_model=d_model)
        x = randn((*lead, 2, d_model), seed=seed)
        expect_gradients(sub, pair, x, case=_ln_case(x, d_model=d_model))


def _addnorm_pair(sub, ref, *, d_model, dtype=torch.float64, seed=0, dropout=0.0, eps=1e-5):
    """The learner's AddNorm around a trusted LayerNorm (the reference's weights): a wrong
    LayerNorm costs only LayerNorm's points."""
    return build_pair(
        sub,
        ref,
        "AddNorm",
        dtype=dtype,
        seed=seed,
        children={"norm": ("LayerNorm", {"d_model": d_model, "eps": eps})},
        d_model=d_model,
        dropout=dropout,
        eps=eps,
    )


ADDNORM_HINT = (
    "AddNorm is post-norm: return self.norm(x + self.dropout(sublayer_out)), the residual x "
    "plus the sub-layer's output, normalised after the sum."
)


class TestAddNorm:
    component = "AddNorm"

    @given(
        lead=st.lists(st.integers(1, 3), min_size=2, max_size=2),
        d_model=widths,
        seed=seeds,
        dtype=dtypes,
        scale=scales,
        dropout=st.sampled_from([0.0, 0.1, 0.5]),
        eps=st.sampled_from([1e-5, 1e-3]),
    )
    def test_matches_reference(self, sub, ref, lead, d_model, seed, dtype, scale, dropout, eps):
        """matches norm(x + sublayer_out) in eval(), in x's dtype, leaving its inputs unchanged"""
        pair = _addnorm_pair(
            sub, ref, d_model=d_model, dtype=dtype, seed=seed, dropout=dropout, eps=eps
        )
        x = randn((*lead, d_model), seed=seed, dtype=dtype, scale=scale)
        s = randn((*lead, d_model), seed=seed + 1, dtype=dtype, scale=scale)
        case = case_str(x=x, sublayer_out=s, d_model=d_model, dropout=dropout, eps=eps, scale=scale)
        res = sub.call(pair.student, x, s, echo_inputs=True)
        _expect_unchanged([x, s], res, "AddNorm", case)
        expect_close(
            res["out"], pair.reference(x, s), "AddNorm output", case=case, hint=ADDNORM_HINT
        )

    @settings(max_examples=5)
    @given(
        d_model=widths,
        seed=seeds,
        dropout=st.sampled_from([0.0, 0.3]),
        eps=st.sampled_from([1e-5, 1e-3]),
    )
    def test_structure(self, sub, ref, d_model, seed, dropout, eps):
        """builds its own norm from your LayerNorm, with d_model and eps"""
        expect_own_structure(
            sub,
            ref,
            "AddNorm",
            dict(d_model=d_model, dropout=dropout, eps=eps),
            children={"norm": ("LayerNorm", {"d_model": d_model, "eps": eps})},
            case=case_str(d_model=d_model, dropout=dropout, eps=eps),
            probe=(torch.zeros(1, d_model), torch.zeros(1, d_model)),
            seed=seed,
        )

    @given(d_model=st.integers(2, 8), seed=seeds, B=st.integers(1, 3), T=st.integers(1, 4))
    def test_residual_path(self, sub, ref, d_model, seed, B, T):
        """the residual path: sublayer_out = 0 gives norm(x), and x = 0 gives norm(sublayer_out)"""
        pair = _addnorm_pair(sub, ref, d_model=d_model, seed=seed)
        x = randn((B, T, d_model), seed=seed)
        zero = torch.zeros_like(x)
        case = case_str(x=x, d_model=d_model)
        expect_close(
            sub.call(pair.student, x, zero),
            pair.reference.norm(x),
            "AddNorm(x, sublayer_out=0), compared with norm(x)",
            case=case + ", sublayer_out = 0",
            hint="The residual x must reach the norm: " + ADDNORM_HINT,
        )
        expect_close(
            sub.call(pair.student, zero, x),
            pair.reference.norm(x),
            "AddNorm(0, sublayer_out), compared with norm(sublayer_out)",
            case=case.replace("x=", "sublayer_out=") + ", x = 0",
            hint="The sub-layer's output must reach the norm too: " + ADDNORM_HINT,
        )

    @settings(max_examples=6)
    @given(d_model=st.integers(2, 8), seed=seeds)
    def test_dropout_only_in_training(self, sub, ref, d_model, seed):
        """dropout is the identity in eval() and, in train(), only drops parts of sublayer_out"""
        pair = _addnorm_pair(sub, ref, d_model=d_model, seed=seed, dropout=0.5)
        x = randn((2, 4, d_model), seed=seed)
        s = randn((2, 4, d_model), seed=seed + 1)
        case = case_str(x=x, sublayer_out=s, d_model=d_model, dropout=0.5)
        expected = pair.reference(x, s)
        expect_close(
            sub.call(pair.student, x, s),
            expected,
            "output in eval() with dropout=0.5",
            case=case,
            hint="Dropout must do nothing in eval(): use nn.Dropout (it checks self.training) "
            "rather than F.dropout(..., training=True).",
        )
        sub.configure(pair.student, train=True)
        got = expect_tensor(
            sub.call(pair.student, x, s), "output in train()", shape=x.shape, case=case
        )
        if torch.allclose(got, expected):
            fail(
                "With dropout=0.5 in train() mode the output equals the eval() output.",
                case=case,
                hint="Apply self.dropout = nn.Dropout(dropout) to sublayer_out before adding it: "
                "self.norm(x + self.dropout(sublayer_out)).",
            )
        expect_close(
            sub.call(pair.student, x, torch.zeros_like(s)),
            pair.reference.norm(x),
            "output in train() with sublayer_out = 0, compared with norm(x)",
            case=case + ", sublayer_out = 0",
            hint="Dropout applies to the sub-layer's output only, never to the residual x or "
            "to the sum: self.norm(x + self.dropout(sublayer_out)).",
        )

    @settings(max_examples=4)
    @given(d_model=st.integers(4, 8), seed=seeds, p=st.sampled_from([0.2, 0.5]))
    def test_dropout_placement(self, sub, ref, d_model, seed, p):
        """in train(), dropout acts on sublayer_out only, with the module's p"""
        pair = _addnorm_pair(sub, ref, d_model=d_model, seed=seed, dropout=p)
        sub.configure(pair.student, train=True)
        n = 1000
        x = randn((2, 4, d_model), seed=seed).repeat(n, 1, 1)
        s = randn((2, 4, d_model), seed=seed + 1).repeat(n, 1, 1)
        case = case_str(B=2, T=4, d_model=d_model, dropout=p) + f", train(), repeated {n} times"
        expect_dropout_statistics(
            sub,
            pair,
            (x, s),
            replicas=n,
            case=case,
            what="the output",
            hint="Dropout applies to the sub-layer's output only, with the module's p, before "
            "the sum: self.norm(x + self.dropout(sublayer_out)), self.dropout = "
            "nn.Dropout(dropout); not to x, to the sum or after the norm.",
        )

    @settings(max_examples=5)
    @given(bad=st.sampled_from([("dropout", -0.1), ("dropout", 1.0), ("dropout", 1.5)]))
    def test_rejects_bad_arguments(self, sub, bad):
        """raises ValueError naming dropout when it is outside [0, 1)"""
        expect_rejects(sub, "AddNorm", dict(d_model=4), dict([bad]), (torch.zeros(1, 4),) * 2)
