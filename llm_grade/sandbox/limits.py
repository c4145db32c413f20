"""The bounds on learner code under ``--isolation process``: :class:`Limits`.

Trusted side (the grading process): the transport, the watchdog and the confinement of the
worker read them; the rubric's ``[limits]`` table overrides the defaults
(:meth:`Limits.from_mapping`). Torch-free, like everything the transport imports at its top.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Limits:
    """Bounds on learner code; the rubric's ``[limits]`` table overrides them."""

    # one request (one build or call on tiny tensors): generous for Python loops over heads
    # or positions (they take milliseconds here), and what a hang costs (once per component)
    call_timeout_s: float = 10.0
    startup_timeout_s: float = 120.0  # starting Python and importing torch in the worker
    memory_mb: int = 2048  # resident memory of the worker and its children
    max_processes: int = 16  # processes in the worker's tree (bounds fork bombs)
    cpu_s: int = 1800  # CPU seconds for one worker (RLIMIT_CPU)
    output_kb: int = 64  # learner output kept (the rest is dropped)
    tmp_mb: int = 64  # size of the worker's private /tmp
    reply_mb: int = 256  # largest reply accepted from the worker
    budget_s: float = 600.0  # the whole submission (both check groups at once with --jobs 2)
    check_budget_s: float = 60.0  # calls into learner code during one check ("too slow")

    @classmethod
    def from_mapping(cls, values: dict[str, float]) -> Limits:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in values.items()})
