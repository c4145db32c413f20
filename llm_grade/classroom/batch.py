"""Grade a whole class: every submission under a directory, N at a time.

A submission is a sub-folder, a ``.zip`` archive or a Jupyter notebook (``.ipynb``); the
latter two are first unpacked into ``OUT/.staged/<student>/`` (see
:mod:`llm_grade.classroom.staging` for the conventions and the safety checks). Each
job (N at a time: N cores) keeps one long-lived grading process
(:mod:`llm_grade.classroom.server`) that grades submission after submission, each with its own
grading session and fresh sandboxed workers forked from a pre-imported template, so one
submission can never disturb another's grading and the imports are paid once per job, not once
per submission. A submission that overruns its time costs its job's process (killed and
started afresh for the next one), never another submission.

**Students cannot reach each other.** Every worker runs in bubblewrap with the class folder
and the whole output folder hidden (``--hide``): it sees only the private copy of its own
submission, never a classmate's code, results, staged archive or the integrity key. Without
bubblewrap, batch refuses to start unless ``--sandbox none`` says to grade anyway, and then
every output says so.

**Each student has a namespace.** Per-student files live in ``OUT/students/<student>/``, so
no student name (``index.html``, ``grades.csv``, ``submissions``) can collide with the class
exports at the top of ``OUT``.

**Resumable, and results cannot be forged.** A submission is skipped only when its stamp file
holds the HMAC-SHA256, under a key only this process holds (``OUT/.llm-grade-key``), of the
submission's content and grading options and of the exact bytes of its ``results.json``. An
unchanged submission is not graded (or unpacked) again; a ``results.json`` edited by anyone
else fails the HMAC and is graded again. Everything the class exports is then written from the
verified results (exporters never re-run anything).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from llm_grade.classroom.server import GradingServer
from llm_grade.classroom.staging import (
    StagingError,
    StudentSubmission,
    content_hash,
    find_submissions,
    holds_modules,
    unpack,
)
from llm_grade.engine.options import GradingOptions
from llm_grade.engine.results import GradeResult
from llm_grade.sandbox.confine import bubblewrap

__all__ = [
    "BatchError",
    "Outcome",
    "StudentSubmission",
    "check_sandbox",
    "content_hash",
    "find_submissions",
    "grade_class",
    "holds_modules",
    "student_dir",
    "unsandboxed_note",
    "write_class_exports",
]

STAMP_FILE = "results.hmac"  # OUT/students/<student>/results.hmac: see _seal()
FEEDBACK_NOTEBOOK = "feedback.ipynb"  # OUT/students/<student>/feedback.ipynb (and .html)
STAGED = ".staged"  # OUT/.staged/<student>/: unpacked zips and notebooks
STUDENTS = "students"  # OUT/students/<student>/: results.json and the per-student exports
KEY_FILE = ".llm-grade-key"  # OUT/.llm-grade-key: the HMAC key, readable by its owner only
KEY_BYTES = 32
SANDBOXES = ("bubblewrap", "none")


class BatchError(Exception):
    """The class cannot be graded as asked (says why and what to do)."""


@dataclass
class Outcome:
    name: str
    result: GradeResult | None
    skipped: bool  # unchanged since the last run
    seconds: float
    error: str = ""
    note: str = ""  # not an error, but worth telling (e.g. a name clash, no sandbox)


def student_dir(out: Path, name: str) -> Path:
    """``OUT/students/<name>/``: a student's own folder, apart from the class exports."""
    return Path(out) / STUDENTS / name


def unsandboxed_note(sandbox: str, isolation: str) -> str:
    """The note every student gets when the class was graded without a sandbox, else ""."""
    if isolation == "none":
        return (
            "the class was graded without a sandbox (--isolation none): learner code ran in "
            "the grading process and could read and change other students' files and results"
        )
    if sandbox == "none":
        return (
            "the class was graded without a sandbox (--sandbox none): learner code could read "
            "and change other students' files and results"
        )
    return ""


def check_sandbox(sandbox: str, isolation: str = "process") -> None:
    """Refuse to grade a class in the sandbox when bubblewrap cannot run here.

    Without it every student's worker would see the whole machine, classmates' submissions
    and results included, so grading on silently would hand out scores that cannot be
    trusted. ``--sandbox none`` (or ``--isolation none``) is the explicit way to do it anyway.
    """
    if sandbox not in SANDBOXES:
        raise BatchError(f"--sandbox must be one of {', '.join(SANDBOXES)}, not {sandbox!r}")
    if isolation == "none" or sandbox == "none" or bubblewrap() is not None:
        return
    raise BatchError(
        "bubblewrap (bwrap) is not available on this machine (not installed, or user "
        "namespaces are disabled), so students' code cannot be sandboxed: without it, every "
        "student could read and change the other students' submissions and results. "
        "Install it (`apt-get install bubblewrap`) or pass `--sandbox none` to grade the "
        "class without a sandbox anyway (every result will say so)."
    )


def _check_hidden_folders(folders: list[Path]) -> None:
    """The sandbox hides the class and output folders: refuse when Python or llm-grade itself
    lives inside one, since every worker would then fail to start for a reason that has
    nothing to do with the submission."""
    runtime = {
        Path(sys.prefix),
        Path(sys.exec_prefix),
        Path(sys.base_prefix),
        Path(os.path.realpath(sys.executable)).parent,
        Path(__file__).parent.parent,  # the llm_grade package
    }
    for folder in folders:
        inside = sorted(str(p) for p in runtime if p.resolve().is_relative_to(folder))
        if inside:
            raise BatchError(
                f"{inside[0]} (Python or llm-grade) is inside {folder}, which the sandbox hides "
                "from every student's code; keep the submissions and --out in their own folders"
            )


def _key(out: Path) -> bytes:
    """The class's HMAC key: created once, readable by its owner only, never shown to a
    worker (the output folder is hidden from them)."""
    path = Path(out) / KEY_FILE
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        why = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be read ({exc})"
        raise BatchError(f"{path} {why}; remove it to start a fresh integrity record") from None
    with os.fdopen(fd, "rb") as f:
        key = f.read()
    if len(key) != KEY_BYTES:
        raise BatchError(
            f"{path} is not an llm-grade key ({len(key)} bytes, expected {KEY_BYTES}); remove "
            "it to start a fresh integrity record (every submission is then graded again)"
        )
    return key


def _stamp(submission: StudentSubmission, args: list[str], rubric: Path | None) -> str:
    """What decides a submission's results: its content, the options and the rubric."""
    digest = hashlib.sha256(content_hash(submission.path).encode())
    digest.update("\0".join(args).encode())
    if rubric is not None:
        digest.update(b"\0rubric\0" + Path(rubric).read_bytes())
    return digest.hexdigest()


def _seal(key: bytes, stamp: str, results: bytes) -> str:
    """HMAC-SHA256 binding these results to this submission and these options: without the
    key, nobody can make a stamp file that matches an edited results.json."""
    return hmac.new(key, stamp.encode() + b"\0" + results, hashlib.sha256).hexdigest()


def _parse(data: bytes) -> GradeResult | None:
    """A :class:`GradeResult` from the verified bytes themselves (not a second read of the
    file, which could have changed in between), or None if they are not a results.json."""
    try:
        return GradeResult.from_dict(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _verified(out: Path, key: bytes, stamp: str) -> GradeResult | None:
    """The saved results of this submission if its stamp file vouches for them, else None."""
    try:
        data = (out / "results.json").read_bytes()
        seal = (out / STAMP_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(seal, _seal(key, stamp, data)):
        return None
    return _parse(data)


def _grade_one(
    submission: StudentSubmission,
    out: Path,
    staged: Path,
    options: GradingOptions,
    timeout: float,
    stamp: str,
    key: bytes,
    hide: list[Path],
    grader: LocalGrader,
    note: str = "",
    feedback_notebooks: bool = False,
) -> Outcome:
    started = time.perf_counter()
    name = submission.name
    note = "; ".join(n for n in (submission.note, note) if n)
    out.mkdir(parents=True, exist_ok=True)
    results, stamp_file = out / "results.json", out / STAMP_FILE
    saved = _verified(out, key, stamp)
    if saved is not None:
        return Outcome(name, saved, True, 0.0, note=note)
    results.unlink(missing_ok=True)
    stamp_file.unlink(missing_ok=True)
    # --hide: the worker sees its own (privately copied) submission, not the class folder
    # nor anything under OUT
    mine = options.replace(out=out, hide=tuple(hide), submission=None)
    try:
        code, why = grader.grade(submission, staged, mine, timeout)
    except StagingError as exc:
        seconds = time.perf_counter() - started
        return Outcome(name, None, False, seconds, f"{submission.path.name}: {exc}", note)
    seconds = time.perf_counter() - started
    data = results.read_bytes() if results.is_file() else None
    result = _parse(data) if data is not None else None
    if result is None:
        why = "timed out" if code is None else (why.strip() or f"failed (status {code})")
        if data is not None:
            why += " and left an unreadable results.json"
        return Outcome(
            name, None, False, seconds, f"grading {why}; see {out / 'grading.log'}", note
        )
    stamp_file.write_text(_seal(key, stamp, data) + "\n", encoding="ascii")
    if feedback_notebooks and submission.kind == "ipynb":
        note = "; ".join(n for n in (note, _feedback(submission, result, out)) if n)
    return Outcome(name, result, False, seconds, note=note)


class LocalGrader:
    """Grades on this machine: the submission is staged here and graded by the job's
    long-lived grading process (started in a neutral folder, with -I), as
    ``llm-grade grade FOLDER --out OUT`` would."""

    def __init__(self, out: Path):
        self.server = GradingServer(out)

    def grade(
        self, submission: StudentSubmission, staged: Path, options: GradingOptions, timeout: float
    ) -> tuple[int | None, str]:
        """Write ``options.out/results.json`` (and ``grading.log``): see
        :meth:`GradingServer.grade`. :class:`StagingError` when it cannot be staged."""
        folder, extraction = unpack(submission, staged)
        origin = extraction.to_dict() if extraction is not None else None
        return self.server.grade(folder, options, timeout, origin)

    def close(self) -> None:
        self.server.close()


def _feedback(submission: StudentSubmission, result: GradeResult, out: Path) -> str:
    """Write ``OUT/students/<student>/feedback.ipynb`` (and ``.html``); "" or why not."""
    from llm_grade.notebook.feedback import write_feedback_notebook

    try:
        write_feedback_notebook(submission.path, result, out / FEEDBACK_NOTEBOOK)
    except Exception as exc:  # noqa: BLE001 - the grade stands; the note says what failed
        return f"no feedback notebook ({type(exc).__name__}: {str(exc)[:200]})"
    return ""


def grade_class(
    root: Path,
    out: Path,
    *,
    jobs: int = 1,
    isolation: str = "process",
    sandbox: str = "bubblewrap",
    rubric: Path | None = None,
    select: str | None = None,
    device: str = "cpu",
    force: bool = False,
    timeout: float = 1800.0,
    on_done: Callable[[Outcome], None] | None = None,
    feedback_notebooks: bool = False,
    executor: str = "local",
    scheduler=None,
) -> list[Outcome]:
    """Grade every submission under ``root`` into ``out/students/<name>/``, ``jobs`` at a time.

    ``sandbox`` is ``bubblewrap`` (required: raises :class:`BatchError` where it cannot run)
    or ``none`` (graded anyway; every outcome carries a note saying so). ``select`` is a
    pytest ``-k`` expression (e.g. ``"softmax or LayerNorm"``) that limits grading to some
    components, as ``llm-grade grade -k`` does; ``device`` is passed on to
    ``llm-grade grade --device``. With ``feedback_notebooks``, every notebook submission also
    gets ``OUT/students/<student>/feedback.ipynb`` and ``feedback.html``: the student's
    notebook with a feedback cell after each graded definition.

    ``executor`` "dask" sends each submission to a Dask distributed cluster (``scheduler``:
    its address, or a ``distributed.Client``) instead of this machine's grading processes;
    see :mod:`llm_grade.classroom.cluster`. Resuming, the HMAC seals and the exports are the
    same either way: they happen here.
    """
    check_sandbox(sandbox, isolation)
    root, out = Path(root).resolve(), Path(out).resolve()
    hide = [root, out]
    if isolation == "process" and sandbox == "bubblewrap":
        _check_hidden_folders(hide)
    submissions = find_submissions(root)
    if rubric is not None:
        rubric = Path(rubric).resolve()
    options = GradingOptions(
        isolation=isolation, sandbox=sandbox, jobs=1, device=device, rubric=rubric, select=select
    )  # one grading process each: `jobs` submissions at a time
    out.mkdir(parents=True, exist_ok=True)
    key = _key(out)
    note = unsandboxed_note(sandbox, isolation)
    if force:
        for submission in submissions:
            (student_dir(out, submission.name) / STAMP_FILE).unlink(missing_ok=True)
    outcomes: list[Outcome] = []
    graders: list = []  # one per job: a long-lived grading process, or a cluster client
    local = threading.local()
    remote = None
    if executor == "dask":
        from llm_grade.classroom.cluster import IN_FLIGHT, DaskGrader

        remote = DaskGrader(scheduler, rubric=rubric)
        graders.append(remote)
        jobs = max(jobs, IN_FLIGHT)
    elif executor != "local":
        raise BatchError(f"--executor must be local or dask, not {executor!r}")

    def one(submission: StudentSubmission) -> Outcome:
        if remote is not None:
            local.grader = remote
        elif not hasattr(local, "grader"):
            local.grader = LocalGrader(out)
            graders.append(local.grader)
        return _grade_one(
            submission,
            student_dir(out, submission.name),
            out / STAGED / submission.name,
            options,
            timeout,
            _stamp(submission, options.cli_args(), rubric),
            key,
            hide,
            local.grader,
            note,
            feedback_notebooks,
        )

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(one, s) for s in submissions]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                if on_done is not None:
                    on_done(outcome)
    finally:
        for grader in graders:
            grader.close()
    return sorted(outcomes, key=lambda o: o.name)


def write_class_exports(outcomes: list[Outcome], out: Path) -> dict[str, Path]:
    """The class index and per-student pages, grades.csv, and per-student Gradescope and
    JUnit files (in ``OUT/students/<student>/``), all from the verified results. Submissions
    that could not be graded get a row with their error in grades.csv and are listed on the
    index, as are notes (name clashes, no sandbox)."""
    from llm_grade.output.exporters import write_grades_csv, write_gradescope, write_junit
    from llm_grade.output.report import write_class

    results = {o.name: o.result for o in outcomes if o.result is not None}
    errors = {o.name: o.error for o in outcomes if o.result is None}
    notes = {o.name: o.note for o in outcomes if o.note}
    for name, result in results.items():
        write_gradescope(result, student_dir(out, name) / "gradescope.json")
        write_junit(result, student_dir(out, name) / "junit.xml")
    return {
        "index": write_class(results, out, errors=errors, notes=notes),
        "grades": write_grades_csv(results, out / "grades.csv", errors=errors),
    }
