"""Grading as a whole: the reference scores full marks, the stubs score zero, the torch.nn
variant scores full marks once the forbidden-API rule is off, and scores are deterministic."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lg_paths import GRADERS, REFERENCE, STUBS

from llm_grade.components import COMPONENTS, exactly
from llm_grade.engine.results import STATUSES
from llm_grade.engine.rubric import load_rubric
from llm_grade.engine.run import grade


@pytest.fixture(scope="module")
def reference_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return grade(REFERENCE, out=out, quiet=True), out


def test_reference_scores_full_marks(reference_result):
    result, _ = reference_result
    failing = [
        (c.component, c.name, c.message)
        for comp in result.components
        for c in comp.checks
        if c.status != "passed"
    ]
    assert failing == []
    assert result.score == result.max_score == load_rubric(GRADERS / "rubric.toml").total


def test_results_json_has_the_documented_shape(reference_result):
    _, out = reference_result
    data = json.loads((out / "results.json").read_text())
    assert {"submission", "score", "max_score", "duration_s", "environment", "components"} <= set(
        data
    )
    assert {"python", "torch", "device"} <= set(data["environment"])
    for component in data["components"]:
        assert component["name"] in COMPONENTS
        assert {"name", "score", "max_score", "tests"} <= set(component)
        for test in component["tests"]:
            assert {
                "name",
                "status",
                "points",
                "max_points",
                "message",
                "hint",
                "counterexample",
            } <= set(test)
            assert test["status"] in STATUSES


def test_stubs_score_zero_and_every_component_is_not_implemented():
    result = grade(STUBS, quiet=True)
    assert result.score == 0
    assert {c.status for comp in result.components for c in comp.checks} == {"not_implemented"}
    assert {comp.name for comp in result.components} == set(
        load_rubric(GRADERS / "rubric.toml").checks
    )


@pytest.mark.slow
def test_torch_nn_variant_scores_full_marks_without_the_forbidden_api_rule(
    rubric_without_forbidden_rule, torch_nn_variant
):
    result = grade(torch_nn_variant, rubric=rubric_without_forbidden_rule, quiet=True)
    failing = [
        (c.component, c.name, c.message)
        for comp in result.components
        for c in comp.checks
        if c.status != "passed"
    ]
    assert failing == []
    assert result.score == result.max_score


def test_torch_nn_variant_is_zeroed_where_the_rule_forbids_its_calls(torch_nn_variant):
    result = grade(
        torch_nn_variant, quiet=True, select="softmax or MultiHeadAttention or causal_mask"
    )
    by_name = {comp.name: comp for comp in result.components}
    for name in ("softmax", "MultiHeadAttention"):
        assert by_name[name].score == 0
        assert {c.status for c in by_name[name].checks} == {"forbidden"}
        assert re.search(r"calls torch\.\S+ \(\w+\.py, line \d+\)", by_name[name].checks[0].message)
    assert by_name["causal_mask"].score == by_name["causal_mask"].max_score


@pytest.mark.parametrize("policy", ["on", "off"])
def test_a_forbidden_call_hidden_from_the_source_scan_is_refused_or_caught_at_run_time(
    reference_copy, rubric_without_policy, policy
):
    """With the policy, the computed getattr is refused from the source; without it (an
    instructor's choice), the runtime layer still catches the call."""
    path = reference_copy / "attention.py"
    text = path.read_text()
    text = text.replace(
        "    x_max = x.amax(dim=dim, keepdim=True)",
        "    return getattr(torch, 'soft' + 'max')(x, dim)\n"
        "    x_max = x.amax(dim=dim, keepdim=True)",
    )
    path.write_text(text)
    rubric = None if policy == "on" else rubric_without_policy
    result = grade(reference_copy, quiet=True, select="softmax or LayerNorm", rubric=rubric)
    by_name = {c.name: c for c in result.components}
    assert by_name["softmax"].score == 0 and by_name["softmax"].status == "forbidden"
    expected = "computed getattr" if policy == "on" else "torch.softmax"
    assert expected in by_name["softmax"].checks[0].message
    assert by_name["LayerNorm"].score == by_name["LayerNorm"].max_score


@pytest.mark.slow
def test_same_submission_same_score_every_run(tmp_path: Path):
    buggy = REFERENCE.parent / "examples" / "buggy"
    # the modules with the example's bugs, and the end-to-end check (GPT): about 60 checks,
    # enough for --jobs 2 to start its second grading process
    chosen = [n for n, m in COMPONENTS.items() if m in ("embeddings", "attention", "normalization")]
    select = exactly([*chosen, "GPT"])
    first = grade(buggy, out=tmp_path / "a", quiet=True, select=select)
    # an exploring run in between must not leak its seed into the next grading
    grade(
        buggy,
        quiet=True,
        select="softmax",
        extra=["--hypothesis-profile=llm-grade-dev", "--hypothesis-seed=3"],
    )
    # and the second group of checks in a second process (--jobs 2) changes nothing either
    second = grade(buggy, out=tmp_path / "b", quiet=True, jobs=2, select=select)
    assert first.score == second.score < first.max_score

    def strip(path):
        data = json.loads((path / "results.json").read_text())
        for comp in data["components"]:
            for test in comp["tests"]:
                test.pop("duration_s")
        return data["components"]

    assert strip(tmp_path / "a") == strip(tmp_path / "b")


def test_every_rubric_entry_has_a_grader_and_every_grader_an_entry():
    rubric = load_rubric(GRADERS / "rubric.toml")
    found = set()
    pattern = r'^class Test\w+:\n    component = "(\w+)"(.*?)(?=^class |\Z)'
    for path in GRADERS.glob("test_*.py"):
        for component, body in re.findall(pattern, path.read_text(), flags=re.M | re.S):
            found.add(component)
            assert set(re.findall(r"def test_(\w+)\(", body)) == set(rubric.checks[component])
    assert found == set(rubric.checks) == set(COMPONENTS)
    assert rubric.total == 100


def test_no_internal_module_name_reaches_the_learner(reference_copy: Path, tmp_path: Path):
    (reference_copy / "normalization.py").unlink()
    result = grade(reference_copy, out=tmp_path, quiet=True, select="LayerNorm or EncoderLayer")
    text = (tmp_path / "results.json").read_text()
    assert "_llm_grade_submission" not in text
    messages = [c.message for comp in result.components for c in comp.checks]
    assert any("No module named 'normalization'" in m for m in messages), messages
