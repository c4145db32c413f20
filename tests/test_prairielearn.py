"""PrairieLearn (llm_grade/classroom/prairielearn.py): the external grader's entrypoint runs
on a simulated /grade folder and writes results.json in PrairieLearn's format."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
from lg_paths import REPO

from llm_grade.engine.run import grade

EXAMPLE = REPO / "examples" / "buggy"
SELECT = "softmax or LayerNorm"
# PrairieLearn's external grading results (docs: "Grading results"; what
# <pl-external-grader-results> renders)
SCHEMA = {
    "type": "object",
    "required": ["gradable"],
    "properties": {
        "gradable": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "message": {"type": "string"},
        "output": {"type": "string"},
        "format_errors": {"type": "array", "items": {"type": "string"}},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "points", "max_points"],
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "points": {"type": "number", "minimum": 0},
                    "max_points": {"type": "number", "minimum": 0},
                    "message": {"type": "string"},
                    "output": {"type": "string"},
                },
            },
        },
    },
    "if": {"properties": {"gradable": {"const": True}}},
    "then": {"required": ["score"]},
}


def _entrypoint(root: Path) -> dict:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_grade",
            "prairielearn",
            "run",
            "--root",
            str(root),
            "-k",
            SELECT,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(data, SCHEMA)
    assert len(json.dumps(data)) <= 1_000_000
    return data


def test_the_external_grader_scores_the_student_files_from_0_to_1(tmp_path):
    root = tmp_path / "grade"
    shutil.copytree(EXAMPLE, root / "student")
    (root / "tests").mkdir()
    data = _entrypoint(root)
    direct = grade(EXAMPLE, isolation="process", select=SELECT, quiet=True)
    assert data["gradable"] is True
    assert data["points"] == direct.score and data["max_points"] == direct.max_score
    assert abs(data["score"] - direct.score / direct.max_score) < 1e-6 and data["score"] < 1
    assert any(t["points"] == 0.5 for t in data["tests"])  # half points stay half points
    failing = [t for t in data["tests"] if t["points"] < t["max_points"]]
    assert failing and all("Hint" in t["output"] for t in failing[:1])


def test_nothing_gradable_costs_no_attempt(tmp_path):
    root = tmp_path / "grade"
    (root / "student").mkdir(parents=True)
    (root / "student" / "answer.txt").write_text("?")
    data = _entrypoint(root)
    assert data["gradable"] is False and "score" not in data
    (error,) = data["format_errors"]
    assert error.startswith("llm-grade could not grade this: ") and "answer.txt" in error
