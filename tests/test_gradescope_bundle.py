"""Gradescope (llm_grade/classroom/gradescope.py): the autograder zip is built, unpacked into a
simulated /autograder (its root moved by LLM_GRADE_AUTOGRADER_ROOT), and its run_autograder
is run as Gradescope runs it, on a folder, a notebook and an empty submission; every
results.json it writes passes Gradescope's schema."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from lg_paths import GRADERS, REPO
from notebooks import as_notebook
from test_reports import GRADESCOPE_SCHEMA

from llm_grade import __version__
from llm_grade.cli import main
from llm_grade.engine.run import grade
from llm_grade.output.exporters import HIDDEN_LINE

EXAMPLE = REPO / "examples" / "buggy"
SELECT = "softmax or LayerNorm"


@pytest.fixture(scope="module")
def hidden_rubric(tmp_path_factory) -> Path:
    """The bundled rubric with one hidden check (softmax.stable_per_row)."""
    text = (GRADERS / "rubric.toml").read_text()
    assert "checks.stable_per_row = 1\n" in text
    path = tmp_path_factory.mktemp("rubric") / "rubric.toml"
    softmax = text.index("[components.softmax]")  # LayerNorm has a stable_per_row too
    head, tail = text[:softmax], text[softmax:]
    tail = tail.replace(
        "checks.stable_per_row = 1\n", "checks.stable_per_row = { points = 1, hidden = true }\n", 1
    )
    path.write_text(head + tail)
    return path


@pytest.fixture(scope="module")
def autograder(tmp_path_factory, hidden_rubric) -> Path:
    """The bundle, built through the command line."""
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    run = CliRunner().invoke(
        main,
        ["gradescope", "bundle", "--out", str(out), "--rubric", str(hidden_rubric), "-k", SELECT],
    )
    assert run.exit_code == 0, run.output
    return out


def _autograder_root(tmp_path: Path, bundle: Path) -> Path:
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # zipfile does not restore modes: as Gradescope's unzip does
            mode = info.external_attr >> 16
            if mode:
                os.chmod(root / "source" / info.filename, stat.S_IMODE(mode))
    (root / "submission").mkdir()
    return root


def _run_autograder(root: Path) -> dict:
    env = {**os.environ, "LLM_GRADE_AUTOGRADER_ROOT": str(root), "LLM_GRADE_PYTHON": sys.executable}
    run = subprocess.run(
        [str(root / "source" / "run_autograder")],
        env=env,
        cwd=root / "source",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    return data


def test_the_bundle_holds_the_setup_the_runner_the_rubric_and_pinned_requirements(
    autograder, hidden_rubric
):
    with zipfile.ZipFile(autograder) as zf:
        names = sorted(zf.namelist())
        assert names == [
            "llm-grade.json",
            "requirements.txt",
            "rubric.toml",
            "run_autograder",
            "setup.sh",
        ]
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in zf.infolist()}
        assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
        requirements = zf.read("requirements.txt").decode().splitlines()
        assert "torch==2.13.0" in requirements and f"llm-grade=={__version__}" in requirements
        assert zf.read("rubric.toml") == hidden_rubric.read_bytes()
        meta = json.loads(zf.read("llm-grade.json"))
        assert meta["rubric_sha256"] == hashlib.sha256(hidden_rubric.read_bytes()).hexdigest()
        setup = zf.read("setup.sh").decode()
        assert "apt-get install" in setup and "bubblewrap" in setup
        assert "pip install --quiet -r requirements.txt" in setup


def test_run_autograder_grades_a_folder_as_llm_grade_does(tmp_path, autograder, hidden_rubric):
    root = _autograder_root(tmp_path, autograder)
    shutil.copytree(EXAMPLE, root / "submission" / "my-llm")  # a GitHub upload: one folder
    data = _run_autograder(root)
    direct = grade(EXAMPLE, isolation="process", rubric=hidden_rubric, select=SELECT, quiet=True)
    assert data["score"] == direct.score < direct.max_score
    assert sum(t["max_score"] for t in data["tests"]) == direct.max_score
    (hidden,) = [t for t in data["tests"] if "(hidden check)" in t["name"]]
    assert hidden["output"] == HIDDEN_LINE and hidden["visibility"] == "after_published"
    assert "stable_per_row" in hidden["name"]


@pytest.mark.slow
def test_run_autograder_grades_an_uploaded_notebook(tmp_path, autograder):
    root = _autograder_root(tmp_path, autograder)
    as_notebook(EXAMPLE, root / "submission" / "work.ipynb", modules=("attention", "normalization"))
    data = _run_autograder(root)
    layernorm = [t for t in data["tests"] if t["name"].startswith("LayerNorm")]
    assert layernorm and sum(t["score"] for t in layernorm) == 2.5  # examples/buggy's LayerNorm


def test_a_submission_that_cannot_be_graded_still_gets_results(tmp_path, autograder):
    root = _autograder_root(tmp_path, autograder)
    (root / "submission" / "notes.txt").write_text("I did not finish")
    data = _run_autograder(root)
    assert data["score"] == 0 and data["tests"] == []
    assert data["output"].startswith("llm-grade could not grade this submission: ")
    assert "notes.txt" in data["output"]


def test_a_broken_rubric_is_refused_when_bundling(tmp_path):
    bad = tmp_path / "rubric.toml"
    bad.write_text("[components.softmax\nchecks = ")
    run = CliRunner().invoke(
        main, ["gradescope", "bundle", "--out", str(tmp_path / "a.zip"), "--rubric", str(bad)]
    )
    assert run.exit_code == 1 and not (tmp_path / "a.zip").exists()
