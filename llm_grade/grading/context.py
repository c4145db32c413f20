"""The context of one grading run: what the graders' helpers need from the session.

A :class:`GradingContext` is made by the scoring session from its rubric and device, and is
active for that run only (:func:`active`): the tolerances expected-vs-got comparisons use, and
the pool of reference modules reused between Hypothesis examples. Nothing outlives the run,
so two gradings in one process (a test suite, a batch worker, a notebook kernel) never share
state, except, in a long-lived grading process that asks for it
(:func:`share_references_between_runs`), the trusted reference modules of that pool.
Outside a run (a grader helper called from a test), :func:`current` gives the defaults.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


class ReferencePool:
    """Built reference modules, kept for reuse by a later Hypothesis example with the same
    arguments (building is a good part of a check's time; every parameter is re-randomized).
    A module is lent to one example at a time and comes back when the example ends."""

    def __init__(self, size: int = 64):
        self.size = size
        self._free: dict[tuple, list[nn.Module]] = {}
        self._lent: list[tuple[tuple, nn.Module]] = []

    def borrow(self, key: tuple, build: Callable[[], nn.Module]) -> nn.Module:
        """A module built by ``build()`` (or an equal one returned earlier under ``key``);
        an unhashable key builds a fresh one."""
        try:
            hash(key)
        except TypeError:  # an unhashable argument: build it fresh
            return build()
        free = self._free.get(key)
        module = free.pop() if free else build()
        self._lent.append((key, module))
        return module

    def give_back(self) -> None:
        """The example that borrowed modules ended: they can be reused (the pool keeps the
        ``size`` returned last)."""
        for key, module in self._lent:
            module.zero_grad(set_to_none=True)
            self._free.setdefault(key, []).append(module)
            self._free[key] = self._free.pop(key)  # most recently returned last
        self._lent.clear()
        while sum(map(len, self._free.values())) > self.size:
            oldest = next(iter(self._free))
            self._free[oldest].pop(0)
            if not self._free[oldest]:
                del self._free[oldest]

    def __len__(self) -> int:
        return sum(map(len, self._free.values()))

    def forget_lent(self) -> None:
        """Modules an example borrowed and never gave back (a run that stopped in the middle)
        are not reused."""
        self._lent.clear()


_SHARED: list[ReferencePool] = []


def share_references_between_runs(size: int = 2048) -> None:
    """In a long-lived grading process (batch's, the warm server's): later runs reuse the
    reference modules of earlier ones. They are the trusted reference's own objects, learner
    code never holds them (it gets state_dicts), and every borrow re-randomizes every
    parameter and sets the mode, exactly as between two examples of one run; so the scores
    are those of a cold run (tested), while a class's later submissions skip most builds."""
    _SHARED[:] = [ReferencePool(size)]


def run_pool() -> ReferencePool:
    """A run's reference pool: its own, or the process's shared one."""
    if not _SHARED:
        return ReferencePool()
    _SHARED[0].forget_lent()
    return _SHARED[0]


def default_tolerances() -> dict[str, dict[str, float]]:
    from llm_grade.engine.rubric import defaults

    return defaults().tolerance


@dataclass
class GradingContext:
    """Tolerances by dtype name (``{"atol", "rtol"}``, the rubric's for the run's device) and
    the run's reference pool."""

    tolerances: dict[str, dict[str, float]] = field(default_factory=default_tolerances)
    pool: ReferencePool = field(default_factory=lambda: run_pool())

    def tolerance(self, dtype: torch.dtype | str) -> dict[str, float]:
        name = dtype if isinstance(dtype, str) else str(dtype).replace("torch.", "")
        return self.tolerances.get(name, self.tolerances["float32"])


_ACTIVE: contextvars.ContextVar[GradingContext | None] = contextvars.ContextVar(
    "llm_grade_context", default=None
)
_DEFAULT: list[GradingContext] = []


def current() -> GradingContext:
    """The active run's context, else one with the default tolerances."""
    ctx = _ACTIVE.get()
    if ctx is not None:
        return ctx
    if not _DEFAULT:
        _DEFAULT.append(GradingContext())
    return _DEFAULT[0]


def activate(ctx: GradingContext) -> Any:
    """Make ``ctx`` the current context; returns the token :func:`deactivate` takes."""
    return _ACTIVE.set(ctx)


def deactivate(token: Any) -> None:
    _ACTIVE.reset(token)


@contextmanager
def active(ctx: GradingContext) -> Iterator[GradingContext]:
    token = activate(ctx)
    try:
        yield ctx
    finally:
        deactivate(token)
