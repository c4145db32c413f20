"""Class-scale grading: every folder graded, exports written, unchanged work skipped; students
sandboxed from each other, in their own output folders, and their results sealed."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
from click.testing import CliRunner
from lg_paths import REFERENCE, REPO, STUBS

from benchmarks.make_class import fast_rubric
from llm_grade.classroom import batch, staging
from llm_grade.classroom.staging import (
    StagingError,
    StudentSubmission,
    content_hash,
    find_submissions,
    stage,
)
from llm_grade.cli import main
from llm_grade.engine.rubric import RubricError, load_rubric
from llm_grade.output.exporters import load_results
from llm_grade.sandbox.confine import bubblewrap

BWRAP = bubblewrap()
# tests that grade nothing, or grade with --isolation none, run where bubblewrap does not
SANDBOX = [] if BWRAP else ["--sandbox", "none"]


@pytest.mark.slow
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
        folder = out / "students" / student
        assert json.loads((folder / "results.json").read_text())["max_score"] == 100
        assert (folder / "gradescope.json").is_file()
        assert (folder / "junit.xml").is_file()
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
    submission = StudentSubmission("alice", _zip(tmp_path / "alice.zip", members), "zip")
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
        stage(StudentSubmission("mallory", archive, "zip"), dest)
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
    staged = stage(StudentSubmission("bob", notebook, "ipynb"), tmp_path / "staged")
    assert _tree(staged) == ["attention.py", "environment.py"]
    assert not list(tmp_path.rglob("escape.py"))


def test_plain_notebooks_are_read_and_those_without_graded_names_rejected(tmp_path: Path):
    plain = _notebook(tmp_path / "plain.ipynb", "import torch\nclass MultiHeadAttention: ...")
    assert staging.notebook_modules(plain) == {
        "attention.py": "# attention.py: extracted by llm-grade from plain.ipynb (definitions "
        "only)\n# --- plain.ipynb, cell 2 ---\nclass MultiHeadAttention: ...\n"
    }
    nothing = _notebook(tmp_path / "nothing.ipynb", "import torch\nprint(torch.ones(2))")
    with pytest.raises(StagingError, match="defines none of the graded names"):
        staging.notebook_modules(nothing)
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
    run = CliRunner().invoke(main, ["batch", str(klass), "--out", str(out), *SANDBOX])
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


# ------------------------------------------------------------------------- one class, many trusts


def _make_class(klass: Path, **students: Path) -> Path:
    """``klass/<name>/``: a copy of each folder (the reference or the stubs)."""
    for name, source in students.items():
        shutil.copytree(source, klass / name, ignore=shutil.ignore_patterns("__pycache__"))
    return klass


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "grades.csv").open(newline="", encoding="utf-8") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def test_each_grade_hides_the_class_folder_and_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The wiring of the sandbox, without grading: every `grade` is told to hide both."""
    klass = _make_class(tmp_path / "class", alice=STUBS)
    out = tmp_path / "out"
    calls = []

    def fake_grade(self, folder, options, timeout, origin=None):
        calls.append((options, self.cwd))
        return 1, "grading could not run: a reason"

    monkeypatch.setattr(batch, "bubblewrap", lambda: "/usr/bin/bwrap")
    monkeypatch.setattr(batch.GradingServer, "grade", fake_grade)
    (outcome,) = batch.grade_class(klass, out)
    assert "grading could not run: a reason" in outcome.error
    ((options, cwd),) = calls
    assert [str(p) for p in options.hide] == [str(klass.resolve()), str(out.resolve())]
    assert options.sandbox == "bubblewrap" and options.isolation == "process"
    assert options.out == out.resolve() / "students" / "alice"
    assert cwd == out.resolve()  # the job's grading process starts in a neutral folder


def test_batch_refuses_without_bubblewrap_unless_told_sandbox_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    klass = _make_class(tmp_path / "class", carol=STUBS)
    out = tmp_path / "out"
    monkeypatch.setattr(batch, "bubblewrap", lambda: None)
    args = ["batch", str(klass), "--out", str(out), "-k", "softmax"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1
    message = " ".join(refused.output.split())
    for part in (
        "bubblewrap (bwrap) is not available",
        "every student could read and change the other students' submissions and results",
        "`apt-get install bubblewrap`",
        "`--sandbox none`",
    ):
        assert part in message
    assert not out.exists()  # refused before anything was written

    rubric = fast_rubric(tmp_path / "rubric.toml")
    run = CliRunner().invoke(main, [*args, "--sandbox", "none", "--rubric", str(rubric)])
    assert run.exit_code == 0, run.output
    note = "the class was graded without a sandbox (--sandbox none)"
    assert f"Graded WITHOUT a sandbox: {note}" in run.output
    assert f"carol: {note}" in run.output
    assert note in " ".join((out / "index.html").read_text().split())
    result = load_results(out / "students" / "carol")
    assert result.isolation["sandbox"].startswith("none (--sandbox none)")


@pytest.mark.slow
def test_student_names_cannot_collide_with_the_class_files(tmp_path: Path):
    names = ("index.html", "grades.csv", "students", "submissions")
    klass = _make_class(
        tmp_path / "class", alice=REFERENCE, **{n: REFERENCE if "." in n else STUBS for n in names}
    )
    out = tmp_path / "out"
    run = CliRunner().invoke(
        main,
        ["batch", str(klass), "--out", str(out), "-j", "2", "-k", "softmax", "--isolation", "none"],
    )
    assert run.exit_code == 0, run.output
    assert "Graded 5 of 5 submissions." in run.output
    rows = _rows(out)
    assert set(rows) == {"alice", *names}
    for name in ("alice", "index.html", "grades.csv"):
        assert float(rows[name]["softmax"]) == 6, name
    assert float(rows["students"]["softmax"]) == float(rows["submissions"]["softmax"]) == 0
    index = (out / "index.html").read_text()
    for name in ("alice", *names):
        folder = out / "students" / name
        assert load_results(folder).max_score == 6, name
        assert (folder / "gradescope.json").is_file() and (folder / "junit.xml").is_file()
        assert f'href="submissions/{name}.html"' in index, name
        assert (out / "submissions" / f"{name}.html").is_file()


@pytest.mark.slow
def test_a_forged_results_json_is_graded_again_and_the_rest_is_skipped(tmp_path: Path):
    klass = _make_class(tmp_path / "class", alice=REFERENCE, carol=STUBS, dave=STUBS)
    out = tmp_path / "out"
    args = ["batch", str(klass), "--out", str(out), "-j", "2", "-k", "softmax"]
    args += ["--isolation", "none"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    key = out / ".llm-grade-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32

    # carol edits her score; dave copies alice's results and their (valid) stamp file
    carol = out / "students" / "carol" / "results.json"
    data = json.loads(carol.read_text())
    for component in data["components"]:
        for check in component["tests"]:
            check.update(status="passed", points=check["max_points"])
    data["score"] = data["max_score"]
    carol.write_text(json.dumps(data))
    assert load_results(carol).score == 6
    for name in ("results.json", "results.hmac"):
        shutil.copy(out / "students" / "alice" / name, out / "students" / "dave" / name)
    secret = key.read_bytes()

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "Graded 3 of 3 submissions (1 unchanged, not graded again)." in again.output
    rows = _rows(out)
    assert [float(rows[n]["softmax"]) for n in ("alice", "carol", "dave")] == [6, 0, 0]
    assert load_results(carol).score == 0
    assert key.read_bytes() == secret  # the key is kept: alice's results still verify


def _outside_tmp() -> Path:
    """A scratch folder outside /tmp: the worker's private /tmp already hides everything
    there, so a class under /tmp would not show that --hide does its part."""
    for base in ("/var/tmp", str(Path.home())):
        if Path(base).is_dir() and not Path(base).resolve().is_relative_to("/tmp"):
            try:
                return Path(tempfile.mkdtemp(prefix="llm-grade-test-", dir=base))
            except OSError:
                continue
    pytest.skip("no writable folder outside /tmp")


HOSTILE_SOFTMAX = '''

_honest_softmax = softmax
_TARGETS = {targets!r}


def _readable(path):
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError:
        return False
    return True


_LEAKED = [p for p in _TARGETS if _readable(p)]  # at import, in the worker


def softmax(x, dim=-1):
    """Right only if no classmate's file (nor the batch's key) could be read."""
    if _LEAKED:
        return torch.zeros_like(x)
    return _honest_softmax(x, dim)
'''


def _rubric_without_policy(dest: Path) -> Path:
    """The fast rubric with the static submission policy off: only the sandbox stops
    ``open()`` here. Also runs where no policy exists yet (unknown tables are ignored)."""
    path = fast_rubric(dest)
    path.write_text(path.read_text() + "\n[policy]\nenabled = false\n")
    return path


def _policy_can_be_disabled() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            load_rubric(_rubric_without_policy(Path(tmp) / "rubric.toml"))
        except RubricError:
            return False
    return True


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not available")
@pytest.mark.skipif(
    not _policy_can_be_disabled(), reason="the rubric loader rejects [policy] enabled = false"
)
@pytest.mark.slow
def test_a_submission_cannot_read_a_classmates_files(tmp_path: Path):
    root = _outside_tmp()
    try:
        klass = _make_class(root / "class", alice=REFERENCE, mallory=REFERENCE)
        out = root / "out"
        # the key exists before any worker starts (batch creates it first)
        targets = [str(klass / "alice" / "attention.py"), str(out / ".llm-grade-key")]
        hostile = klass / "mallory" / "attention.py"
        with hostile.open("a") as f:
            f.write(HOSTILE_SOFTMAX.format(targets=targets))
        rubric = _rubric_without_policy(tmp_path / "rubric.toml")
        run = CliRunner().invoke(
            main,
            ["batch", str(klass), "--out", str(out), "-j", "2", "-k", "softmax"]
            + ["--rubric", str(rubric), "--isolation", "process", "--sandbox", "bubblewrap"],
        )
        assert run.exit_code == 0, run.output
        for name in ("alice", "mallory"):
            result = load_results(out / "students" / name)
            assert result.isolation["sandbox"].startswith("bubblewrap"), name
            assert result.score == result.max_score == 6, (name, run.output)
        # outside the sandbox, mallory's code does read both, and then returns zeros
        spec = importlib.util.spec_from_file_location("mallory_attention", hostile)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module._LEAKED == targets
        assert not module.softmax(torch.ones(2, 3)).any()
    finally:
        shutil.rmtree(root, ignore_errors=True)
