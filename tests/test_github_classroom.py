"""GitHub Classroom (llm_grade/classroom/github.py): the workflow `llm-grade classroom init`
writes is parsed, its steps are checked, and its own grading and rubric commands are run
here as a runner would run them (no network: the rubric is served from localhost)."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from lg_paths import GRADERS, REPO

from llm_grade import __version__
from llm_grade.cli import main

EXAMPLE = REPO / "examples" / "buggy"


def _init(repo: Path, *args: str) -> dict:
    run = CliRunner().invoke(main, ["classroom", "init", str(repo), *args])
    assert run.exit_code == 0, run.output
    return yaml.safe_load((repo / ".github" / "workflows" / "classroom.yml").read_text())


def _steps(workflow: dict) -> dict[str, dict]:
    (job,) = workflow["jobs"].values()
    return {step.get("name", step.get("uses")): step for step in job["steps"]}


def _run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A step's ``run`` as GitHub runs it (``bash -e``), with llm-grade on the PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_workflow_installs_a_pinned_grader_apart_from_the_submission(tmp_path):
    workflow = _init(tmp_path)
    assert workflow["name"] == "Autograding Tests"
    assert set(workflow["on"]) == {"push", "workflow_dispatch", "repository_dispatch"}
    assert workflow["permissions"] == {"checks": "write", "actions": "read", "contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["name"] == "Autograding Tests"  # the check run the reporter writes points to
    steps = _steps(workflow)
    checkout = steps["Check out the submission (apart from the grader)"]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["path"] == (
        "submission"
    )
    assert (
        "apt-get install -y -qq bubblewrap"
        in steps["Install bubblewrap (the sandbox learner code runs in)"]["run"]
    )
    install = steps["Install llm-grade (pinned)"]["run"]
    assert f'"llm-grade=={__version__}"' in install and "torch==2.13.0" in install
    # nothing of the learner's repository is installed, imported or used as a rubric
    text = json.dumps(workflow)
    assert "pip install -e" not in text and "submission/" not in install
    assert "--rubric" not in text  # the bundled rubric of the pinned version
    assert steps["The rubric"]["run"] == "llm-grade rubric"
    grade = steps["Grade"]["run"]
    assert "llm-grade grade submission --isolation process --sandbox bubblewrap" in grade
    upload = steps["Upload the report"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "llm-grade-results/" and upload["if"] == "always()"
    reporter = steps["Report the points to GitHub Classroom"]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    assert reporter["with"]["runners"] == "llmgrade"
    assert reporter["env"]["LLMGRADE_RESULTS"] == "${{ steps.llmgrade.outputs.result }}"
    assert steps["Grade"]["id"] == "llmgrade"
    # init never overwrites a workflow
    again = CliRunner().invoke(main, ["classroom", "init", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_the_grading_step_runs_here_and_reports_fractional_points(tmp_path):
    repo = tmp_path / "template"
    steps = _steps(_init(repo, "-k", "softmax or LayerNorm or MultiHeadAttention"))
    runner = tmp_path / "runner"
    shutil.copytree(EXAMPLE, runner / "submission")  # what actions/checkout put there
    output, summary = runner / "output", runner / "summary.md"
    env = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    run = _run_step(steps["Grade"]["run"], runner, env)
    assert run.returncode == 0, run.stdout + run.stderr
    (line,) = output.read_text().splitlines()
    assert line.startswith("result=")
    data = json.loads(base64.b64decode(line.removeprefix("result=")))
    assert data["version"] == 1 and data["status"] == "fail"
    results = json.loads((runner / "llm-grade-results" / "results.json").read_text())
    assert data["max_score"] == results["max_score"]
    assert sum(t["score"] for t in data["tests"]) == results["score"]
    assert any(0 < t["score"] < 1 for t in data["tests"])  # fractional points kept
    failing = [t for t in data["tests"] if t["status"] == "fail"]
    assert failing and all(t["message"] and "Hint" in t["message"] for t in failing[:1])
    assert {t["status"] for t in data["tests"]} <= {"pass", "fail", "error"}
    assert "| `LayerNorm` | 2.5 / 6 |" in summary.read_text()
    assert (runner / "llm-grade-results" / "report.html").is_file()


def test_a_published_rubric_is_checked_against_its_hash(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(GRADERS / "rubric.toml", served / "rubric.toml")
    digest = hashlib.sha256((served / "rubric.toml").read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/rubric.toml"
    try:
        for sha, ok in ((digest, True), ("0" * 64, False)):
            repo = tmp_path / f"repo-{ok}"
            steps = _steps(_init(repo, "--rubric-url", url, "--rubric-sha256", sha))
            runner = tmp_path / f"runner-{ok}"
            runner.mkdir()
            env_file = runner / "env"
            fetch = steps["Fetch the instructor's rubric (checked against its SHA-256)"]["run"]
            env = {"RUNNER_TEMP": str(runner), "GITHUB_ENV": str(env_file)}
            run = _run_step(fetch, runner, env)
            assert (run.returncode == 0) is ok, run.stdout + run.stderr
            if ok:
                assert env_file.read_text().strip() == f"RUBRIC={runner}/rubric.toml"
                shown = _run_step(
                    steps["The rubric"]["run"], runner, {"RUBRIC": str(runner / "rubric.toml")}
                )
                assert f"sha256: {digest}" in shown.stdout
                assert '--rubric "$RUBRIC"' in steps["Grade"]["run"]
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rubric-url", "https://x/r.toml"], "go together"),
        (["--rubric-url", "https://x/r.toml", "--rubric-sha256", "abc"], "64 hexadecimal"),
        (["--package", 'llm-grade"; curl evil'], "may not hold quotes"),
        (["--submission", "../other"], "inside the repository"),
    ],
)
def test_init_refuses_what_would_not_be_a_safe_workflow(tmp_path, args, message):
    run = CliRunner().invoke(main, ["classroom", "init", str(tmp_path), *args])
    assert run.exit_code == 1 and message in run.output
    assert not (tmp_path / ".github").exists()


def test_a_notebook_repository_is_graded_as_a_notebook(tmp_path):
    steps = _steps(_init(tmp_path, "--submission", "work.ipynb"))
    assert "llm-grade grade submission/work.ipynb --isolation process" in steps["Grade"]["run"]
