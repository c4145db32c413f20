"""What can happen when a check runs, as exceptions that carry the data feedback needs.

Graders raise :class:`CheckFailure` when a property does not hold; the submission handle
raises the others when learner code misbehaves. The pytest plugin turns each into a
:class:`~llm_grade.engine.results.CheckResult` with a status, a message and a hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class GradingOutcome(Exception):
    """Base of every outcome that ends a check early; ``status`` goes into results.json."""

    status = "error"
    __test__ = False  # keep pytest from collecting anything named like a test

    def __init__(
        self, message: str, *, hint: str = "", counterexample: str = "", diff: dict | None = None
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.counterexample = counterexample
        self.diff = diff  # a small expected/got slice for the report's error heatmap


class CheckFailure(GradingOutcome, AssertionError):
    """A property of the component does not hold (the learner's answer is wrong)."""

    status = "failed"


class NotImplementedYet(GradingOutcome):
    """The learner has not written this part yet (it raised ``NotImplementedError``)."""

    status = "not_implemented"

    def __init__(self, component: str, where: str):
        super().__init__(
            f"{component} is not implemented yet ({where} raised NotImplementedError)."
        )
        self.component = component
        self.where = where


class LearnerError(GradingOutcome):
    """Learner code raised an exception (other than ``NotImplementedError``).

    ``traceback`` holds only the learner's own frames, formatted for reading.
    """

    status = "error"

    def __init__(self, component: str, call: str, exc_type: str, exc_message: str, traceback: str):
        super().__init__(f"Your code raised {exc_type}: {exc_message}")
        self.component = component
        self.call = call
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.traceback = traceback


class ImportFailure(NotImplementedYet):
    """A module the check needs does not import: ``cause`` is the module at fault (a syntax
    error in attention.py stops blocks.py, which imports it, too). Reported once per cause,
    not as a failure of every check that needed it (see llm_grade.engine.feedback).

    A kind of :class:`NotImplementedYet` for the graders' sake: every grader lets that
    outcome through untouched (it is not a wrong answer: nothing could run), so this one
    is never mistaken for, say, "raised SyntaxError, expected ValueError". Its status is
    ``error``, and it costs the check its points."""

    status = "error"

    def __init__(
        self,
        module: str,
        cause: str,
        exc_type: str,
        exc_message: str,
        traceback: str,
        *,
        missing: bool = False,
    ):
        GradingOutcome.__init__(
            self,
            f"Your code raised {exc_type}: {exc_message}" if exc_type else exc_message,
            hint=MISSING_HINT.format(module=cause) if missing else IMPORT_HINT,
            counterexample=f"import {cause}.py",
        )
        self.component = self.module = module
        self.where = f"import {module}.py"
        self.cause = cause
        self.traceback = traceback


IMPORT_HINT = (
    "Python runs a module from the top when it is imported and stops at the first line it "
    "cannot run: fix the line shown (a syntax error, or top-level code that raises or exits), then "
    "grade again. Until then nothing in this file, or in the files that import it, can run."
)


MISSING_HINT = (
    "Every module of the curriculum is graded from a file of its own name: add {module}.py "
    "(`llm-grade init NEW-FOLDER` writes all the stubs; copy the one you need from there)."
)


class ForbiddenCall(GradingOutcome):
    """A component called an API that the rubric forbids for it (e.g. ``F.softmax`` in softmax)."""

    status = "forbidden"

    def __init__(self, component: str, api: str, file: str, line: int):
        super().__init__(
            f"{component} calls {api} ({file}, line {line}), which this exercise forbids: "
            f"write it yourself from tensor operations."
        )
        self.component = component
        self.api = api
        self.file = file
        self.line = line


class PolicyRefused(GradingOutcome):
    """The component's source uses something the submission policy refuses (``import sys``,
    ``exec``, ``__globals__``, ``torch._C`` ...): it is not run, and scores 0."""

    status = "forbidden"

    def __init__(self, component: str, message: str):
        super().__init__(
            message,
            hint="Build the component from tensor operations and the modules the policy "
            "allows (torch, math, numpy, ...); see docs/submission-policy.md. The component "
            "is graded again as soon as the refused code is gone.",
        )
        self.component = component


class WorkerFailure(BaseException):
    """The worker process hung, ran out of memory, crashed or exited (process isolation).

    A ``BaseException`` on purpose: Hypothesis shrinks ordinary exceptions by re-running the
    test many times, which for a 20-second timeout would take hours; this one ends the check
    at once.
    """

    status = "error"
    __test__ = False

    def __init__(self, component: str, call: str, kind: str, message: str):
        super().__init__(message)
        self.component = component
        self.call = call
        self.kind = kind
        self.message = message
        self.counterexample = call
        self.hint = {
            "timeout": "Look for a loop that never ends (a while loop whose condition never "
            "changes) or work that grows much faster than the input.",
            "limit": "Look for tensors that grow with every step or loop iteration, or for "
            "processes your code starts.",
            "worker": "Your code ended the process (sys.exit, os._exit, a crash in native "
            "code): return values or raise exceptions instead.",
            "protocol": "Return tensors, numbers or tuples of them; nothing else can be graded.",
            "slow": "Python loops over heads or positions are fine; look for work repeated on "
            "every call (rebuilding tables, sleeping, recomputing what you could keep), or a "
            "loop over every element of a tensor.",
            "budget": "Make the slowest components faster (see the checks that were stopped "
            "early), then grade again.",
            "leftover": "Don't start threads or processes: everything a component computes "
            "must be done when its call returns.",
        }.get(kind, "")


class Settled(BaseException):
    """Carries an outcome that no other input would change (not implemented yet, a forbidden
    call, a missing name) straight out of Hypothesis: like :class:`WorkerFailure`, a
    ``BaseException`` is not shrunk, and shrinking these would only re-run the check many
    times (a learner's stubs graded in seconds instead of a quarter of a minute)."""

    __test__ = False

    def __init__(self, outcome: GradingOutcome):
        super().__init__(str(outcome))
        self.outcome = outcome


class MissingComponent(GradingOutcome):
    """The submission does not define a name that API.md requires."""

    status = "error"


@dataclass
class StateDictReport:
    """How a submission's ``state_dict`` keys differ from the reference's."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def to_plain(self) -> dict[str, Any]:
        return {
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "shape_mismatch": [[k, list(a), list(b)] for k, a, b in self.shape_mismatch],
        }
