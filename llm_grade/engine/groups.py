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
    """A second pytest process that grades the second group of checks."""

    def __init__(self, options: GradingOptions, invocation: list[str], cwd: Path):
        """Start it now (it imports torch and starts its own worker on the other core while
        this process does): the same pytest arguments as this run (``invocation``, made
        absolute), this run's options, one job, and a folder to report into."""
        self.folder = Path(tempfile.mkdtemp(prefix="llm-grade-part-"))
        mine = options.replace(jobs=1, part=self.folder, select=None)  # -k is in invocation
        # -I and a neutral working directory: nothing in the caller's folder (a pytest.py, an
        # llm_grade/ folder, a conftest.py) can stand in for the grader
        cmd = [sys.executable, "-I", "-m", "pytest", *absolute_args(invocation, cwd)]
        cmd += [*mine.pytest_args(), "-qq", "-p", "no:terminalreporter", "-p", "no:cacheprovider"]
        self._offset = 0
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
        return self.proc.poll() is None

    def wait(self, timeout: float = 3600) -> str:
        """Wait for it to end (polling is up to the caller); the end of its log, for the
        checks it did not report."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return (self.folder / "grading.log").read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


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
