"""The pytest plugin: thin hooks that let pytest drive a grading session.

Registered through the ``pytest11`` entry point, it adds the ``--grade-*`` options (and
``grade_*`` ini keys) in one named group and does nothing else until the graders' conftest
calls :func:`activate`: an unrelated project in the same environment sees only those
namespaced options. Each hook hands its work to the
:class:`~llm_grade.engine.session.GradingSession` (scoring, results) or to
:mod:`llm_grade.engine.groups` (the two groups of checks); failures are rewritten into
learner feedback (../shared/FEEDBACK.md) for pytest's own report.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from llm_grade.engine.options import (
    OptionError,
    add_deprecated_pytest_options,
    add_pytest_options,
    from_pytest,
)
from llm_grade.grading.outcomes import (
    CheckFailure,
    ForbiddenCall,
    MissingComponent,
    NotImplementedYet,
    Settled,
)

if TYPE_CHECKING:
    from llm_grade.engine.session import CheckId, GradingSession

_PLUGIN_KEY = pytest.StashKey["GradingPlugin"]()
HELPER_WAIT_S = 3600  # the helper's own limits end it long before
HELPER_MIN_CHECKS = 30  # fewer selected checks than this are graded by one process
# (the session, and with it torch, is imported only once a grading run starts: every pytest
# run in the environment loads this module through the pytest11 entry point)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser)


def check_id(item: pytest.Item) -> CheckId:
    """Which check a grader test is (its class names the component)."""
    from llm_grade.engine.session import CheckId

    cls = getattr(item, "cls", None)
    component = getattr(cls, "component", None)
    if component is None:
        raise pytest.UsageError(
            f"{item.nodeid}: grader tests live in a class with a "
            f'`component = "<API name>"` attribute'
        )
    doc = (getattr(item, "function", None).__doc__ or "").strip()
    title = doc.splitlines()[0].rstrip(".") if doc else item.originalname
    return CheckId(component, item.originalname.removeprefix("test_"), title, item.nodeid)


class GradingPlugin:
    """The hooks of one grading run; ``session`` does the work."""

    def __init__(self, session: GradingSession, reporter=None):
        self.session = session
        # the run's terminal output (a llm_grade.output.terminal.TerminalReport), or None
        self.reporter = reporter
        self.problems: list[str] = []  # graders that did not load (pytest's collect errors)
        self.config: pytest.Config | None = None
        self.helper = None  # the HelperProcess of jobs=2
        self.helper_items: dict[str, pytest.Item] = {}  # node id -> a check the helper grades
        self.group_of: dict[str, int] = {}  # nodeid -> check group (1 or 2)
        self._group: int | None = None  # the group the worker has run so far
        self._ids: dict[str, CheckId] = {}
        self._chosen: list[str] | None = None  # the components -k names (None: not known)

    def id_of(self, item: pytest.Item) -> CheckId:
        if item.nodeid not in self._ids:
            self._ids[item.nodeid] = check_id(item)
        return self._ids[item.nodeid]

    def configure(self, config: pytest.Config) -> None:
        """Start the run: the helper process first (jobs=2), then the session."""
        from llm_grade.components import narrowed, selected
        from llm_grade.engine.groups import HelperProcess

        self.config = config
        self._chosen = selected(config.option.keyword)  # before -k is rewritten
        if config.option.keyword:  # -k Encoder is Encoder's checks, not EncoderLayer's too
            config.option.keyword = narrowed(config.option.keyword)
        options = self.session.options
        will_run = _will_run(config)
        if options.jobs > 1 and not options.part and will_run and self._worth_a_helper():
            params = config.invocation_params
            self.helper = HelperProcess(options, list(params.args), Path(params.dir))
        try:
            self.session.start(will_run=will_run)
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None

    def _worth_a_helper(self) -> bool:
        """A second grading process pays off for a full grade, not for a few components
        (``-k softmax``): it imports torch and starts a worker of its own, seconds of a core
        that the checks would not win back. Which checks share a worker is the same either
        way (see :mod:`llm_grade.engine.groups`), so the score is too."""
        if self._chosen is None:
            return True
        checks = sum(len(self.session.rubric.checks.get(name, {})) for name in self._chosen)
        return checks >= HELPER_MIN_CHECKS

    # -------------------------------------------------------------- hooks

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]):
        """Before the other plugins: check every grader against the rubric before anything
        runs, and let ``-k causal_mask`` select a component by its API name. After them
        (``-k`` has deselected): the two fixed groups (see :mod:`llm_grade.engine.groups`)."""
        from llm_grade.components import COMPONENTS
        from llm_grade.engine.groups import two_groups

        for item in items:
            check = self.id_of(item)
            try:
                self.session.rubric.spec(check.component, check.name)
            except Exception as exc:  # RubricError: tell the instructor, stop the run
                raise pytest.UsageError(str(exc)) from None
            item.extra_keyword_matches.add(check.component)
        result = yield
        self.session.order = {item.nodeid: n for n, item in enumerate(items)}
        # parts before the wholes that contain them (curriculum order): a worker is sent the
        # trusted parts of what it grades, so it never holds a trusted version of a component
        # before that component's own checks are done
        rank = {name: n for n, name in enumerate(COMPONENTS)}
        items.sort(key=lambda item: rank[self.id_of(item).component])
        groups = two_groups(items, lambda item: self.id_of(item).name)
        self.group_of = {i.nodeid: g for g, group in enumerate(groups, 1) for i in group}
        if self.reporter is not None and items:  # every check of both groups, in order
            plan = [(self.id_of(i).component, i.nodeid) for i in items]
            self.reporter.plan(plan, title=self.title(len(plan)))
        if self.session.options.part:
            items[:] = groups[1]
        elif self.helper is not None:
            self.helper_items = {item.nodeid: item for item in groups[1]}
            items[:] = groups[0]
        else:
            items[:] = groups[0] + groups[1]
        return result

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        group = self.group_of.get(item.nodeid, 1)
        renew = self._group is not None and group != self._group  # a fresh worker per group
        self._group = group
        self.session.begin(self.id_of(item), renew=renew)

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function):
        """A test's queued requests are sent (and their errors raised) before it counts as
        passed; a Hypothesis example's before the example does (see :func:`per_example`)."""
        hypothesis = getattr(pyfuncitem.obj, "hypothesis", None)
        if hypothesis is not None:  # wrapped for this run's session (a process may run many)
            inner = getattr(hypothesis.inner_test, "_llm_grade_inner", hypothesis.inner_test)
            hypothesis.inner_test = per_example(inner, self.session)
        try:
            result = yield
            if self.session.handle is not None:
                self.session.handle.flush()
        finally:
            if self.session.handle is not None:
                self.session.handle.end_example()
        return result

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if call.when in ("setup", "teardown") and call.excinfo is None:
            return
        if call.when == "setup" and call.excinfo.errisinstance(pytest.skip.Exception):
            return
        exc = call.excinfo.value if call.excinfo is not None else None
        result = self.session.record(self.id_of(item), exc, call.duration)
        from llm_grade.engine.feedback import format_check
        from llm_grade.engine.groups import write_part

        if self.session.options.part:  # the helper: hand it over now
            write_part(self.session.options.part, result)
        if self.reporter is not None:
            self.reporter.check_done(result)
        self._take_from_helper()

        if result.status == "not_implemented":
            report.outcome = "skipped"
            report.longrepr = (
                str(item.path),
                item.location[1] or 0,
                f"{result.component}: not implemented yet",
            )
        elif result.status != "passed":
            report.outcome = "failed"
            report.longrepr = format_check(result, learner_view=self.session.learner_view)

    def _take_from_helper(self) -> None:
        """The results the helper process reported since last asked (see
        :meth:`~llm_grade.engine.groups.HelperProcess.poll`), given points by this session."""
        if self.helper is None:
            return
        for reported in self.helper.poll():
            item = self.helper_items.get(reported.nodeid)
            if item is None:
                continue
            result = self.session.adopt(self.id_of(item), reported)
            if result is not None and self.reporter is not None:
                self.reporter.check_done(result)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # a grader that does not load: the instructor's to fix
            text = f"Could not load the graders in {report.nodeid}:\n{report.longreprtext}"
            self.problems.append(text)
            if self.reporter is not None and self.session.options.part is None:
                self.reporter.problem(text)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from llm_grade.engine.groups import MISSING_FROM_HELPER

        if self.session.options.part:  # the helper: its results are handed over already
            self.session.close()
            return
        if self.helper is not None:
            import time

            deadline = time.monotonic() + HELPER_WAIT_S
            self._take_from_helper()
            pending = {
                self.id_of(item).component
                for item in self.helper_items.values()
                if item.nodeid not in self.session.results
            }
            # this process's worker is idle while the helper finishes: time what is graded
            self.session.time_components(exclude=pending)
            while self.helper.running() and time.monotonic() < deadline:
                self._take_from_helper()  # the terminal shows its checks as they end
                time.sleep(0.05)
            log = self.helper.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._take_from_helper()
            for item in self.helper_items.values():
                if item.nodeid not in self.session.results:
                    check = self.id_of(item)
                    result = self.session.blank_result(check)
                    result.status, result.points = "error", 0.0
                    result.message = MISSING_FROM_HELPER + log
                    self.session.results[item.nodeid] = result
                    if self.reporter is not None:
                        self.reporter.check_done(result)
            self.helper.close()
            self.helper = None
        progress = getattr(self.reporter, "training", None)
        result = self.session.finish(progress=progress)
        if self.reporter is not None and self.session.order:
            self.reporter.finish(
                result, learner_view=self.session.learner_view, notes=self.notes(result)
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.helper is not None:  # a run that stopped early
            self.helper.close()
            self.helper = None
        if self.reporter is not None:
            self.reporter.close()
        self.session.close()  # a run that stopped early still ends its context

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config):
        """Under ``pytest graders/``: no progress characters or node ids (the report prints
        a line per component instead)."""
        if self.reporter is None or not isinstance(report, pytest.TestReport):
            return None
        if report.when != "call" and report.passed:
            return "", "", ""
        # not "failed": pytest's FAILURES and short summary sections list only those
        return "graded", "", ""

    def title(self, checks: int) -> str:
        """The first line of a run's output: the submission as the user would name it (no
        install path for the bundled example)."""
        origin = self.session.origin
        shown = origin.file if origin is not None else shown_path(self.session.submission_path)
        return f"Grading {shown} ({checks} checks)"

    def notes(self, result) -> list[str]:
        """What the scores' reader must know about how they were made."""
        notes = _origin_notes(result.origin)
        if self.session.isolation == "none":
            return notes + [
                "isolation 'none': learner code ran in the grading process, fast but not "
                "tamper-proof; `llm-grade grade` isolates it"
            ]
        sandbox = str(result.isolation.get("sandbox", ""))
        if sandbox.startswith("none"):
            notes.append(f"sandbox: {sandbox}")
        return notes


def _origin_notes(origin: dict) -> list[str]:
    """A notebook or script submission: what could not be read, and how much was not run."""
    if not origin:
        return []
    notes = list(origin.get("problems", []))
    cells = origin.get("cells", {})
    not_run = origin.get("not_run", [])
    line = f"Read {len(cells)} graded name{'s' * (len(cells) != 1)} from {origin.get('file')}"
    if not_run:
        first = "; ".join(not_run[:3])
        more = f"; and {len(not_run) - 3} more (the report lists them)" if len(not_run) > 3 else ""
        line += f". Not run by the grader (it reads definitions only): {first}{more}"
    return [*notes, line + "."]


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, ``llm-grade's
    examples/buggy`` for a bundled folder (wherever llm-grade is installed), else as is."""
    from llm_grade.paths import bundled

    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd())) or "."
    except ValueError:
        pass
    bundle = bundled("examples").parent
    try:
        return f"llm-grade's {path.relative_to(bundle)}"
    except ValueError:
        return str(path)


def per_example(inner, session: GradingSession):
    """Wrap a Hypothesis test's inner function: an example passes only once the requests it
    queued have been answered without error, and the objects it built (in the worker, and
    the reference modules it borrowed) are released after."""

    @functools.wraps(inner)
    def example(*args: Any, **kwargs: Any) -> Any:
        handle = session.handle
        if handle is None:
            return inner(*args, **kwargs)
        try:
            result = inner(*args, **kwargs)
            handle.flush()
            return result
        except (NotImplementedYet, ForbiddenCall, MissingComponent) as exc:
            raise Settled(exc) from None
        finally:
            handle.end_example()
            if session.context is not None:
                session.context.pool.give_back()

    example._llm_grade_inner = inner
    return example


def _will_run(config: pytest.Config) -> bool:
    """False for runs that only list or explain (``--collect-only``, ``--fixtures``...)."""
    return not any(
        config.getoption(name, False)
        for name in ("collectonly", "showfixtures", "show_fixtures_per_test", "help", "version")
    )


def add_conftest_options(parser: pytest.Parser) -> None:
    """For the graders' conftest: the deprecated bare spellings (``--submission`` ...)."""
    add_deprecated_pytest_options(parser)


def activate(config: pytest.Config, graders_dir: Path) -> GradingSession:
    """Called by ``graders/conftest.py``: turn this pytest run into a grading run. A run
    started by :func:`llm_grade.engine.run.grade` brings its own plugin (and session);
    a bare ``pytest graders/`` gets one made from its options."""
    if _PLUGIN_KEY in config.stash:
        return config.stash[_PLUGIN_KEY].session
    plugin = next(
        (p for p in config.pluginmanager.get_plugins() if isinstance(p, GradingPlugin)), None
    )
    if plugin is None:
        from llm_grade.engine.session import GradingSession, SubmissionError

        try:
            options = from_pytest(config)
            session = GradingSession(options, graders_dir)
        except (OptionError, SubmissionError) as exc:
            raise pytest.UsageError(str(exc)) from None
        plugin = GradingPlugin(session, _own_terminal(config))
        config.pluginmanager.register(plugin, "llm-grade-session")
    config.stash[_PLUGIN_KEY] = plugin
    from llm_grade.engine.profiles import load_profile

    plugin.configure(config)
    load_profile(config, plugin.session.rubric.max_examples)
    from llm_grade.engine.profiles import describe

    plugin.session.hypothesis = describe(config, plugin.session.rubric.max_examples)
    return plugin.session


def _own_terminal(config: pytest.Config):
    """Under ``pytest graders/``, the report of ``llm-grade grade`` instead of pytest's
    progress characters, FAILURES sections and node ids: pytest's reporter stays (``--pdb``
    and the warnings use it) with its counts turned off. ``-q`` and ``-v`` keep
    their meaning: the table only, every check. None for runs that only list or explain
    (``--collect-only``), for the helper process, and without a terminal reporter."""
    if not _will_run(config) or config.pluginmanager.is_blocked("terminalreporter"):
        return None  # (the graders' conftest runs before pytest's reporter is registered)
    from llm_grade.output.terminal import TerminalReport

    verbosity = max(-1, min(1, config.get_verbosity()))
    config.option.verbose = -2  # no "collected ..." lines, no "5 failed, 36 passed" line
    # (and pytest_report_teststatus files every check under its own category, so pytest's
    # FAILURES sections stay empty; its warnings summary still shows, deprecations among them)
    return TerminalReport(verbosity=verbosity, live=False)


def grading_session(config: pytest.Config) -> GradingSession:
    return config.stash[_PLUGIN_KEY].session


__all__ = ["activate", "grading_session", "GradingPlugin", "CheckFailure", "NotImplementedYet"]
