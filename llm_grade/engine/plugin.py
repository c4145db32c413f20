"""pytest plugin: run the graders against a submission and score them with the rubric.

Why a plugin: the learner's ``pytest graders/``, ``llm-grade grade`` and batch grading must
be one engine. The plugin adds the grading options (also readable as ini settings), scores
each grader test with the rubric, rewrites failures into learner feedback
(../shared/FEEDBACK.md), prints points per component and writes ``results.json``.

It is registered through the ``pytest11`` entry point, so the options always exist, but it
does nothing until ``graders/conftest.py`` activates a :class:`GradingSession`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from llm_grade.components import module_of
from llm_grade.engine.results import CheckResult, ComponentResult, GradeResult
from llm_grade.grading.outcomes import (
    CheckFailure,
    ForbiddenCall,
    GradingOutcome,
    LearnerError,
    MissingComponent,
    NotImplementedYet,
    Settled,
    WorkerFailure,
)

_SESSION_KEY = pytest.StashKey["GradingSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llm-grade", "grading a from-scratch Transformer (llm-grade)")
    options = [
        ("submission", "folder with the learner's modules (default: the bundled stubs/ folder)"),
        ("rubric", "rubric TOML file (default: rubric.toml next to the graders)"),
        ("grade-out", "write results.json into this folder (default: don't write)"),
        (
            "isolation",
            "where learner code runs: 'none' (in this process, fast, for local "
            "iteration; untrusted) or 'process' (sandboxed worker). Default: none",
        ),
        (
            "grade-sandbox",
            "with --isolation process: 'auto' (bubblewrap where it works, else resource "
            "limits only, said in the results), 'bubblewrap' (required) or 'none'. "
            "Default: auto",
        ),
        (
            "grade-hide",
            "more folders the worker must not see, separated by the OS path separator "
            "(batch hides the class folder and its output). Default: none",
        ),
        (
            "grade-view",
            "'learner' hides hidden checks' details, 'instructor' shows all. Default: learner",
        ),
        (
            "grade-jobs",
            "processes that grade at once: 2 runs the second group of checks in a second "
            "pytest process with its own worker. Default: 1 (the groups run one after the "
            "other, each with a fresh worker, so the score is the same either way)",
        ),
        ("grade-part", "internal: run only this group of checks (2) and save them here"),
        (
            "device",
            "where learner code runs its tensors: cpu, cuda, mps or auto (the fastest there "
            "is). Default: cpu (the same scores on every machine)",
        ),
    ]
    for name, help_text in options:
        group.addoption(
            f"--{name}", dest=f"llm_grade_{name.replace('-', '_')}", default=None, help=help_text
        )
        parser.addini(f"llm_grade_{name.replace('-', '_')}", help_text, default=None)


def option(config: pytest.Config, name: str, default: Any = None) -> Any:
    """A grading option from the command line, else the ini file, else ``default``."""
    value = config.getoption(f"llm_grade_{name}", default=None)
    if value is None:
        value = config.getini(f"llm_grade_{name}") or None
    return default if value is None else value


def load_package(path: Path, name: str):
    """Import a folder of modules with relative imports as the package ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


def environment(device: str = "cpu") -> dict[str, Any]:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "platform": platform.platform(terse=True),
    }
    if device == "cuda":
        env["device_name"] = torch.cuda.get_device_name()
    return env


def resolve_device(name: str) -> str:
    """``auto`` becomes ``cuda``, else ``mps``, else ``cpu``; an unavailable device is an error."""
    import torch

    name = (name or "cpu").lower()
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if name == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if name not in available:
        raise pytest.UsageError(f"--device {name!r}: expected cpu, cuda, mps or auto")
    if not available[name]:
        raise pytest.UsageError(
            f"--device {name}: this machine (torch {torch.__version__}) has no {name} device"
        )
    return name


class GradingSession:
    """State of one grading run: rubric, submission handle, results."""

    def __init__(self, config: pytest.Config, graders_dir: Path):
        from llm_grade.engine.rubric import load_rubric
        from llm_grade.paths import bundled

        self.started = time.perf_counter()
        self.config = config
        self.graders_dir = graders_dir
        self.rubric = load_rubric(Path(option(config, "rubric", graders_dir / "rubric.toml")))
        self.submission_path = Path(option(config, "submission", bundled("stubs"))).resolve()
        self.isolation = option(config, "isolation", "none")
        sandbox = option(config, "grade_sandbox", "auto")
        self.sandbox = "bwrap" if sandbox == "bubblewrap" else sandbox
        self.learner_view = option(config, "grade_view", "learner") != "instructor"
        self.out_dir = option(config, "grade_out")
        self.device_option = option(config, "device", "cpu")
        self.jobs = int(option(config, "grade_jobs", 1))
        self.part = option(config, "grade_part")  # set in the helper process
        self.group_of: dict[str, int] = {}  # nodeid -> check group (1 or 2)
        self.order: dict[str, int] = {}  # nodeid -> place in the graders' order
        self._group: int | None = None  # the group the worker has run so far
        self._helper: subprocess.Popen | None = None
        self._helper_dir: str | None = None
        self.helper_checks: list[CheckResult] = []
        self.device = "cpu"  # resolved once torch is imported
        self.results: dict[str, CheckResult] = {}
        self.static_violations = []
        self._handle = None
        self._transport = None
        self.result: GradeResult | None = None
        self.staged = None  # the copy of the submission that is graded (see stage())
        self.refused: dict[str, str] = {}  # component -> why the submission policy refuses it
        self._policy_changed = False  # the policy cut code out of the staged copy
        if self.jobs > 1 and not self.part and _will_run(config):
            self._start_helper(config)
        if self.submission_path.is_dir() and _will_run(config):
            self.stage()
        if self.isolation == "process" and self.staged is not None:
            # the worker imports torch while this process does (two cores, half the wait)
            from llm_grade.sandbox.transport import start_worker

            self._transport = start_worker(
                self.staged.root,
                forbidden=self.rubric.forbidden,
                limits=self.rubric.limits,
                masks=self.masks(),
                sandbox=self.sandbox,
                gpu=self.device_option in ("cuda", "auto"),
            )

        import torch

        from llm_grade.grading.compare import TOLERANCES

        # graders use tiny tensors: one thread is fastest, and several OpenMP threads on a
        # busy machine (or beside a worker process) spin-wait for each other
        torch.set_num_threads(1)
        self.device = resolve_device(self.device_option)
        if self.staged is not None:
            self.apply_policy()
        TOLERANCES.clear()  # this run's rubric and device only, not an earlier run's
        TOLERANCES.update(self.rubric.tolerance)
        TOLERANCES.update(self.rubric.device_tolerance.get(self.device, {}))

    # -------------------------------------------------------------- check groups

    def _start_helper(self, config: pytest.Config) -> None:
        """Run the second group of checks in another pytest process (it starts its own worker
        and imports torch on the other core while this one does)."""
        self._helper_dir = tempfile.mkdtemp(prefix="llm-grade-part-")
        # -I and a neutral working directory: nothing in the caller's folder (a pytest.py, an
        # llm_grade/ folder, a conftest.py) can stand in for the grader
        args = _absolute_args(config.invocation_params.args, Path(config.invocation_params.dir))
        cmd = [sys.executable, "-I", "-m", "pytest", *args]
        cmd += [f"--grade-part={self._helper_dir}", "--grade-jobs=1", "-qq"]
        cmd += ["-p", "no:terminalreporter", "-p", "no:cacheprovider"]
        with open(Path(self._helper_dir) / "grading.log", "wb") as log:
            self._helper = subprocess.Popen(
                cmd,
                cwd=self._helper_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _collect_helper(self, expected: list[pytest.Item]) -> None:
        """Wait for the helper; its results (or an error for each check it did not report)."""
        import json

        try:
            self._helper.wait(timeout=3600)
        except subprocess.TimeoutExpired:
            self._helper.kill()
        part = Path(self._helper_dir) / "part.json"
        found = {}
        if part.is_file():
            try:
                found = {d["nodeid"]: CheckResult(**d) for d in json.loads(part.read_text())}
            except (ValueError, TypeError, KeyError):
                found = {}
        log = (Path(self._helper_dir) / "grading.log").read_text(errors="replace")[-2000:]
        for item in expected:
            result = self._validated(item, found.get(item.nodeid))
            if result is None:
                result = self.blank_result(item)
                result.status, result.points = "error", 0.0
                result.message = (
                    "The second grading process ended without grading this check "
                    "(a bug in llm-grade, not in your code: please report it). Its output:\n" + log
                )
            self.results[item.nodeid] = result
            self.helper_checks.append(result)
        shutil.rmtree(self._helper_dir, ignore_errors=True)
        self._helper = None

    def stage(self) -> None:
        """Copy the submission's modules into a fresh folder: only that copy is ever
        imported (see :func:`llm_grade.classroom.staging.stage_folder`)."""
        from llm_grade.classroom.staging import stage_folder

        self._stage_dir = tempfile.mkdtemp(prefix="llm-grade-staged-")
        self.staged = stage_folder(self.submission_path, Path(self._stage_dir) / "submission")

    def apply_policy(self) -> None:
        """Check the staged sources against the rubric's submission policy (on this trusted
        side, from the AST) and stage what the worker may import instead: refused code is
        stubbed out, so it never runs. The worker has not imported anything yet."""
        from llm_grade.policy.checker import check_submission

        root, sources = self.staged.root, self.staged.texts
        for module, check in check_submission(sources, self.rubric.policy).items():
            if check.cleaned_source != sources[module]:
                (root / f"{module}.py").write_text(check.cleaned_source, encoding="utf-8")
                self._policy_changed = True
            for component in sorted(check.refused_components):
                own = [v for v in check.violations if v.component == component]
                shared = [v for v in check.violations if v.component is None]
                first = (own or shared)[0]
                more = len(own or shared) - 1
                message = first.message()
                if first.component is None:
                    message += (
                        f" That code is outside the graded definitions, so it costs every "
                        f"component of {module}.py."
                    )
                if more:
                    message += f" ({more} more refused construct{'s' * (more > 1)} there.)"
                self.refused[component] = message

    def _validated(self, item: pytest.Item, result: CheckResult | None) -> CheckResult | None:
        """The helper's result for ``item`` with name, points and visibility from this
        process's rubric (the helper reports outcomes, it does not decide points)."""
        from llm_grade.engine.results import STATUSES

        if result is None or result.status not in STATUSES:
            return None
        blank = self.blank_result(item)
        blank.status = result.status
        blank.points = blank.max_points if result.status in ("passed", "skipped") else 0.0
        for name in ("message", "hint", "counterexample", "traceback", "duration_s", "diff"):
            setattr(blank, name, getattr(result, name))
        return blank

    def masks(self) -> list[Path]:
        """Folders learner code must not see: every copy of the reference, the graders and
        the oracles, the graders in use, the learner's original folder and the output."""
        from llm_grade.sandbox.transport import trusted_paths

        hidden = [Path(p) for p in (option(self.config, "grade_hide", "") or "").split(os.pathsep)]
        masks = [*trusted_paths(), self.graders_dir, self.submission_path]
        masks += [p.resolve() for p in hidden if str(p) not in ("", ".")]
        if self.out_dir:
            masks.append(Path(self.out_dir))
        return masks

    # -------------------------------------------------------------- fixtures' backing

    def submission(self):
        if self._handle is None:
            from llm_grade.sandbox.forbidden import scan_submission
            from llm_grade.sandbox.handle import open_submission

            if self.staged is None:  # not a folder: open_submission says so
                raise FileNotFoundError(f"submission folder {self.submission_path} does not exist")
            root = self.staged.root
            unchanged = not self._policy_changed and not self.staged.skipped
            if self.isolation == "none" and unchanged:
                # fast local mode: the learner's own files, so a debugger's breakpoints and
                # tracebacks point at them (same sources, so the same score)
                root = self.submission_path
            self.static_violations = scan_submission(root, self.rubric.forbidden)
            self._handle = open_submission(
                root,
                isolation=self.isolation,
                forbidden=self.rubric.forbidden,
                limits=self.rubric.limits,
                masks=self.masks(),
                sandbox=self.sandbox,
                transport=self._transport,
                gpu=self.device == "cuda",
            )
            self._transport = None
            if self.device != "cpu":
                self._handle.set_device(self.device)
            from llm_grade.sandbox.transport import Limits

            limits = Limits.from_mapping(self.rubric.limits)
            spent = time.perf_counter() - self.started
            self._handle.set_budget(limits.budget_s - spent, limits.check_budget_s)
        return self._handle

    def reference(self):
        from llm_grade.paths import bundled

        return load_package(bundled("reference"), "_llm_grade_reference")

    # -------------------------------------------------------------- scoring

    @staticmethod
    def component_of(item: pytest.Item) -> tuple[str, str]:
        cls = getattr(item, "cls", None)
        component = getattr(cls, "component", None)
        if component is None:
            raise pytest.UsageError(
                f"{item.nodeid}: grader tests live in a class with a "
                f'`component = "<API name>"` attribute'
            )
        return component, item.originalname.removeprefix("test_")

    def title_of(self, item: pytest.Item) -> str:
        doc = (getattr(item, "function", None).__doc__ or "").strip()
        return doc.splitlines()[0].rstrip(".") if doc else item.originalname

    def blank_result(self, item: pytest.Item) -> CheckResult:
        """The check's result before anything is known: passed, with its rubric points."""
        component, check = self.component_of(item)
        spec = self.rubric.spec(component, check)
        return CheckResult(
            name=check,
            component=component,
            title=self.title_of(item),
            status="passed",
            points=spec.points,
            max_points=spec.points,
            hidden=spec.hidden,
            nodeid=item.nodeid,
        )

    def record(self, item: pytest.Item, when: str, excinfo, duration: float) -> CheckResult:
        result = self.blank_result(item)
        result.duration_s = duration
        if excinfo is not None:
            exc = _unwrap(excinfo.value)
            if isinstance(exc, Settled):
                exc = exc.outcome
            result.points = 0.0
            if isinstance(exc, (GradingOutcome, WorkerFailure)):
                result.status = exc.status
                result.message = exc.message
                result.hint = exc.hint
                result.counterexample = exc.counterexample
                result.diff = getattr(exc, "diff", None)
                if isinstance(exc, LearnerError):
                    from llm_grade.engine.feedback import crash_hint

                    result.traceback = exc.traceback
                    result.counterexample = exc.call
                    result.hint = exc.hint or crash_hint(
                        exc.exc_message, exc.call, result.name, exc.exc_type
                    )
            elif isinstance(exc, pytest.skip.Exception):
                result.status, result.message = "skipped", str(exc)
                result.points = result.max_points  # a skipped check costs nothing
            elif _is_flaky(exc):
                result.status = "failed"
                result.message = (
                    "Your code gave different results for the same input, so the "
                    "check could not be reproduced."
                )
                result.hint = (
                    "Is some randomness (dropout in eval mode, torch.rand) or global "
                    "state changing between calls?"
                )
            else:
                result.status = "error"
                result.message = (
                    f"The grader itself failed ({type(exc).__name__}: {exc}). "
                    f"This is a bug in llm-grade, not in your code: please report it."
                )
        self.results[item.nodeid] = result
        return result

    def assemble(self) -> GradeResult:
        by_component: dict[str, ComponentResult] = {}
        for check in self.results.values():
            comp = by_component.setdefault(
                check.component, ComponentResult(check.component, module_of(check.component))
            )
            comp.checks.append(check)
        for comp in by_component.values():  # the graders' order, whatever order they ran in
            comp.checks.sort(key=lambda c: self.order.get(c.nodeid, len(self.order)))
        # a forbidden call anywhere in a component zeroes all of it
        for comp in by_component.values():
            forbidden = [c for c in comp.checks if c.status == "forbidden"]
            for check in comp.checks:
                if forbidden and check.status != "forbidden":
                    check.status, check.points = "forbidden", 0.0
                    check.message = forbidden[0].message
        from llm_grade.components import COMPONENTS
        from llm_grade.engine.explain import settle

        order = list(COMPONENTS)
        components = sorted(by_component.values(), key=lambda c: order.index(c.name))
        settle(components)  # end-to-end checks and secondary failures, once all are known
        isolation = self._handle.describe() if self._handle else {"mode": self.isolation}
        self.result = GradeResult(
            str(self.submission_path),
            components,
            time.perf_counter() - self.started,
            environment(self.device),
            isolation,
            str(self.rubric.path),
            sources=dict(self.staged.sources) if self.staged else {},
            notes=(list(self.staged.notes) if self.staged else []) + list(self.rubric.notes),
        )
        return self.result

    # -------------------------------------------------------------- hooks

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]):
        """Before the other plugins: check every grader against the rubric before anything
        runs, and let ``-k causal_mask`` select a component by its API name.

        After them (``-k`` has deselected): two fixed groups of checks (alternate items), each
        run with a fresh worker: in this process one after the other, or the second in a
        helper process (``--grade-jobs 2``). Which checks share a worker, and so the score,
        is the same either way."""
        for item in items:
            component, check = self.component_of(item)
            try:
                self.rubric.spec(component, check)
            except Exception as exc:  # RubricError: tell the instructor, stop the run
                raise pytest.UsageError(str(exc)) from None
            item.extra_keyword_matches.add(component)
        result = yield
        self.order = {item.nodeid: n for n, item in enumerate(items)}  # for the results
        # parts before the wholes that contain them (curriculum order): a worker is sent the
        # trusted parts of what it grades, so it never holds a trusted version of a component
        # before that component's own checks are done
        from llm_grade.components import COMPONENTS

        rank = {name: n for n, name in enumerate(COMPONENTS)}
        items.sort(key=lambda item: rank[self.component_of(item)[0]])
        groups = _two_groups(items, self.component_of)
        self.group_of = {i.nodeid: g for g, group in enumerate(groups, 1) for i in group}
        if self.part:
            items[:] = groups[1]
        elif self._helper is not None:
            self._helper_items = list(groups[1])
            items[:] = groups[0]
        else:
            items[:] = groups[0] + groups[1]
        return result

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        if call.when == "setup" and call.excinfo is None:
            return
        if call.when == "teardown" and call.excinfo is None:
            return
        if (
            call.when == "setup"
            and call.excinfo is not None
            and call.excinfo.errisinstance(pytest.skip.Exception)
        ):
            return
        result = self.record(item, call.when, call.excinfo, call.duration)
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
            report.longrepr = format_check(result, learner_view=self.learner_view)

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function):
        """A test's queued requests are sent (and their errors raised) before it counts as
        passed; a Hypothesis example's before the example does (see :func:`_per_example`)."""
        hypothesis = getattr(pyfuncitem.obj, "hypothesis", None)
        if hypothesis is not None and not getattr(hypothesis.inner_test, "_llm_grade", False):
            hypothesis.inner_test = _per_example(hypothesis.inner_test)
        try:
            result = yield
            if self._handle is not None:
                self._handle.flush()
        finally:
            if self._handle is not None:
                self._handle.end_example()
        return result

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        from llm_grade.components import parts_of

        component, _ = self.component_of(item)
        handle = self.submission()
        group = self.group_of.get(item.nodeid, 1)
        if self._group is not None and group != self._group:
            handle.renew()  # the second group starts with a fresh worker
        self._group = group
        handle.begin_check(component)  # ends at once when time is up or it was too slow
        # credit isolation: while grading one component, the graded parts it is built from
        # (API.md) are trusted oracles wherever the learner's code uses them
        handle.use_oracles(list(parts_of(component)))
        if component in self.refused:
            from llm_grade.grading.outcomes import PolicyRefused

            raise PolicyRefused(component, self.refused[component])
        for violation in self.static_violations:
            if violation.component == component:
                from llm_grade.grading.outcomes import ForbiddenCall

                raise ForbiddenCall(
                    violation.component, violation.api, violation.file, violation.line
                )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.part:  # the helper: hand the results over, nothing else
            import json

            checks = [r.to_dict() for r in self.results.values()]
            (Path(self.part) / "part.json").write_text(json.dumps(checks), encoding="utf-8")
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            return
        if self._helper is not None:
            self._collect_helper(getattr(self, "_helper_items", []))
        result = self.assemble()
        if self._handle is not None and self.out_dir:
            from llm_grade.grading.visuals import collect

            # pictures for the HTML report (a handful of calls, through the same handle)
            try:
                self._handle.begin_check("")
                result.artifacts = collect(self._handle, self.reference())
            except WorkerFailure:  # out of time: the report goes without pictures
                result.artifacts = {}
        if self.out_dir:
            result.write_json(Path(self.out_dir) / "results.json")
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._transport is not None:  # started, never used (nothing was selected)
            self._transport.close()
            self._transport = None
        if self.staged is not None:
            shutil.rmtree(self._stage_dir, ignore_errors=True)
        if self in _CURRENT:
            _CURRENT.remove(self)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        from llm_grade.engine.feedback import format_check, format_summary

        if self.result is None or not self.result.components:
            return
        shown = [c for c in self.helper_checks if c.status not in ("passed", "not_implemented")]
        if shown:
            terminalreporter.section("llm-grade: failures found by the second grading process")
            for check in shown:
                terminalreporter.write_line(format_check(check, learner_view=self.learner_view))
                terminalreporter.write_line("")
        if self.helper_checks:
            passed = sum(c.status == "passed" for c in self.helper_checks)
            terminalreporter.write_line(
                f"(and {len(self.helper_checks)} checks graded in a second process: "
                f"{passed} passed)"
            )
        not_started = [c for c in self.result.components if c.status == "not_implemented"]
        terminalreporter.section("llm-grade: points per component")
        for comp in not_started:
            terminalreporter.write_line(
                f"{comp.name} — not implemented yet (0 / {comp.max_score:g} points). "
                f"Open {comp.module}.py to begin."
            )
        terminalreporter.write_line(format_summary(self.result))
        if self.isolation == "none":
            terminalreporter.write_line(
                "(--isolation none: learner code ran in this process, fast but not "
                "tamper-proof; `llm-grade grade` isolates it)"
            )
        elif self.result.isolation.get("sandbox", "").startswith("none"):
            terminalreporter.write_line(f"(sandbox: {self.result.isolation['sandbox']})")


_PATTERN_OPTIONS = {"-k", "-m", "-p", "-o", "--deselect"}


# checks that run learner code on the meta device: its first operation in a process costs
# about a second (torch imports its compiler stack), so they share one group's worker, and
# that group takes fewer of the other checks (a second is about 8 typical checks)
META_CHECKS = ("runs_on_any_device", "device_argument")
META_WEIGHT = 8


def _two_groups(items: list, component_of) -> tuple[list, list]:
    """Two fixed groups of checks, in the given order: the meta-device checks in the second,
    every other check in whichever group has less work so far (the first on a tie)."""
    first: list = []
    second: list = []
    head_start = 0
    for item in items:
        if component_of(item)[1] in META_CHECKS:
            second.append(item)
            head_start = META_WEIGHT
        else:
            (first if len(first) <= len(second) + head_start else second).append(item)
    return first, second


def _absolute_args(args: tuple[str, ...] | list[str], cwd: Path) -> list[str]:
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


def _will_run(config: pytest.Config) -> bool:
    """False for runs that only list or explain (``--collect-only``, ``--fixtures``...)."""
    return not any(
        config.getoption(name, False)
        for name in ("collectonly", "showfixtures", "show_fixtures_per_test", "help", "version")
    )


_CURRENT: list[GradingSession] = []  # the grading run in progress in this process


def _per_example(inner):
    from llm_grade.grading.toolkit import return_references

    """Wrap a Hypothesis test's inner function: an example passes only once the requests it
    queued have been answered without error, and the objects it built are released after."""

    @functools.wraps(inner)
    def example(*args: Any, **kwargs: Any) -> Any:
        handle = _CURRENT[-1]._handle if _CURRENT else None
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
            return_references()

    example._llm_grade = True
    return example


def _unwrap(exc: BaseException) -> BaseException:
    """Hypothesis may wrap the failure in an ExceptionGroup; return the first real one."""
    while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _is_flaky(exc: BaseException) -> bool:
    return type(exc).__name__ in ("Flaky", "FlakyFailure", "FlakyReplay")


def activate(config: pytest.Config, graders_dir: Path) -> GradingSession:
    """Called by ``graders/conftest.py``: turn this pytest run into a grading run."""
    if _SESSION_KEY in config.stash:
        return config.stash[_SESSION_KEY]
    from llm_grade.engine.profiles import load_profile

    session = GradingSession(config, graders_dir)
    config.stash[_SESSION_KEY] = session
    _CURRENT.append(session)
    config.pluginmanager.register(session, "llm-grade-session")
    load_profile(config, session.rubric.max_examples)
    return session


def grading_session(config: pytest.Config) -> GradingSession:
    return config.stash[_SESSION_KEY]


__all__ = ["activate", "grading_session", "GradingSession", "CheckFailure", "NotImplementedYet"]
