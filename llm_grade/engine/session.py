"""The scoring session: one grading run's state, from the options to the results.

A :class:`GradingSession` is made from :class:`~llm_grade.engine.options.GradingOptions` by
whoever starts the run (:func:`llm_grade.engine.run.grade`, or the graders' conftest under a
bare ``pytest graders/``). It stages the submission, checks it against the submission policy,
starts the worker, owns the submission handle and the run's
:class:`~llm_grade.grading.context.GradingContext`, turns each check's outcome into a
:class:`~llm_grade.engine.results.CheckResult` with the rubric's points, and assembles the
:class:`~llm_grade.engine.results.GradeResult`. The pytest hooks that drive it live in
:mod:`llm_grade.engine.plugin`; nothing here depends on pytest's hook order.

Trusted side: learner code is reached only through the handle.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llm_grade.components import COMPONENTS, MODULES, module_of, parts_of
from llm_grade.engine.environment import environment, load_package, resolve_device
from llm_grade.engine.options import GradingOptions
from llm_grade.engine.results import STATUSES, CheckResult, ComponentResult, GradeResult
from llm_grade.grading.outcomes import (
    ForbiddenCall,
    GradingOutcome,
    ImportFailure,
    LearnerError,
    PolicyRefused,
    Settled,
    WorkerFailure,
)

if TYPE_CHECKING:  # torch is imported in start(), after the helper process is on its way
    from llm_grade.grading.context import GradingContext


@dataclass(frozen=True)
class CheckId:
    """Which check a grader test is: its component, rubric name, title and node id."""

    component: str
    name: str
    title: str
    nodeid: str


# checks that run the learner's whole model (a hang in a part is not their component's own)
WHOLE_MODEL = frozenset({"learns_one_batch"})


class SubmissionError(ValueError):
    """The submission cannot be graded as given (not there, not a folder, zip, notebook or
    script, or one that cannot be read): one line says why."""


def _attention_failed(result: GradeResult) -> bool:
    """Whether scaled_dot_product_attention was graded and lost points (not: not written)."""
    return any(
        c.name == "scaled_dot_product_attention"
        and c.score < c.max_score
        and any(k.status in ("failed", "error") for k in c.checks)
        for c in result.components
    )


class GradingSession:
    """State of one grading run: options, rubric, staged submission, handle, results."""

    def __init__(self, options: GradingOptions, graders_dir: Path, origin=None):
        from llm_grade.engine.rubric import load_rubric
        from llm_grade.paths import bundled

        self.started = time.perf_counter()
        self.options = options
        self.graders_dir = graders_dir
        self.rubric = load_rubric(options.rubric or graders_dir / "rubric.toml")
        self.submission_path = Path(options.submission or bundled("stubs")).resolve()
        self.learner_view = options.view != "instructor"
        self.device = "cpu"  # resolved in start(), once torch is imported
        self.results: dict[str, CheckResult] = {}
        self._timed: dict[str, dict] = {}  # efficiency timings (artifacts["efficiency"])
        self._timing_done: set[str] = set()
        self.order: dict[str, int] = {}  # nodeid -> place in the graders' order
        self.static_violations = []
        self.result: GradeResult | None = None
        self.staged = None  # the copy of the submission that is graded (see stage())
        self.refused: dict[str, str] = {}  # component -> why the submission policy refuses it
        self.untouched: set[str] = set()  # components whose definition is still the stub's
        self.context: GradingContext | None = None
        self._context_token = None
        self._policy_changed = False  # the policy cut code out of the staged copy
        self._handle = None
        self._transport = None
        self._stage_dir: str | None = None
        self._area = None  # the worker template's stage area the submission is staged in
        # the notebook or script the submission's modules were extracted from (an
        # llm_grade.notebook.extract.Extraction), or None for a folder
        self.origin = origin
        self.hypothesis: dict = {}  # the Hypothesis settings graded with (for the results)
        self._unpacked: str | None = None  # the folder a zip, notebook or script became
        self.source_folder = self.submission_path  # the folder whose modules are staged
        if self.submission_path.is_file():
            self._unpack()
        elif not self.submission_path.exists():
            raise SubmissionError(f"submission {self.submission_path} does not exist")

    def _unpack(self) -> None:
        """A zip, notebook or ``.py`` script as a folder of modules, made now (before pytest
        runs, so that an unreadable one is one clear line): the same safety checks as batch
        (:mod:`llm_grade.classroom.staging`), and for a notebook its extraction, which the
        results and the tracebacks then refer to."""
        from llm_grade.classroom.staging import (
            ARCHIVE_SUFFIXES,
            StagingError,
            StudentSubmission,
            unpack,
        )

        path = self.submission_path
        kind = ARCHIVE_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise SubmissionError(
                f"{path} is not a submission folder, zip, notebook (.ipynb) or script (.py): "
                "give the folder with your modules (environment.py ... transformer.py) or the "
                "notebook that defines them"
            )
        self._unpacked = tempfile.mkdtemp(prefix="llm-grade-unpacked-")
        try:
            folder, origin = unpack(
                StudentSubmission(path.stem, path, kind),
                Path(self._unpacked) / "submission",
                follow_loads=True,  # the learner's own folder: the notebooks it loads
            )
        except StagingError as exc:
            shutil.rmtree(self._unpacked, ignore_errors=True)
            self._unpacked = None
            raise SubmissionError(f"{path.name}: {exc}") from None
        self.source_folder = folder
        self.origin = origin or self.origin

    @property
    def isolation(self) -> str:
        return self.options.isolation

    # -------------------------------------------------------------- start

    def start(self, *, will_run: bool = True) -> None:
        """Stage the submission and start the worker (it imports torch while this process
        does: two cores, half the wait), then resolve the device, apply the policy and make
        this run's context current."""
        if self.source_folder.is_dir() and will_run:
            self.stage()
        if self.isolation == "process" and self.staged is not None:
            from llm_grade.sandbox.transport import start_worker

            self._transport = start_worker(
                self.staged.root,
                forbidden=self.rubric.forbidden,
                limits=self.rubric.limits,
                masks=self.masks(),
                sandbox=self._sandbox(),
                gpu=self.options.device in ("cuda", "auto"),
            )
        import torch

        from llm_grade.grading import context
        from llm_grade.grading.context import GradingContext

        # graders use tiny tensors: one thread is fastest, and several OpenMP threads on a
        # busy machine (or beside a worker process) spin-wait for each other
        torch.set_num_threads(1)
        self.device = resolve_device(self.options.device)
        if self.staged is not None:
            self.apply_policy()
        tolerances = {k: dict(v) for k, v in self.rubric.tolerance.items()}
        tolerances.update(self.rubric.device_tolerance.get(self.device, {}))
        self.context = GradingContext(tolerances=tolerances)
        self._context_token = context.activate(self.context)

    def _sandbox(self) -> str:
        return "bwrap" if self.options.sandbox == "bubblewrap" else self.options.sandbox

    def stage(self) -> None:
        """Copy the submission's modules into a fresh folder: only that copy is ever
        imported (see :func:`llm_grade.classroom.staging.stage_folder`). Under the sandbox
        the folder is in the stage area of a worker template (started now, if there is
        none: it imports torch while this process does), so its workers start in
        milliseconds (see :mod:`llm_grade.sandbox.template`)."""
        from llm_grade.classroom.staging import stage_folder

        self._area = None
        if self.isolation == "process":
            from llm_grade.sandbox.limits import Limits
            from llm_grade.sandbox.template import stage_area

            self._area = stage_area(
                Limits.from_mapping(self.rubric.limits),
                self.masks(),
                gpu=self.options.device in ("cuda", "auto"),
                sandbox=self._sandbox(),
            )
        if self._area is not None:
            self._stage_dir = str(self._area.new_stage())
        else:
            self._stage_dir = tempfile.mkdtemp(prefix="llm-grade-staged-")
        self.staged = stage_folder(self.source_folder, Path(self._stage_dir) / "submission")

    def apply_policy(self) -> None:
        """Check the staged sources against the rubric's submission policy (on this trusted
        side, from the AST) and stage what the worker may import instead: refused code is
        stubbed out, so it never runs. The worker has not imported anything yet."""
        from llm_grade.policy import check_submission
        from llm_grade.policy.stubs import untouched

        root, sources = self.staged.root, self.staged.texts
        self.untouched = untouched(sources)
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

    def masks(self) -> list[Path]:
        """Folders learner code must not see: every copy of the reference, the graders and
        the oracles, the graders in use, the learner's original folder and the output."""
        from llm_grade.sandbox.confine import trusted_paths

        masks = [*trusted_paths(), self.graders_dir]
        folders = dict.fromkeys([self.submission_path, self.source_folder])
        masks += [p for p in folders if p.is_dir()]
        masks += [Path(p).resolve() for p in self.options.hide if str(p) not in ("", ".")]
        if self.options.out:
            masks.append(Path(self.options.out))
        return masks

    # -------------------------------------------------------------- fixtures' backing

    def submission(self):
        """The submission handle (opened on first use): the graders' only way to learner
        code."""
        if self._handle is None:
            from llm_grade.policy.forbidden import scan_submission
            from llm_grade.sandbox.handle import open_submission
            from llm_grade.sandbox.limits import Limits

            if self.staged is None:  # not a folder: open_submission says so
                raise FileNotFoundError(f"submission folder {self.submission_path} does not exist")
            root = self.staged.root
            unchanged = not self._policy_changed and not self.staged.skipped
            if self.isolation == "none" and unchanged:
                # fast local mode: the learner's own files, so a debugger's breakpoints and
                # tracebacks point at them (same sources, so the same score)
                root = self.source_folder
            self.static_violations = scan_submission(root, self.rubric.forbidden)
            self._handle = open_submission(
                root,
                isolation=self.isolation,
                forbidden=self.rubric.forbidden,
                limits=self.rubric.limits,
                masks=self.masks(),
                sandbox=self._sandbox(),
                transport=self._transport,
                gpu=self.device == "cuda",
            )
            self._transport = None
            if self.device != "cpu":
                self._handle.set_device(self.device)
            limits = Limits.from_mapping(self.rubric.limits)
            spent = time.perf_counter() - self.started
            self._handle.set_budget(limits.budget_s - spent, limits.check_budget_s)
        return self._handle

    def reference(self):
        from llm_grade.paths import bundled

        return load_package(bundled("reference"), "_llm_grade_reference")

    @property
    def handle(self):
        """The handle if it is open (else None)."""
        return self._handle

    # -------------------------------------------------------------- one check

    def begin(self, check: CheckId, *, renew: bool) -> None:
        """Before a check runs: a fresh worker for a new group, the time budget, the trusted
        parts (credit isolation), and the outcomes decided from the source alone."""
        from llm_grade.engine.explain import END_TO_END

        handle = self.submission()
        if renew:
            handle.renew()
        covers = END_TO_END.get((check.component, check.name))
        # a check of the whole model: its time (a hang in a part) is not its component's own
        handle.whole_model = covers is not None or check.name in WHOLE_MODEL
        handle.begin_check(check.component)  # ends at once when time is up or it was too slow
        if covers:
            self._depends(check, covers)
        # credit isolation: while grading one component, the graded parts it is built from
        # (API.md) are trusted oracles wherever the learner's code uses them
        handle.use_oracles(list(parts_of(check.component)))
        if check.component in self.refused:
            raise PolicyRefused(check.component, self.refused[check.component])
        for violation in self.static_violations:
            if violation.component == check.component:
                raise ForbiddenCall(
                    violation.component, violation.api, violation.file, violation.line
                )

    def _depends(self, check: CheckId, covers: tuple[str, ...]) -> None:
        """An end-to-end check counts only once every component it covers passes (see
        :func:`llm_grade.engine.explain.settle`): when one is known to fail already, it is
        not run (settle decides its result, as it would have had it run)."""
        from llm_grade.engine.explain import NOT_RUN
        from llm_grade.grading.outcomes import CheckFailure

        failing = sorted(
            {  # failures of their own (a module that does not import blocks this one too)
                r.component
                for r in self.results.values()
                if r.component in covers
                and r.status in ("failed", "error", "forbidden")
                and not r.blocked_by
            },
            key=list(COMPONENTS).index,
        )
        if failing:
            raise CheckFailure(f"{NOT_RUN}, and {', '.join(failing[:4])} fails its own checks.")

    def blank_result(self, check: CheckId) -> CheckResult:
        """The check's result before anything is known: passed, with its rubric points."""
        spec = self.rubric.spec(check.component, check.name)
        return CheckResult(
            name=check.name,
            component=check.component,
            title=check.title,
            status="passed",
            points=spec.points,
            max_points=spec.points,
            hidden=spec.hidden,
            nodeid=check.nodeid,
        )

    def record(self, check: CheckId, exc: BaseException | None, duration: float) -> CheckResult:
        """The result of ``check`` given the exception it ended with (None: it passed)."""
        import pytest

        result = self.blank_result(check)
        result.duration_s = duration
        if self._handle is not None:
            result.curves = self._handle.notes.pop("curves", None)
        if exc is not None:
            exc = _unwrap(exc)
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
                if isinstance(exc, ImportFailure):
                    result.blocked_by = f"{exc.cause}.py"
                    result.traceback = exc.traceback
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
        return self._keep(result)

    def adopt(self, check: CheckId, reported: CheckResult | None) -> CheckResult | None:
        """Another process's result for ``check`` with name, points and visibility from this
        session's rubric (it reports outcomes, it does not decide points); None when missing
        or malformed."""
        if reported is None or reported.status not in STATUSES:
            return None
        result = self.blank_result(check)
        result.status = reported.status
        result.points = result.max_points if reported.status in ("passed", "skipped") else 0.0
        fields = ("message", "hint", "counterexample", "traceback", "duration_s", "diff", "curves")
        for name in fields:
            setattr(result, name, getattr(reported, name))
        if reported.blocked_by.removesuffix(".py") in MODULES:
            result.blocked_by = reported.blocked_by
        return self._keep(result)

    def _keep(self, result: CheckResult) -> CheckResult:
        """Record a check's result; a check of a component that is still the stub (see
        :mod:`llm_grade.policy.stubs`) that did not pass is "not implemented yet", whatever
        stopped it."""
        if result.component in self.untouched and result.status in ("failed", "error"):
            _not_started(result)
        if self.origin is not None:  # module lines as the notebook's cells and lines
            result.traceback = self.origin.rewrite(result.traceback)
            result.message = self.origin.rewrite(result.message)
        self.results[result.nodeid] = result
        return result

    # -------------------------------------------------------------- the end

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
        from llm_grade.engine.explain import settle

        order = list(COMPONENTS)
        components = sorted(by_component.values(), key=lambda c: order.index(c.name))
        settle(components)  # end-to-end checks and secondary failures, once all are known
        isolation = self._handle.describe() if self._handle else {"mode": self.isolation}
        self.result = GradeResult(
            str(self.submission_path),
            components,
            time.perf_counter() - self.started,
            {**environment(self.device), **self._provenance()},
            isolation,
            str(self.rubric.path),
            sources=dict(self.staged.sources) if self.staged else {},
            notes=(self.origin.notes() if self.origin is not None else [])
            + (list(self.staged.notes) if self.staged else [])
            + list(self.rubric.notes),
            origin=self.origin.origin() if self.origin is not None else {},
        )
        return self.result

    def _provenance(self) -> dict:
        """What a score was made with, beside the machine (``llm-grade regrade`` reads it):
        llm-grade's version, the rubric's SHA-256 (an instructor compares it with the rubric
        they published), the Hypothesis settings, the -k selection, the isolation and the
        SHA-256 of the submission as handed in."""
        from llm_grade import __version__
        from llm_grade.classroom.staging import content_hash
        from llm_grade.engine.rubric import rubric_sha256

        return {
            "llm_grade": __version__,
            "rubric_sha256": rubric_sha256(self.rubric.path),
            **self.hypothesis,
            "select": self.options.select or "",
            "isolation": self.isolation,
            "submission_sha256": content_hash(self.submission_path),
        }

    def finish(self, progress=None) -> GradeResult:
        """Assemble the results, draw the report's pictures (a handful of calls through the
        same handle), time the components, with ``--train`` train the models on their tasks
        (``progress(component, task, step, steps)`` meanwhile), write results.json, and
        release everything the run held."""
        result = self.assemble()
        out = self.options.out
        # without results.json, only the worked example, for the terminal when attention fails
        only = None if out else (["worked_example"] if _attention_failed(result) else [])
        if self._handle is not None and only != []:
            from llm_grade.grading.visuals import collect

            try:
                self._handle.begin_check("")
                result.artifacts = collect(self._handle, self.reference(), only=only)
            except WorkerFailure:  # out of time: the report goes without pictures
                result.artifacts = {}
        if self._handle is not None:
            self.time_components()
            if self._timed:
                from llm_grade.grading.efficiency import CASES

                order = [c.component for c in CASES]
                timed = dict(sorted(self._timed.items(), key=lambda kv: order.index(kv[0])))
                result.artifacts = {**(result.artifacts or {}), "efficiency": timed}
        if self._handle is not None and self.options.train and not self.options.part:
            from llm_grade.output.text import clean_tree

            tasks = clean_tree(self.train_models(result, progress))  # (learner messages)
            if tasks:
                result.artifacts = {**(result.artifacts or {}), "tasks": tasks}
        if out:
            result.write_json(Path(out) / "results.json")
        self.close()
        return result

    def time_components(self, exclude: set[str] = frozenset()) -> None:
        """Time the graded components not timed yet (but ``exclude``, still being graded
        elsewhere) against the reference: informational, no points (see
        :mod:`llm_grade.grading.efficiency`). Nothing is timed once a component hung. The
        plugin calls this while the helper process finishes, and :meth:`finish` for the rest."""
        from llm_grade.grading.efficiency import measure

        if self._handle is None or self.options.part:
            return
        if any(kind == "timeout" for kind, _ in self._handle.too_slow.values()):
            return
        graded = {r.component for r in self.results.values() if r.status == "passed"}
        todo = graded - set(exclude) - self._timing_done
        if not todo:
            return
        self._timing_done |= todo
        try:
            self._handle.begin_check("")
            ratio = self.rubric.warn_ratio
            self._timed.update(measure(self._handle, self.reference(), todo, ratio))
        except WorkerFailure:
            return

    def train_models(self, result: GradeResult, progress=None) -> dict:
        """``--train``: the learner's GPT and Transformer, where written, trained on their
        synthetic tasks next to the reference (informational, no points; see
        :mod:`llm_grade.grading.tasks`)."""
        from llm_grade.grading.tasks import TASKS, train_tasks

        written = {
            c.name
            for c in result.components
            if c.status != "not_implemented" and c.name in {t.component for t in TASKS}
        }
        if not written:
            return {}
        if any(kind == "timeout" for kind, _ in self._handle.too_slow.values()):
            why = "not trained: a component did not finish in time while it was graded"
            return {name: {"error": why} for name in sorted(written)}
        self._handle.begin_check("")
        return train_tasks(
            self._handle, self.reference(), written, self.options.train_seed, progress
        )

    def close(self) -> None:
        """Close the handle (or the unused worker), remove the staged copy, and end this
        run's context. Safe to call twice."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._transport is not None:  # started, never used (nothing was selected)
            self._transport.close()
            self._transport = None
        if self._stage_dir is not None:
            if self._area is not None:
                self._area.release(Path(self._stage_dir))
            else:
                shutil.rmtree(self._stage_dir, ignore_errors=True)
            self._stage_dir = None
        if self._unpacked is not None:
            shutil.rmtree(self._unpacked, ignore_errors=True)
            self._unpacked = None
        if self._context_token is not None:
            from llm_grade.grading import context

            token, self._context_token = self._context_token, None
            try:
                context.deactivate(token)
            except ValueError:  # made current in another thread's context: it ends there
                pass


def _not_started(check: CheckResult) -> None:
    """A check of a component that is still the stub: whatever stopped it (a module it
    imports that does not import, say), the learner has not written it yet."""
    check.status, check.points = "not_implemented", 0.0
    check.message = f"{check.component} is not implemented yet (it is still the stub)."
    check.hint = check.counterexample = check.traceback = check.blocked_by = ""
    check.diff = None


def _unwrap(exc: BaseException) -> BaseException:
    """Hypothesis may wrap the failure in an ExceptionGroup; return the first real one."""
    while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _is_flaky(exc: BaseException) -> bool:
    return type(exc).__name__ in ("Flaky", "FlakyFailure", "FlakyReplay")
