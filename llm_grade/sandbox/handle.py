"""The submission handle: the one narrow interface through which graders touch learner code.

A grader asks the handle to build a component, load a state_dict, switch train/eval or dtype,
and call a function or method on tensors. It gets back plain data (see
:mod:`llm_grade.sandbox.wire`) or one of the outcome exceptions of
:mod:`llm_grade.grading.outcomes` (not implemented, learner
exception, forbidden call, missing name). How requests reach the learner's code is the
transport's business: in-process (``isolation="none"``) or a sandboxed worker process.

Trusted side (the grading process). Here: :class:`Submission`'s public interface and
:func:`open_submission`; the plumbing beneath it (time budgets, queued requests sent in one
batch, error records turned into outcomes) is :class:`llm_grade.sandbox.channel.Channel`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from llm_grade.grading.outcomes import StateDictReport
from llm_grade.sandbox.channel import Channel, Transport, state_dict_report
from llm_grade.sandbox.executor import GRADER_IDS
from llm_grade.sandbox.wire import Opaque, sanitize


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


class Submission(Channel):
    """A learner's submission folder, reachable only through plain requests."""

    def __init__(
        self,
        root: Path,
        transport: Transport,
        isolation: str,
        adopt: Callable[[Any, str], dict] | None = None,
        close: Callable[[], None] | None = None,
        renew: Callable[[], None] | None = None,
    ):
        super().__init__(transport)
        self.root = Path(root)
        self.isolation = isolation
        self._close = close
        self._renew = renew
        self.labels: dict[int, str] = {}
        self._oracles: list[str] | None = None
        self._sent: set[str] = set()  # oracles whose source the executor has
        self.description: dict[str, Any] = {"mode": isolation}
        self._ids = itertools.count(GRADER_IDS)
        self.device = "cpu"

    def describe(self) -> dict[str, Any]:
        """How learner code ran (mode, sandbox, limits), for results.json and reports."""
        return self.description

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
        self._made.append(ref["ref"])
        return ref

    def call(
        self,
        target: str | dict,
        *args: Any,
        method: str | None = None,
        echo_inputs: bool = False,
        autocast: torch.dtype | None = None,
        grad: bool = False,
        watch: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Call a function (``target`` is its name) or a module's method (``target`` a reference).

        Returns plain data. With ``echo_inputs=True`` returns ``{"out", "args", "kwargs"}`` where
        args/kwargs are the inputs as they were after the call (to detect in-place changes).
        With ``autocast`` (``torch.float16`` / ``torch.bfloat16``) the call runs under
        ``torch.autocast`` on the grading device; with ``grad`` gradients are enabled during
        the call (as a training loop would have them), else it runs under ``no_grad``.
        ``watch=False`` turns the forbidden-operator watch off for a call no score depends on
        (``--train``'s decoding: the component's own checks watched the same code).
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
            autocast=_dtype_name(autocast),
            grad=grad,
            watch=watch,
        )

    def hold(self, value: Any) -> dict:
        """Keep ``value`` in the worker for later requests of this example (a reference to
        pass instead of the value)."""
        ref = self._request("hold", "", "", value=value)
        self._made.append(ref["ref"])
        return ref

    def repeat(
        self,
        target: str | dict,
        *args: Any,
        repeats: int = 1,
        backward: bool = False,
        method: str | None = None,
        **kwargs: Any,
    ) -> float:
        """Make a call ``repeats`` times in the worker (with backward passes when
        ``backward``); the seconds the round trip took, on this side's clock."""
        import time

        component = target if isinstance(target, str) else target["component"]
        label = self._label(target)
        self.flush()  # nothing queued may count
        started = time.perf_counter()
        self._request(
            "repeat",
            component,
            describe_call(label, args, kwargs),
            target=target,
            method=method,
            args=list(args),
            kwargs=kwargs,
            repeats=repeats,
            backward=backward,
        )
        return time.perf_counter() - started

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

    def profile(self, target: dict, *args: Any, top: int = 10, **kwargs: Any) -> list:
        """One forward and backward pass under the profiler in the worker: the ``top``
        operators by self time (see ``Executor.op_profile``)."""
        return self._request(
            "profile",
            target["component"],
            f"profile {self._label(target)}",
            target=target,
            method=None,
            args=list(args),
            kwargs=kwargs,
            top=top,
        )

    def train_step(
        self,
        target: dict,
        *args: Any,
        state_dict: dict[str, torch.Tensor],
        targets: torch.Tensor,
        method: str | None = None,
        **kwargs: Any,
    ) -> dict:
        """Load ``state_dict``, run the forward pass with gradients and backpropagate the
        cross-entropy against ``targets``: ``{"logits", "grads"}`` as plain data (the
        grader's optimizer makes the step; see :mod:`llm_grade.grading.training`)."""
        label = f"{self._label(target)}.{method or 'forward'}"
        return self._request(
            "train_step",
            target["component"],
            f"a training step of {describe_call(label, args, kwargs)}",
            target=target,
            method=method,
            args=list(args),
            kwargs=kwargs,
            state_dict=state_dict,
            targets=targets,
        )

    def structure(self, target: dict) -> dict:
        """The learner module's tree as plain data (see ``Executor.op_structure``)."""
        return self._request("structure", target["component"], "structure", target=target)

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
        return state_dict_report(report)

    def build_loaded(
        self,
        component: str,
        kwargs: dict[str, Any],
        *,
        dtype: torch.dtype,
        train: bool,
        state_dict: dict[str, torch.Tensor],
    ) -> dict:
        """:meth:`build`, :meth:`configure` and :meth:`load_state_dict` (strict) in one request,
        which waits for the next request that needs an answer. A learner's module whose keys or
        shapes differ from ``state_dict`` raises :class:`CheckFailure` then (saying which)."""
        call = describe_call(component, (), kwargs)
        ref_id = next(self._ids)
        self._defer(
            "build_loaded",
            component,
            call,
            component=component,
            args=[],
            kwargs=kwargs,
            dtype=_dtype_name(dtype),
            train=train,
            state_dict=state_dict,
            ref_id=ref_id,
            require_match=True,
        )
        self._made.append(ref_id)
        self.labels[ref_id] = call
        return {"ref": ref_id, "component": component}

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
        :meth:`oracle`) built with ``kwargs`` and loaded with ``state_dict`` (deferred)."""
        self._defer(
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
        """``module.train(train)`` and/or ``module.to(device, dtype)`` (deferred)."""
        self._defer(
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
        self._defer(
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
        ref = self._request(
            "oracle",
            component,
            describe_call(component, args, kwargs),
            component=component,
            args=list(args),
            kwargs=kwargs,
        )
        self._made.append(ref["ref"])
        return ref

    def use_oracles(self, names: list[str]) -> None:
        """From now on, learner code sees the trusted versions of these graded names (e.g.
        while grading ``EncoderLayer``, its ``MultiHeadAttention``, ``AddNorm`` and
        ``FeedForward`` are the oracles; while grading ``MultiHeadAttention``, ``softmax`` is)."""
        new = [name for name in names if name not in self._sent]
        if new:  # parts come before the wholes that use them (curriculum order)
            sources = [[name, _oracle_source(name)] for name in new]
            self._defer("load_oracles", "", "oracles", sources=sources)
            self._sent.update(new)
        if list(names) != self._oracles:  # unchanged between checks of one component
            self._defer("use_oracles", "", "oracles", names=list(names))
            self._oracles = list(names)

    def set_device(self, device: str) -> None:
        """Build and run learner code on ``device`` (``"cpu"``, ``"cuda"``, ``"mps"``); tensors
        still arrive and leave on the CPU."""
        self.device = device
        self._defer("device", "", "device", name=device)

    def specimen(self, name: str, **kwargs: Any) -> dict:
        """Build one of :mod:`llm_grade.sandbox.specimens` next to the learner's code."""
        ref = self._request("specimen", name, f"specimen {name}", name=name, kwargs=kwargs)
        self._made.append(ref["ref"])
        return ref

    def worker_lost(self) -> None:
        """A fresh worker answers from now on: it must be sent the oracles and the device
        again (objects built before are gone)."""
        super().worker_lost()
        self._oracles = None
        self._sent = set()
        self._queue = [q for q in self._queue if q[0]["op"] not in ("load_oracles", "use_oracles")]
        if self.device != "cpu":
            self.set_device(self.device)

    def renew(self) -> None:
        """Start over with learner code freshly imported (a new worker, or a new executor
        in-process): the objects built so far and the oracles in use are forgotten."""
        self._queue, self._made, self._oracles = [], [], None
        self._sent = set()
        if self._renew is not None:
            self._renew()
        if self.device != "cpu":
            self.set_device(self.device)

    def close(self) -> None:
        self._queue = []
        if self._close is not None:
            self._close()


@functools.cache
def _oracle_source(name: str) -> str:
    from llm_grade.oracles import source_of

    return source_of(name)


def open_submission(
    root: str | Path,
    *,
    isolation: str = "none",
    forbidden: dict[str, list[str]] | None = None,
    limits: dict[str, float] | None = None,
    masks: list[Path] = (),
    sandbox: str = "auto",
    transport: Any = None,
    gpu: bool = False,
) -> Submission:
    """Open a submission folder behind the transport that ``isolation`` names.

    ``"none"``: learner code runs in this process (fast, for local iteration, untrusted).
    ``"process"``: it runs in a sandboxed worker process (see :mod:`llm_grade.sandbox.transport`);
    ``limits`` override :class:`~llm_grade.sandbox.transport.Limits`, ``masks`` are folders the
    worker must not see; ``transport`` is a :class:`~llm_grade.sandbox.transport.WorkerTransport`
    started earlier (see :func:`~llm_grade.sandbox.transport.start_worker`); ``gpu`` lets the worker
    reach the machine's GPUs.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder {root} does not exist")
    if isolation == "none":
        from llm_grade.components import MODULES
        from llm_grade.sandbox.executor import Executor

        executors: list[Executor] = []

        def renew() -> None:
            executors[:] = [Executor(root, forbidden)]
            for module in MODULES:  # as the worker does: every module is imported up front
                executors[0].op_preload(module)

        def transport(request: dict) -> dict:
            # copies both ways: learner code never holds the grader's tensors, nor we its
            reply = executors[0].handle(sanitize(request))
            if reply["ok"]:
                reply["value"] = sanitize(reply["value"])
            return reply

        renew()
        submission = Submission(root, transport, "none", renew=renew)
        submission.description = {
            "mode": "none",
            "trusted": False,
            "sandbox": "none",
            "note": "learner code ran inside the grading process (fast mode for local "
            "iteration): the score is not tamper-proof",
        }
        return submission
    if isolation == "process":
        if transport is None:
            from llm_grade.sandbox.transport import start_worker

            transport = start_worker(
                root, forbidden=forbidden, limits=limits, masks=masks, sandbox=sandbox, gpu=gpu
            )
        submission = Submission(
            root, transport, "process", close=transport.close, renew=transport.renew
        )
        submission.describe = transport.describe
        return submission
    raise ValueError(f"unknown isolation mode {isolation!r}; expected 'none' or 'process'")


__all__ = ["Submission", "open_submission", "describe_value", "describe_call", "Opaque"]
