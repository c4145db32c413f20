"""One grading engine for every front-end: ``pytest graders/``, ``llm-grade grade``, batch
grading and CI all run the graders through pytest with the llm-grade plugin.

:func:`grade` is what the CLI calls: it runs pytest in this (trusted) process on the bundled
graders, lets the plugin score the run, and returns the :class:`GradeResult`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llm_grade.engine.results import GradeResult
from llm_grade.paths import bundled


class GradingError(RuntimeError):
    """Grading itself could not run (bad rubric, missing folder, pytest usage error)."""


@dataclass
class _Catcher:
    result: GradeResult | None = None

    def pytest_sessionfinish(self, session) -> None:
        from llm_grade.engine.plugin import _SESSION_KEY

        grading = session.config.stash.get(_SESSION_KEY, None)
        if grading is not None:
            self.result = grading.result


def pytest_args(
    submission: Path,
    *,
    out: Path | None = None,
    rubric: Path | None = None,
    isolation: str = "none",
    view: str = "learner",
    select: str | None = None,
    quiet: bool = False,
    extra: list[str] | None = None,
    device: str = "cpu",
    jobs: int = 1,
    sandbox: str = "auto",
    hide: list[Path] = (),
) -> list[str]:
    """The pytest command line that grades ``submission`` (also used by batch workers)."""
    graders = bundled("graders")
    args = [
        str(graders),
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(graders),
        f"--submission={submission}",
        f"--isolation={isolation}",
        f"--grade-view={view}",
        f"--device={device}",
        f"--grade-jobs={jobs}",
        f"--grade-sandbox={sandbox}",
        "-c",
        str(graders / "pytest.ini"),  # never an ini file from the caller's folder
        "-p",
        "no:unraisableexception",  # its gc.collect() at exit costs 0.2-0.3 s a grading
        "-q",
        "--no-header",
        "--assert=plain",  # graders report through llm_grade.grading.compare, not assert rewriting
    ]
    if quiet:
        args += ["-qq", "--disable-warnings", "--tb=no", "-p", "no:terminalreporter"]
    if out is not None:
        args.append(f"--grade-out={out}")
    if rubric is not None:
        args.append(f"--rubric={rubric}")
    if select:
        args += ["-k", select]
    if hide:
        args.append("--grade-hide=" + os.pathsep.join(str(Path(p).resolve()) for p in hide))
    return args + list(extra or [])


def grade(
    submission: str | Path,
    *,
    out: str | Path | None = None,
    rubric: str | Path | None = None,
    isolation: str = "none",
    view: str = "learner",
    select: str | None = None,
    quiet: bool = False,
    extra: list[str] | None = None,
    device: str = "cpu",
    jobs: int = 1,
    sandbox: str = "auto",
    hide: list[Path] = (),
) -> GradeResult:
    """Grade one submission folder; writes ``out/results.json`` when ``out`` is given.

    ``device``: ``cpu`` (default: the same score on every machine), ``cuda``, ``mps`` or
    ``auto`` (the fastest available) for the learner's tensors. ``jobs=2`` grades the second
    of the two fixed groups of checks in a second process (same score, about a third faster
    on two cores). ``sandbox``: ``auto``, ``bubblewrap`` (required) or ``none`` (process
    isolation with resource limits only). ``hide``: more folders learner code must not see."""
    import pytest

    submission = Path(submission).resolve()
    if not submission.is_dir():
        raise GradingError(f"submission folder {submission} does not exist")
    catcher = _Catcher()
    code = pytest.main(
        pytest_args(
            submission,
            out=Path(out).resolve() if out else None,
            rubric=Path(rubric).resolve() if rubric else None,
            isolation=isolation,
            view=view,
            select=select,
            quiet=quiet,
            extra=extra,
            device=device,
            jobs=jobs,
            sandbox=sandbox,
            hide=hide,
        ),
        plugins=[catcher],
    )
    if catcher.result is None or int(code) not in (0, 1, 5):
        raise GradingError(
            f"grading could not run (pytest exit code {int(code)}); see the messages above"
        )
    return catcher.result
