"""The trusted side of ``--isolation process``: start a sandboxed worker, talk to it, bound it.

Learner code runs only in the worker (:mod:`llm_grade.sandbox.worker`, never imported here). On
Linux with bubblewrap the worker gets a read-only view of the machine, a private ``/tmp``, its
own PID, network, IPC and UTS namespaces, and the reference, the graders and the output folder
masked by empty tmpfs mounts; it dies with the grader. Without bubblewrap it runs with resource
limits in its own process group, and the results say so (how: :mod:`llm_grade.sandbox.confine`).

Every request has a wall-clock timeout; a watchdog (:mod:`llm_grade.sandbox.watchdog`) also
bounds the worker tree's resident memory and process count. A hang, an OOM, a crash or an exit
costs the request in flight (an error record), and the next request gets a fresh worker.

Trusted side (the grading process). :class:`WorkerTransport` speaks the request protocol (the
handshake, the preload of every module, requests within their timeouts and the submission's
budget) on top of :class:`llm_grade.sandbox.supervisor.WorkerProcess`, which holds the process.
Importing this module does not import torch: requests are encoded by
:mod:`llm_grade.sandbox.wire`, imported once the worker has been spawned.
:class:`~llm_grade.sandbox.limits.Limits`, :func:`~llm_grade.sandbox.confine.bubblewrap` and
:func:`~llm_grade.sandbox.confine.trusted_paths` are importable from here too.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llm_grade.sandbox.channel import BOOKKEEPING
from llm_grade.sandbox.confine import bubblewrap, trusted_paths
from llm_grade.sandbox.framing import write_frame
from llm_grade.sandbox.limits import Limits
from llm_grade.sandbox.supervisor import WorkerDied, WorkerProcess


class WorkerTransport(WorkerProcess):
    """A transport for :class:`~llm_grade.sandbox.handle.Submission` backed by a worker process."""

    def __init__(self, *args: Any, **kwargs: Any):
        """As :class:`~llm_grade.sandbox.supervisor.WorkerProcess` (root, forbidden, limits,
        masks, sandbox, gpu)."""
        super().__init__(*args, **kwargs)
        self.broken_modules: dict[str, dict] = {}
        self._seq = 0
        self._handshake_pending = False
        self.deadline: float | None = None  # time.monotonic() when the submission's time is up

    # -------------------------------------------------------------- description

    def describe(self) -> dict:
        if self.bwrap:
            sandbox = (
                "bubblewrap: read-only root, private /tmp, PID/network/IPC namespaces, "
                "reference/ and graders/ masked"
            )
        else:
            why = "--sandbox none" if self.sandbox == "none" else "bubblewrap unavailable"
            sandbox = (
                f"none ({why}): resource limits and process-group kill only; learner code "
                "could read and write files on this machine that the submission policy "
                "does not stop"
            )
        return {
            "mode": "process",
            # the score can be trusted only when learner code could not reach this machine's
            # files (the results folder among them): with bubblewrap
            "trusted": bool(self.bwrap),
            "sandbox": sandbox,
            "limits": asdict(self.limits),
            "worker_starts": self._starts,
        }

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._spawn()
        self._handshake()

    def _handshake(self) -> None:
        self._handshake_pending = False
        if self.proc is None:  # a worker forked from a template: forked when first needed
            self._spawn()
        try:
            hello = self._receive(self.limits.startup_timeout_s, "starting the worker")
        except WorkerDied as exc:
            tail = self.output[-2000:].decode(errors="replace")
            raise RuntimeError(f"the grading worker could not start: {exc}\n{tail}") from None
        if not isinstance(hello, dict) or not hello.get("ready"):
            raise RuntimeError("the grading worker sent an unexpected greeting")
        self._baseline = self._census()
        self._preload()

    def start_soon(self) -> None:
        """Spawn the worker now (Python and torch load while pytest collects the graders);
        the first request waits for its greeting. Spawned from this thread on purpose:
        bubblewrap's --die-with-parent fires when the *thread* that spawned it ends. A
        submission staged in a template's stage area is forked at the first request instead
        (the template may still be importing torch meanwhile)."""
        from llm_grade.sandbox.template import area_of

        if not (self.bwrap and area_of(self.root)):
            self._spawn()
        self._handshake_pending = True

    def _preload(self) -> None:
        """Import every module once, so one that kills the worker at import is found early."""
        from llm_grade.components import MODULES

        for module in MODULES:
            if module in self.broken_modules:
                continue
            try:
                self._roundtrip(
                    {
                        "op": "preload",
                        "component": module,
                        "call": f"import {module}",
                        "args": {"module": module},
                    },
                    f"importing {module}.py",
                    self.limits.call_timeout_s,
                )
            except WorkerDied as exc:
                tail = self.output[-1500:].decode("utf-8", errors="replace").strip()
                what = exc.record["message"]
                message = f"Importing your {module}.py ended the grading process: {what}."
                if tail:
                    message += f"\nThe last output of your code:\n{tail}"
                self.broken_modules[module] = {
                    "kind": "import_crash",
                    "exc_type": exc.record.get("exc_type", "WorkerCrash"),
                    "message": message,
                    "import_of": module,
                    "cause": module,
                }
                self.kill()
                self.start()
                return

    def close(self) -> None:
        self.kill()

    def renew(self) -> None:
        """A fresh worker for what follows (see the grading plugin's check groups): nothing a
        submission did before (module state, files in /tmp) carries over."""
        self.kill()
        self.start_soon()

    # -------------------------------------------------------------- requests

    def _roundtrip(self, request: dict, doing: str, timeout: float) -> dict:
        self._send(request, doing)
        return self._answer(doing, time.monotonic() + timeout)

    def _send(self, request: dict, doing: str) -> None:
        from llm_grade.sandbox import wire  # imports torch: not before the worker is spawned

        self._seq += 1
        try:
            write_frame(self._req, wire.encode({**request, "id": self._seq}))
        except OSError:
            record = self._death(doing)
            self.kill()
            raise WorkerDied(record) from None

    def _answer(self, doing: str, deadline: float) -> dict:
        """The reply to the request sent last, waiting until ``deadline`` at most."""
        reply = self._receive(max(deadline - time.monotonic(), 0.01), doing)
        pids = self._check_tree(doing)  # processes left running after a reply count too
        self._check_leftovers(doing, pids)
        if not isinstance(reply, dict) or reply.get("id") != self._seq or "ok" not in reply:
            # out of step: something else wrote to the reply pipe
            self.kill()
            raise WorkerDied(
                {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": f"the worker's reply was out of step while {doing}",
                }
            )
        return reply

    def __call__(self, request: dict) -> dict:
        """Send ``request`` and wait for the reply (an error record if the worker failed)."""
        from llm_grade.components import COMPONENTS

        if self._handshake_pending:
            self._handshake()
        parts = request["args"]["requests"] if request["op"] == "batch" else [request]
        for part in parts:
            module = COMPONENTS.get(part.get("component", ""))
            if module in self.broken_modules:
                return {"ok": False, "error": self.broken_modules[module]}
        if self.proc is None:
            self.start()
        doing = f"running {request.get('call') or request['op']}"
        # a batch (see Submission._batch) may hold several calls into learner code
        calls = [p for p in parts if p.get("op") not in BOOKKEEPING]
        timeout = self.limits.call_timeout_s * max(1, len(calls))
        budget_left = None if self.deadline is None else self.deadline - time.monotonic()
        clipped = budget_left is not None and budget_left < timeout  # the budget ends first
        if clipped:
            timeout = max(budget_left, 0.01)
        try:
            reply = self._roundtrip(request, doing, timeout)
        except WorkerDied as exc:
            record = exc.record
            if record["kind"] == "timeout" and clipped:
                record = {
                    "kind": "budget",
                    "exc_type": "Budget",
                    "message": "Time budget exhausted while "
                    f"{doing}: grading this submission took longer than the rubric allows.",
                }
            return {"ok": False, "error": record}
        if not isinstance(reply, dict) or "ok" not in reply:
            self.kill()
            return {
                "ok": False,
                "error": {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": "the worker sent a malformed reply",
                },
            }
        return reply


def start_worker(
    root: str | Path,
    *,
    forbidden: dict[str, list[str]] | None = None,
    limits: dict[str, float] | None = None,
    masks: list[Path] = (),
    sandbox: str = "auto",
    gpu: bool = False,
) -> WorkerTransport:
    """Spawn the sandboxed worker for ``root`` now and return its transport; the first request
    waits for it to be ready. Importing this module does not import torch, so a grader can
    start its worker first and import torch meanwhile, on the other core."""
    transport = WorkerTransport(
        Path(root).resolve(),
        forbidden or {},
        Limits.from_mapping(limits or {}),
        masks=list(masks),
        sandbox=sandbox,
        gpu=gpu,
    )
    transport.start_soon()
    return transport


__all__ = [
    "Limits",
    "WorkerDied",
    "WorkerTransport",
    "bubblewrap",
    "start_worker",
    "trusted_paths",
]
