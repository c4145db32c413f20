"""Statistics for the class index: the checks failed by the most students
(:func:`common_failures`), and safe file names for students' pages (:func:`slug`).

A hidden check shows only its component and name in a learner-facing view.

Trusted side: reads :class:`GradeResult` objects; nothing here runs learner code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from llm_grade.engine.results import CheckResult, GradeResult
from llm_grade.output.text import clean
from llm_grade.output.views import _check_view


def slug(name: str) -> str:
    """A file name for a student's page: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "submission"


FAILING = ("failed", "error")  # check statuses that count as a failing property


@dataclass
class CommonFailure:
    """One check that fails for several students, for the class index."""

    component: str
    name: str  # the check id
    title: str  # the property in plain words ("" when redacted)
    hint: str  # the hint most of these students got ("" when redacted)
    other_hints: int  # how many different hints the others got
    count: int  # students failing it
    graded: int  # students graded on it
    students: list[str]
    hidden: bool = False
    redacted: bool = False  # a hidden check in a learner-facing view: name only
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100 * self.count / self.graded if self.graded else 0.0


def common_failures(
    results: Mapping[str, GradeResult], *, view: str = "instructor", top: int | None = 10
) -> list[CommonFailure]:
    """The checks failed (or crashed) by the most students, most first, at most ``top``.

    Not-implemented and forbidden checks are left out: they say a component was not started
    or broke a rule, not which property is wrong. A hidden check shows only its component and
    name in the learner view.
    """
    learner_view = _check_view(view)
    order: dict[tuple[str, str], int] = {}  # curriculum order, for ties
    graded: Counter[tuple[str, str]] = Counter()
    failing: dict[tuple[str, str], list[tuple[str, CheckResult]]] = {}
    for student, result in sorted(results.items()):
        for component in result.components:
            for check in component.checks:
                key = (component.name, check.name)
                order.setdefault(key, len(order))
                graded[key] += 1
                if check.status in FAILING:
                    failing.setdefault(key, []).append((student, check))
    rows: list[tuple[int, CommonFailure]] = []
    for key, hits in failing.items():
        checks = [c for _, c in hits]
        hints = Counter(clean(c.hint) for c in checks if c.hint)
        hint, _ = hints.most_common(1)[0] if hints else ("", 0)
        titles = Counter(clean(c.title, 600) for c in checks)
        hidden = any(c.hidden for c in checks)
        redacted = hidden and learner_view
        row = CommonFailure(
            component=clean(key[0], 200),
            name=clean(key[1], 200),
            title="" if redacted else titles.most_common(1)[0][0],
            hint="" if redacted else hint,
            other_hints=0 if redacted else max(len(hints) - 1, 0),
            count=len(hits),
            graded=graded[key],
            students=[clean(s, 200) for s, _ in hits],
            hidden=hidden,
            redacted=redacted,
            statuses=dict(Counter(c.status for c in checks)),
        )
        rows.append((order[key], row))
    rows.sort(key=lambda r: (-r[1].count, r[0]))
    ranked = [row for _, row in rows]
    return ranked if top is None else ranked[:top]
