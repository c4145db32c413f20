"""The plumbing under the submission handle: budgets, queued requests, error records.

Trusted side (the grading process). :class:`Channel` is the base of
:class:`llm_grade.sandbox.handle.Submission`: it times every round trip through the transport
against the submission's and the check's budgets, queues requests whose answer is not needed
yet and sends them with the next one in a single ``batch`` request, and turns the error
records that come back into the outcome exceptions of :mod:`llm_grade.grading.outcomes`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from llm_grade.grading.outcomes import (
    CheckFailure,
    ForbiddenCall,
    GradingOutcome,
    ImportFailure,
    LearnerError,
    MissingComponent,
    NotImplementedYet,
    StateDictReport,
    WorkerFailure,
)

Transport = Callable[[dict], dict]
# requests that run no learner code: they survive the end of a Hypothesis example and add
# nothing to a batch's timeout (see WorkerTransport.__call__)
BOOKKEEPING = ("release", "load_oracles", "use_oracles", "device")
# error kinds after which the worker is gone: the next request goes to a fresh one
WORKER_LOST = ("timeout", "limit", "worker", "protocol", "leftover", "budget", "import_crash")


def state_dict_report(plain: dict) -> StateDictReport:
    return StateDictReport(
        plain["missing"],
        plain["unexpected"],
        [(k, tuple(a), tuple(b)) for k, a, b in plain["shape_mismatch"]],
    )


class Channel:
    """Requests to learner code through ``transport``, within the time budgets."""

    def __init__(self, transport: Transport):
        self._transport = transport
        # requests whose answer the grader does not need right away wait here and travel with
        # the next request that needs one (one round trip instead of several)
        self._queue: list[tuple[dict, str, str]] = []
        self._made: list[int] = []  # objects built in the current Hypothesis example
        # time bounds, decided here on the trusted side (see set_budget / begin_check)
        self.deadline: float | None = None  # time.monotonic() when the submission's time is up
        self.check_budget_s: float | None = None  # seconds of learner calls one check may use
        self._check: str = ""  # the component whose check runs now
        self._check_spent = 0.0
        # component -> (kind, why) it stopped early: "slow" (its check budget) or "timeout"
        self.too_slow: dict[str, tuple[str, str]] = {}
        # checks whose time is not their component's own (they run the learner's whole
        # model: a hang in a part must not cost the component's other checks)
        self.whole_model = False
        # what the current check hands to the results beside its outcome (a training
        # check's loss curves, computed on this side): cleared when a check begins
        self.notes: dict = {}

    # ----------------------------------------------------------------- time

    def set_budget(self, total_s: float | None, check_s: float | None) -> None:
        """At most ``total_s`` seconds for the whole submission from now, and ``check_s``
        seconds of calls into learner code per check."""
        self.deadline = None if total_s is None else time.monotonic() + total_s
        self.check_budget_s = check_s
        if hasattr(self._transport, "deadline"):
            self._transport.deadline = self.deadline

    def begin_check(self, component: str) -> None:
        """A check of ``component`` starts: it ends at once when the submission's time is up
        or an earlier check of the component was too slow."""
        self._check, self._check_spent = component, 0.0
        self.notes = {}
        if component in self.too_slow:
            kind, why = self.too_slow[component]
            raise WorkerFailure(component, "", kind, why)
        self._check_deadline()

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise WorkerFailure(
                self._check,
                "",
                "budget",
                "Time budget exhausted: grading this submission took longer than the "
                "rubric allows, so its remaining checks were not run (0 points).",
            )

    def _send(self, request: dict) -> dict:
        """One round trip through the transport, timed against the budgets."""
        self._check_deadline()
        started = time.monotonic()
        try:
            reply = self._transport(request)
            error = reply.get("error") if not reply.get("ok") else None
            if isinstance(error, dict) and error.get("kind") in WORKER_LOST:
                self.worker_lost()
                if error.get("kind") == "timeout" and self._check and not self.whole_model:
                    # a hang costs one check's wait, not one per check of the component
                    self.too_slow.setdefault(
                        self._check,
                        (
                            "timeout",
                            f"Not run: an earlier check of {self._check} timed out "
                            f"({plain_names(str(error.get('message', '')))}), so its "
                            "remaining checks were not run (does it loop forever?).",
                        ),
                    )
            return reply
        finally:
            self._check_spent += time.monotonic() - started
            limit = self.check_budget_s
            if limit is not None and self._check and self._check_spent > limit:
                why = (
                    f"Too slow: this check's calls into your code took {self._check_spent:.0f} s "
                    f"(the limit is {limit:g} s per check), so {self._check} was stopped early."
                )
                if not self.whole_model:
                    self.too_slow[self._check] = ("slow", why)
                raise WorkerFailure(self._check, "", "slow", why)

    def worker_lost(self) -> None:
        """The worker ended (a timeout, a crash, a limit): the next request starts a fresh
        one, which holds nothing sent before (see Submission.worker_lost)."""
        self._made = []

    # ----------------------------------------------------------------- plumbing

    def _request(self, op: str, component: str, call: str, /, **args: Any) -> Any:
        request = {"op": op, "component": component, "call": call, "args": args}
        if not self._queue:
            reply = self._send(request)
            if reply["ok"]:
                return reply["value"]
            raise self._outcome(reply["error"], component, call)
        queued, self._queue = [*self._queue, (request, component, call)], []
        return self._batch_value(queued, self._send(self._batch(queued)))

    @staticmethod
    def _batch(queued: list[tuple[dict, str, str]]) -> dict:
        calls = list(dict.fromkeys(c for _, _, c in queued if c))
        return {
            "op": "batch",
            "component": queued[-1][1],
            "call": "; ".join(calls[-3:]),
            "args": {"requests": [r for r, _, _ in queued]},
        }

    def _batch_value(self, queued: list[tuple[dict, str, str]], reply: dict) -> Any:
        """The last request's value, or the first error raised as the outcome of the request
        that caused it."""
        if not reply["ok"]:  # the worker itself failed (timeout, crash, limit)
            batch = self._batch(queued)
            raise self._outcome(reply["error"], batch["component"], batch["call"])
        value = reply["value"]
        failed = value.get("failed") if isinstance(value, dict) else None
        if failed is not None:
            _, component, call = queued[failed]
            raise self._outcome(value["error"], component, call)
        return value["values"][-1]

    def _defer(self, op: str, component: str, call: str, /, **args: Any) -> None:
        """Queue a request whose answer is only "done" (errors surface at the next flush)."""
        request = {"op": op, "component": component, "call": call, "args": args}
        self._queue.append((request, component, call))

    def flush(self) -> None:
        """Send queued requests now and wait; raise the first error among them."""
        if self._queue:
            queued, self._queue = self._queue, []
            self._batch_value(queued, self._send(self._batch(queued)))

    def end_example(self) -> None:
        """A Hypothesis example ended: drop what it left queued (it raised before its requests
        were needed) and forget the objects it built (that request goes with the next one)."""
        self._queue = [q for q in self._queue if q[0]["op"] in BOOKKEEPING]
        if self._made:
            self._defer("release", "", "", refs=self._made)
            self._made = []

    @staticmethod
    def _outcome(error: dict, component: str, call: str) -> BaseException:
        error = {k: plain_names(v) if isinstance(v, str) else v for k, v in error.items()}
        kind = error.get("kind")
        failure = _import_failure(error)
        if failure is not None:
            return failure
        if kind == "not_implemented":
            return NotImplementedYet(error.get("component") or component, error.get("call") or call)
        if kind == "forbidden":
            return ForbiddenCall(error["component"], error["api"], error["file"], error["line"])
        if kind == "missing":
            return MissingComponent(error["message"])
        if kind == "exception":
            return LearnerError(
                error.get("component") or component,
                call,
                error["exc_type"],
                error["message"],
                error.get("traceback", ""),
            )
        if kind == "state_dict":
            from llm_grade.grading.toolkit import STATE_DICT_HINT, state_dict_message

            report = state_dict_report(error)
            return CheckFailure(
                state_dict_message(error.get("component") or component, report, call),
                hint=STATE_DICT_HINT,
            )
        if kind == "import_crash":  # the module ended the worker while it was imported
            return GradingOutcome(
                error["message"],
                hint="Code at the top level of a module runs when it is imported: keep only "
                "imports, definitions and constants there (demos go under "
                'if __name__ == "__main__":), and never exit the process.',
            )
        if kind in ("timeout", "limit", "worker", "protocol", "leftover", "budget"):
            return WorkerFailure(component, call, kind, error.get("message", "the worker failed"))
        return LearnerError(
            component,
            call,
            error.get("exc_type", "WorkerError"),
            error.get("message", "the worker failed"),
            error.get("traceback", ""),
        )


def _import_failure(error: dict) -> ImportFailure | None:
    """An import error record as an :class:`ImportFailure` (None for any other record).
    The worker names the modules; only curriculum module names are believed."""
    from llm_grade.components import MODULES

    module, cause = error.get("import_of"), error.get("cause")
    if module not in MODULES or error.get("kind") not in ("exception", "missing", "import_crash"):
        return None
    return ImportFailure(
        module,
        cause if cause in MODULES else module,
        str(error.get("exc_type", "")) if error.get("kind") == "exception" else "",
        str(error.get("message", "")),
        str(error.get("traceback", "")),
        missing=error.get("kind") == "missing",
    )


_PACKAGE_NAME = re.compile(r"\b_llm_grade_submission_\d+(\.)?")


def plain_names(text: str) -> str:
    """Learner text without the executor's internal package name: the submission's modules
    are imported as ``_llm_grade_submission_<n>.<module>``, which a learner never wrote
    (``No module named 'normalization'``, not ``'_llm_grade_submission_0.normalization'``)."""
    return _PACKAGE_NAME.sub(lambda m: "" if m.group(1) else "your submission", text)
