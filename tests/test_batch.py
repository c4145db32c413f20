"""Class-scale grading: every folder graded, exports written, unchanged work skipped."""

from __future__ import annotations

import csv
import json
import re
import shutil
import stat
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from lg_paths import REFERENCE, REPO, STUBS

from llm_grade import staging
from llm_grade.cli import main
from llm_grade.staging import StagingError, Submission, content_hash, find_submissions, stage


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


# ------------------------------------------------------------------------- zips and notebooks


def _zip(path: Path, members: dict[str, str | bytes], **infos: int) -> Path:
    """A zip with ``members``; ``infos`` maps a member to the Unix mode to store for it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in infos:
                info.external_attr = infos[name] << 16
            zf.writestr(info, data)
    return path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("folder", ["", "my-llm/"])
def test_zip_modules_at_the_top_or_in_one_folder_are_staged(tmp_path: Path, folder: str):
    members = {f"{folder}{p.name}": p.read_text() for p in REFERENCE.glob("*.py")}
    members |= {
        f"{folder}notes.txt": "not code",
        f"{folder}__pycache__/attention.cpython-311.pyc": b"\0",
        f"__MACOSX/{folder}._attention.py": b"\0\5\26\7",
        f"{folder}helpers/util.py": "X = 1\n",
    }
    submission = Submission("alice", _zip(tmp_path / "alice.zip", members), "zip")
    staged = stage(submission, tmp_path / "staged" / "alice")
    expected = sorted([p.name for p in REFERENCE.glob("*.py")] + ["helpers", "helpers/util.py"])
    assert _tree(staged) == expected
    assert (staged / "attention.py").read_text() == (REFERENCE / "attention.py").read_text()


UNSAFE = {
    "absolute": ({"/tmp/attention.py": "x"}, {}, "points outside the archive"),
    "dot-dot": ({"attention.py": "x", "../../evil.py": "x"}, {}, "points outside the archive"),
    "backslash": ({"attention.py": "x", "..\\evil.py": "x"}, {}, "points outside the archive"),
    "drive": ({"C:/attention.py": "x"}, {}, "points outside the archive"),
    "symlink": (
        {"attention.py": "/etc/passwd"},
        {"attention.py": stat.S_IFLNK | 0o777},
        "is a symbolic link",
    ),
    "no-modules": ({"a/attention.py": "x", "b/blocks.py": "x"}, {}, "in 2 folders: a, b"),
    "empty": ({"README.md": "hi"}, {}, "no curriculum module"),
}


@pytest.mark.parametrize("case", UNSAFE, ids=list(UNSAFE))
def test_unsafe_or_empty_archives_are_rejected_and_nothing_is_written(tmp_path: Path, case: str):
    members, modes, message = UNSAFE[case]
    archive = _zip(tmp_path / "mallory.zip", members, **modes)
    dest = tmp_path / "out" / ".staged" / "mallory"
    with pytest.raises(StagingError, match=re.escape(message)):
        stage(Submission("mallory", archive, "zip"), dest)
    assert _tree(tmp_path) == ["mallory.zip", "out", "out/.staged", "out/.staged/mallory"]


def test_zip_bombs_and_junk_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(staging, "MAX_UNCOMPRESSED", 2**20)
    bomb = _zip(tmp_path / "bomb.zip", {"attention.py": b"\0" * (3 * 2**20)})
    assert bomb.stat().st_size < 20_000
    with pytest.raises(StagingError, match="would unpack to 3 MiB; at most 1 MiB"):
        staging.stage_zip(bomb, tmp_path / "a")
    monkeypatch.setattr(staging, "MAX_MEMBERS", 5)
    many = _zip(tmp_path / "many.zip", {f"m{i}.py": "" for i in range(6)})
    with pytest.raises(StagingError, match="6 members; at most 5"):
        staging.stage_zip(many, tmp_path / "b")
    (tmp_path / "junk.zip").write_bytes(b"PK\3\4 not really a zip")
    with pytest.raises(StagingError, match="not a valid zip archive"):
        staging.stage_zip(tmp_path / "junk.zip", tmp_path / "c")


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# My model")]
        + [nbformat.v4.new_code_cell(c) for c in cells]
    )
    nbformat.write(nb, str(path))
    return path


def test_notebook_cells_with_module_markers_become_modules(tmp_path: Path):
    notebook = _notebook(
        tmp_path / "bob.ipynb",
        "import torch\nprint('scratch: ignored')",
        "%%writefile attention.py\nA = 1",
        "%%writefile attention.py\nA = 2  # replaces the first, as Jupyter would",
        "%%writefile -a attention.py\nB = 3",
        "# %% environment.py\nimport torch\n%matplotlib inline\n!pip install x\nC = 4",
        "x = 5  # scratch between two cells of one module",
        "# %% environment.py\nD = C + 1",
        "%%writefile ../../escape.py\nE = 6",
        "%%writefile data/config.json\n{}",
        "# %% [markdown] not a module",
    )
    modules = staging.notebook_modules(notebook)
    assert sorted(modules) == ["attention.py", "environment.py"]
    code = {name: [ln for ln in text.splitlines() if ln] for name, text in modules.items()}
    assert code["attention.py"] == [
        "# --- bob.ipynb, cell 4 ---",
        "A = 2  # replaces the first, as Jupyter would",
        "# --- bob.ipynb, cell 5 ---",
        "B = 3",
    ]
    assert code["environment.py"] == [
        "# --- bob.ipynb, cell 6 ---",
        "import torch",
        "# %matplotlib inline",
        "# !pip install x",
        "C = 4",
        "# --- bob.ipynb, cell 8 ---",
        "D = C + 1",
    ]
    staged = stage(Submission("bob", notebook, "ipynb"), tmp_path / "staged")
    assert _tree(staged) == ["attention.py", "environment.py"]
    assert not list(tmp_path.rglob("escape.py"))


def test_notebooks_without_markers_or_not_notebooks_are_rejected(tmp_path: Path):
    plain = _notebook(tmp_path / "plain.ipynb", "import torch\nclass MultiHeadAttention: ...")
    with pytest.raises(StagingError, match="no code cell starts with a module marker"):
        staging.notebook_modules(plain)
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(StagingError, match="not a readable Jupyter notebook"):
        staging.notebook_modules(tmp_path / "broken.ipynb")


def test_name_clashes_are_resolved_deterministically_and_reported(tmp_path: Path):
    shutil.copytree(STUBS, tmp_path / "alice")
    _zip(tmp_path / "alice.zip", {"attention.py": "x"})
    _notebook(tmp_path / "alice.ipynb", "# %% attention.py\nx = 1")
    _zip(tmp_path / "bob.zip", {"attention.py": "x"})
    _zip(tmp_path / ".hidden.zip", {"attention.py": "x"})
    (tmp_path / "notes").mkdir()
    (tmp_path / "readme.txt").write_text("not a submission")
    found = find_submissions(tmp_path)
    assert [(s.name, s.path.name, s.kind) for s in found] == [
        ("alice", "alice", "folder"),
        ("alice.ipynb", "alice.ipynb", "ipynb"),
        ("alice.zip", "alice.zip", "zip"),
        ("bob", "bob.zip", "zip"),
    ]
    notes = {s.name: s.note for s in found}
    assert notes["alice.zip"] == (
        "name clash: alice/ is graded as 'alice', so alice.zip is graded as 'alice.zip'"
    )
    assert notes["alice"] == notes["bob"] == ""
    shutil.rmtree(tmp_path / "alice")  # without the folder, the zip comes first
    assert [s.name for s in find_submissions(tmp_path)] == ["alice", "alice.ipynb", "bob"]


def test_an_archive_hash_is_its_bytes(tmp_path: Path):
    archive = _zip(tmp_path / "a.zip", {"attention.py": "x = 1\n"})
    first = content_hash(archive)
    assert content_hash(archive) == first
    _zip(archive, {"attention.py": "x = 2\n"})
    assert content_hash(archive) != first


def test_batch_reports_an_archive_it_cannot_stage_without_grading_anything(tmp_path: Path):
    klass, out = tmp_path / "class", tmp_path / "out"
    klass.mkdir()
    _zip(klass / "eve.zip", {"attention.py": "x", "../escape.py": "x"})
    (klass / "frank.ipynb").write_text("{not json")
    run = CliRunner().invoke(main, ["batch", str(klass), "--out", str(out)])
    assert run.exit_code == 1
    assert "Graded 0 of 2 submissions." in run.output
    assert "eve: not graded: eve.zip: member '../escape.py' points outside" in run.output
    assert "frank: not graded: frank.ipynb: not a readable Jupyter notebook" in run.output
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [(r["student"], r["score"]) for r in rows] == [("eve", ""), ("frank", "")]
    assert "points outside the archive" in rows[0]["error"]
    index = (out / "index.html").read_text()
    assert "2 submissions could not be graded." in index
    assert not list(tmp_path.rglob("escape.py"))
