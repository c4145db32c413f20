"""PrairieLearn: llm-grade as an external grader.

A question's ``info.json`` names an image with llm-grade installed and the entrypoint
``llm-grade prairielearn run``. PrairieLearn puts the learner's files in ``/grade/student``;
:func:`run` finds the submission there (as on Gradescope: modules, one folder of them, or
one notebook, script or zip), grades it with process isolation, and writes
``/grade/results/results.json`` in PrairieLearn's format (:func:`results`): ``score`` from 0
to 1, ``points`` and ``max_points``, and one test per check with its message and output
(hidden checks: name and points only). A submission that cannot be read (nothing submitted,
a notebook that is not JSON) is ``"gradable": false`` with its ``format_errors``:
PrairieLearn then charges no attempt. The learner's code never runs in this process
(PrairieLearn's own Python grader runs it in the grader's process). ``/grade`` is the root;
``--root`` moves it (tests). Trusted side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_grade.engine.results import GradeResult

DEFAULT_ROOT = Path("/grade")
MAX_BYTES = 1_000_000  # PrairieLearn's limit on results.json


def results(result: GradeResult) -> dict[str, Any]:
    """PrairieLearn's ``results.json`` for ``result``."""
    from llm_grade.engine.feedback import format_check, format_summary, points
    from llm_grade.output.exporters import HIDDEN_LINE
    from llm_grade.output.text import clean

    tests = []
    for component in result.components:
        for check in component.checks:
            passed = check.status in ("passed", "skipped")
            text = "" if passed else clean(format_check(check, learner_view=True), 4000)
            test = {
                "name": f"{check.component} — {check.title}",
                "description": f"{component.module}.py, check {check.name}",
                "points": check.points,
                "max_points": check.max_points,
                "message": "passed" if passed else clean(check.message, 1000),
                "output": text,
            }
            if check.hidden:
                test["name"] = f"{check.component} — {check.name} (hidden check)"
                test["message"] = "passed" if passed else HIDDEN_LINE
                test["output"] = ""
            tests.append(test)
    top = result.max_score
    data = {
        "gradable": True,
        "score": round(result.score / top, 6) if top else 0.0,
        "points": result.score,
        "max_points": top,
        "message": f"{points(result.score)} / {points(top)} points",
        "output": clean(format_summary(result), 20_000),
        "tests": tests,
    }
    while len(json.dumps(data)) > MAX_BYTES and any(t["output"] for t in tests):
        longest = max(tests, key=lambda t: len(t["output"]))
        longest["output"] = longest["output"][: len(longest["output"]) // 2] + "\n…"
    return data


def run(root: Path, *, rubric: Path | None = None, select: str | None = None) -> Path:
    """Grade ``root/student`` into ``root/results/results.json`` (always written)."""
    from llm_grade.classroom.gradescope import grade_upload

    root = Path(root)
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = grade_upload(
            root / "student",
            hide=(root / "tests", root / "serverFilesCourse"),
            rubric=rubric,
            select=select,
        )
    except ValueError as exc:
        data = {"gradable": False, "format_errors": [f"llm-grade could not grade this: {exc}"]}
    else:
        data = results(result)
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out
