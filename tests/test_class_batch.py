"""A class of 30 generated submissions graded by `llm-grade batch --jobs 2`, end to end.

The class (benchmarks/make_class.py) mixes correct, buggy (single-bug variants from
tests/bugs and examples/buggy), not-started, partial and hostile submissions, including
zipped and notebook ones; one unsafe archive whose name clashes with a folder is added here.
Every expectation is checked against results.json, grades.csv, the Gradescope and JUnit
exports and the class index.

To keep CI under two minutes on two cores, grading is restricted with ``-k`` to the ten
components the planted bugs and attacks touch (make_class.SELECTED: about 45 of the 100 points),
with the rubric's own points and example counts and tighter worker limits
(make_class.fast_rubric). Learner code runs in the sandboxed worker (``--isolation process``),
as hostile code must, in bubblewrap where it works (``--sandbox none`` elsewhere); the batch's
fixed cost per submission (two Python + torch starts) is what dominates.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest
from click.testing import CliRunner, Result
from junitparser import Error, Failure, JUnitXml
from lg_paths import GRADERS
from test_reports import GRADESCOPE_SCHEMA, Tags

from benchmarks.make_class import SELECT, SELECTED, Expected, fast_rubric, make_class, problems
from llm_grade.cli import main
from llm_grade.engine.results import GradeResult
from llm_grade.engine.rubric import load_rubric
from llm_grade.output.classes import common_failures
from llm_grade.output.exporters import load_results
from llm_grade.sandbox.confine import bubblewrap

pytestmark = pytest.mark.slow

BAD_ZIP = "correct-01.zip"  # clashes with the folder correct-01/, and escapes the archive
RUBRIC = load_rubric(GRADERS / "rubric.toml")
TOTAL = sum(spec.points for name in SELECTED for spec in RUBRIC.checks[name].values())


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("class-batch")
    klass, out = root / "class", root / "out"
    expected = make_class(klass, 30)
    with zipfile.ZipFile(klass / BAD_ZIP, "w") as zf:
        zf.writestr("attention.py", "x = 1\n")
        zf.writestr("../escape.py", "x = 2\n")
    rubric = fast_rubric(root / "rubric.toml")
    args = ["batch", str(klass), "--out", str(out), "--jobs", "2", "--rubric", str(rubric)]
    args += ["--isolation", "process", "-k", SELECT]
    args += ["--sandbox", "bubblewrap" if bubblewrap() else "none"]
    run = CliRunner().invoke(main, args)
    students = out / "students"
    missing = [name for name in expected if not (students / name / "results.json").is_file()]
    assert not missing, f"not graded: {missing}\n{run.output}"
    results = {name: load_results(students / name) for name in expected}
    return {
        "klass": klass,
        "out": out,
        "args": args,
        "expected": expected,
        "run": run,
        "results": results,
    }


def _exact_score(result: GradeResult, expected: Expected) -> float:
    return sum(c.max_score for c in result.components if c.name not in expected.zero)


def test_the_class_is_a_mix_of_every_kind_and_form(graded):
    expected: dict[str, Expected] = graded["expected"]
    assert len(expected) == 30
    kinds = {e.kind for e in expected.values()}
    assert kinds == {"correct", "buggy", "stubs", "partial", "hostile"}
    forms = [e.form for e in expected.values()]
    assert forms.count("zip") >= 2 and forms.count("ipynb") >= 2


def test_batch_grades_everything_but_the_unsafe_archive(graded):
    run: Result = graded["run"]
    assert run.exit_code == 1, run.output  # one submission could not be graded
    assert "Graded 30 of 31 submissions." in run.output
    assert (
        "correct-01.zip: name clash: correct-01/ is graded as 'correct-01', "
        "so correct-01.zip is graded as 'correct-01.zip'" in run.output
    )
    assert "correct-01.zip: not graded: correct-01.zip: member '../escape.py' points outside" in (
        run.output
    )
    out: Path = graded["out"]
    assert not (out / ".staged" / "escape.py").exists()
    assert not list(out.rglob("escape.py"))
    assert not (out / "students" / "correct-01.zip" / "results.json").exists()


def test_every_student_scores_as_expected(graded):
    wrong = {}
    for name, expected in graded["expected"].items():
        result: GradeResult = graded["results"][name]
        assert result.max_score == TOTAL, name  # the -k selection
        found = problems(result, expected)
        if expected.exact and result.score != _exact_score(result, expected):
            found.append(f"score {result.score:g}, expected {_exact_score(result, expected):g}")
        if found:
            wrong[name] = found
    assert not wrong, wrong
    results = graded["results"]
    assert results["correct-01"].score == results["correct-notebook"].score == TOTAL
    assert results["correct-zip"].score == TOTAL
    assert results["stubs-1"].score == 0
    assert all(r.isolation["mode"] == "process" for r in results.values())


def test_buggy_and_hostile_students_lose_exactly_their_components(graded):
    results, expected = graded["results"], graded["expected"]
    for name, e in expected.items():
        if e.kind not in ("buggy", "hostile"):
            continue
        losing = {c.name for c in results[name].components if c.score < c.max_score}
        assert losing == set(e.lose or e.zero) & {c.name for c in results[name].components}, name


def test_grades_csv_has_a_row_per_student_and_the_error(graded):
    with (graded["out"] / "grades.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = {r["student"]: r for r in reader}
    assert reader.fieldnames[-1] == "error"
    assert set(rows) == {*graded["expected"], BAD_ZIP}
    for name, result in graded["results"].items():
        assert float(rows[name]["score"]) == result.score, name
        assert float(rows[name]["max_score"]) == TOTAL
        assert rows[name]["error"] == ""
        for component in result.components:
            assert float(rows[name][component.name]) == component.score
    bad = rows[BAD_ZIP]
    assert bad["score"] == "" and "points outside the archive" in bad["error"]


def test_gradescope_exports_match_the_schema_and_the_scores(graded):
    jsonschema.Draft7Validator.check_schema(GRADESCOPE_SCHEMA)
    for name, result in graded["results"].items():
        data = json.loads((graded["out"] / "students" / name / "gradescope.json").read_text())
        jsonschema.validate(data, GRADESCOPE_SCHEMA)
        assert data["score"] == result.score
        assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(TOTAL)


def test_junit_exports_parse_and_count_the_failures(graded):
    for name, result in graded["results"].items():
        xml = JUnitXml.fromfile(str(graded["out"] / "students" / name / "junit.xml"))
        checks = [k for c in result.components for k in c.checks]
        assert xml.tests == len(checks), name
        outcomes = [r for suite in xml for case in suite for r in case.result]
        assert sum(isinstance(r, Error) for r in outcomes) == sum(
            k.status == "error" for k in checks
        )
        assert sum(isinstance(r, Failure) and not isinstance(r, Error) for r in outcomes) == sum(
            k.status in ("failed", "not_implemented", "forbidden") for k in checks
        )
    stubs = JUnitXml.fromfile(str(graded["out"] / "students" / "stubs-2" / "junit.xml"))
    assert stubs.failures == stubs.tests


def everything_of(graded):
    return common_failures(graded["results"], top=None)


def test_class_index_lists_students_errors_and_common_failures(graded):
    html = (graded["out"] / "index.html").read_text(encoding="utf-8")
    for name in graded["expected"]:
        assert f'href="submissions/{name}.html"' in html, name
    text = Tags(html).plain()
    assert "1 submission could not be graded." in text
    assert "correct-01.zip : correct-01.zip: member '../escape.py' points outside" in text
    assert "correct-01.zip : name clash: correct-01/ is graded as 'correct-01'" in text

    section_html = html[html.index('id="common-failures"') :]
    section = Tags(section_html).plain()
    top = common_failures(graded["results"])
    counts = [f.count for f in top]
    assert len(top) == 10 and counts == sorted(counts, reverse=True) and counts[0] == 3
    assert re.findall(r'<td class="num">(\d+) / 30</td>', section_html) == [str(n) for n in counts]
    squeezed = re.sub(r"\s+", "", section)
    for failure in top:  # (backticked names are set in <code>)
        for shown in (f"{failure.title}({failure.name})", f"Hint:{failure.hint}"):
            assert re.sub(r"\s+", "", shown.replace("`", "")) in squeezed, shown
    # the most common planted bug: the mask applied after the softmax, in 3 submissions
    (causality,) = [f for f in top if (f.component, f.name) == ("MultiHeadAttention", "causality")]
    # it is a secondary check: its hint points at the equivalence check, which has the fix
    assert causality.count == 3 and "Probably the same bug as" in causality.hint
    (equivalence,) = [
        f
        for f in everything_of(graded)
        if (f.component, f.name) == ("MultiHeadAttention", "matches_reference")
    ]
    assert "*before* the softmax" in equivalence.hint
    assert causality.students == [
        "bug-mha-mask-after-softmax-1",
        "bug-mha-mask-after-softmax-2",
        "buggy-example",
    ]
    assert (
        '<a href="submissions/bug-mha-mask-after-softmax-1.html">bug-mha-mask-after-softmax-1</a>'
        in section_html
    )

    # every planted bug costs a failing property that names the student (problems() checked
    # the bug's hint), and nothing else does: correct students fail nothing
    everything = common_failures(graded["results"], top=None)
    for name, e in graded["expected"].items():
        failing = {f.component for f in everything if name in f.students}
        if e.kind == "buggy":
            assert failing == set(e.lose), name
        elif e.kind == "correct":
            assert not failing, name
    # not-started work is not a "failing property"
    assert all(f.statuses.keys() <= {"failed", "error"} for f in everything)


def test_a_second_run_skips_unchanged_submissions_and_regrades_a_changed_notebook(graded):
    klass: Path = graded["klass"]
    staged = graded["out"] / ".staged" / "correct-zip" / "attention.py"
    before = staged.stat().st_mtime_ns
    notebook = klass / "partial-notebook.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('one more scratch cell')"))
    nbformat.write(nb, str(notebook))
    run = CliRunner().invoke(main, graded["args"])
    assert run.exit_code == 1, run.output
    assert "Graded 30 of 31 submissions (29 unchanged, not graded again)." in run.output
    assert staged.stat().st_mtime_ns == before  # an unchanged zip is not even unpacked again
    result = load_results(graded["out"] / "students" / "partial-notebook")
    expected = graded["expected"]["partial-notebook"]
    assert 0 < result.score == _exact_score(result, expected) < TOTAL
