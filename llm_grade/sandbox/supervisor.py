"""The grader's hold on one worker process: spawn it confined, read its replies, watch it, kill it.

Trusted side (the grading process; torch-free at import). :class:`WorkerProcess` starts the
worker (:mod:`llm_grade.sandbox.worker`, run as a program, never imported here) under
bubblewrap or resource limits (:mod:`llm_grade.sandbox.confine`), sends it its configuration
as the first frame, keeps a bounded copy of its output, reads each reply frame within a
deadline and a size cap while the watchdog (:mod:`llm_grade.sandbox.watchdog`) bounds its
process tree, and kills that tree. Any failure is a :class:`WorkerDied` carrying the error
record for the request in flight. The request protocol on top is
:class:`llm_grade.sandbox.transport.WorkerTransport`.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from llm_grade.engine.options import worker_argv
from llm_grade.sandbox.confine import (
    SUBMISSION_MOUNT,
    WORKER_PYTHON,
    bubblewrap,
    bwrap_command,
    set_resource_limits,
    worker_env,
)
from llm_grade.sandbox.framing import write_frame
from llm_grade.sandbox.limits import Limits
from llm_grade.sandbox.watchdog import (
    census,
    death_record,
    kill_group,
    leftovers,
    over_limits,
    tree,
)


class WorkerDied(Exception):
    """The worker ended or misbehaved; ``record`` is the error record for the request."""

    def __init__(self, record: dict):
        super().__init__(record["message"])
        self.record = record


class WorkerProcess:
    """One sandboxed worker at a time for the submission ``root``, and its two pipes."""

    def __init__(
        self,
        root: Path,
        forbidden: dict[str, list[str]],
        limits: Limits,
        masks: list[Path] = (),
        sandbox: str = "auto",
        gpu: bool = False,
    ):
        self.root = Path(root).resolve()
        self.gpu = gpu
        self.forbidden = forbidden
        self.limits = limits
        self.masks = [Path(m).resolve() for m in masks if Path(m).exists()]
        self.sandbox = sandbox
        self.bwrap = bubblewrap() if sandbox in ("auto", "bwrap") else None
        if sandbox == "bwrap" and self.bwrap is None:
            raise RuntimeError("bubblewrap was requested but is not available on this machine")
        self.proc: subprocess.Popen | None = None
        self.output = bytearray()
        self.output_dropped = 0
        self._workdir: str | None = None
        self._starts = 0
        self._baseline: tuple[int, int] | None = None  # (processes, threads) when idle

    # -------------------------------------------------------------- lifecycle

    def _command(self) -> tuple[list[str], str, str]:
        """The worker's command line (less its arguments), the folder it starts in, and the
        submission folder as the worker sees it."""
        if self.bwrap is None:
            self._workdir = tempfile.mkdtemp(prefix="llm-grade-worker-")
            return list(WORKER_PYTHON), self._workdir, str(self.root)
        confined = bwrap_command(self.bwrap, self.root, self.limits, self.masks, self.gpu)
        return [*confined, *WORKER_PYTHON], "/", SUBMISSION_MOUNT

    def _spawn(self) -> None:
        self._starts += 1
        if self._fork():
            return
        cmd, cwd, root = self._command()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        cmd = cmd + worker_argv(root, req_r, rep_w)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(req_r, rep_w),
            env=worker_env(),
            cwd=cwd,
            preexec_fn=functools.partial(set_resource_limits, self.limits, self.gpu),
            start_new_session=True,
        )
        os.close(req_r)
        os.close(rep_w)
        self._req, self._rep = req_w, rep_r
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
        # the worker's configuration is its first frame (plain JSON, torch-free on this side)
        try:
            write_frame(self._req, json.dumps({"forbidden": self.forbidden}).encode())
        except OSError:
            pass  # the worker is already gone: the handshake reports how it ended

    def _fork(self) -> bool:
        """Fork the worker from the template of the stage area that holds the submission
        (see :mod:`llm_grade.sandbox.template`); False where there is none (or it failed)."""
        from llm_grade.sandbox.template import TemplateError, area_of

        area = area_of(self.root) if self.bwrap else None
        if area is None:
            return False
        try:
            self.proc = area.fork(self.root, self.forbidden)
        except TemplateError:
            return False
        self._req, self._rep = self.proc.fds
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
        return True

    @property
    def forked(self) -> bool:
        return self.proc is not None and hasattr(self.proc, "tree")

    def _pids(self) -> list[int]:
        """The worker's processes (for a forked one: everything in its sandbox but the
        template)."""
        return self.proc.tree() if self.forked else tree(self.proc.pid)

    def _drain(self, stream) -> None:
        cap = self.limits.output_kb * 1024
        for chunk in iter(lambda: stream.read1(65536), b""):
            room = cap - len(self.output)
            if room > 0:
                self.output += chunk[:room]
            self.output_dropped += max(0, len(chunk) - max(room, 0))

    def kill(self) -> None:
        if self.proc is None:
            return
        forked = self.forked
        if forked:
            self.proc.kill()  # the template reaps it
        else:
            kill_group(self.proc.pid)
        for fd in (self._req, self._rep):
            try:
                os.close(fd)
            except OSError:
                pass
        if not forked:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None
        self._baseline = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -------------------------------------------------------------- replies and the watchdog

    def _death(self, doing: str) -> dict:
        """The error record for a worker that stopped answering while ``doing``."""
        code = self.proc.poll() if self.proc else None
        if code is None and self.proc is not None:
            try:
                code = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        # bubblewrap reports 128 + the signal; the template reports the worker's own status
        return death_record(code, bool(self.bwrap) and not self.forked, self.limits.cpu_s, doing)

    def _receive(self, timeout: float, doing: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerDied(
                    {
                        "kind": "timeout",
                        "exc_type": "Timeout",
                        "message": f"timed out after {timeout:g} s while {doing}",
                    }
                )
            ready, _, _ = select.select([self._rep], [], [], min(left, 0.05))
            if ready:
                break
            self._check_tree(doing)
        frame = self._read_frame(deadline, doing)
        try:
            from llm_grade.sandbox import wire  # imports torch: not before the worker is spawned

            return wire.decode(frame, max_bytes=self.limits.reply_mb * 2**20)
        except ValueError as exc:  # wire.WireError
            self.kill()
            raise WorkerDied(
                {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": f"the worker sent an unreadable reply while {doing} ({exc})",
                }
            ) from None

    def _check_tree(self, doing: str) -> list[int]:
        """Kill the worker when its process tree has too many processes or too much memory;
        else return the tree's pids."""
        pids = self._pids()
        record = over_limits(pids, self.limits, doing)
        if record is not None:
            self.kill()
            raise WorkerDied(record)
        return pids

    def _read_frame(self, deadline: float, doing: str) -> bytes:
        """Read one length-prefixed frame, never past ``deadline`` nor over the size cap."""
        header = self._read_exact(8, deadline, doing)
        size = int.from_bytes(header, "little")
        if size > self.limits.reply_mb * 2**20:
            self.kill()
            raise WorkerDied(
                {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": f"the worker sent a reply of {size} bytes (over "
                    f"{self.limits.reply_mb} MiB) while {doing}",
                }
            )
        return self._read_exact(size, deadline, doing)

    def _read_exact(self, n: int, deadline: float, doing: str) -> bytes:
        chunks, remaining = [], n
        while remaining:
            left = deadline - time.monotonic()
            ready = select.select([self._rep], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self.kill()
                raise WorkerDied(
                    {
                        "kind": "timeout",
                        "exc_type": "Timeout",
                        "message": f"timed out while {doing} (incomplete reply)",
                    }
                )
            try:
                chunk = os.read(self._rep, min(remaining, 1 << 20))
            except OSError:
                chunk = b""
            if not chunk:
                record = self._death(doing)
                self.kill()
                raise WorkerDied(record)
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _census(self) -> tuple[int, int]:
        """(processes, threads) in the worker's tree, from /proc: never asked of the worker."""
        return census(self._pids())

    def _check_leftovers(self, doing: str, pids: list[int]) -> None:
        """A call into learner code must leave nothing running: a thread or process still
        alive after the reply ends this worker, and the call is charged for it."""
        if self._baseline is None:
            return
        record = leftovers(self._pids, pids, self._baseline, doing)
        if record is not None:
            self.kill()
            raise WorkerDied(record)
