"""What a grading run prints in a terminal: ``llm-grade grade`` and ``pytest graders/``.

A :class:`TerminalReport` is told the run's checks once they are collected (:meth:`plan`) and
each check's result as it is recorded, in either grading process (:meth:`check_done`). It
prints one line per component, in curriculum order, as soon as every check of that
component is known (with a progress bar below them on a terminal, plain lines when piped or
in CI), then the failures in the learner's form (../shared/FEEDBACK.md), then the points
table and the total (:meth:`finish`). Nothing of pytest's own output (progress characters,
node ids, install paths) is shown.

Verbosity: ``-1`` prints only the table and the total, ``0`` the component lines, the
failures and the table, ``1`` also one line per check. Colour comes from rich, which leaves
it out when ``NO_COLOR`` is set or the output is not a terminal.

Trusted side: reads :class:`~llm_grade.engine.results.CheckResult` objects (their text is
already cleaned of escapes); nothing here runs learner code.
"""

from __future__ import annotations

import copy
import os
import textwrap
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from llm_grade.engine.feedback import (
    component_label,
    failure_blocks,
    format_summary,
    points,
)
from llm_grade.engine.results import CheckResult, ComponentResult, GradeResult
from llm_grade.output.text import percent

_MARK = {"passed": ("✓", "green"), "failed": ("✗", "red"), "not_implemented": ("·", "yellow")}
_NAME_WIDTH = 32


def console() -> Console:
    """The console the report prints on: stdout as it is at each write (so a test runner's
    capture, or pytest's, sees it), no markup or highlighting of learner text."""
    return Console(highlight=False, markup=False, emoji=False, soft_wrap=True)


def _row(values: list, width: int = 6) -> str:
    return " ".join(
        f"{float(v):{width}.3f}" if isinstance(v, float) else f"{v:>{width}}" for v in values
    )


def _fall(losses) -> str:
    ok = isinstance(losses, list) and losses and all(isinstance(v, (int, float)) for v in losses)
    return f"{losses[0]:.2f} -> {losses[-1]:.2f}" if ok else "-"


def task_lines(data) -> list[tuple[bool | None, str, list[str]]]:
    """``--train``'s results (``artifacts["tasks"]``) as (passed, line, detail lines)."""
    rows = []
    for component, entry in (data or {}).items():
        if not isinstance(entry, dict):
            continue
        title = f"{component}, {entry.get('task', 'its task')}"
        if isinstance(entry.get("error"), str):
            rows.append((None, f"{title}: {entry['error']}", []))
            continue
        mine, ref = entry.get("learner") or {}, entry.get("reference") or {}
        line = (
            f"{title}: yours {percent(mine.get('accuracy'))} of {entry.get('held_out')} "
            f"{'held-out ' if entry.get('unseen') is True else ''}inputs right, the reference "
            f"{percent(ref.get('accuracy'))} "
            f"(loss {_fall(mine.get('losses'))}; reference {_fall(ref.get('losses'))})"
        )
        detail = [entry[k] for k in ("message", "hint", "note") if isinstance(entry.get(k), str)]
        rows.append((entry.get("passed"), line, detail))
    return rows


def worked_example_lines(data: dict) -> list[str]:
    """The tiny worked example (curriculum 1.2) as small text tables: the inputs and the
    scores to check by hand, then the weights and the output, expected next to yours, rows
    that differ marked."""
    from llm_grade.output.figures import rows_differ

    lines = [
        "Worked example: scaled_dot_product_attention on 3 tokens, d_k = 4, no mask "
        "(check it by hand)",
        ("  " + "  ".join(f"{name:<20}" for name in ("q", "k", "v"))).rstrip(),
    ]
    for row in zip(data["q"], data["k"], data["v"], strict=False):
        lines.append(("  " + "  ".join(f"[{_row(r, 3)} ]".ljust(20) for r in row)).rstrip())
    lines.append("  scores = q @ k^T / sqrt(4)")
    lines += ["    " + _row(r) for r in data["scores"]]
    mine = data.get("learner")
    for key, title in (
        ("weights", "weights = softmax(scores), row by row"),
        ("out", "out = weights @ v"),
    ):
        expected = data["reference"][key]
        got = mine[key] if mine else None
        lines.append(f"  {title}")
        lines.append(f"    {'expected':<{7 * len(expected[0])}}    yours")
        if got is None:
            lines += [f"    {_row(row)}    -" for row in expected]
            continue
        for row, theirs, differs in zip(expected, got, rows_differ(expected, got), strict=False):
            lines.append(f"    {_row(row)}    {_row(theirs)}{'   <- differs' if differs else ''}")
    if mine is None:
        lines.append(f"  (yours: {data.get('error') or 'not computed'})")
    return lines


class TerminalReport:
    """The live lines, failures and table of one grading run."""

    def __init__(self, *, verbosity: int = 0, out: Console | None = None, live: bool = True):
        self.verbosity = verbosity
        self.out = out or console()
        self.expected: dict[str, set[str]] = {}  # component -> node ids of its checks
        self.results: dict[str, CheckResult] = {}  # node id -> result
        self._shown = 0  # components printed so far (a prefix of self.expected)
        self._progress: Progress | None = None
        self._task = None
        self._live = live and verbosity >= 0 and self.out.is_terminal and not os.environ.get("CI")

    # -------------------------------------------------------------- during the run

    def plan(self, checks: list[tuple[str, str]], *, title: str = "") -> None:
        """The run's checks as (component, node id), in curriculum order."""
        for component, nodeid in checks:
            self.expected.setdefault(component, set()).add(nodeid)
        if title and self.verbosity >= 0:
            self.out.print(Text(title, style="bold"))
        if self._live and checks:
            self._start_bar("grading", len(checks), "checks")

    def _start_bar(self, description: str, total: int, unit: str) -> None:
        """The progress bar under the printed lines (a terminal only; gone when it stops)."""
        self._progress = Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            console=self.out,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def check_done(self, result: CheckResult) -> None:
        """A check's result (from either process); prints what is complete now."""
        first = result.nodeid not in self.results
        self.results[result.nodeid] = result
        if self._progress is not None and first:
            self._progress.update(self._task, advance=1, description=result.component)
        self._print_ready()

    def training(self, component: str, task: str, step: int, steps: int) -> None:
        """``--train``'s progress: a line when a model's training starts (and a bar on a
        terminal), then ``step`` of ``steps``."""
        if step == 0:
            if self._progress is not None:  # the checks' bar is done
                self._progress.stop()
                self._progress = None
            if self.verbosity >= 0:
                self.out.print(Text(f"Training {component} to {task} ({steps} steps) ..."))
            if self._live:
                self._start_bar(f"training {component}", steps, "steps")
        elif self._progress is not None:
            self._progress.update(self._task, completed=step)

    def problem(self, text: str) -> None:
        """Something that is not a check's result (a grader that does not load)."""
        self._emit(Text(text, style="red"))

    def _print_ready(self) -> None:
        components = list(self.expected)
        while self._shown < len(components):
            name = components[self._shown]
            if not self.expected[name] <= self.results.keys():
                return
            self._shown += 1
            if self.verbosity >= 0:
                self._emit(self._component_line(name))

    def _component_line(self, name: str) -> Text:
        component = self._settled(name)
        checks = component.checks
        status = component.status
        mark, style = _MARK.get(status, ("✗", "red"))
        line = Text("  ")
        line.append(mark, style=style)
        line.append(f" {name:<{_NAME_WIDTH}} ")
        label = component_label(component)
        if status == "passed":
            passed = sum(c.status == "passed" for c in checks)
            skipped = len(checks) - passed
            label = f"{passed} check{'s' * (passed != 1)} pass"
            label += f", {skipped} skipped" if skipped else ""
        line.append(label, style=None if status == "passed" else style)
        if self.verbosity >= 1:
            for check in checks:
                mark, style = _MARK.get(check.status, ("✗", "red"))
                line.append("\n      ")
                line.append(mark, style=style)
                line.append(f" {check.title}  ({points(check.points)} / ")
                line.append(f"{points(check.max_points)})")
        return line

    def _settled(self, name: str) -> ComponentResult:
        """``name``'s checks as the results will have them: an end-to-end check of a model
        whose parts lose points is "skipped" (:func:`llm_grade.engine.explain.settle`),
        decided here on copies of what is known (each part's line comes before the model's,
        so its checks are in)."""
        from llm_grade.engine.explain import END_TO_END, settle

        if not any(owner == name for owner, _ in END_TO_END):
            return ComponentResult(name, "", [self.results[n] for n in sorted(self.expected[name])])
        known = [
            ComponentResult(
                other, "", [copy.copy(self.results[n]) for n in sorted(ids) if n in self.results]
            )
            for other, ids in self.expected.items()
        ]
        settle(known)
        return next(c for c in known if c.name == name)

    def _emit(self, text: Text) -> None:
        self.out.print(text)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -------------------------------------------------------------- the end

    def finish(self, result: GradeResult, *, learner_view: bool = True, notes=()) -> None:
        """After the run: the failures, the table, the total and the counts."""
        for name in list(self.expected)[self._shown :]:  # checks that never reported
            self._shown += 1
            if self.verbosity >= 0 and self.expected[name] <= self.results.keys():
                self._emit(self._component_line(name))
        self.close()
        out = self.out
        blocks = failure_blocks(result, learner_view=learner_view) if self.verbosity >= 0 else []
        if blocks:
            out.print()
            out.print(Text("Failures", style="bold"))
            for block in blocks:
                out.print()
                self._print_block(block)
        worked = (result.artifacts or {}).get("worked_example")
        if blocks and isinstance(worked, dict) and worked.get("scores"):
            out.print()
            for i, line in enumerate(worked_example_lines(worked)):
                out.print(Text(line, style="bold" if i == 0 else ""))
        slow = [
            e["warning"]
            for e in ((result.artifacts or {}).get("efficiency") or {}).values()
            if isinstance(e, dict) and isinstance(e.get("warning"), str)
        ]
        if slow and self.verbosity >= 0:
            out.print()
            out.print(Text("Efficiency (no points: your scores do not depend on it)", style="bold"))
            width = self._width()
            for line in slow:
                out.print(
                    Text(textwrap.fill(line, width, initial_indent="  ", subsequent_indent="    "))
                )
        tasks = task_lines((result.artifacts or {}).get("tasks"))
        if tasks and self.verbosity >= 0:
            out.print()
            out.print(
                Text(
                    "Does it learn? (--train; no points: your score does not depend on it)",
                    style="bold",
                )
            )
            width = self._width()
            for passed, line, detail in tasks:
                mark, style = {True: ("✓", "green"), False: ("✗", "red")}.get(
                    passed, ("·", "yellow")
                )
                text = Text("  ")
                text.append(mark, style=style)
                text.append(" " + textwrap.fill(line, width - 4, subsequent_indent="    "))
                out.print(text)
                for more in detail:
                    out.print(
                        Text(
                            textwrap.fill(
                                more, width, initial_indent="    ", subsequent_indent="    "
                            )
                        )
                    )
        out.print()
        table = format_summary(result).splitlines()
        for line in table[:-1]:
            out.print(Text(line))
        out.print(Text(table[-1], style="bold"))
        out.print(Text(self._counts(result), style="dim"))
        not_started = [c for c in result.components if c.status == "not_implemented"]
        if not_started and self.verbosity >= 0:
            first = not_started[0]
            out.print(
                f"Not implemented yet: {len(not_started)} component"
                f"{'s' * (len(not_started) != 1)}; next: {first.name} in {first.module}.py."
            )
        for note in notes:
            out.print(Text(note, style="yellow"))

    def _width(self) -> int:
        """Where long lines wrap: the terminal's width up to 100, else 100."""
        return min(self.out.width, 100) if self.out.is_terminal else 100

    def _print_block(self, block: str) -> None:
        width = self._width()
        lines = block.splitlines()
        self.out.print(Text(lines[0], style="bold"))
        for line in lines[1:]:
            indent = len(line) - len(line.lstrip(" "))
            keep = line.lstrip().startswith(("Smallest case found:", "Called with:"))
            if indent == 2 and len(line) > width and not keep:  # prose: message, hint
                line = textwrap.fill(line, width, subsequent_indent="  ", break_on_hyphens=False)
            self.out.print(Text(line))

    @staticmethod
    def _counts(result: GradeResult) -> str:
        checks = [c for comp in result.components for c in comp.checks]
        tally = Counter("blocked" if c.blocked_by else c.status for c in checks)
        words = {
            "passed": "passed",
            "failed": "failed",
            "error": "crashed",
            "blocked": "could not run",
            "not_implemented": "not implemented",
            "forbidden": "forbidden",
            "skipped": "skipped",
        }
        parts = [f"{tally[s]} {w}" for s, w in words.items() if tally[s]]
        return f"{len(checks)} checks: {', '.join(parts)} ({result.duration_s:.1f} s)"
