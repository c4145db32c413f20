"""Workers forked from a pre-imported template: a fresh sandboxed worker in milliseconds.

Starting a worker costs a Python and a torch import (about two seconds of a core). Under
bubblewrap the grader instead keeps a *template* per sandbox configuration: one sandbox whose
process (:mod:`llm_grade.sandbox.forkserver`) has imported torch and the worker's modules and
nothing else, and forks a worker on request. Every worker is still fresh: before each fork the
template ends every process a previous worker left in the sandbox's PID namespace and empties
its ``/tmp``, ``/dev/shm`` and System V IPC, and no worker can reach into the template's memory.

Submissions reach the template through its *stage area*: a folder bound read-only into the
sandbox (at :data:`~llm_grade.sandbox.confine.SUBMISSION_MOUNT`) where the grading session
stages each submission (:meth:`StageArea.new_stage`); before a fork, every staged folder but the
ones still in use is removed, so a worker never sees another submission. The folders the
template masks are fixed when it starts; a run whose masks differ (beyond those under ``/tmp``,
which the sandbox's private ``/tmp`` hides anyway) gets a template of its own. Templates live
as long as the process (batch grading and a test run grade many submissions with one).

Without bubblewrap there is no template: each worker is started afresh, as before.

Trusted side (the grading process; torch-free).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llm_grade.sandbox.confine import (
    SUBMISSION_MOUNT,
    WORKER_PYTHON,
    _runtime_paths_under,
    bubblewrap,
    set_resource_limits,
    worker_env,
)
from llm_grade.sandbox.limits import Limits
from llm_grade.sandbox.watchdog import tree

TEMPLATE_PYTHON = [*WORKER_PYTHON[:-1], "llm_grade.sandbox.forkserver"]
KEEP_TEMPLATES = 2  # live templates per process (the oldest beyond this is closed)
_lock = threading.RLock()
_areas: dict[tuple, StageArea] = {}


class TemplateError(RuntimeError):
    """The template could not start or stopped answering (the caller starts a worker afresh
    or a new template)."""


def ns_pid(pid: int) -> int | None:
    """``pid``'s number in its innermost PID namespace (``NSpid`` in /proc), None if gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


class ForkedWorker:
    """A worker forked by a template, with the parts of ``subprocess.Popen`` the supervisor
    uses (``pid``, ``stdout``, ``poll``, ``wait``)."""

    def __init__(
        self, template: WorkerTemplate, inner_pid: int, host_pid: int, fds: tuple, stdout
    ):
        self.template = template
        self.inner_pid = inner_pid
        self.pid = host_pid
        self.fds = fds  # (request pipe to write, reply pipe to read)
        self.stdout = stdout
        self.returncode: int | None = None

    def tree(self) -> list[int]:
        """Every process a worker of this template runs (this worker and whatever it left;
        the template is their subreaper), never the template itself."""
        return [p for p in tree(self.template.pid)[1:] if not is_zombie(p)]

    def poll(self) -> int | None:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None:
            self.returncode = self.template.status(self.inner_pid, timeout or 0)
        if self.returncode is None and timeout:
            raise subprocess.TimeoutExpired("worker", timeout)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL this worker and everything it started, until none is left running."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = self.tree()
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.002)
        try:
            self.stdout.close()
        except OSError:
            pass


class WorkerTemplate:
    """One sandbox with a fork server in it (see the module's docstring)."""

    def __init__(self, bwrap: str, area: Path, limits: Limits, masks: list[Path], gpu: bool):
        self.bwrap, self.area, self.limits, self.masks, self.gpu = bwrap, area, limits, masks, gpu
        self.proc: subprocess.Popen | None = None
        self.pid = 0  # the template process's pid on this side
        self.output = bytearray()
        self._control: socket.socket | None = None
        self._ready = False
        self._spawned_by: threading.Thread | None = None

    def command(self) -> list[str]:
        from llm_grade.sandbox.confine import bwrap_command

        cmd = bwrap_command(self.bwrap, None, self.limits, self.masks, self.gpu)
        return cmd + ["--ro-bind", str(self.area), SUBMISSION_MOUNT, "--chdir", "/"]

    def spawn(self) -> None:
        """Start the template now; :meth:`fork` waits for it to be ready."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cmd = [*self.command(), *TEMPLATE_PYTHON, "--control", str(theirs.fileno())]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(theirs.fileno(),),
            env=worker_env(),
            cwd="/",
            preexec_fn=lambda: set_resource_limits(self.limits, self.gpu),
            start_new_session=True,
        )
        theirs.close()
        self._control = ours
        self._ready = False
        self._spawned_by = threading.current_thread()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            if len(self.output) < 65536:
                self.output += chunk

    def alive(self) -> bool:
        spawner = self._spawned_by
        # bubblewrap's --die-with-parent ends the sandbox with the thread that started it
        return (
            self.proc is not None
            and self.proc.poll() is None
            and (spawner is None or spawner.is_alive())
        )

    def _message(self, timeout: float) -> dict:
        ready, _, _ = select.select([self._control], [], [], max(timeout, 0))
        if not ready:
            raise TemplateError(f"the worker template did not answer within {timeout:g} s")
        data = self._control.recv(65536)
        if not data:
            raise TemplateError("the worker template ended")
        return json.loads(data)

    def _request(self, request: dict, fds: list[int] = (), timeout: float = 10.0) -> dict:
        if not self._ready:
            hello = self._message(self.limits.startup_timeout_s)
            if not hello.get("ready"):
                raise TemplateError("the worker template sent an unexpected greeting")
            self._ready = True
            inner = hello.get("pid")
            self.pid = next(
                (p for p in tree(self.proc.pid) if ns_pid(p) == inner and p != self.proc.pid),
                0,
            )
            if not self.pid:
                raise TemplateError("the worker template's process was not found")
        try:
            socket.send_fds(self._control, [json.dumps(request).encode()], list(fds))
        except OSError as exc:
            raise TemplateError(f"the worker template is gone ({exc})") from None
        return self._message(timeout)

    def fork(self, submission: str, forbidden: dict, threads: int = 1) -> ForkedWorker:
        """A fresh worker for the staged folder ``submission`` (as the sandbox sees it),
        with its three pipes; raises :class:`TemplateError` if the template failed."""
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe()
        request = {
            "op": "fork",
            "submission": submission,
            "forbidden": forbidden,
            "threads": threads,
        }
        try:
            try:
                reply = self._request(request, [req_r, rep_w, out_w], timeout=30.0)
            finally:
                for fd in (req_r, rep_w, out_w):
                    os.close(fd)
            inner = int(reply["pid"])
        except (TemplateError, KeyError, TypeError, ValueError, OSError):
            for fd in (req_w, rep_r, out_r):
                os.close(fd)
            self.close()
            raise TemplateError(
                "the worker template failed: " + self.output[-1500:].decode(errors="replace")
            ) from None
        host = next((p for p in tree(self.pid)[1:] if ns_pid(p) == inner), 0)
        return ForkedWorker(self, inner, host, (req_w, rep_r), os.fdopen(out_r, "rb"))

    def status(self, inner_pid: int, timeout: float) -> int | None:
        """How the worker ``inner_pid`` ended (a negative signal number if killed), or None
        while it runs or when the template cannot say."""
        try:
            reply = self._request(
                {"op": "wait", "pid": inner_pid, "timeout": timeout}, (), timeout + 5
            )
        except (TemplateError, OSError, ValueError):
            return None
        value = reply.get("status")
        return value if isinstance(value, int) else None

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None


@dataclass
class StageArea:
    """The folder that a template's sandbox sees submissions in, and the template itself
    (started again with the same folder if it ended)."""

    folder: Path
    key: tuple
    bwrap: str
    limits: Limits
    masks: list[Path]
    gpu: bool
    template: WorkerTemplate | None = None
    last_used: float = 0.0

    def __post_init__(self):
        self.active: set[str] = set()

    def new_stage(self) -> Path:
        """A fresh folder in the area to stage one submission into (remove it with
        :meth:`release`)."""
        path = Path(tempfile.mkdtemp(prefix="staged-", dir=self.folder))
        self.active.add(path.name)
        return path

    def release(self, path: Path) -> None:
        self.active.discard(Path(path).name)
        shutil.rmtree(path, ignore_errors=True)

    def holds(self, root: Path) -> bool:
        return Path(root).resolve().is_relative_to(self.folder)

    def inside(self, root: Path) -> str:
        """``root`` as the template's sandbox sees it."""
        return str(Path(SUBMISSION_MOUNT) / Path(root).resolve().relative_to(self.folder))

    def warm(self) -> WorkerTemplate:
        """The template, started if it is not running (returns at once: it imports torch
        in the background)."""
        with _lock:
            self.last_used = time.monotonic()
            if self.template is None or not self.template.alive():
                if self.template is not None:
                    self.template.close()
                self.template = WorkerTemplate(
                    self.bwrap, self.folder, self.limits, self.masks, self.gpu
                )
                self.template.spawn()
            return self.template

    def fork(self, root: Path, forbidden: dict, threads: int = 1) -> ForkedWorker:
        """A fresh worker for ``root`` (a folder of :meth:`new_stage`); the staged folders
        of submissions no longer graded are removed first."""
        mine = Path(root).resolve().relative_to(self.folder).parts[0]
        for entry in self.folder.iterdir():
            if entry.name != mine and entry.name not in self.active:
                shutil.rmtree(entry, ignore_errors=True)
        try:
            return self.warm().fork(self.inside(root), forbidden, threads)
        except TemplateError:
            # one more try with a new template (the old one was killed or stopped)
            return self.warm().fork(self.inside(root), forbidden, threads)

    def close(self) -> None:
        if self.template is not None:
            self.template.close()
            self.template = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _hidden_anyway(path: Path) -> bool:
    """A folder the sandbox's private /tmp hides already (and that is not bound back)."""
    inside_tmp = path == Path("/tmp") or path.is_relative_to("/tmp")
    if not inside_tmp:
        return False
    bound = [Path(p) for p in _runtime_paths_under("/tmp")]
    return not any(path.is_relative_to(b) or b.is_relative_to(path) for b in bound)


def normalized_masks(masks: list[Path]) -> list[Path]:
    """The masks that change what a sandbox shows: existing folders, not inside another mask
    and not under the private /tmp."""
    found = sorted({Path(m).resolve() for m in masks if Path(m).exists()})
    kept: list[Path] = []
    for mask in found:
        if _hidden_anyway(mask) or any(mask.is_relative_to(k) for k in kept):
            continue
        kept.append(mask)
    return kept


def stage_area(
    limits: Limits, masks: list[Path], gpu: bool, sandbox: str = "auto"
) -> StageArea | None:
    """The stage area (and template) for workers with these bounds and masks, started now if
    there is none yet; None where there is no bubblewrap (or ``sandbox`` is "none")."""
    if sandbox == "none" or os.environ.get("LLM_GRADE_NO_TEMPLATE"):
        return None
    bwrap = bubblewrap()
    if bwrap is None:
        return None
    kept = normalized_masks(masks)
    key = (bwrap, tuple(sorted(vars(limits).items())), tuple(map(str, kept)), gpu)
    with _lock:
        area = _areas.get(key)
        if area is None:
            folder = Path(tempfile.mkdtemp(prefix="llm-grade-stage-")).resolve()
            area = StageArea(folder, key, bwrap, limits, kept, gpu, last_used=time.monotonic())
            _areas[key] = area
            for old in sorted(_areas.values(), key=lambda a: a.last_used)[:-KEEP_TEMPLATES]:
                if not old.active and old is not area:
                    old.close()
                    _areas.pop(old.key, None)
        area.warm()
        return area


def area_of(root: Path) -> StageArea | None:
    """The stage area holding the staged folder ``root``, if any."""
    with _lock:
        return next((a for a in _areas.values() if a.holds(root)), None)


@atexit.register
def close_all() -> None:
    with _lock:
        for area in list(_areas.values()):
            area.close()
        _areas.clear()
