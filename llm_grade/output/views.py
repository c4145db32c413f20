"""View models of the HTML report for checks and components (:class:`CheckView`,
:class:`ComponentView`), the note on how far a score can be trusted (:func:`isolation_note`),
and the two views a page can be rendered in (``VIEWS``).

Every learner-controlled field is cleaned here. In the learner view a hidden check's details
are never copied into its :class:`CheckView`, so no template change can leak them.

Trusted side: reads :class:`GradeResult` objects; nothing here runs learner code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from llm_grade.engine.feedback import blocked_by, component_label
from llm_grade.engine.results import CheckResult, ComponentResult
from llm_grade.output.figures import diff_figure
from llm_grade.output.geometry import Figure
from llm_grade.output.text import clean, trim_traceback

VIEWS = ("learner", "instructor")
_EXPECTED_GOT = re.compile(r"^\s*(expected|got)\b([^:]*):\s*(.*)$", re.IGNORECASE)


def _check_view(view: str) -> bool:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    return view == "learner"


@dataclass
class CheckView:
    name: str
    title: str
    status: str
    points: float
    max_points: float
    redacted: bool = False  # a hidden check in the learner view: name and points only
    message: str = ""
    case: str = ""
    case_label: str = ""
    expected_got: list[tuple[str, str, str]] = field(default_factory=list)
    hint: str = ""
    traceback: str = ""
    diff: Figure | None = None
    nodeid: str = ""
    duration: str = ""
    hidden: bool = False


def check_view(check: CheckResult, *, learner_view: bool) -> CheckView:
    view = CheckView(
        clean(check.name, 200),
        clean(check.title, 600),
        check.status,
        check.points,
        check.max_points,
        hidden=check.hidden,
        duration=f"{check.duration_s:.2f} s",
    )
    if check.hidden and learner_view:
        view.title, view.redacted, view.duration = "", True, ""
        return view
    view.message = clean(check.message)
    view.hint = clean(check.hint)
    view.traceback = trim_traceback(check.traceback)
    view.nodeid = "" if learner_view else clean(check.nodeid, 300)
    if check.counterexample:
        first, *rest = clean(check.counterexample).splitlines()
        kept = []
        for line in rest:
            m = _EXPECTED_GOT.match(line)
            if m:
                kind = m.group(1).lower()
                view.expected_got.append(
                    (kind, (kind.capitalize() + m.group(2)).strip(), m.group(3))
                )
            else:
                kept.append(line)
        if {k for k, _, _ in view.expected_got} != {"expected", "got"}:
            kept, view.expected_got = rest, []  # not a plain pair: show the lines as they are
        view.case = "\n".join([first] + kept)
        view.case_label = "Called with" if check.status == "error" else "Smallest case found"
    if check.status not in ("passed", "skipped"):
        view.diff = diff_figure(check.diff)
    return view


@dataclass
class ComponentView:
    name: str
    module: str
    status: str
    label: str
    score: float
    max_score: float
    failed: list[CheckView]
    passed: list[CheckView]
    forbidden_message: str = ""

    @property
    def percent(self) -> float:
        return 100 * self.score / self.max_score if self.max_score else 0.0


def component_view(component: ComponentResult, *, learner_view: bool) -> ComponentView:
    checks = [check_view(c, learner_view=learner_view) for c in component.checks]
    view = ComponentView(
        component.name,
        component.module or "",
        component.status,
        component_label(component),
        component.score,
        component.max_score,
        failed=[c for c in checks if c.status not in ("passed", "skipped")],
        passed=[c for c in checks if c.status in ("passed", "skipped")],
    )
    blocked = blocked_by(component)
    if blocked:  # one import error: shown under the first check it stopped, named by the rest
        first, *rest = [v for v in view.failed if not v.redacted] or [None]
        said = view.label[:1].upper() + view.label[1:]  # "Could not run: x.py does not import"
        for other in rest:
            other.message = f"{said} (the error is shown under '{first.title}')."
            other.hint = other.traceback = other.case = ""
            other.expected_got, other.diff = [], None
    if component.status == "forbidden":
        shown = [c for c in view.failed if c.status == "forbidden" and not c.redacted]
        view.forbidden_message = (
            shown[0].message if shown else "This component calls an API that the exercise forbids."
        )
    return view


def isolation_note(isolation: Any) -> dict[str, str]:
    """How far the score can be trusted, from ``results.json["isolation"]``."""
    iso = isolation if isinstance(isolation, dict) else {}
    sandbox = clean(iso.get("sandbox", ""), 600)
    note = clean(iso.get("note", ""), 600)
    if not iso:
        return {
            "level": "warn",
            "headline": "Isolation unknown",
            "text": "These results do not say how the learner's code was run; "
            "treat the score as untrusted.",
        }
    if iso.get("mode") == "none":
        return {
            "level": "danger",
            "headline": "Not tamper-proof",
            "text": note
            or "The learner's code ran inside the grading process "
            "(--isolation none): fine for practice, not for grades.",
        }
    if sandbox.startswith("none") or iso.get("trusted") is False:
        return {
            "level": "warn",
            "headline": "Sandbox unavailable",
            "text": f"Learner code ran in a separate worker process without a sandbox: {sandbox}",
        }
    return {
        "level": "ok",
        "headline": f"Isolated ({clean(iso.get('mode', ''), 40)})",
        "text": sandbox or note,
    }


def readable(value: Any) -> str:
    """A results.json value as settings read: ``call_timeout_s = 20, memory_mb = 2048``
    for a table, ``yes``/``no`` for a flag, the text itself otherwise (cleaned)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{clean(k, 60)} = {readable(v)}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return clean(value, 600)
