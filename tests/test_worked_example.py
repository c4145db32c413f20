"""The tiny worked example (curriculum 1.2): scaled_dot_product_attention on 3 tokens with
d_k = 4, shown as small tables (inputs, scores, then weights and output expected next to the
learner's) in the report always, and in the terminal when attention loses points."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from lg_paths import REFERENCE

from llm_grade.engine.run import grade
from llm_grade.grading.visuals import WORKED_K, WORKED_Q, WORKED_V
from llm_grade.output.figures import worked_example_view
from llm_grade.output.report import render_submission
from llm_grade.output.terminal import worked_example_lines

SCALE = "    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)\n"
SELECT = "scaled_dot_product_attention"


def _by_hand() -> tuple[list, list]:
    """The weights and output computed here, the way a learner would on paper."""
    scores = [
        [sum(a * b for a, b in zip(q, k, strict=True)) / 2 for k in WORKED_K] for q in WORKED_Q
    ]
    weights = []
    for row in scores:
        e = [math.exp(s - max(row)) for s in row]
        weights.append([v / sum(e) for v in e])
    out = [[sum(w[j] * WORKED_V[j][c] for j in range(3)) for c in range(4)] for w in weights]
    return weights, out


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("worked")
    wrong = root / "wrong"
    shutil.copytree(REFERENCE, wrong, ignore=shutil.ignore_patterns("__pycache__"))
    source = (wrong / "attention.py").read_text()
    assert SCALE in source
    (wrong / "attention.py").write_text(
        source.replace(SCALE, SCALE.replace("math.sqrt(d_k)", "d_k"))
    )
    return {
        "right": grade(REFERENCE, select=SELECT, jobs=1, out=root / "right", quiet=True),
        "wrong": grade(wrong, select=SELECT, jobs=1, out=root / "wrong-out", quiet=True),
        "wrong_no_out": grade(wrong, select=SELECT, jobs=1, isolation="process", quiet=True),
    }


def test_the_reference_computes_the_example_as_by_hand(graded):
    data = graded["right"].artifacts["worked_example"]
    weights, out = _by_hand()
    assert data["scores"][0] == [1.0, 0.5, 2.0]  # halves a learner can check by hand
    for key, expected in (("weights", weights), ("out", out)):
        for got in (data["reference"][key], data["learner"][key]):
            assert all(
                abs(g - e) < 1e-4
                for gr, er in zip(got, expected, strict=True)
                for g, e in zip(gr, er, strict=True)
            )
    view = worked_example_view(data)
    assert not any(d for t in view["tables"] for d in t["differs"])
    assert view["inputs"][0] == (
        "q",
        [["2", "0", "1", "0"], ["0", "1", "0", "2"], ["1", "1", "1", "0"]],
    )


def test_a_wrong_scale_shows_in_the_report_and_the_terminal(graded):
    data = graded["wrong"].artifacts["worked_example"]
    view = worked_example_view(data)
    assert all(all(t["differs"]) for t in view["tables"])  # every row has distinct scores
    html = render_submission(graded["wrong"])
    assert 'id="worked-example"' in html and 'class="differs"' in html
    # without --out, the terminal still gets the example (attention lost points)
    assert "worked_example" in graded["wrong_no_out"].artifacts
    lines = worked_example_lines(graded["wrong_no_out"].artifacts["worked_example"])
    assert lines[0].startswith("Worked example")
    assert sum("<- differs" in line for line in lines) == 6  # 3 rows of weights, 3 of out
    assert any("1.000  0.500  2.000" in line for line in lines)  # the scores to check


def test_the_terminal_shows_it_only_when_attention_loses_points(graded, capsys):
    from llm_grade.output.terminal import TerminalReport, console

    for name, shown in (("right", False), ("wrong_no_out", True)):
        report = TerminalReport(out=console())
        report.finish(graded[name])
        text = capsys.readouterr().out
        assert ("Worked example" in text) is shown, text


def test_a_learner_that_returns_something_else_is_said_so(tmp_path):
    sub = tmp_path / "sub"
    shutil.copytree(REFERENCE, sub, ignore=shutil.ignore_patterns("__pycache__"))
    path = sub / "attention.py"
    source = path.read_text()
    # returns only the output: the example names what was expected
    path.write_text(
        source.replace("    return weights @ v, weights\n", "    return weights @ v\n", 1)
    )
    assert path.read_text() != source
    result = grade(sub, select=SELECT, jobs=1, out=tmp_path / "out", quiet=True)
    data = result.artifacts["worked_example"]
    assert (
        data["learner"] is None and "did not return (out [3, 4], weights [3, 3])" in data["error"]
    )
    view = worked_example_view(data)
    assert view["missing"] and all(t["got"] is None for t in view["tables"])
    assert Path(tmp_path / "out" / "results.json").exists()
