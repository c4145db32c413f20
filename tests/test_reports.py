"""HTML reports and exporters, read from a results.json fixture (nothing is graded here).

The fixture (tests/fixtures/report_results.json) is the bundled buggy example's results plus
a forbidden softmax, a crashing gelu, a not-implemented greedy_decode, a hidden failing check
whose every field says SECRET, a message with <script>alert(1)</script>, a diff on a failed
check and the three pictures under "artifacts".
"""

from __future__ import annotations

import copy
import csv
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest
from click.testing import CliRunner
from junitparser import Error, Failure, JUnitXml, Skipped

from llm_grade.cli import main
from llm_grade.engine.results import GradeResult
from llm_grade.output.classes import common_failures
from llm_grade.output.exporters import (
    gradescope_results,
    junit_xml,
    load_class,
    load_results,
    write_grades_csv,
    write_gradescope,
    write_junit,
)
from llm_grade.output.report import render_class, render_submission, write_class

FIXTURE = Path(__file__).parent / "fixtures" / "report_results.json"
SCRIPT = "<script>alert(1)</script>"
SECRETS = (
    "SECRET-TITLE",
    "SECRET-MESSAGE",
    "SECRET-HINT",
    "SECRET-COUNTEREXAMPLE",
    "SECRET-TRACEBACK",
    "SECRET-WHERE",
)


@pytest.fixture
def data() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture
def result(data: dict) -> GradeResult:
    return GradeResult.from_dict(data)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.lasttag not in ("style", "script"):
            self.text.append(data)

    def plain(self) -> str:
        """The visible text, one space between elements."""
        return re.sub(r"\s+", " ", " ".join(self.text)).strip()


def assert_self_contained(html: str) -> None:
    lowered = html.lower()
    for needle in (
        'src="http',
        "src='http",
        'href="http',
        "href='http",
        "<link",
        "@import",
        "url(http",
        "<iframe",
        "<object",
        "<embed",
    ):
        assert needle not in lowered, f"external asset {needle!r} in the page"
    for tag, attrs in Tags(html).tags:
        assert not (tag == "script" and "src" in attrs), "a <script src=...> loads code"
        for name, value in attrs.items():
            if name in ("src", "href"):
                assert value and (value.startswith("#") or "://" not in value), (tag, value)


def assert_no_injected_markup(html: str) -> None:
    """Learner text shows up as text: no tag or event handler of its own."""
    for tag, attrs in Tags(html).tags:
        assert tag != "img", "an <img> tag came from learner text"
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)


# ------------------------------------------------------------------------- results.json


def test_results_round_trip_keeps_diff_and_artifacts(result: GradeResult):
    again = GradeResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.artifacts == result.artifacts
    assert again.artifacts["attention"]["mask"][0][:2] == [True, False]
    diffs = [c.diff for comp in again.components for c in comp.checks if c.diff]
    assert len(diffs) == 2 and all(set(d) == {"expected", "got", "where"} for d in diffs)


def test_older_results_without_diff_or_artifacts_still_load(data: dict):
    data.pop("artifacts")
    for component in data["components"]:
        for check in component["tests"]:
            check.pop("diff")
    result = GradeResult.from_dict(data)
    assert result.artifacts == {}
    assert all(c.diff is None for comp in result.components for c in comp.checks)
    assert "What your code computes" not in render_submission(result)


# ------------------------------------------------------------------------- the HTML report


@pytest.mark.parametrize("view", ["learner", "instructor"])
def test_report_is_one_self_contained_file_without_scripts(result: GradeResult, view: str):
    html = render_submission(result, view=view)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert_self_contained(html)
    assert "<script" not in html.lower()  # nothing on the page needs JavaScript
    assert "<style>" in html


@pytest.mark.parametrize("view", ["learner", "instructor"])
def test_learner_controlled_text_is_escaped(result: GradeResult, view: str):
    html = render_submission(result, view=view)
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert_no_injected_markup(html)


def test_submission_path_traceback_hint_and_artifact_errors_are_escaped(result: GradeResult):
    result.submission = f"submissions/{SCRIPT}"
    check = result.components[0].checks[0]
    check.status, check.points = "error", 0.0
    check.traceback = f'  File "environment.py", line 1\n    {SCRIPT}'
    check.hint = f'"><svg onload=alert(3)>{SCRIPT}'
    check.counterexample = f"{SCRIPT}\n  expected: {SCRIPT}\n  got: [1.0]"
    result.artifacts["attention"]["learner"] = None
    result.artifacts["attention"]["error"] = f"RuntimeError: {SCRIPT}"
    html = render_submission(result, view="instructor")
    assert SCRIPT not in html and "<svg onload" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert_no_injected_markup(html)
    assert_self_contained(html)


def test_hidden_checks_show_name_and_points_only_in_the_learner_view(result: GradeResult):
    learner = render_submission(result, view="learner")
    for secret in SECRETS:
        assert secret not in learner, secret
    text = Tags(learner).plain()
    assert "hidden check long_sequences 0 / 2 points" in text
    assert "details are shown to instructors only" in text


def test_instructor_view_shows_hidden_checks_in_full(result: GradeResult):
    instructor = render_submission(result, view="instructor")
    for secret in SECRETS:
        assert secret in instructor, secret
    assert "Instructor view" in instructor


def test_report_shows_scores_per_component_and_the_total(result: GradeResult):
    text = Tags(render_submission(result)).plain()
    assert f"{result.score:g} / {result.max_score:g} points" in text
    assert "MultiHeadAttention 4 of 10 checks fail" in text
    assert "LayerNorm 4 of 5 checks fail" in text
    assert "graded in 12.3 s" in text and "torch 2.13.0+cpu" in text


def test_failed_check_shows_property_message_case_expected_got_and_hint(result: GradeResult):
    html = render_submission(result)
    text = Tags(html).plain()
    assert "PE[p, 2i] = sin(p / 10000^(2i/d))" in text
    assert "Position 0 should be [0, 1, 0, 1, ...]: every angle is 0 there." in text
    assert "Smallest case found seq_len=1, d_model=2" in text
    assert "Expected PE[0] [0.000, 1.000] Got PE[0] [1.000, 0.000]" in text
    assert "Hint: sin goes in the even features" in text
    assert '<pre class="counterexample">' in html


def test_a_crash_shows_its_traceback_and_the_call(result: GradeResult):
    text = Tags(render_submission(result)).plain()
    assert "Your code raised IndexError: tuple index out of range" in text
    assert 'Traceback (your code) File "feedforward.py", line 17, in gelu' in text
    assert "Called with gelu(float64 tensor of shape ())" in text


def test_long_tracebacks_are_trimmed_to_their_end(result: GradeResult):
    check = result.components[0].checks[0]
    check.status, check.points = "error", 0.0
    check.traceback = "\n".join(f"frame {i}" for i in range(200))
    text = Tags(render_submission(result)).plain()
    assert "frame 199" in text and "frame 5 " not in text
    assert "earlier lines not shown" in text


def test_not_implemented_component_is_one_friendly_line(result: GradeResult):
    html = render_submission(result)
    text = Tags(html).plain()
    assert (
        "greedy_decode — not implemented yet (0 / 3 points). Open transformer.py to begin." in text
    )
    assert "raised NotImplementedError" not in text


def test_forbidden_component_names_the_call_and_scores_zero(result: GradeResult):
    text = Tags(render_submission(result)).plain()
    assert "softmax calls torch.softmax (attention.py, line 21)" in text
    assert "The whole component scores 0 while this is in its code." in text


@pytest.mark.parametrize(
    ("isolation", "headline"),
    [
        ({"mode": "none", "trusted": False, "sandbox": "none"}, "Not tamper-proof."),
        (
            {"mode": "process", "trusted": True, "sandbox": "none (bubblewrap unavailable): x"},
            "Sandbox unavailable.",
        ),
        (
            {"mode": "process", "trusted": True, "sandbox": "bubblewrap: read-only root"},
            "Isolated (process).",
        ),
        (
            {"mode": "process", "trusted": False, "sandbox": "none (--sandbox none): x"},
            "Sandbox unavailable.",
        ),
        ({}, "Isolation unknown."),
    ],
)
def test_isolation_note_warns_unless_sandboxed(result: GradeResult, isolation: dict, headline: str):
    result.isolation = isolation
    html = render_submission(result)
    level = (
        "ok" if headline.startswith("Isolated") else ("danger" if "tamper" in headline else "warn")
    )
    assert f'<div class="banner {level}"' in html
    assert headline in Tags(html).plain()


def test_pictures_are_inline_svg_heatmaps_and_plots(result: GradeResult):
    html = render_submission(result)
    for key in ("attention", "positional_encoding", "layernorm"):
        assert f'class="figure figure-{key}"' in html
    # attention and positional encoding: reference, yours, difference; the diff: 3 more
    assert html.count('<svg class="heatmap"') == 9
    assert html.count('<svg class="plot"') == 2
    # the causal mask hides the upper triangle (15 cells of 6 x 6) in both attention maps
    assert html.count('fill="url(#hatch)"') == 30
    assert "row sum" in html and "Where your output differs" in html


def test_learner_attention_that_leaks_into_masked_cells_is_outlined(result: GradeResult):
    result.artifacts["attention"]["learner"][0][5] = 0.25
    html = render_submission(result)
    assert html.count('fill="url(#hatch)"') == 29
    assert "masked, but not 0" in html


def test_missing_or_partial_artifacts_render_nothing(result: GradeResult):
    result.artifacts = {
        "attention": {"description": "no reference"},
        "positional_encoding": {"reference": [[0.0, 1.0], [0.5]]},  # ragged
        "layernorm": {"reference": {"mean": [0.0]}},  # no var
        "something_new": {"reference": [[1.0]]},
    }
    html = render_submission(result)
    assert "What your code computes" not in html
    result.artifacts = None
    assert "What your code computes" not in render_submission(result)


def test_learner_picture_missing_says_why(result: GradeResult):
    result.artifacts["positional_encoding"].update(learner=None, error="NotImplementedError")
    result.artifacts["layernorm"].update(learner=None, error=None)
    result.artifacts["attention"].update(learner=None, error="not implemented yet")
    text = Tags(render_submission(result)).plain()
    assert "Not implemented yet: attention weights from your code will appear here." in text
    assert "Your code could not produce a positional encoding: NotImplementedError" in text
    assert "No LayerNorm outputs from your code" in text


def test_nan_values_are_drawn_not_crashed_on(result: GradeResult):
    result.artifacts["layernorm"]["learner"]["var"][2] = math.nan
    result.artifacts["attention"]["learner"][3][1] = None  # a strict encoder's NaN
    html = render_submission(result)
    assert "row 2: yours nan" in html and "[3, 1] nan" in html


def test_unknown_view_is_refused(result: GradeResult):
    with pytest.raises(ValueError, match="view"):
        render_submission(result, view="teacher")


# ------------------------------------------------------------------------- the class index


def test_class_index_links_every_student_and_escapes_names(result: GradeResult, tmp_path: Path):
    other = copy.deepcopy(result)
    other.components = other.components[:3]
    results = {"alice": result, SCRIPT: other, "index": result}
    index = write_class(results, tmp_path / "class")
    html = index.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    pages = sorted(p.name for p in (tmp_path / "class" / "submissions").glob("*.html"))
    assert pages == ["alice.html", "index.html", "script_alert_1_script.html"]
    for page in pages:
        assert f'href="submissions/{page}"' in html
    # the sorting script is the only script, inline
    assert html.count("<script") == 1 and "<script>" in html
    instructor_page = (tmp_path / "class" / "submissions" / "alice.html").read_text()
    assert "SECRET-MESSAGE" in instructor_page


def test_class_index_shows_missing_components_as_empty(result: GradeResult):
    partial = copy.deepcopy(result)
    partial.components = partial.components[:1]
    html = render_class({"a": result, "b": partial})
    assert html.count('data-sort="-1"') == len(result.components) - 1


def _class_of_three(result: GradeResult) -> dict[str, GradeResult]:
    """alice (the fixture), bob (alice without the LayerNorm bug), carol (all passed)."""
    bob, carol = copy.deepcopy(result), copy.deepcopy(result)
    for check in next(c for c in bob.components if c.name == "LayerNorm").checks:
        check.status, check.points = "passed", check.max_points
    for check in (k for c in carol.components for k in c.checks):
        check.status, check.points = "passed", check.max_points
    return {"alice": result, "bob": bob, "carol": carol}


def test_common_failures_count_students_per_failing_property(result: GradeResult):
    failures = common_failures(_class_of_three(result), top=None)
    keys = [(f.component, f.name) for f in failures]
    # failed and crashed checks only: not the forbidden softmax or the unstarted greedy_decode
    assert {c for c, _ in keys} == {
        "sinusoidal_positional_encoding",
        "MultiHeadAttention",
        "gelu",
        "LayerNorm",
    }
    assert all(f.graded == 3 for f in failures)
    # most students first, curriculum order among equals
    assert [f.count for f in failures] == [2] * 9 + [1] * 4
    assert keys[:2] == [
        ("sinusoidal_positional_encoding", "matches_closed_form"),
        ("sinusoidal_positional_encoding", "honours_base_and_dtype"),
    ]
    causality = failures[keys.index(("MultiHeadAttention", "causality"))]
    assert causality.students == ["alice", "bob"]
    assert round(causality.percent) == 67
    assert causality.hint.startswith("Future tokens leak into the past.")
    assert common_failures(_class_of_three(result))[-1] == failures[9]  # top 10


def test_common_failures_redact_hidden_checks_outside_the_instructor_view(result: GradeResult):
    results = _class_of_three(result)
    learner = render_class(results, view="learner")
    for secret in ("SECRET-TITLE", "SECRET-HINT"):
        assert secret not in learner
    (hidden,) = [f for f in common_failures(results, view="learner", top=None) if f.hidden]
    assert (hidden.name, hidden.title, hidden.hint, hidden.redacted) == (
        "long_sequences",
        "",
        "",
        True,
    )
    instructor = render_class(results)  # the class index is instructor-facing by default
    assert "SECRET-TITLE" in instructor and "SECRET-HINT apply the mask" in instructor
    with pytest.raises(ValueError, match="view"):
        render_class(results, view="teacher")


def test_class_index_shows_common_failures_escaped_with_links(result: GradeResult):
    results = _class_of_three(result)
    check = next(c for c in results["alice"].components if c.name == "gelu").checks[2]
    check.hint = f"{SCRIPT} use `approximate`"
    html = render_class(results, {"alice": "submissions/alice.html"})
    assert_self_contained(html)
    assert_no_injected_markup(html)
    assert (
        SCRIPT not in html
        and "&lt;script&gt;alert(1)&lt;/script&gt; use <code>approximate</code>" in html
    )
    section = Tags(html[html.index('<section class="card" id="common-failures"') :]).plain()
    assert section.startswith("Most common failing properties")
    assert "2 / 3 67 MultiHeadAttention with a causal mask, changing later tokens" in section
    assert '<a href="submissions/alice.html">alice</a>' in html
    assert "could not be graded" not in html


def test_class_index_lists_submissions_that_could_not_be_graded(result: GradeResult):
    html = render_class(
        {"alice": result},
        errors={"eve": f"eve.zip: member {SCRIPT!r} points outside the archive"},
        notes={"alice.zip": "name clash: alice/ is graded as 'alice'"},
    )
    assert SCRIPT not in html
    text = Tags(html).plain()
    assert "1 submission could not be graded. They are not in the table below." in text
    assert "eve : eve.zip: member '&lt;script&gt;" not in text  # escaped once, not twice
    assert "eve : eve.zip: member '<script>alert(1)</script>' points outside" in text
    assert "alice.zip : name clash: alice/ is graded as 'alice'" in text


def test_grades_csv_has_a_row_and_a_reason_for_ungraded_students(result: GradeResult, tmp_path):
    path = write_grades_csv(
        {"alice": result}, tmp_path / "grades.csv", errors={"=eve": "not a valid zip archive"}
    )
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames[-1] == "error"
    assert [(r["student"], r["score"], r["error"]) for r in rows] == [
        ("'=eve", "", "not a valid zip archive"),
        ("alice", f"{result.score:g}", ""),
    ]


# ------------------------------------------------------------------------- the CLI


def test_cli_report_writes_the_learner_view_by_default(tmp_path: Path):
    out = tmp_path / "report.html"
    run = CliRunner().invoke(main, ["report", str(FIXTURE), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "learner view" in run.output and "72 / 102" in run.output
    html = out.read_text(encoding="utf-8")
    assert "SECRET-MESSAGE" not in html and "alice" in html


def test_cli_report_instructor_view_and_folder_argument(tmp_path: Path):
    (tmp_path / "results.json").write_text(FIXTURE.read_text())
    run = CliRunner().invoke(main, ["report", str(tmp_path), "--view", "instructor"])
    assert run.exit_code == 0, run.output
    assert "SECRET-MESSAGE" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_cli_report_explains_a_broken_results_file(tmp_path: Path):
    bad = tmp_path / "results.json"
    bad.write_text("{ not json")
    run = CliRunner().invoke(main, ["report", str(bad)])
    assert run.exit_code == 1
    assert "is not a results.json written by llm-grade" in run.output


# ------------------------------------------------------------------------- grades.csv


def test_grades_csv_has_one_row_per_student_and_a_column_per_component(
    result: GradeResult, tmp_path: Path
):
    short = copy.deepcopy(result)
    short.components = short.components[:2]
    path = write_grades_csv(
        {"bob": short, "alice": result, "=cmd|' /C calc'!A0": short}, tmp_path / "grades.csv"
    )
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    names = [c.name for c in result.components]
    assert reader.fieldnames == ["student", "score", "max_score", *names]
    assert [r["student"] for r in rows] == ["'=cmd|' /C calc'!A0", "alice", "bob"]
    alice = rows[1]
    assert float(alice["score"]) == result.score and float(alice["max_score"]) == 102
    assert alice["MultiHeadAttention"] == "6" and alice["greedy_decode"] == "0"
    assert rows[2]["MultiHeadAttention"] == ""  # bob was not graded on it


def test_class_folder_loads_every_results_json(tmp_path: Path):
    for student in ("carol", "dave"):
        (tmp_path / student).mkdir()
        (tmp_path / student / "results.json").write_text(FIXTURE.read_text())
    (tmp_path / "notes").mkdir()
    assert sorted(load_class(tmp_path)) == ["carol", "dave"]


# ------------------------------------------------------------------------- Gradescope

# Gradescope's autograder results format, from
# https://gradescope-autograders.readthedocs.io/en/latest/specs/ ("Output format")
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
GRADESCOPE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": FORMAT,
        "test_output_format": FORMAT,
        "test_name_format": FORMAT,
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "name_format": FORMAT,
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": FORMAT,
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": VISIBILITY,
                    "extra_data": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "leaderboard": {"type": "array"},
    },
    "additionalProperties": False,
    # "score" is optional only when every test has one
    "anyOf": [
        {"required": ["score"]},
        {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}},
    ],
}


def test_gradescope_results_match_their_schema(result: GradeResult, tmp_path: Path):
    path = write_gradescope(result, tmp_path / "results.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(GRADESCOPE_SCHEMA)
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    assert data["score"] == result.score
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(result.score)
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(result.max_score)
    assert len(data["tests"]) == sum(len(c.checks) for c in result.components)


def test_gradescope_hidden_checks_keep_their_details_out(result: GradeResult):
    data = gradescope_results(result, hidden_visibility="hidden")
    dumped = json.dumps(data)
    for secret in SECRETS:
        assert secret not in dumped, secret
    hidden = [t for t in data["tests"] if "(hidden check)" in t["name"]]
    assert len(hidden) == 1 and hidden[0]["visibility"] == "hidden"
    assert hidden[0]["output"] == "Hidden check: its details are shown to instructors only."
    visible = [t for t in data["tests"] if t["status"] == "failed" and t not in hidden]
    assert all(t["visibility"] == "visible" and t["output"] for t in visible)
    assert [
        t["visibility"]
        for t in gradescope_results(result)["tests"]
        if "(hidden check)" in t["name"]
    ] == ["after_published"]


def test_gradescope_rejects_an_unknown_visibility(result: GradeResult):
    with pytest.raises(ValueError, match="visibility"):
        gradescope_results(result, hidden_visibility="secret")


# ------------------------------------------------------------------------- JUnit XML

# The structure of Jenkins' junit-10.xsd (jenkinsci/xunit-plugin), the de-facto JUnit schema:
# element -> (required attributes, optional attributes, allowed children)
_RESULT = (set(), {"type", "message"}, set())
JUNIT_10 = {
    "testsuites": (set(), {"name", "time", "tests", "failures", "errors"}, {"testsuite"}),
    "testsuite": (
        {"name", "tests", "failures", "errors"},
        {
            "group",
            "time",
            "skipped",
            "timestamp",
            "hostname",
            "id",
            "package",
            "file",
            "log",
            "url",
        },
        {"testsuite", "properties", "testcase", "system-out", "system-err"},
    ),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, set(), set()),
    "testcase": (
        {"name"},
        {"time", "classname", "group"},
        {
            "skipped",
            "error",
            "failure",
            "rerunFailure",
            "rerunError",
            "flakyFailure",
            "flakyError",
            "system-out",
            "system-err",
        },
    ),
    "failure": _RESULT,
    "error": _RESULT,
    "skipped": _RESULT,
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


def assert_junit_10(element: ElementTree.Element) -> None:
    assert element.tag in JUNIT_10, f"<{element.tag}> is not in junit-10.xsd"
    required, optional, children = JUNIT_10[element.tag]
    attrs = set(element.attrib)
    assert required <= attrs, f"<{element.tag}> lacks {required - attrs}"
    assert attrs <= required | optional, f"<{element.tag}> has {attrs - required - optional}"
    for name in ("tests", "failures", "errors", "skipped"):
        if name in element.attrib and element.tag in ("testsuites", "testsuite"):
            assert element.attrib[name].isdigit(), (element.tag, name)
    if "time" in element.attrib and element.tag != "testcase":
        assert SUREFIRE_TIME.fullmatch(element.attrib["time"]), element.attrib["time"]
    for child in element:
        assert child.tag in children, f"<{child.tag}> inside <{element.tag}>"
        assert_junit_10(child)


def test_junit_xml_has_a_suite_per_component_and_a_case_per_check(
    result: GradeResult, tmp_path: Path
):
    path = write_junit(result, tmp_path / "junit.xml")
    root = ElementTree.parse(path).getroot()
    assert root.tag == "testsuites"
    assert_junit_10(root)

    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == [c.name for c in result.components]
    for suite, component in zip(suites, result.components, strict=True):
        cases = list(suite)
        assert [c.name for c in cases] == [k.name for k in component.checks]
        assert suite.tests == len(component.checks)
        statuses = [k.status for k in component.checks]
        assert suite.errors == statuses.count("error")
        assert suite.failures == sum(
            s in ("failed", "not_implemented", "forbidden") for s in statuses
        )
    statuses = [k.status for c in result.components for k in c.checks]
    assert xml.tests == len(statuses) and xml.errors == statuses.count("error") == 2

    gelu = next(s for s in suites if s.name == "gelu")
    outcome = next(iter(gelu)).result[0]
    assert isinstance(outcome, Error)
    assert outcome.message == "Your code raised IndexError: tuple index out of range"
    assert "feedforward.py" in outcome.text
    softmax = next(iter(next(s for s in suites if s.name == "softmax")))
    assert isinstance(softmax.result[0], Failure) and softmax.result[0].type == "forbidden"


def test_junit_hides_hidden_checks_unless_instructor_view(result: GradeResult, tmp_path: Path):
    learner = write_junit(result, tmp_path / "learner.xml").read_text(encoding="utf-8")
    for secret in SECRETS[1:]:
        assert secret not in learner, secret
    assert 'message="hidden check did not pass"' in learner
    instructor = write_junit(result, tmp_path / "i.xml", view="instructor").read_text()
    assert "SECRET-MESSAGE" in instructor and "SECRET-HINT" in instructor


def test_junit_survives_control_characters_and_skipped_checks(result: GradeResult, tmp_path: Path):
    check = result.components[0].checks[0]
    check.status, check.points = "failed", 0.0
    check.message = "colour \x1b[31mred\x1b[0m, a NUL \x00 and a lone surrogate \ud800 <&>"
    skipped = result.components[1].checks[0]
    skipped.status, skipped.message = "skipped", "no GPU on this machine"
    path = write_junit(result, tmp_path / "junit.xml")
    assert_junit_10(ElementTree.parse(path).getroot())  # parses: no illegal characters left
    suites = list(JUnitXml.fromfile(str(path)))
    failure = next(iter(suites[0])).result[0]
    assert failure.message == "colour red, a NUL  and a lone surrogate  <&>"
    assert isinstance(next(iter(suites[1])).result[0], Skipped)
    assert suites[1].skipped == 1
    gradescope = json.dumps(gradescope_results(result))
    assert "\\u001b" not in gradescope and "\\u0000" not in gradescope


def test_exporters_read_results_json_without_rerunning_anything(tmp_path: Path):
    result = load_results(FIXTURE)
    assert junit_xml(result).tests == sum(len(c.checks) for c in result.components)
    with pytest.raises(ValueError, match="does not exist"):
        load_results(tmp_path)


def test_isolation_settings_read_as_settings_not_python(result: GradeResult):
    result.isolation = {
        "mode": "process",
        "trusted": True,
        "sandbox": "bubblewrap: read-only root",
        "limits": {"call_timeout_s": 20.0, "memory_mb": 2048, "tmp_mb": 64.5},
    }
    text = Tags(render_submission(result, view="instructor")).plain()
    assert "call_timeout_s = 20, memory_mb = 2048, tmp_mb = 64.5" in text
    assert "{" not in text.split("isolation.limits", 1)[1][:200]
    assert "isolation.trusted" in text and "yes" in text


def test_a_module_that_does_not_import_is_shown_once_per_component_in_the_report():
    from llm_grade.engine.results import CheckResult, ComponentResult
    from llm_grade.output.views import component_view

    def stopped(name: str) -> CheckResult:
        return CheckResult(
            name, "gelu", f"title {name}", "error", 0.0, 1.0,
            message="Your code raised SyntaxError: invalid syntax (feedforward.py, line 3)",
            traceback='  File "feedforward.py", line 3', hint="fix the line",
            blocked_by="feedforward.py",
        )

    view = component_view(
        ComponentResult("gelu", "feedforward", [stopped("a"), stopped("b"), stopped("c")]),
        learner_view=True,
    )
    assert view.label == "could not run: feedforward.py does not import"
    first, *rest = view.failed
    assert "SyntaxError" in first.message and first.traceback and first.hint
    for other in rest:
        assert other.message == (
            "Could not run: feedforward.py does not import (the error is shown under 'title a')."
        )
        assert not (other.traceback or other.hint)
