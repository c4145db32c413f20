"""Grade a whole class: every submission folder under a directory, N at a time.

Each submission is graded by its own ``llm-grade grade`` process (with its own sandboxed
worker), so one submission can never disturb another's grading, and N processes use N cores.
Grading is resumable: a submission whose files have not changed since its ``results.json``
was written (same content hash) is not graded again. Everything the class exports is then
written from the saved results (exporters never re-run anything).
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

from .components import MODULES
from .results import GradeResult

HASH_FILE = "submission.sha256"


@dataclass
class Outcome:
    name: str
    result: GradeResult | None
    skipped: bool  # unchanged since the last run
    seconds: float
    error: str = ""


def find_submissions(root: Path) -> list[Path]:
    """Sub-folders of ``root`` that hold at least one of the curriculum's modules."""
    return sorted(
        p
        for p in Path(root).iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and any((p / f"{m}.py").is_file() for m in MODULES)
    )


def content_hash(folder: Path) -> str:
    """SHA-256 over the names and bytes of the submission's Python files."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _grade_one(folder: Path, out: Path, args: list[str], timeout: float) -> Outcome:
    from .exporters import load_results

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    digest = content_hash(folder)
    results, stamp = out / "results.json", out / HASH_FILE
    if results.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return Outcome(folder.name, load_results(results), True, 0.0)
    results.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "llm_grade", "grade", str(folder), "--out", str(out), *args]
    with (out / "grading.log").open("wb") as log:
        try:
            proc = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, stdin=subprocess.DEVNULL
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.perf_counter() - started
    if not results.is_file():
        why = "timed out" if code is None else f"exited with status {code}"
        return Outcome(
            folder.name, None, False, seconds, f"grading {why}; see {out / 'grading.log'}"
        )
    stamp.write_text(digest + "\n")
    return Outcome(folder.name, load_results(results), False, seconds)


def grade_class(
    root: Path,
    out: Path,
    *,
    jobs: int = 1,
    isolation: str = "process",
    rubric: Path | None = None,
    force: bool = False,
    timeout: float = 1800.0,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Grade every submission under ``root`` into ``out/<name>/`` with ``jobs`` in parallel."""
    folders = find_submissions(root)
    args = ["--isolation", isolation]
    if rubric is not None:
        args += ["--rubric", str(Path(rubric).resolve())]
    if force:
        for folder in folders:
            (out / folder.name / HASH_FILE).unlink(missing_ok=True)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_grade_one, f, out / f.name, args, timeout) for f in folders]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    return sorted(outcomes, key=lambda o: o.name)


def write_class_exports(outcomes: list[Outcome], out: Path) -> dict[str, Path]:
    """The class index and per-student pages, grades.csv, and per-student Gradescope and
    JUnit files, all from the saved results."""
    from .exporters import write_grades_csv, write_gradescope, write_junit
    from .report import write_class

    results = {o.name: o.result for o in outcomes if o.result is not None}
    for name, result in results.items():
        write_gradescope(result, out / name / "gradescope.json")
        write_junit(result, out / name / "junit.xml")
    return {
        "index": write_class(results, out),
        "grades": write_grades_csv(results, out / "grades.csv"),
    }
