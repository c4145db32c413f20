"""Behaviour checks: dropout statistics in train() (:func:`expect_dropout_statistics`), the
meta device (:func:`expect_on_meta`) and argument validation (:func:`expect_rejects`,
:func:`raises_value_error`, :func:`started`).

Trusted side: helpers of the graders. They reach learner code only through the submission
handle ``sub``.
"""

from __future__ import annotations

from typing import Any

import torch

from llm_grade.grading.outcomes import CheckFailure
from llm_grade.grading.pairs import Pair
from llm_grade.sandbox.wire import Opaque


def expect_dropout_statistics(
    sub,
    pair: Pair,
    args: tuple,
    *,
    replicas: int,
    case: str,
    hint: str,
    what: str,
) -> None:
    """In train(), the learner's output has the reference's distribution over dropout draws:
    the same mean and the same spread, element by element (dropout in the right place, with
    the right p). ``args`` are inputs repeated ``replicas`` times along the batch axis, so one
    call draws ``replicas`` independent dropout masks.

    Never flaky: both sides are seeded, and the bounds are wide against what a correct
    placement can give (the mean difference in units of its own standard error: about 1 on
    average for a correct module; the total variance within a factor 1.6 of the reference's).
    """
    got = sub.call(pair.student, *args)
    pair.reference.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(20_000)
        with torch.no_grad():
            expected = pair.reference(*args)
    pair.reference.eval()
    if isinstance(expected, tuple):
        expected = expected[0]
    if isinstance(got, Opaque) or type(got) is not torch.Tensor or got.shape != expected.shape:
        raise CheckFailure(
            f"{what} in train() is not a tensor of shape {tuple(expected.shape)}.",
            counterexample=case,
            hint=hint,
        )
    if not bool(torch.isfinite(got).all()):
        raise CheckFailure(
            f"{what} in train() contains NaN or inf.", counterexample=case, hint=hint
        )
    n = replicas
    got = got.to(torch.float64).reshape(n, -1)
    expected = expected.to(torch.float64).reshape(n, -1)
    m_l, m_r = got.mean(0), expected.mean(0)
    v_l, v_r = got.var(0), expected.var(0)
    z2 = ((m_l - m_r) ** 2 / ((v_l + v_r) / n + 1e-18)).mean().item()
    ratio = (v_l.sum() / v_r.sum().clamp_min(1e-30)).item()
    if z2 > 4.0 or not (0.6 <= ratio <= 1.6):
        worst = int(((m_l - m_r).abs()).argmax())
        detail = (
            f"over {n} dropout draws: mean differs from the reference's by "
            f"{z2**0.5:.1f} standard errors on average; spread (variance) {ratio:.2f} "
            f"times the reference's\n  mean at the worst entry: expected "
            f"{m_r[worst].item():.4f}, got {m_l[worst].item():.4f}"
        )
        raise CheckFailure(
            f"In train(), {what} is not distributed like the reference's: dropout is in "
            "another place or uses another p.",
            counterexample=f"{case}\n  {detail}",
            hint=hint,
        )


DEVICE_HINT = (
    "Everything must work on any device: create new tensors on the device of the input "
    "(torch.ones(..., device=x.device), causal_mask(T, device=x.device)) and keep fixed tables "
    "in register_buffer so that .to(device) moves them with the module."
)
# errors that say only that a correct module cannot run on the meta device (it looks at
# values: .item(), bool(), printing): the check cannot tell anything then, and passes
_META_LIMITS = ("meta tensor", "on meta", "data-dependent", "Cannot copy out of meta")


def on_meta(value: Any) -> Any:
    """``value`` with every tensor moved to the meta device (shapes and dtypes, no data)."""
    if type(value) is torch.Tensor:
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return type(value)(on_meta(v) for v in value)
    return value


def expect_on_meta(
    sub,
    target: Any,
    args: tuple,
    *,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    case: str,
    what: str,
    method: str | None = None,
) -> None:
    """With its inputs (and, for a module, its parameters and buffers) on the meta device,
    ``target`` must compute an output there: a tensor made on the CPU inside it, or a table
    kept as a plain attribute, meets a meta tensor and fails, on any machine. (The meta
    device has shapes and dtypes but no data.)"""
    from llm_grade.grading.outcomes import LearnerError, NotImplementedYet

    sub.call(target, *args, method=method)  # on the CPU first: a stub is "not implemented"
    if isinstance(target, dict):
        sub.configure(target, device="meta")
    case = f"{case}, on the meta device"
    try:
        got = sub.call(target, *on_meta(args), method=method)
    except NotImplementedYet:
        return  # NotImplementedError from torch: "cannot copy out of meta tensor" (.cpu())
    except LearnerError as exc:
        text = exc.exc_message
        if any(limit in text for limit in _META_LIMITS):
            return  # it reads values: the meta device cannot tell us anything here
        if "device" in text:
            raise CheckFailure(
                f"{what} on the meta device failed: {exc.exc_message}",
                counterexample=case,
                hint=DEVICE_HINT,
            ) from None
        raise
    if isinstance(got, (tuple, list)) and got:
        got = got[0]
    if type(got) is not torch.Tensor:
        raise CheckFailure(
            f"{what} on the meta device returned {type(got).__name__}, not a tensor.",
            counterexample=case,
        )
    if not got.is_meta:
        raise CheckFailure(
            f"{what}: with every input on the meta device the output is on {got.device.type}.",
            counterexample=case,
            hint=DEVICE_HINT,
        )
    if tuple(got.shape) != tuple(shape) or got.dtype != dtype:
        raise CheckFailure(
            f"{what} on the meta device has shape {tuple(got.shape)} and dtype {got.dtype}, "
            f"expected {tuple(shape)} and {dtype}.",
            counterexample=case,
            hint=DEVICE_HINT,
        )


def raises_value_error(action, *, names: tuple[str, ...], what: str, case: str, hint: str):
    """``action()`` (a call through the handle) must raise ValueError naming one of ``names``."""
    from llm_grade.grading.outcomes import LearnerError, NotImplementedYet

    try:
        action()
    except NotImplementedYet:
        raise
    except LearnerError as exc:
        if exc.exc_type == "ValueError":
            if any(name in exc.exc_message for name in names):
                return
            raise CheckFailure(
                f"The ValueError's message doesn't name the argument: {exc.exc_message!r}",
                counterexample=case,
                hint=f"Say which argument is wrong and its value, e.g. "
                f"f'{names[0]} must be ..., got {{{names[0]}}}'.",
            ) from None
        raise CheckFailure(
            f"{what} raised {exc.exc_type}: {exc.exc_message}; expected ValueError.",
            counterexample=case,
            hint=hint,
        ) from None
    raise CheckFailure(f"{what} did not raise ValueError.", counterexample=case, hint=hint)


def started(action) -> None:
    """Run a valid call first: a stub's NotImplementedError means "not started", not a fail."""
    from llm_grade.grading.outcomes import LearnerError, NotImplementedYet

    try:
        action()
    except NotImplementedYet:
        raise
    except LearnerError:
        pass  # a crash on valid input costs the other checks, not this one


VALIDATE_HINT = (
    "Validate the arguments first, in __init__ (or at the top of the function), and raise "
    "ValueError naming the argument: sizes must be positive (n_layers, d_model, d_ff, ...), "
    "0 <= dropout < 1 (API.md lists every case)."
)


def expect_rejects(
    sub, component: str, valid: dict[str, Any], bad: dict[str, Any], probe: tuple
) -> None:
    """``component(**valid)`` builds and runs on ``probe`` (a stub is "not implemented yet");
    ``component(**{**valid, **bad})`` raises ValueError naming the argument of ``bad``."""
    from llm_grade.grading.compare import case_str

    started(lambda: sub.call(sub.build(component, **valid), *probe))
    kwargs = {**valid, **bad}
    raises_value_error(
        lambda: (sub.build(component, **kwargs), sub.flush()),
        names=tuple(bad),
        what=f"{component}({case_str(**kwargs)})",
        case=case_str(**kwargs),
        hint=VALIDATE_HINT,
    )
