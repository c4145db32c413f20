"""Checks that turn learner outputs into pass/fail with a message a learner can act on.

Every helper raises :class:`~llm_grade.grading.outcomes.CheckFailure` with the property in plain
words, the smallest case (shapes first, a few values), expected vs got, and the hint the
grader supplies. Nothing here trusts the value it inspects: types are checked first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from llm_grade.grading.outcomes import CheckFailure
from llm_grade.sandbox.wire import Opaque


def tolerance(dtype: torch.dtype | str) -> dict[str, float]:
    """``{"atol", "rtol"}`` for ``dtype`` in this grading run: the rubric's ``[tolerance]``
    (and its device table), else the defaults (see :mod:`llm_grade.grading.context`)."""
    from llm_grade.grading.context import current

    return current().tolerance(dtype)


NON_FINITE_HINT = (
    "NaN or inf usually comes from exp() overflowing, dividing by zero, or a softmax row whose "
    "scores are all -inf (every key masked out)."
)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def fmt_num(x: float) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.2e}"
    return f"{x:.3f}"


def fmt_values(t: torch.Tensor, limit: int = 6) -> str:
    """``[ 0.213, -1.102, ...]``: the first few values of a tensor, flattened."""
    flat = t.detach().reshape(-1)
    shown = [fmt_num(v.item()) for v in flat[:limit]]
    width = max((len(s) for s in shown), default=0)
    body = ", ".join(s.rjust(width) for s in shown)
    return f"[{body}{', …' if flat.numel() > limit else ''}]"


def fmt_pair(
    expected: torch.Tensor, got: torch.Tensor, bad: torch.Tensor | None = None, limit: int = 6
) -> tuple[str, str]:
    """Two rows of values printed so that they show *where* and *how* they differ: the window
    of ``limit`` values around the largest difference, with as many significant digits as it
    takes for every value that differs (``bad``, default: any difference) to print
    differently, aligned column by column."""
    e = expected.detach().reshape(-1).to(torch.float64)
    g = got.detach().reshape(-1).to(torch.float64)
    if e.numel() != g.numel() or e.numel() == 0:
        return fmt_values(expected, limit), fmt_values(got, limit)
    differs = (e != g) & ~(torch.isnan(e) & torch.isnan(g))
    if bad is not None and bad.numel() == e.numel():
        differs &= bad.detach().reshape(-1).to(torch.bool)
    gap = torch.nan_to_num((e - g).abs(), nan=math.inf)
    at = int(torch.argmax(torch.where(differs, gap, -1.0)))
    start = max(0, min(at - limit // 2, e.numel() - limit))
    window = range(start, min(start + limit, e.numel()))
    pairs = [(e[i].item(), g[i].item(), bool(differs[i])) for i in window]
    for digits in range(4, 18):
        shown = [(_sig(x, digits), _sig(y, digits)) for x, y, _ in pairs]
        if all(sx != sy for (sx, sy), (_, _, d) in zip(shown, pairs, strict=True) if d):
            break
    width = max(len(v) for pair in shown for v in pair)
    head = "…, " if start > 0 else ""
    tail = ", …" if window.stop < e.numel() else ""
    rows = [", ".join(pair[k].rjust(width) for pair in shown) for k in (0, 1)]
    return f"[{head}{rows[0]}{tail}]", f"[{head}{rows[1]}{tail}]"


def _sig(x: float, digits: int) -> str:
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4 and digits <= 6:  # the familiar look: 0.4191, -1.102
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
        return f"{x:.{decimals}f}"
    return f"{x:.{digits - 1}e}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.{digits}g}"


def fmt_index(index: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def case_str(**params: Any) -> str:
    """``B=1, T=3, d_model=4``: the parameters of a counterexample, shapes first."""
    parts = []
    for key, value in params.items():
        if isinstance(value, torch.Tensor):
            value = f"{dtype_name(value.dtype)} {tuple(value.shape)}"
        elif isinstance(value, torch.dtype):
            value = dtype_name(value)
        elif isinstance(value, float):
            value = fmt_num(value)
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def expect_tensor(
    value: Any,
    what: str,
    *,
    case: str = "",
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    finite: bool = True,
    hint: str = "",
) -> torch.Tensor:
    """``value`` must be a plain ``torch.Tensor`` with this dtype and shape, and finite."""
    if isinstance(value, Opaque) or type(value) is not torch.Tensor:
        got = str(value) if isinstance(value, Opaque) else f"a {type(value).__name__}"
        raise CheckFailure(
            f"{what} should be a torch.Tensor, but your code returned {got}.",
            counterexample=case,
            hint=hint or "Return a torch.Tensor (not a list, a NumPy array or a tuple).",
        )
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailure(
            f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}.",
            counterexample=case,
            hint=hint or "Check which dimensions you reshape, transpose or reduce.",
        )
    if dtype is not None and value.dtype != dtype:
        raise CheckFailure(
            f"{what} has dtype {dtype_name(value.dtype)}, expected {dtype_name(dtype)}.",
            counterexample=case,
            hint=hint
            or "The output dtype must equal the input dtype: don't hard-code float32 "
            "(e.g. torch.tensor(..., dtype=torch.float32) or .float()); build new tensors "
            "with dtype=x.dtype.",
        )
    if finite and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        bad = (~torch.isfinite(value)).nonzero()[0].tolist()
        raise CheckFailure(
            f"{what} contains {value[tuple(bad)].item()} at {fmt_index(bad)} "
            f"({int((~torch.isfinite(value)).sum())} non-finite values).",
            counterexample=case,
            hint=hint or NON_FINITE_HINT,
        )
    return value


def expect_close(
    got: Any,
    expected: torch.Tensor,
    what: str,
    *,
    case: str,
    hint: str,
    atol: float | None = None,
    rtol: float | None = None,
    check_dtype: bool = True,
    explain: dict[str, str] | None = None,
) -> torch.Tensor:
    """``got`` must be a tensor like ``expected`` (type, shape, dtype, finite) and close to it.

    On a mismatch the message says what the difference looks like (a constant factor, a
    transpose, a shift, ... see :mod:`llm_grade.grading.diagnose`), and the hint follows from it:
    ``explain[kind]`` when the grader knows what that pattern means for this component, else
    the pattern's usual meaning before the grader's own hint. A hint from
    :func:`hint_for` (a known wrong answer reproduced) is kept as it is."""
    if (
        type(got) is torch.Tensor
        and tuple(got.shape) != tuple(expected.shape)
        and not isinstance(hint, KnownCause)
    ):
        raise CheckFailure(
            f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}.",
            counterexample=case,
            hint=f"Check which dimensions you reshape, transpose or reduce. {hint}".strip(),
        )
    got = expect_tensor(
        got,
        what,
        case=case,
        shape=expected.shape,
        dtype=expected.dtype if check_dtype else None,
        finite=False,
    )
    if got.is_floating_point() and not bool(torch.isfinite(got).all()):
        # non-finite where the reference is finite: the generic cause plus the grader's hint
        expect_tensor(got, what, case=case, hint=f"{NON_FINITE_HINT} {hint}".strip())
    tol = tolerance(expected.dtype)
    atol = tol["atol"] if atol is None else atol
    rtol = tol["rtol"] if rtol is None else rtol
    if not expected.is_floating_point():
        bad = got != expected
    else:
        bad = ~torch.isclose(got.to(expected.dtype), expected, atol=atol, rtol=rtol)
    if not bool(bad.any()):
        return got
    diff = (got.to(torch.float64) - expected.to(torch.float64)).abs()
    worst = torch.nonzero(diff == diff.max())[0].tolist() if diff.numel() else []
    rel = diff.max().item() / max(abs(expected[tuple(worst)].item()), 1e-12) if worst else 0.0
    row = tuple(worst[:-1]) if len(worst) > 1 else ()
    shown_expected, shown_got = fmt_pair(expected[row], got[row].to(expected.dtype), bad[row])
    lines = [
        case,
        f"  expected{fmt_index(row) if row else ''}: {shown_expected}",
        f"  got{fmt_index(row) if row else ''}:      {shown_got}",
    ]
    message = (
        f"{what}: {int(bad.sum())} of {bad.numel()} values differ "
        f"(max abs error {fmt_num(diff.max().item())}, rel {fmt_num(rel)}, at {fmt_index(worst)})."
    )
    if expected.is_floating_point():
        from llm_grade.grading.diagnose import ADVICE, find_pattern

        pattern = find_pattern(got, expected)
        if pattern is not None:
            message += f" The difference has a pattern: {pattern.text}."
            if not isinstance(hint, KnownCause):
                specific = (explain or {}).get(pattern.kind)
                advice = ADVICE.get(pattern.kind, "")
                hint = specific or " ".join(x for x in (advice, hint) if x)
    raise CheckFailure(
        diff=_diff_slice(got, expected, worst),
        message=message,
        counterexample="\n".join(lines),
        hint=hint,
    )


class KnownCause(str):
    """A hint chosen because the learner's output reproduces a known wrong answer exactly:
    it already names the cause, so no pattern advice is added to it."""


def _diff_slice(
    got: torch.Tensor, expected: torch.Tensor, worst: list[int], limit: int = 16
) -> dict | None:
    """The 2-D slice (at most ``limit`` x ``limit``) around the worst error, as plain lists."""
    if expected.dim() == 0 or not expected.is_floating_point():
        return None
    if expected.dim() == 1:
        got, expected, worst = got.unsqueeze(0), expected.unsqueeze(0), [0, *worst]
    lead = tuple(worst[:-2])
    rows = max(0, min(worst[-2] - limit // 2, expected.shape[-2] - limit))
    cols = max(0, min(worst[-1] - limit // 2, expected.shape[-1] - limit))
    window = (*lead, slice(rows, rows + limit), slice(cols, cols + limit))

    def plain(t: torch.Tensor) -> list:
        return [[round(float(v), 6) for v in row] for row in t[window].detach().to(torch.float64)]

    where = ", ".join([*map(str, lead), f"{rows}:{rows + limit}", f"{cols}:{cols + limit}"])
    return {"expected": plain(expected), "got": plain(torch.nan_to_num(got)), "where": f"[{where}]"}


def fail(message: str, *, case: str = "", hint: str = "", detail: str = "") -> None:
    """Raise a :class:`CheckFailure` (for properties that are not a plain comparison)."""
    raise CheckFailure(message, counterexample="\n".join(x for x in (case, detail) if x), hint=hint)


# ---------------------------------------------------------------- shared by composite graders


def loosely_close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a`` is a tensor like ``b`` and within ten times the tolerance of it."""
    tol = tolerance(b.dtype)
    return (
        type(a) is torch.Tensor
        and a.shape == b.shape
        and bool(torch.allclose(a.to(b.dtype), b, atol=10 * tol["atol"], rtol=10 * tol["rtol"]))
    )


def hint_for(got, candidates, default: str) -> str:
    """The hint of the known wrong answer that ``got`` reproduces, else ``default``; when several
    reproduce it (on a tiny case two bugs can give the same output), ``default`` and all of
    theirs, since the evidence does not tell which."""
    hits = list(dict.fromkeys(h for v, h in candidates if v is not None and loosely_close(got, v)))
    if len(hits) == 1:
        return KnownCause(hits[0])
    if hits:
        return f"{default} On this small case your output is what each of these bugs gives: " + (
            " / ".join(hits)
        )
    return default


def expect_prefix_unchanged(out1, out2, t: int, *, what: str, case: str, hint: str) -> None:
    """Outputs at positions 0..t must be identical (changes happened after position t)."""
    diff = (out1[:, : t + 1] - out2[:, : t + 1]).abs().to(torch.float64)
    if bool((diff > 1e-9).any()):
        b, p = (diff == diff.max()).nonzero()[0].tolist()[:2]
        fail(
            f"Changing {what} after position {t} changed the output at position {p}.",
            case=case,
            detail=fmt_before_after(out1[b, p], out2[b, p], f"output[{b}, {p}]"),
            hint=hint,
        )


def expect_rows_unchanged(out1, out2, keep: torch.Tensor, *, what: str, case: str, hint: str):
    """Outputs at the positions where ``keep [B, T]`` is True must be identical."""
    diff = (out1 - out2).abs().to(torch.float64).amax(dim=-1) * keep
    if bool((diff > 1e-9).any()):
        b, p = (diff == diff.max()).nonzero()[0].tolist()
        fail(
            f"Changing {what} changed the output at position {p}, which is not padding.",
            case=case,
            detail=fmt_before_after(out1[b, p], out2[b, p], f"output[{b}, {p}]"),
            hint=hint,
        )


def fmt_before_after(before: torch.Tensor, after: torch.Tensor, where: str) -> str:
    """Two lines, ``where before: [...]`` and ``where after: [...] (max abs diff ...)``, that
    show where the two differ (see :func:`fmt_pair`)."""
    shown_before, shown_after = fmt_pair(before, after.to(before.dtype))
    gap = (before.to(torch.float64) - after.to(torch.float64)).abs().max().item()
    return (
        f"  {where} before: {shown_before}\n"
        f"  {where} after:  {shown_after}   (max abs diff {gap:.1e})"
    )
