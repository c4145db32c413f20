"""Grade a whole class: every submission under a directory, N at a time.

A submission is a sub-folder, a ``.zip`` archive or a Jupyter notebook (``.ipynb``); the
latter two are first unpacked into ``OUT/.staged/<student>/`` (see :mod:`llm_grade.staging`
for the conventions and the safety checks). Each submission is graded by its own
``llm-grade grade`` process (with its own sandboxed worker), so one submission can never
disturb another's grading, and N processes use N cores. Grading is resumable: a submission
whose content (files, archive or notebook bytes) and grading options have not changed since
its ``results.json`` was written is not graded (or unpacked) again. Everything the class
exports is then written from the saved results (exporters never re-run anything).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .results import GradeResult
from .staging import StagingError, Submission, content_hash, find_submissions, stage

__all__ = [
    "Outcome",
    "Submission",
    "content_hash",
    "find_submissions",
    "grade_class",
    "write_class_exports",
]

HASH_FILE = "submission.sha256"
STAGED = ".staged"  # OUT/.staged/<student>/: unpacked zips and notebooks


@dataclass
class Outcome:
    name: str
    result: GradeResult | None
    skipped: bool  # unchanged since the last run
    seconds: float
    error: str = ""
    note: str = ""  # not an error, but worth telling (e.g. a name clash)


def _stamp(submission: Submission, args: list[str], rubric: Path | None) -> str:
    """What decides a submission's results: its content, the options and the rubric."""
    digest = hashlib.sha256(content_hash(submission.path).encode())
    digest.update("\0".join(args).encode())
    if rubric is not None:
        digest.update(b"\0rubric\0" + Path(rubric).read_bytes())
    return digest.hexdigest()


def _grade_one(
    submission: Submission, out: Path, staged: Path, args: list[str], timeout: float, stamp: str
) -> Outcome:
    from .exporters import load_results

    started = time.perf_counter()
    name, note = submission.name, submission.note
    out.mkdir(parents=True, exist_ok=True)
    results, stamp_file = out / "results.json", out / HASH_FILE
    if results.is_file() and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return Outcome(name, load_results(results), True, 0.0, note=note)
    results.unlink(missing_ok=True)
    stamp_file.unlink(missing_ok=True)
    try:
        folder = stage(submission, staged)
    except StagingError as exc:
        seconds = time.perf_counter() - started
        return Outcome(name, None, False, seconds, f"{submission.path.name}: {exc}", note)
    # -I and a neutral working directory: an llm_grade/ folder in the caller's folder (or in
    # the class folder) is never imported in place of the engine
    cmd = [sys.executable, "-I", "-m", "llm_grade", "grade", str(folder), "--out", str(out), *args]
    with (out / "grading.log").open("wb") as log:
        try:
            proc = subprocess.run(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                cwd=out,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.perf_counter() - started
    if not results.is_file():
        why = "timed out" if code is None else f"exited with status {code}"
        return Outcome(
            name, None, False, seconds, f"grading {why}; see {out / 'grading.log'}", note
        )
    stamp_file.write_text(stamp + "\n")
    return Outcome(name, load_results(results), False, seconds, note=note)


def grade_class(
    root: Path,
    out: Path,
    *,
    jobs: int = 1,
    isolation: str = "process",
    rubric: Path | None = None,
    select: str | None = None,
    device: str = "cpu",
    force: bool = False,
    timeout: float = 1800.0,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Grade every submission under ``root`` into ``out/<name>/`` with ``jobs`` in parallel.

    ``select`` is a pytest ``-k`` expression (e.g. ``"softmax or LayerNorm"``) that limits
    grading to some components, as ``llm-grade grade -k`` does; ``device`` is passed on to
    ``llm-grade grade --device``.
    """
    submissions = find_submissions(root)
    args = ["--isolation", isolation, "--jobs", "1"]  # the class runs `jobs` at a time
    if device != "cpu":
        args += ["--device", device]
    if rubric is not None:
        rubric = Path(rubric).resolve()
        args += ["--rubric", str(rubric)]
    if select:
        args += ["-k", select]
    if force:
        for submission in submissions:
            (out / submission.name / HASH_FILE).unlink(missing_ok=True)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(
                _grade_one,
                s,
                out / s.name,
                out / STAGED / s.name,
                args,
                timeout,
                _stamp(s, args, rubric),
            )
            for s in submissions
        ]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    return sorted(outcomes, key=lambda o: o.name)


def write_class_exports(outcomes: list[Outcome], out: Path) -> dict[str, Path]:
    """The class index and per-student pages, grades.csv, and per-student Gradescope and
    JUnit files, all from the saved results. Submissions that could not be graded get a row
    with their error in grades.csv and are listed on the index, as are name clashes."""
    from .exporters import write_grades_csv, write_gradescope, write_junit
    from .report import write_class

    results = {o.name: o.result for o in outcomes if o.result is not None}
    errors = {o.name: o.error for o in outcomes if o.result is None}
    notes = {o.name: o.note for o in outcomes if o.note}
    for name, result in results.items():
        write_gradescope(result, out / name / "gradescope.json")
        write_junit(result, out / name / "junit.xml")
    return {
        "index": write_class(results, out, errors=errors, notes=notes),
        "grades": write_grades_csv(results, out / "grades.csv", errors=errors),
    }
