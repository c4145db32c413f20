"""The two fixed groups of checks, and the helper process that grades the second.

Every run splits the selected checks into the same two groups; each group is graded with a
fresh worker, either one after the other in this process (``jobs=1``) or the second in a
helper pytest process with its own worker (``jobs=2``). Which checks share a worker, and so
the score, is the same either way. The helper reports outcomes as plain JSON
(``part.json``); this process gives them their points from its own rubric
(:meth:`~llm_grade.engine.session.GradingSession.adopt`).

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
        with open(self.folder / "grading.log", "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def results(self) -> tuple[dict[str, CheckResult], str]:
        """Wait for it; its results by node id (malformed ones left out) and the end of its
        log (for the checks it did not report)."""
        try:
            self.proc.wait(timeout=3600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        found: dict[str, CheckResult] = {}
        part = self.folder / "part.json"
        if part.is_file():
            try:
                found = {d["nodeid"]: CheckResult(**d) for d in json.loads(part.read_text())}
            except (ValueError, TypeError, KeyError):
                found = {}
        log = (self.folder / "grading.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(self.folder, ignore_errors=True)
        return found, log


def write_part(folder: Path, results: list[CheckResult]) -> None:
    """In the helper: hand the results over (plain JSON, nothing else)."""
    checks = [r.to_dict() for r in results]
    (Path(folder) / "part.json").write_text(json.dumps(checks), encoding="utf-8")


MISSING_FROM_HELPER = (
    "The second grading process ended without grading this check "
    "(a bug in llm-grade, not in your code: please report it). Its output:\n"
)
