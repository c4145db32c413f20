"""A long-lived grading process: one per batch job, grading submission after submission.

A cold ``llm-grade grade`` imports torch, pytest and Hypothesis and collects the graders
before it grades anything, and starts a worker that imports torch again: seconds per
submission. :mod:`llm_grade.classroom.batch` instead keeps one :class:`GradingServer` per job.
Its process (``python -I -m llm_grade.classroom.server``) pays for those imports once, and
its sandboxed workers are forked from one pre-imported template
(:mod:`llm_grade.sandbox.template`), so each submission costs only its own grading.

Nothing of one submission reaches the next: learner code never runs in this process (only in
workers, each a fresh fork of a template that never ran any), every submission gets its own
:class:`~llm_grade.engine.session.GradingSession`, staged copy and workers, and the trusted
state kept between submissions (imported graders, the reference) is the same for all of them.
The scores equal a cold run's (tested). The process is recycled after
:data:`RECYCLE_AFTER` submissions, and killed and restarted when a submission overruns its
time (that submission gets an error, the next a fresh process).

Protocol: one JSON line per request on stdin (``{"submission": folder, "options": {...}}``,
the options as :class:`~llm_grade.engine.options.GradingOptions` field values, and for a folder
made from a notebook ``"origin"``: its extraction), one JSON line
per reply on stdout (``{"ok": true}`` or ``{"ok": false, "error": "..."}``); whatever grading
prints goes to the submission's ``grading.log``. ``results.json`` is written by the grading
itself, as with ``llm-grade grade --out``. Trusted side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from llm_grade.engine.options import GradingOptions

RECYCLE_AFTER = 100  # submissions per process (bounds what a long run may accumulate)
START_TIMEOUT_S = 300.0  # importing torch, pytest and Hypothesis on a busy machine


def plain_options(options: GradingOptions) -> dict:
    """``options`` as JSON-ready field values."""
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(value, tuple):
            out[f.name] = [str(v) for v in value]
        else:
            out[f.name] = (
                None if value is None else (value if isinstance(value, int) else str(value))
            )
    return out


class GradingServer:
    """The batch side of one long-lived grading process (started on first use)."""

    def __init__(self, cwd: Path):
        self.cwd = Path(cwd)
        self.proc: subprocess.Popen | None = None
        self.graded = 0
        self.starts = 0

    def _start(self) -> None:
        # -I and a neutral working directory: nothing in the caller's or the class's folder
        # can stand in for the engine
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "llm_grade.classroom.server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self.cwd,
            start_new_session=True,
        )
        self.graded = 0
        self.starts += 1

    def grade(
        self, folder: Path, options: GradingOptions, timeout: float, origin: dict | None = None
    ) -> tuple[int | None, str]:
        """Grade ``folder`` (``results.json`` goes to ``options.out``): (0, "") when grading
        completed, (1, why) when it could not run, (None, "") when it timed out. ``origin``
        is the extraction (``Extraction.to_dict()``) of a notebook the folder was made from."""
        if self.proc is None or self.proc.poll() is not None or self.graded >= RECYCLE_AFTER:
            self.close()
            self._start()
        request = {"submission": str(folder), "options": plain_options(options)}
        if origin:
            request["origin"] = origin
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            self.close()
            return 1, "the grading process ended before it could grade"
        self.graded += 1
        line = self._line(timeout + (START_TIMEOUT_S if self.graded == 1 else 0))
        if line is None:
            self.close()
            return None, ""
        if not line:
            self.close()
            return 1, "the grading process ended while grading"
        try:
            reply = json.loads(line)
        except ValueError:
            self.close()
            return 1, "the grading process sent an unreadable reply"
        return (0, "") if reply.get("ok") else (1, str(reply.get("error", "")))

    def _line(self, timeout: float) -> bytes | None:
        """The next reply line, b"" if the process ended, None on timeout."""
        deadline = time.monotonic() + timeout
        stream = self.proc.stdout
        chunks = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([stream], [], [], left)
            if not ready:
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return b""
            chunks += chunk
            if b"\n" in chunks:
                return chunks.split(b"\n", 1)[0]

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self.proc = None


def _serve_one(request: dict) -> dict:
    from llm_grade.engine.run import GradingError, grade

    options = GradingOptions(**request["options"])
    out = Path(options.out) if options.out else None
    log = open(out / "grading.log", "w", encoding="utf-8") if out else open(os.devnull, "w")
    with log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            origin = request.get("origin")
            if origin:
                from llm_grade.notebook.extract import Extraction

                origin = Extraction.from_dict(origin)
            grade(request["submission"], options=options, quiet=True, origin=origin or None)
        except GradingError as exc:
            print(exc)
            return {"ok": False, "error": str(exc)}
        except Exception:  # noqa: BLE001 - reported to the batch, never a crashed server
            text = traceback.format_exc()
            print(text)
            return {"ok": False, "error": text.strip().splitlines()[-1]}
    return {"ok": True}


def main() -> None:
    from llm_grade.engine.groups import reply_stream

    replies = reply_stream()
    # import what every grading needs now, before the first request arrives
    import pytest  # noqa: F401
    import torch  # noqa: F401

    import llm_grade.engine.plugin  # noqa: F401
    import llm_grade.engine.session  # noqa: F401
    from llm_grade.grading.context import share_references_between_runs

    share_references_between_runs()

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            reply = _serve_one(request)
        except Exception as exc:  # noqa: BLE001 - a malformed request
            reply = {"ok": False, "error": f"bad request: {exc}"}
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
