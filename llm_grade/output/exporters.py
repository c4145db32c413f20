"""Results for other tools: a class spreadsheet, GitHub Classroom, Gradescope, JUnit XML (CI
dashboards) and a Markdown summary (a CI job's summary page).

Every exporter takes :class:`GradeResult` objects, built by grading or read back from
``results.json`` (:func:`load_results`), and never re-runs anything. The native format is
``results.json`` itself (:meth:`GradeResult.write_json`); the HTML report is
:mod:`llm_grade.output.report`.

Hidden checks: the Gradescope and JUnit exports are learner-facing by default, so a hidden
check appears with its name and points only, never its message, hint or counterexample.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llm_grade.engine.feedback import format_check, format_summary, points
from llm_grade.engine.results import CheckResult, GradeResult
from llm_grade.output.text import clean

GRADESCOPE_VISIBILITY = ("hidden", "after_due_date", "after_published", "visible")
HIDDEN_LINE = "Hidden check: its details are shown to instructors only."


# ------------------------------------------------------------------------- reading results


def load_results(path: Path) -> GradeResult:
    """A ``results.json`` (or a folder holding one) as a :class:`GradeResult`."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return GradeResult.from_dict(data)
    except FileNotFoundError:
        raise ValueError(
            f"{path} does not exist; `llm-grade grade ... --out DIR` writes DIR/results.json"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a results.json written by llm-grade ({type(exc).__name__}: {exc})"
        ) from None


def load_class(root: Path) -> dict[str, GradeResult]:
    """``root/<student>/results.json`` for every student folder, keyed by the folder name."""
    return {p.parent.name: load_results(p) for p in sorted(Path(root).glob("*/results.json"))}


def student_name(result: GradeResult) -> str:
    """The submission folder's name, which names the student in a class export."""
    return Path(str(result.submission)).name or str(result.submission)


def _by_student(
    results: Mapping[str, GradeResult] | Iterable[GradeResult],
) -> dict[str, GradeResult]:
    if isinstance(results, Mapping):
        return dict(results)
    return {student_name(r): r for r in results}


# ------------------------------------------------------------------------- grades.csv


def _cell(text: str) -> str:
    # a spreadsheet runs a cell that starts with one of these as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_grades_csv(
    results: Mapping[str, GradeResult] | Iterable[GradeResult],
    path: Path,
    *,
    errors: Mapping[str, str] | None = None,
) -> Path:
    """``grades.csv``: one row per student (score, max_score, then points per component).

    A component a submission was not graded on (e.g. graded with ``-k``) is left empty.
    ``errors`` (student -> why) are submissions that could not be graded: their row has an
    empty score and the reason in a last column, ``error``, present only when there are any.
    """
    by_student = _by_student(results)
    errors = {k: v for k, v in (errors or {}).items() if k not in by_student}
    components: dict[str, None] = {}
    for result in by_student.values():
        components.update(dict.fromkeys(c.name for c in result.components))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["student", "score", "max_score", *components, *(["error"] if errors else [])]
        )
        for student in sorted({*by_student, *errors}):
            if student in errors:
                blank = [""] * (2 + len(components))
                writer.writerow(
                    [_cell(clean(student, 200)), *blank, _cell(clean(errors[student], 1000))]
                )
                continue
            result = by_student[student]
            scores = {c.name: points(c.score) for c in result.components}
            writer.writerow(
                [
                    _cell(clean(student, 200)),
                    points(result.score),
                    points(result.max_score),
                    *(scores.get(n, "") for n in components),
                    *([""] if errors else []),
                ]
            )
    return path


# ------------------------------------------------------------------------- GitHub Classroom


def classroom_results(result: GradeResult) -> dict[str, Any]:
    """What GitHub Classroom's autograding reporter
    (``classroom-resources/autograding-grading-reporter``) reads from a runner: ``version``
    1, the runner's ``status`` ("pass", "fail" or "error"), ``max_score`` and one test per
    check with its ``score``. Fractional points stay fractional (the reporter adds them up
    as numbers). A hidden check shows its name and points only."""
    tests = []
    for component in result.components:
        for check in component.checks:
            status = {"passed": "pass", "skipped": "pass", "error": "error"}.get(
                check.status, "fail"
            )
            shown = "" if status == "pass" else format_check(check, learner_view=True)
            test = {
                "name": f"{check.component} — {check.title}",
                "status": status,
                "score": check.points,
                "message": clean(shown, 4000),
                "test_code": check.nodeid or f"{check.component}.{check.name}",
                "filename": f"{component.module}.py",
                "line_no": 0,
                "execution_time": f"{check.duration_s:.2f}s",
            }
            if check.hidden:
                test["name"] = f"{check.component} — {check.name} (hidden check)"
                test["message"] = "" if status == "pass" else HIDDEN_LINE
            tests.append(test)
    statuses = {t["status"] for t in tests}
    overall = "pass" if statuses <= {"pass"} else ("error" if statuses == {"error"} else "fail")
    return {"version": 1, "status": overall, "max_score": result.max_score, "tests": tests}


def markdown_summary(result: GradeResult) -> str:
    """The points per component as a Markdown table (a CI job summary), with the total,
    how learner code was isolated and the rubric's SHA-256. Component names and numbers only:
    no learner-controlled text reaches it."""
    lines = [
        f"### llm-grade: {points(result.score)} / {points(result.max_score)} points",
        "",
        "| Component | Points | Checks passed |",
        "| --- | ---: | ---: |",
    ]
    for c in result.components:
        passed = sum(k.status in ("passed", "skipped") for k in c.checks)
        lines.append(
            f"| `{c.name}` | {points(c.score)} / {points(c.max_score)} | "
            f"{passed} / {len(c.checks)} |"
        )
    iso = result.isolation or {}
    sandbox = "sandboxed" if iso.get("trusted") else "NOT sandboxed: not tamper-proof"
    lines += ["", f"Learner code ran in a separate worker process, {sandbox}."]
    digest = (result.environment or {}).get("rubric_sha256")
    if digest:
        lines.append(f"Rubric SHA-256: `{clean(digest, 80)}`.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- Gradescope


def gradescope_results(
    result: GradeResult,
    *,
    hidden_visibility: str = "after_published",
    visibility: str | None = None,
) -> dict[str, Any]:
    """Gradescope's autograder ``results.json``: one test per check.

    Follows https://gradescope-autograders.readthedocs.io/en/latest/specs/. A hidden check
    gets ``hidden_visibility`` ("hidden", "after_due_date" or "after_published") and an
    output without details; ``visibility`` sets the whole submission's (default: the
    assignment's setting on Gradescope).
    """
    for value in (hidden_visibility, visibility):
        if value is not None and value not in GRADESCOPE_VISIBILITY:
            raise ValueError(f"visibility must be one of {GRADESCOPE_VISIBILITY}, got {value!r}")
    tests = []
    for ci, component in enumerate(result.components, 1):
        for ki, check in enumerate(component.checks, 1):
            test: dict[str, Any] = {
                "name": f"{check.component} — {check.title}",
                "number": f"{ci}.{ki}",
                "score": check.points,
                "max_score": check.max_points,
                "status": "passed" if check.status in ("passed", "skipped") else "failed",
                "output": clean(format_check(check, learner_view=True)),
                "visibility": "visible",
            }
            if check.hidden:
                test["name"] = f"{check.component} — {check.name} (hidden check)"
                test["output"] = HIDDEN_LINE
                test["visibility"] = hidden_visibility
            tests.append(test)
    output = format_summary(result)
    iso = result.isolation or {}
    if iso.get("mode") == "none":
        output += "\n\nNote: learner code ran inside the grading process; not tamper-proof."
    elif iso.get("trusted") is False:
        output += "\n\nNote: learner code ran without a sandbox; not tamper-proof."
    data: dict[str, Any] = {
        "score": result.score,
        "execution_time": round(result.duration_s, 3),
        "output": clean(output, 20_000),
        "output_format": "text",
        "test_output_format": "text",
        "tests": tests,
        "extra_data": {"llm_grade": {"max_score": result.max_score, "isolation": result.isolation}},
    }
    if visibility is not None:
        data["visibility"] = visibility
    return data


def write_gradescope(result: GradeResult, path: Path, **options: Any) -> Path:
    """Write :func:`gradescope_results` to ``path`` (on Gradescope:
    ``/autograder/results/results.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gradescope_results(result, **options)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------- JUnit XML


def _junit_outcome(check: CheckResult, learner_view: bool):
    from junitparser import Error, Failure, Skipped

    if check.status == "passed":
        return None
    if check.status == "skipped":
        return Skipped(clean(check.message, 500) or "skipped")
    kind = Error if check.status == "error" else Failure
    if check.hidden and learner_view:
        return kind("hidden check did not pass", check.status)
    first = clean(check.message, 500).split("\n", 1)[0] or check.status.replace("_", " ")
    outcome = kind(first, check.status)
    outcome.text = clean(format_check(check, learner_view=learner_view), 20_000)
    return outcome


def junit_xml(result: GradeResult, *, view: str = "learner"):
    """A ``junitparser.JUnitXml``: one testsuite per component, one testcase per check.

    Failed, not implemented and forbidden checks are ``<failure type="STATUS">``, crashes
    in learner code ``<error>``, skipped checks ``<skipped>``. The learner view (default)
    keeps hidden checks' details out.
    """
    from junitparser import JUnitXml, TestCase, TestSuite

    if view not in ("learner", "instructor"):
        raise ValueError(f"view must be 'learner' or 'instructor', got {view!r}")
    xml = JUnitXml(f"llm-grade: {clean(student_name(result), 200)}")
    for component in result.components:
        suite = TestSuite(component.name)
        suite.add_property("module", component.module or "")
        suite.add_property("score", points(component.score))
        suite.add_property("max_score", points(component.max_score))
        for check in component.checks:
            case = TestCase(
                check.name, f"{component.module}.{component.name}", round(check.duration_s, 3)
            )
            outcome = _junit_outcome(check, view == "learner")
            if outcome is not None:
                case.result = [outcome]
            suite.add_testcase(case)
        suite.update_statistics()
        xml.add_testsuite(suite)
    # the root's totals by hand: junit-10.xsd allows no `skipped` attribute on <testsuites>
    suites = list(xml)
    xml.tests = sum(s.tests for s in suites)
    xml.failures = sum(s.failures for s in suites)
    xml.errors = sum(s.errors for s in suites)
    xml.time = round(sum(s.time or 0 for s in suites), 3)
    return xml


def write_junit(result: GradeResult, path: Path, *, view: str = "learner") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(result, view=view).write(str(path), pretty=True)
    return path
