"""Reproducible regrades (llm_grade/engine/regrade.py): results.json records what made its
score, and `llm-grade regrade` repeats it, says what changed, and exits 1 when a score moved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from lg_paths import REPO

from llm_grade.cli import main
from llm_grade.engine.run import grade

EXAMPLE = REPO / "examples" / "buggy"


def _graded(tmp_path: Path) -> tuple[Path, Path]:
    submission = tmp_path / "alice"
    shutil.copytree(EXAMPLE, submission)
    out = tmp_path / "out"
    grade(submission, isolation="process", select="softmax or LayerNorm", quiet=True, out=out)
    return submission, out / "results.json"


def test_regrade_reproduces_an_unchanged_grade_and_flags_a_moved_one(tmp_path):
    submission, results = _graded(tmp_path)
    # results.json records what made the score
    env = json.loads(results.read_text())["environment"]
    assert {
        "llm_grade",
        "rubric_sha256",
        "torch",
        "hypothesis",
        "hypothesis_profile",
        "hypothesis_seed",
        "device",
        "select",
        "isolation",
        "submission_sha256",
    } <= set(env)
    assert env["hypothesis_profile"] == "llm-grade" and env["hypothesis_seed"] == "derandomized"
    assert env["select"] == "softmax or LayerNorm" and env["isolation"] == "process"
    same = CliRunner().invoke(main, ["regrade", str(results)])
    assert same.exit_code == 0, same.output
    assert "No score moved: the grade is reproduced." in same.output
    # the learner's code changed since: the regrade says how, and fails
    path = submission / "normalization.py"
    fixed = "var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)"
    path.write_text(path.read_text().replace("var = x.var(dim=-1, keepdim=True)", fixed))
    moved = CliRunner().invoke(main, ["regrade", str(results)])
    assert moved.exit_code == 1, moved.output
    assert "differs: submission SHA-256:" in moved.output
    assert "changed: LayerNorm.matches_reference: failed -> passed" in moved.output
    assert "A score moved." in moved.output


@pytest.mark.slow
def test_an_edited_score_does_not_survive_a_regrade(tmp_path):
    _, results = _graded(tmp_path)
    data = json.loads(results.read_text())
    for component in data["components"]:
        for check in component["tests"]:
            check["points"], check["status"] = check["max_points"], "passed"
    results.write_text(json.dumps(data))
    run = CliRunner().invoke(main, ["regrade", str(results)])
    assert run.exit_code == 1 and "A score moved." in run.output


def test_a_submission_that_is_gone_is_one_line(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"submission": str(tmp_path / "gone"), "components": []}))
    run = CliRunner().invoke(main, ["regrade", str(results)])
    assert run.exit_code == 1
    assert run.output.strip().endswith("does not exist any more")
