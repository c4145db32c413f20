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

    def __init__(self, session: GradingSession):
        self.session = session
        self.config: pytest.Config | None = None
        self.helper = None  # the HelperProcess of jobs=2
        self.helper_items: list[pytest.Item] = []
        self.helper_checks = []
        self.group_of: dict[str, int] = {}  # nodeid -> check group (1 or 2)
        self._group: int | None = None  # the group the worker has run so far
        self._ids: dict[str, CheckId] = {}

    def id_of(self, item: pytest.Item) -> CheckId:
        if item.nodeid not in self._ids:
            self._ids[item.nodeid] = check_id(item)
        return self._ids[item.nodeid]

    def configure(self, config: pytest.Config) -> None:
        """Start the run: the helper process first (jobs=2), then the session."""
        from llm_grade.engine.groups import HelperProcess

        self.config = config
        options = self.session.options
        will_run = _will_run(config)
        if options.jobs > 1 and not options.part and will_run:
            params = config.invocation_params
            self.helper = HelperProcess(options, list(params.args), Path(params.dir))
        try:
            self.session.start(will_run=will_run)
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None

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
        if self.session.options.part:
            items[:] = groups[1]
        elif self.helper is not None:
            self.helper_items = list(groups[1])
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
        if hypothesis is not None and not getattr(hypothesis.inner_test, "_llm_grade", False):
            hypothesis.inner_test = per_example(hypothesis.inner_test, self.session)
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

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from llm_grade.engine.groups import MISSING_FROM_HELPER, write_part

        if self.session.options.part:  # the helper: hand the results over, nothing else
            write_part(self.session.options.part, list(self.session.results.values()))
            self.session.close()
            return
        if self.helper is not None:
            found, log = self.helper.results()
            for item in self.helper_items:
                check = self.id_of(item)
                result = self.session.adopt(check, found.get(item.nodeid))
                if result is None:
                    result = self.session.blank_result(check)
                    result.status, result.points = "error", 0.0
                    result.message = MISSING_FROM_HELPER + log
                    self.session.results[item.nodeid] = result
                self.helper_checks.append(result)
            self.helper = None
        self.session.finish()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.session.close()  # a run that stopped early still ends its context

    def pytest_terminal_summary(self, terminalreporter) -> None:
        from llm_grade.engine.feedback import format_check, format_summary

        result, learner_view = self.session.result, self.session.learner_view
        if result is None or not result.components:
            return
        shown = [c for c in self.helper_checks if c.status not in ("passed", "not_implemented")]
        if shown:
            terminalreporter.section("llm-grade: failures found by the second grading process")
            for check in shown:
                terminalreporter.write_line(format_check(check, learner_view=learner_view))
                terminalreporter.write_line("")
        if self.helper_checks:
            passed = sum(c.status == "passed" for c in self.helper_checks)
            terminalreporter.write_line(
                f"(and {len(self.helper_checks)} checks graded in a second process: "
                f"{passed} passed)"
            )
        not_started = [c for c in result.components if c.status == "not_implemented"]
        terminalreporter.section("llm-grade: points per component")
        for comp in not_started:
            terminalreporter.write_line(
                f"{comp.name} — not implemented yet (0 / {comp.max_score:g} points). "
                f"Open {comp.module}.py to begin."
            )
        terminalreporter.write_line(format_summary(result))
        if self.session.isolation == "none":
            terminalreporter.write_line(
                "(isolation 'none': learner code ran in this process, fast but not "
                "tamper-proof; `llm-grade grade` isolates it)"
            )
        elif result.isolation.get("sandbox", "").startswith("none"):
            terminalreporter.write_line(f"(sandbox: {result.isolation['sandbox']})")


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

    example._llm_grade = True
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
        from llm_grade.engine.session import GradingSession

        try:
            options = from_pytest(config)
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
        plugin = GradingPlugin(GradingSession(options, graders_dir))
        config.pluginmanager.register(plugin, "llm-grade-session")
    config.stash[_PLUGIN_KEY] = plugin
    from llm_grade.engine.profiles import load_profile

    plugin.configure(config)
    load_profile(config, plugin.session.rubric.max_examples)
    return plugin.session


def grading_session(config: pytest.Config) -> GradingSession:
    return config.stash[_PLUGIN_KEY].session


__all__ = ["activate", "grading_session", "GradingPlugin", "CheckFailure", "NotImplementedYet"]
