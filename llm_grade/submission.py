"""The submission handle: the one narrow interface through which graders touch learner code.

A grader asks the handle to build a component, load a state_dict, switch train/eval or dtype,
and call a function or method on tensors. It gets back plain data (see :mod:`llm_grade.wire`)
or one of the outcome exceptions of :mod:`llm_grade.outcomes` (not implemented, learner
exception, forbidden call, missing name). How requests reach the learner's code is the
transport's business: in-process (``isolation="none"``) or a sandboxed worker process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .outcomes import (
    ForbiddenCall,
    LearnerError,
    MissingComponent,
    NotImplementedYet,
    StateDictReport,
    WorkerFailure,
)
from .wire import Opaque, sanitize

Transport = Callable[[dict], dict]


def describe_value(value: Any) -> str:
    """Short human description of an argument: shapes first, never a tensor dump."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).replace("torch.", "")
        return f"{dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, dict) and "ref" in value:
        return value.get("label") or value.get("component", "object")
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"{type(value).__name__} of {len(value)} items"
    return repr(value)


def describe_call(name: str, args: tuple, kwargs: dict) -> str:
    parts = [describe_value(a) for a in args] + [
        f"{k}={describe_value(v)}" for k, v in kwargs.items()
    ]
    return f"{name}({', '.join(parts)})"


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).replace("torch.", "")


def _report(plain: dict) -> StateDictReport:
    return StateDictReport(
        plain["missing"],
        plain["unexpected"],
        [(k, tuple(a), tuple(b)) for k, a, b in plain["shape_mismatch"]],
    )


class Submission:
    """A learner's submission folder, reachable only through plain requests."""

    def __init__(
        self,
        root: Path,
        transport: Transport,
        isolation: str,
        adopt: Callable[[Any, str], dict] | None = None,
        close: Callable[[], None] | None = None,
    ):
        self.root = Path(root)
        self.isolation = isolation
        self._transport = transport
        self._close = close
        self.labels: dict[int, str] = {}
        self._oracles: list[str] | None = None
        self.description: dict[str, Any] = {"mode": isolation}

    def describe(self) -> dict[str, Any]:
        """How learner code ran (mode, sandbox, limits), for results.json and reports."""
        return self.description

    # ----------------------------------------------------------------- plumbing

    def _request(self, op: str, component: str, call: str, /, **args: Any) -> Any:
        reply = self._transport({"op": op, "component": component, "call": call, "args": args})
        if reply["ok"]:
            return reply["value"]
        raise self._outcome(reply["error"], component, call)

    @staticmethod
    def _outcome(error: dict, component: str, call: str) -> BaseException:
        kind = error.get("kind")
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
        if kind in ("timeout", "limit", "worker", "protocol"):  # see isolation.py
            return WorkerFailure(component, call, kind, error.get("message", "the worker failed"))
        return LearnerError(
            component,
            call,
            error.get("exc_type", "WorkerError"),
            error.get("message", "the worker failed"),
            error.get("traceback", ""),
        )

    def _label(self, target: Any) -> str:
        if isinstance(target, str):
            return target
        return self.labels.get(target["ref"], target.get("component", "object"))

    # ----------------------------------------------------------------- the interface

    def build(self, component: str, *args: Any, **kwargs: Any) -> dict:
        """Construct ``component(*args, **kwargs)`` in the learner's code; returns a reference."""
        call = describe_call(component, args, kwargs)
        ref = self._request(
            "build", component, call, component=component, args=list(args), kwargs=kwargs
        )
        self.labels[ref["ref"]] = call
        return ref

    def call(
        self,
        target: str | dict,
        *args: Any,
        method: str | None = None,
        echo_inputs: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call a function (``target`` is its name) or a module's method (``target`` a reference).

        Returns plain data. With ``echo_inputs=True`` returns ``{"out", "args", "kwargs"}`` where
        args/kwargs are the inputs as they were after the call (to detect in-place changes).
        """
        component = target if isinstance(target, str) else target["component"]
        label = self._label(target)
        if not isinstance(target, str):
            label = f"{label}.{method or 'forward'}"
        call = describe_call(label, args, kwargs)
        return self._request(
            "call",
            component,
            call,
            target=target,
            method=method,
            args=list(args),
            kwargs=kwargs,
            echo_inputs=echo_inputs,
        )

    def gradients(
        self, target: dict, *args: Any, method: str | None = None, **kwargs: Any
    ) -> dict[str, torch.Tensor | None]:
        """Backpropagate from the output; the gradient of every named parameter (None if none)."""
        return self._request(
            "gradients",
            target["component"],
            f"backward through {self._label(target)}",
            target=target,
            method=method,
            args=list(args),
            kwargs=kwargs,
        )

    def state_dict(self, target: dict) -> dict[str, torch.Tensor]:
        return self._request("state_dict", target["component"], "state_dict()", target=target)

    def load_state_dict(self, target: dict, state_dict: dict[str, torch.Tensor]) -> StateDictReport:
        """Compare keys and shapes with ``state_dict``; load it (strict) only when they match."""
        report = self._request(
            "load_state_dict",
            target["component"],
            "load_state_dict()",
            target=target,
            state_dict=state_dict,
        )
        return _report(report)

    def build_loaded(
        self,
        component: str,
        kwargs: dict[str, Any],
        *,
        dtype: torch.dtype,
        train: bool,
        state_dict: dict[str, torch.Tensor],
    ) -> tuple[dict, StateDictReport]:
        """:meth:`build`, :meth:`configure` and :meth:`load_state_dict` in one request."""
        call = describe_call(component, (), kwargs)
        out = self._request(
            "build_loaded",
            component,
            call,
            component=component,
            args=[],
            kwargs=kwargs,
            dtype=_dtype_name(dtype),
            train=train,
            state_dict=state_dict,
        )
        self.labels[out["ref"]["ref"]] = call
        return out["ref"], _report(out["report"])

    def inject_oracle(
        self,
        target: dict,
        path: str,
        component: str,
        kwargs: dict[str, Any],
        *,
        dtype: torch.dtype,
        train: bool,
        state_dict: dict[str, torch.Tensor],
    ) -> None:
        """Replace sub-module ``path`` of ``target`` by a trusted ``component`` (see
        :meth:`oracle`) built with ``kwargs`` and loaded with ``state_dict``."""
        self._request(
            "inject_oracle",
            target["component"],
            f"replace .{path}",
            target=target,
            path=path,
            component=component,
            kwargs=kwargs,
            dtype=_dtype_name(dtype),
            train=train,
            state_dict=state_dict,
        )

    def configure(
        self,
        target: dict,
        *,
        train: bool | None = None,
        dtype: torch.dtype | None = None,
        device: str | None = None,
    ) -> None:
        """``module.train(train)`` and/or ``module.to(device, dtype)``."""
        self._request(
            "configure",
            target["component"],
            "train()/to()",
            target=target,
            train=train,
            dtype=_dtype_name(dtype),
            device=device,
        )

    def inject(self, target: dict, path: str, oracle: dict) -> None:
        """Replace sub-module ``path`` of ``target`` by ``oracle`` (see :meth:`oracle`)."""
        self._request(
            "inject",
            target["component"],
            f"replace .{path}",
            target=target,
            path=path,
            oracle=oracle,
        )

    def oracle(self, component: str, *args: Any, **kwargs: Any) -> dict:
        """Build a trusted ``component`` (torch.nn code from :mod:`llm_grade.oracles`) next to the
        learner's code, to stand in for the learner's own part inside a composite, so that a
        wrong sub-component costs only its own points."""
        return self._request(
            "oracle",
            component,
            describe_call(component, args, kwargs),
            component=component,
            args=list(args),
            kwargs=kwargs,
        )

    def use_oracles(self, names: list[str]) -> None:
        """From now on, learner code sees the trusted versions of these graded names (e.g.
        while grading ``EncoderLayer``, its ``MultiHeadAttention``, ``AddNorm`` and
        ``FeedForward`` are the oracles; while grading ``MultiHeadAttention``, ``softmax`` is)."""
        if list(names) != self._oracles:  # unchanged between checks of one component
            self._request("use_oracles", "", "oracles", names=list(names))
            self._oracles = list(names)

    def specimen(self, name: str, **kwargs: Any) -> dict:
        """Build one of :mod:`llm_grade.specimens` next to the learner's code."""
        return self._request("specimen", name, f"specimen {name}", name=name, kwargs=kwargs)

    def close(self) -> None:
        if self._close is not None:
            self._close()


def open_submission(
    root: str | Path,
    *,
    isolation: str = "none",
    forbidden: dict[str, list[str]] | None = None,
    limits: dict[str, float] | None = None,
    masks: list[Path] = (),
    sandbox: str = "auto",
) -> Submission:
    """Open a submission folder behind the transport that ``isolation`` names.

    ``"none"``: learner code runs in this process (fast, for local iteration, untrusted).
    ``"process"``: it runs in a sandboxed worker process (see :mod:`llm_grade.isolation`);
    ``limits`` override :class:`~llm_grade.isolation.Limits`, ``masks`` are folders the
    worker must not see.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder {root} does not exist")
    if isolation == "none":
        from .components import MODULES
        from .executor import Executor

        executor = Executor(root, forbidden)
        for module in MODULES:  # as the worker does: every module is imported up front
            executor.op_preload(module)

        def transport(request: dict) -> dict:
            # copies both ways: learner code never holds the grader's tensors, nor we its
            reply = executor.handle(sanitize(request))
            if reply["ok"]:
                reply["value"] = sanitize(reply["value"])
            return reply

        submission = Submission(root, transport, "none")
        submission.description = {
            "mode": "none",
            "trusted": False,
            "sandbox": "none",
            "note": "learner code ran inside the grading process (fast mode for local "
            "iteration): the score is not tamper-proof",
        }
        return submission
    if isolation == "process":
        from .isolation import Limits, WorkerTransport

        transport = WorkerTransport(
            root,
            forbidden or {},
            Limits.from_mapping(limits or {}),
            masks=list(masks),
            sandbox=sandbox,
        )
        transport.start_soon()  # Python and torch start while pytest collects the graders
        submission = Submission(root, transport, "process", close=transport.close)
        submission.describe = transport.describe
        return submission
    raise ValueError(f"unknown isolation mode {isolation!r}; expected 'none' or 'process'")


__all__ = ["Submission", "open_submission", "describe_value", "describe_call", "Opaque"]
