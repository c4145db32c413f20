"""The two fixed groups of checks, and the helper process that grades the second.

Every run splits the selected checks into the same two groups; each group is graded with a
fresh worker, either one after the other in this process (``jobs=1``) or the second in a
helper pytest process with its own worker (``jobs=2``). Which checks share a worker, and so
the score, is the same either way. The helper reports outcomes as plain JSON
(``part.jsonl``, a line per check as it ends); this process gives them their points from its
own rubric (:meth:`~llm_grade.engine.session.GradingSession.adopt`).

Trusted side.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from llm_grade.engine.options import GradingOptions
from llm_grade.engine.results import CheckResult

# checks that run learner code on the meta device: its first operation in a process costs
# about a second (torch imports its compiler stack), so they share one group's worker, and
# that group takes fewer of the other checks (a second is about 8 typical checks)
META_CHECKS = ("runs_on_any_device", "device_argument")
META_WEIGHT = 8

_PATTERN_OPTIONS = {"-k", "-m", "-p", "-o", "--deselect"}


def two_groups(items: list, check_name) -> tuple[list, list]:
    """Two fixed groups of checks, in the given order: the meta-device checks in the second,
    every other check in whichever group has less work so far (the first on a tie).
    ``check_name(item)`` is the check's rubric name."""
    first: list = []
    second: list = []
    head_start = 0
    for item in items:
        if check_name(item) in META_CHECKS:
            second.append(item)
            head_start = META_WEIGHT
        else:
            (first if len(first) <= len(second) + head_start else second).append(item)
    return first, second


def absolute_args(args: tuple[str, ...] | list[str], cwd: Path) -> list[str]:
    """``args`` with every path relative to ``cwd`` made absolute (for a process started
    elsewhere): test paths, ``--submission=DIR`` and the like; -k/-m/-p values stay as given."""
    out: list[str] = []
    previous = ""
    for arg in args:
        if previous in _PATTERN_OPTIONS or arg.startswith("-") and "=" not in arg:
            out.append(arg)
        elif arg.startswith("-"):
            name, _, value = arg.partition("=")
            keep = name in _PATTERN_OPTIONS or not value or not (cwd / value).exists()
            out.append(arg if keep else f"{name}={(cwd / value).resolve()}")
        else:
            path = arg.split("::")[0]
            found = (cwd / path).exists()
            out.append(str((cwd / path).resolve()) + arg[len(path) :] if found else arg)
        previous = arg
    return out


class HelperProcess:
    """A second pytest process that grades the second group of checks: a fresh one, or in
    the warm grading server (:mod:`llm_grade.engine.warm`) its long-lived helper
    (:class:`WarmHelper`), which runs the same pytest command line in a process that has
    imported everything already."""

    def __init__(self, options: GradingOptions, invocation: list[str], cwd: Path):
        """Start it now (it imports torch and starts its own worker on the other core while
        this process does): the same pytest arguments as this run (``invocation``, made
        absolute), this run's options, one job, and a folder to report into."""
        self.folder = Path(tempfile.mkdtemp(prefix="llm-grade-part-"))
        # -k is in the invocation; paths as this run reads them (it may have been given
        # relative ones: pytest graders/ --grade-submission my-llm), the helper runs elsewhere
        paths = {
            name: (cwd / getattr(options, name)).resolve()
            for name in ("submission", "rubric", "out")
            if getattr(options, name) is not None
        }
        paths["hide"] = tuple(
            p if str(p) in ("", ".") else (cwd / p).resolve() for p in options.hide
        )
        mine = options.replace(jobs=1, part=self.folder, select=None, **paths)
        args = [*absolute_args(invocation, cwd), *mine.pytest_args(), "--grade-jobs=1", "-qq"]
        args += ["-p", "no:terminalreporter", "-p", "no:cacheprovider"]
        self._offset = 0
        self.proc = None
        self.warm = WarmHelper.current()
        if self.warm is not None and self.warm.submit(args, self.folder):
            return
        self.warm = None
        # -I and a neutral working directory: nothing in the caller's folder (a pytest.py, an
        # llm_grade/ folder, a conftest.py) can stand in for the grader
        cmd = [sys.executable, "-I", "-m", "pytest", *args]
        with open(self.folder / "grading.log", "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def poll(self) -> list[CheckResult]:
        """The results the helper reported since the last call (one JSON line each, written
        as each check ends: the terminal shows them as they come); malformed lines are left
        out."""
        try:
            with open(self.folder / PART_FILE, "rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except OSError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        found = []
        for line in complete.splitlines():
            try:
                found.append(CheckResult(**json.loads(line)))
            except (ValueError, TypeError, KeyError):
                continue
        return found

    def running(self) -> bool:
        if self.warm is not None:
            return not self.warm.done(0)
        return self.proc.poll() is None

    def wait(self, timeout: float = 3600) -> str:
        """Wait for it to end (polling is up to the caller); the end of its log, for the
        checks it did not report."""
        if self.warm is not None:
            if not self.warm.done(timeout):
                self.warm.kill()
        else:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            return (self.folder / "grading.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.warm is not None:
            if not self.warm.done(0):  # a run that stopped early: its helper goes too
                self.warm.kill()
        elif self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class WarmHelper:
    """The warm grading server's second grading process: started with the server, it has
    imported torch, pytest, Hypothesis and the graders, and runs one helper command line
    (:class:`HelperProcess`'s) at a time, each in a fresh grading session of its own with
    its own sandboxed workers, as the server does (learner code never runs in it).

    Protocol: one JSON line per request on its stdin (``{"args": [...], "folder": ...,
    "env": {...}}``), one JSON line per reply on its stdout when the run has ended; what
    the run prints goes to the folder's ``grading.log``. It is replaced when it dies or a
    run is abandoned (killed mid-run)."""

    _current: WarmHelper | None = None  # set in the warm server only

    def __init__(self, folder: str | None = None):
        self.proc: subprocess.Popen | None = None
        self._pending = False
        self._buffer = b""
        self.folder = folder  # the learner folder its sandbox is made for (see warm_up)

    @classmethod
    def enable(cls, folder: str | None = None) -> WarmHelper:
        cls._current = cls(folder)
        cls._current.start()
        return cls._current

    @classmethod
    def current(cls) -> WarmHelper | None:
        return cls._current

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "llm_grade.engine.warm", "--helper"]
            + (["--for", self.folder] if self.folder else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        self._pending, self._buffer = False, b""

    def submit(self, args: list[str], folder: Path) -> bool:
        """Send a run; False when no helper could take it (grade with a fresh one)."""
        import os

        if self.proc is None or self.proc.poll() is not None or self._pending:
            self.kill()
            self.start()
        request = {"args": args, "folder": str(folder), "env": dict(os.environ)}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            self.kill()
            return False
        self._pending = True
        return True

    def done(self, timeout: float) -> bool:
        """Whether the run sent has ended (waiting up to ``timeout`` seconds)."""
        import os
        import select
        import time

        if not self._pending:
            return True
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                return False
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:  # it died: whatever it did not report is missing
                self.kill()
                return True
            self._buffer += chunk
        self._buffer = self._buffer.split(b"\n", 1)[1]
        self._pending = False
        return True

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc, self._pending, self._buffer = None, False, b""


def reply_stream():
    """A long-lived process's replies: its stdout, kept for them alone (whatever else writes
    to stdout goes to /dev/null and cannot garble them)."""
    import os

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    return replies


@contextlib.contextmanager
def as_caller(env: dict[str, str], cwd: str | Path):
    """Run one request of a long-lived process with its caller's environment and working
    folder, and leave the process as it was after."""
    import os

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        os.chdir(cwd)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir("/")


def serve_helper() -> None:
    """The warm helper's loop (``python -I -m llm_grade.engine.warm --helper``)."""
    import pytest

    replies = reply_stream()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        folder = Path(request["folder"])
        try:
            with as_caller(request.get("env", {}), folder):
                with open(folder / "grading.log", "w", encoding="utf-8") as log:
                    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                        try:
                            code = int(pytest.main(request["args"]))
                        except Exception:  # noqa: BLE001 - the log says; the run reports missing
                            import traceback

                            traceback.print_exc()
                            code = 3
        except OSError:
            code = 3
        replies.write(json.dumps({"code": code}) + "\n")


PART_FILE = "part.jsonl"


def write_part(folder: Path, result: CheckResult) -> None:
    """In the helper: hand one result over (a line of plain JSON, nothing else), as soon as
    the check ends."""
    with open(Path(folder) / PART_FILE, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(result.to_dict()) + "\n")


MISSING_FROM_HELPER = (
    "The second grading process ended without grading this check "
    "(a bug in llm-grade, not in your code: please report it). Its output:\n"
)
