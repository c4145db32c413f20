"""Efficiency feedback: how much slower than the reference a component is, and why it may be.

A component can match the reference and still be 40x slower because it loops over heads,
tokens or positions in Python. After grading, each graded component of a fixed list runs on a
moderate, fixed shape (float32, eval mode, the learner's own code all the way down), its
forward pass (and the backward pass where it has parameters) timed against the reference's on
the same shape, with the same one thread. The ratio goes into ``results.json`` (under
``artifacts["efficiency"]``) and the report; above the rubric's ``[efficiency] warn_ratio``
(default 10) it comes with a warning and the usual cause. It is informational: no points,
never a change of score.

How it is timed: the learner's calls run in the worker (``Submission.repeat``: the call made
a few times in one request) and are timed by *this* side's clock, so learner code can only
make itself look slower; the reference runs here. Each side's time is the best of a few
samples of a few calls after a warm-up (the least disturbed by a busy machine). A component
whose single call already takes long is timed once; the whole measurement has a time budget.
Trusted side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from llm_grade.grading.pairs import build_pair, reference_of

SAMPLE_S = 0.01  # each timed request makes about this much of calls
MAX_REPEATS = 200
SAMPLES = 3  # timed requests (the best is kept)
SLOW_CALL_S = 0.25  # a warm-up call slower than this is timed once, not again
BUDGET_S = 8.0  # for the whole measurement, learner's and reference's


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(11)


def _causal(t: int) -> torch.Tensor:
    return torch.ones(t, t, dtype=torch.bool).tril()


@dataclass(frozen=True)
class Case:
    component: str
    shape: str  # what the report says was timed
    inputs: Callable[[], tuple]
    kwargs: dict | None = None  # a module's constructor arguments (None: a function)
    backward: bool = False
    hint: str = ""


LOOPS = "a Python loop over rows or elements; compute on whole tensors along the dimension"
CASES = (
    Case(
        "softmax",
        "x [16, 64, 64]",
        lambda: (torch.randn(16, 64, 64, generator=_g()),),
        hint=LOOPS,
    ),
    Case(
        "sinusoidal_positional_encoding",
        "seq_len 512, d_model 64",
        lambda: (512, 64),
        hint="loops over positions or features; build the whole table with arange and broadcasting",
    ),
    Case(
        "scaled_dot_product_attention",
        "q, k, v [4, 8, 64, 16] with a causal mask",
        lambda: (
            *(torch.randn(4, 8, 64, 16, generator=_g()) for _ in range(3)),
            _causal(64),
        ),
        hint="a Python loop over batches, heads or positions; one batched matmul "
        "(q @ k.transpose(-2, -1)) covers them all",
    ),
    Case(
        "MultiHeadAttention",
        "d_model 128, 64 heads, x [1, 8, 128], causal mask",
        lambda: (*(torch.randn(1, 8, 128, generator=_g()),) * 3, _causal(8)),
        kwargs={"d_model": 128, "n_heads": 64},
        backward=True,
        hint="a Python loop over heads: reshape each projection to [B, n_heads, T, d_head] "
        "and attend with every head at once",
    ),
    Case(
        "gelu",
        "x [16, 64, 256]",
        lambda: (torch.randn(16, 64, 256, generator=_g()),),
        hint=LOOPS,
    ),
    Case(
        "FeedForward",
        "d_model 64, d_ff 256, x [8, 32, 64]",
        lambda: (torch.randn(8, 32, 64, generator=_g()),),
        kwargs={"d_model": 64, "d_ff": 256},
        backward=True,
        hint="a Python loop over tokens; nn.Linear applies to every position at once",
    ),
    Case(
        "LayerNorm",
        "d_model 64, x [8, 32, 64]",
        lambda: (torch.randn(8, 32, 64, generator=_g()),),
        kwargs={"d_model": 64},
        backward=True,
        hint="a Python loop over rows; mean and var over dim=-1 with keepdim=True cover them",
    ),
    Case(
        "GPT",
        "vocab 64, d_model 64, 8 heads, 2 layers, d_ff 128, tokens [4, 64]",
        lambda: (torch.randint(0, 64, (4, 64), generator=_g()),),
        kwargs={
            "vocab_size": 64,
            "d_model": 64,
            "n_heads": 8,
            "n_layers": 2,
            "d_ff": 128,
            "max_len": 128,
        },
        backward=True,
        hint="rebuilding the causal mask or the positional table on every call, Python loops "
        "over positions or heads, or .item() inside a loop",
    ),
)


PROFILED = ("GPT",)  # also profiled: the top operators by self time, the learner's and ours
PROFILE_TOP = 10


def _profiles(sub, case: Case, target, reference_module) -> dict[str, Any]:
    """One forward and backward pass of each side under PyTorch's profiler (the learner's in
    the worker, warm from the timing): the operators by self time, ``[name, self_us,
    calls]``, as the report's table; a side that fails gets an ``error`` instead."""
    from llm_grade.sandbox.executor import cpu_profiler, operator_table

    found: dict[str, Any] = {}
    try:
        rows = sub.profile(target, *case.inputs(), top=PROFILE_TOP)
        found["learner"] = _plain_rows(rows)
    except Exception as exc:  # noqa: BLE001 - feedback, never a broken grading
        found["learner_error"] = f"not profiled: {type(exc).__name__}"
    args = case.inputs()
    reference_module.zero_grad(set_to_none=True)
    with cpu_profiler() as prof:
        reference_module(*args).float().sum().backward()
    found["reference"] = operator_table(prof, PROFILE_TOP)
    return found


def _plain_rows(rows: Any) -> list:
    """The worker's operator table, kept only as far as it is what it should be."""
    kept = []
    for row in rows if isinstance(rows, list) else []:
        if (
            isinstance(row, list)
            and len(row) == 3
            and isinstance(row[0], str)
            and isinstance(row[1], (int, float))
            and isinstance(row[2], int)
        ):
            kept.append([row[0][:80], float(row[1]), row[2]])
    return kept[:PROFILE_TOP]


class _OutOfTime(Exception):
    pass


def _best(run: Callable[[int], float], deadline: float) -> float:
    """Per-call seconds: a warm-up, then the best of SAMPLES timed runs of as many calls as
    take about SAMPLE_S (so that a round trip to the worker is a small part of it)."""
    first = run(1)  # (a first call pays for lazy set-up, page faults and caches)
    if first > SLOW_CALL_S or time.monotonic() > deadline:
        return first
    first = run(1)
    repeats = max(1, min(MAX_REPEATS, round(SAMPLE_S / max(first, 1e-6))))
    best = float("inf")
    for _ in range(SAMPLES):
        if time.monotonic() > deadline:
            raise _OutOfTime
        best = min(best, run(repeats) / repeats)
    return best


def _learner_timer(sub, case: Case, target) -> Callable[[int], float]:
    # tensors are sent once and named after: a request carries no data to time
    args = [sub.hold(a) if isinstance(a, torch.Tensor) else a for a in case.inputs()]
    return lambda repeats: sub.repeat(target, *args, repeats=repeats, backward=case.backward)


def _reference_timer(case: Case, ref_pkg, reference_module) -> Callable[[int], float]:
    target = (
        reference_module if reference_module is not None else reference_of(ref_pkg, case.component)
    )
    args = case.inputs()

    def run(repeats: int) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            if case.backward:
                target.zero_grad(set_to_none=True)
                out = target(*args)
                (out[0] if isinstance(out, tuple) else out).float().sum().backward()
            else:
                with torch.no_grad():
                    target(*args)
        return time.perf_counter() - started

    return run


def measure(sub, ref_pkg, components: set[str], warn_ratio: float) -> dict[str, Any]:
    """``{component: {"shape", "learner_ms", "reference_ms", "ratio", "warning"}}`` (or
    ``{"error": ...}``) for the graded components of :data:`CASES`; never raises."""
    from llm_grade.grading.outcomes import GradingOutcome, NotImplementedYet, WorkerFailure

    found: dict[str, Any] = {}
    deadline = time.monotonic() + BUDGET_S
    sub.use_oracles([])  # the learner's own code all the way down
    for case in CASES:
        if case.component not in components:
            continue
        entry: dict[str, Any] = {"shape": case.shape}
        try:
            if time.monotonic() > deadline:
                raise _OutOfTime
            reference_module = None
            if case.kwargs is None:
                target = case.component
            else:
                pair = build_pair(sub, ref_pkg, case.component, dtype=torch.float32, **case.kwargs)
                target, reference_module = pair.student, pair.reference
            learner = _best(_learner_timer(sub, case, target), deadline)
            reference = _best(_reference_timer(case, ref_pkg, reference_module), deadline)
            if case.component in PROFILED and time.monotonic() < deadline:
                entry["profile"] = _profiles(sub, case, target, reference_module)
        except _OutOfTime:
            entry["error"] = "not timed: the time for efficiency feedback ran out"
        except NotImplementedYet:
            continue
        except (GradingOutcome, WorkerFailure) as exc:
            entry["error"] = f"not timed: {exc.message.splitlines()[0]}"
        except Exception as exc:  # noqa: BLE001 - feedback, never a broken grading
            entry["error"] = f"not timed: {type(exc).__name__}: {exc}"
        else:
            ratio = learner / reference if reference > 0 else float("inf")
            entry.update(
                learner_ms=round(learner * 1000, 3),
                reference_ms=round(reference * 1000, 3),
                ratio=round(ratio, 2),
            )
            if ratio > warn_ratio:
                entry["warning"] = (
                    f"{case.component} took {ratio:.0f}x the reference's time ({case.shape}). "
                    f"The usual cause: {case.hint}."
                )
        found[case.component] = entry
        if isinstance(entry.get("error"), str) and "ran out" in entry["error"]:
            break
    return found


__all__ = ["CASES", "measure"]
