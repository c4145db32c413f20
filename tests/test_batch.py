"""Class-scale grading: every folder graded, exports written, unchanged work skipped."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

from click.testing import CliRunner
from lg_paths import REPO, STUBS

from llm_grade.cli import main


def test_batch_grades_each_folder_writes_exports_and_resumes(tmp_path: Path):
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copytree(REPO / "examples" / "buggy", klass / "bob")
    shutil.copytree(STUBS, klass / "carol")
    (klass / "notes").mkdir()  # not a submission: ignored
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main, ["batch", str(klass), "--out", str(out), "--jobs", "2", "--isolation", "none"]
    )
    assert result.exit_code == 0, result.output
    assert "Graded 2 of 2 submissions" in result.output
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert set(rows) == {"bob", "carol"}
    assert float(rows["carol"]["score"]) == 0
    assert 0 < float(rows["bob"]["score"]) < 100
    assert float(rows["bob"]["MultiHeadAttention"]) < 13
    for student in ("bob", "carol"):
        assert json.loads((out / student / "results.json").read_text())["max_score"] == 100
        assert (out / student / "gradescope.json").is_file()
        assert (out / student / "junit.xml").is_file()
        assert (out / "submissions" / f"{student}.html").is_file()
    assert "bob" in (out / "index.html").read_text()

    # unchanged submissions are not graded again; a changed one is
    (klass / "carol" / "attention.py").write_text((REPO / "reference" / "attention.py").read_text())
    started = time.perf_counter()
    again = CliRunner().invoke(
        main, ["batch", str(klass), "--out", str(out), "--isolation", "none"]
    )
    assert again.exit_code == 0, again.output
    assert "(1 unchanged, not graded again)" in again.output
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert float(rows["carol"]["softmax"]) == 6
    assert time.perf_counter() - started < 60
