"""One grading engine for every front-end: ``pytest graders/``, ``llm-grade grade``, batch
grading and CI all run the graders through pytest with the llm-grade plugin.

:func:`grade` is what the front-ends call: it makes the run's
:class:`~llm_grade.engine.session.GradingSession` from the options, runs pytest in this
(trusted) process on the bundled graders with that session's plugin, and returns the
session's :class:`GradeResult`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_grade.engine.options import GradingOptions, OptionError
from llm_grade.engine.results import GradeResult
from llm_grade.notebook.extract import Extraction
from llm_grade.paths import bundled


class GradingError(RuntimeError):
    """Grading itself could not run (bad rubric, missing folder, pytest usage error)."""


def pytest_args(*, select: str | None = None, extra=()) -> list[str]:
    """The pytest command line that runs the bundled graders (the grading options travel
    with the session, not on this command line). pytest prints nothing of its own: the
    run's :class:`~llm_grade.output.terminal.TerminalReport`, if any, does."""
    from llm_grade.components import module_of, selected

    graders = bundled("graders")
    # -k of API names: only the graders of their modules are collected
    chosen = selected(select)
    files = (
        [str(graders)]
        if chosen is None
        else [str(graders / f"test_{m}.py") for m in dict.fromkeys(map(module_of, chosen))]
    )
    args = [
        *files,
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(graders),
        "-c",
        str(graders / "pytest.ini"),  # never an ini file from the caller's folder
        "-p",
        "no:unraisableexception",  # its gc.collect() at exit costs 0.2-0.3 s a grading
        "--assert=plain",  # graders report through llm_grade.grading.compare, not rewriting
        # no pytest tracebacks of failed checks: feedback is made from the outcome, and
        # formatting a Hypothesis failure's traceback costs more than the check
        "--tb=no",
        "-p",
        "no:terminalreporter",
        "--capture=no",  # learner code runs in the worker; its output never reaches here
    ]
    if select:
        args += ["-k", select]
    return args + list(extra)


def grade(
    submission: str | Path | None = None,
    *,
    options: GradingOptions | None = None,
    quiet: bool = False,
    verbosity: int = 0,
    extra: list[str] | None = None,
    origin: Extraction | None = None,
    **changes: Any,
) -> GradeResult:
    """Grade one submission folder and return its result.

    ``options`` (a :class:`GradingOptions`) or keyword arguments naming its fields (``out``,
    ``rubric``, ``isolation``, ``view``, ``select``, ``device``, ``jobs``, ``sandbox``,
    ``hide``, ``train``, ``train_seed``) say how; ``out`` gets ``results.json``. Unless
    ``quiet``, the run prints its :class:`~llm_grade.output.terminal.TerminalReport`
    (``verbosity`` -1: the table only, 1: every check); ``extra`` are more pytest arguments
    (a Hypothesis profile, say).

    ``submission`` may also be a ``.zip``, a notebook (``.ipynb``) or a ``.py`` script: it is
    unpacked or extracted into a folder first (see :mod:`llm_grade.notebook.extract`), and the
    result says where each graded name was read. ``origin`` is that extraction when the
    caller made the folder itself (batch does)."""
    import pytest

    from llm_grade.engine.plugin import GradingPlugin
    from llm_grade.engine.rubric import RubricError
    from llm_grade.engine.session import GradingSession, SubmissionError

    try:
        options = (options or GradingOptions()).replace(**changes)
        if submission is not None:
            options = options.replace(submission=submission)
    except (OptionError, TypeError) as exc:
        raise GradingError(str(exc)) from None
    if options.submission is None or not Path(options.submission).exists():
        raise GradingError(f"submission {options.submission} does not exist")
    original = Path(options.submission).resolve()
    resolved = {"submission": original}
    for name in ("out", "rubric"):
        if getattr(options, name) is not None:
            resolved[name] = Path(getattr(options, name)).resolve()
    resolved["hide"] = tuple(Path(p).resolve() for p in options.hide)
    options = options.replace(**resolved)
    try:
        session = GradingSession(options, bundled("graders"), origin=origin)
    except (RubricError, SubmissionError) as exc:
        raise GradingError(str(exc)) from None
    reporter = None
    if not quiet:
        from llm_grade.output.terminal import TerminalReport

        reporter = TerminalReport(verbosity=verbosity)
    plugin = GradingPlugin(session, reporter)
    code = pytest.main(pytest_args(select=options.select, extra=extra or ()), plugins=[plugin])
    if int(code) == 5 and options.select:
        from llm_grade.components import COMPONENTS

        session.close()
        raise GradingError(
            f"no check matches -k {options.select!r}; the components are "
            f"{', '.join(COMPONENTS)} (-k also matches words of a check's name)"
        )
    if session.result is None or int(code) not in (0, 1, 5):
        session.close()
        if int(code) == 2 and not plugin.problems:
            raise GradingError("grading was interrupted")
        why = "\n".join(plugin.problems)[-4000:] or "pytest could not run the graders"
        raise GradingError(f"grading could not run (pytest exit code {int(code)}):\n{why}")
    return session.result
