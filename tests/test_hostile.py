"""Hostile submissions are contained: grading completes, the attack earns nothing, honest
components keep their points, nothing outside the worker changes, no process survives."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from lg_paths import GRADERS, REFERENCE, REPO, STUBS

from llm_grade.engine.rubric import load_rubric
from llm_grade.engine.run import grade
from llm_grade.sandbox.confine import bubblewrap

sys.path.insert(0, str(Path(__file__).resolve().parent / "hostile"))
from corpus import ANCHORS, ATTACKS  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the worker sandbox is Linux-only")

# tight limits keep the corpus fast: timeouts and restarts cost seconds each
LIMITS = """
[limits]
call_timeout_s = 3
memory_mb = 1024
max_processes = 8
"""


@pytest.fixture(scope="module")
def fast_rubric(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rubric") / "rubric.toml"
    path.write_text((GRADERS / "rubric.toml").read_text() + LIMITS)
    return path


def _rubric(attack, folder: Path) -> Path:
    """The fast rubric, with the policy on or off as the attack asks, and its own limits."""
    text = (GRADERS / "rubric.toml").read_text() + LIMITS + attack.limits
    if not attack.policy:
        text += "\n[policy]\nenabled = false\n"
    path = folder / "rubric.toml"
    path.write_text(text)
    return path


# checks that never judge the value the attacked code returns
ELSEWHERE = ("rejects_", "starts_as_identity", "device_argument")

UNCLEAN = ("\x1b", "\r", "\u202e", "\x07", "\x9b")


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(cmdline.decode(errors="replace"))
    return found


def _insert(source: str, anchor: str, code: str) -> str:
    assert source.count(anchor) == 1, anchor
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    return source.replace(anchor, textwrap.indent(code, indent) + "\n" + anchor)


# the contributor's loop (-m "not slow") runs these; the suite runs every attack
QUICK_ATTACKS = {
    "infinite-loop",
    "segfault-via-ctypes",
    "os-exit-at-import",
    "forges-results-json",
    "sys-exit-in-forward",
}


@pytest.mark.parametrize(
    "attack",
    [pytest.param(a, marks=() if a.id in QUICK_ATTACKS else pytest.mark.slow) for a in ATTACKS],
    ids=[a.id for a in ATTACKS],
)
def test_attack_is_contained(attack, reference_copy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sentinel.txt").write_text("keep me")
    marker = f"{random.randint(10**6, 10**7)}.{os.getpid()}"
    code = attack.code.replace("{OUT}", str(out)).replace("{REPO}", str(REPO))
    code = code.replace("{MARKER}", marker)
    module, anchor = ANCHORS[attack.target]
    path = reference_copy / f"{module}.py"
    source = path.read_text()
    path.write_text(
        source + "\n" + code + "\n" if attack.at_import else _insert(source, anchor, code)
    )
    before = _tree_hash(REFERENCE)

    started = time.monotonic()
    result = grade(
        reference_copy,
        out=out,
        rubric=_rubric(attack, tmp_path),
        isolation="process",
        quiet=True,
        select=" or ".join((attack.target, *attack.honest)),
    )
    elapsed = time.monotonic() - started

    by_name = {c.name: c for c in result.components}
    target = by_name[attack.target]
    if attack.earns_nothing:
        # what the attacked call returns earns nothing; checks of what the rest of the
        # component does (its constructor's ValueErrors and initial weights, the device it
        # builds on) may still pass: that code is the reference's and honest
        earned = [(c.name, c.points) for c in target.checks if c.points > 0]
        assert all(name.startswith(ELSEWHERE) for name, _ in earned), (
            f"{attack.id}: the attack earned points: {earned}"
        )
        if attack.message:
            shown = " ".join(c.message for c in target.checks)
            assert attack.message.lower() in shown.lower(), shown
    else:
        assert target.score == target.max_score, [c.message for c in target.checks]
    for name in attack.honest:
        lost = [c.message for c in by_name[name].checks if c.points < c.max_points]
        assert by_name[name].score == by_name[name].max_score, f"{name} lost points: {lost}"
    # the trusted results file is ours, nothing else in the output folder changed
    raw = (out / "results.json").read_text()
    data = json.loads(raw)
    assert data["score"] == result.score and data["isolation"]["mode"] == "process"
    shown = json.dumps(data, ensure_ascii=False) + "".join(c.message for c in target.checks)
    assert not [c for c in UNCLEAN if c in shown], "learner text reached the results raw"
    assert (out / "sentinel.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "sentinel.txt"]
    assert _tree_hash(REFERENCE) == before
    assert Path.cwd() == REPO or Path.cwd().exists()
    time.sleep(0.2)
    assert _processes_with(marker) == [], "a process outlived the worker"
    assert elapsed < 120
    if attack.policy:  # refused from the source: the attack never ran in the worker
        assert {c.status for c in target.checks} == {"forbidden"}


def test_the_sandbox_is_bubblewrap_on_linux_ci():
    if os.environ.get("CI") and sys.platform == "linux":
        assert bubblewrap() is not None, ".ci/run installs bubblewrap; the sandbox must work"


@pytest.mark.slow
def test_a_batch_of_attacks_and_honest_submissions_scores_each_one_right(tmp_path, fast_rubric):
    """One grading run after another, as a class batch does: every score is right."""
    select = "softmax or padding_mask or LayerNorm or gelu or TokenEmbedding"
    honest = grade(REFERENCE, rubric=fast_rubric, quiet=True, select=select)
    by_id = {a.id: a for a in ATTACKS}
    batch = {"reference": (REFERENCE, honest.max_score), "stubs": (REPO / "stubs", 0.0)}
    for attack_id in (
        "os-exit-at-import",
        "infinite-loop",
        "forges-results-json",
        "sys-exit-in-forward",
        "segfault-via-ctypes",
    ):
        attack = by_id[attack_id]
        folder = tmp_path / attack_id
        folder.mkdir()
        for path in REFERENCE.glob("*.py"):
            (folder / path.name).write_text(path.read_text())
        module, anchor = ANCHORS[attack.target]
        code = attack.code.replace("{OUT}", str(tmp_path)).replace("{REPO}", str(REPO))
        source = (folder / f"{module}.py").read_text()
        (folder / f"{module}.py").write_text(
            source + "\n" + code + "\n" if attack.at_import else _insert(source, anchor, code)
        )
        lost = {c.name: c.max_score for c in honest.components}
        # an attack at import time costs every component of that module
        costs = (
            [c for c in honest.components if c.module == module]
            if attack.at_import
            else [c for c in honest.components if c.name == attack.target]
        )
        batch[attack_id] = (folder, honest.max_score - sum(lost[c.name] for c in costs))
    for name, (folder, expected) in batch.items():
        result = grade(folder, rubric=fast_rubric, isolation="process", quiet=True, select=select)
        assert result.score == expected, name


# ----------------------------------------------------------------------- the folder itself


def _copy(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for path in src.glob("*.py"):
        if path.name != "__init__.py":
            (dest / path.name).write_text(path.read_text())
    return dest


def _points(result, name: str) -> float:
    return next(c.score for c in result.components if c.name == name)


def test_a_submissions_init_py_never_runs(tmp_path, fast_rubric):
    folder = _copy(STUBS, tmp_path / "stubs-plus-init")
    (folder / "__init__.py").write_text(
        "import torch\nfrom . import attention\n"
        "attention.softmax = lambda x, dim=-1: torch.softmax(x, dim)\n"
    )
    result = grade(folder, rubric=fast_rubric, isolation="process", quiet=True, select="softmax")
    assert _points(result, "softmax") == 0
    assert {c.status for comp in result.components for c in comp.checks} == {"not_implemented"}
    assert any("__init__.py" in note for note in result.notes)


def test_a_symlink_to_trusted_code_is_not_graded(tmp_path, fast_rubric):
    folder = _copy(REFERENCE, tmp_path / "linked")
    (folder / "attention.py").unlink()
    (folder / "attention.py").symlink_to(REFERENCE / "attention.py")
    result = grade(
        folder, rubric=fast_rubric, isolation="process", quiet=True, select="softmax or gelu"
    )
    assert _points(result, "softmax") == 0
    assert _points(result, "gelu") == next(
        c.max_score for c in result.components if c.name == "gelu"
    )
    assert any("symbolic link" in note for note in result.notes)


def test_compiled_bytecode_shipped_with_a_submission_never_runs(tmp_path, fast_rubric):
    import importlib.util
    import py_compile

    folder = _copy(STUBS, tmp_path / "stubs-plus-pyc")
    cached = Path(importlib.util.cache_from_source(str(folder / "attention.py")))
    cached.parent.mkdir()
    py_compile.compile(
        str(REFERENCE / "attention.py"),
        cfile=str(cached),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    result = grade(folder, rubric=fast_rubric, isolation="process", quiet=True, select="softmax")
    assert _points(result, "softmax") == 0
    assert {c.status for comp in result.components for c in comp.checks} == {"not_implemented"}


def _cli() -> str:
    return str(Path(sys.executable).parent / "llm-grade")


def test_code_in_the_callers_folder_never_stands_in_for_the_grader(tmp_path, fast_rubric):
    """`cd submission && llm-grade grade .`: a pytest.py or an llm_grade/ folder there is the
    learner's, and must not run in the grading processes (--jobs 2 starts a helper)."""
    folder = _copy(STUBS, tmp_path / "sub")
    fake = "import sys\nprint('FAKE GRADER RAN')\nsys.exit(0)\n"
    (folder / "pytest.py").write_text(fake)
    (folder / "conftest.py").write_text(fake)
    (folder / "llm_grade").mkdir()
    (folder / "llm_grade" / "__init__.py").write_text(fake)
    (folder / "llm_grade" / "__main__.py").write_text(fake)
    out = tmp_path / "out"
    proc = subprocess.run(
        [_cli(), "grade", ".", "--jobs", "2", "-k", "softmax or gelu", "--out", str(out)]
        + ["--rubric", str(fast_rubric)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "FAKE GRADER RAN" not in proc.stdout + proc.stderr
    data = json.loads((out / "results.json").read_text())
    statuses = {t["status"] for c in data["components"] for t in c["tests"]}
    assert data["score"] == 0 and statuses == {"not_implemented"}  # both groups graded, for real


def test_an_llm_grade_folder_in_the_class_never_grades_the_class(tmp_path, fast_rubric):
    klass = tmp_path / "class"
    _copy(STUBS, klass / "stubby")
    (klass / "llm_grade").mkdir()
    forged = (
        "import json, pathlib, sys\nout = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'results.json').write_text(json.dumps({'score': 100}))\n"
    )
    (klass / "llm_grade" / "__init__.py").write_text("")
    (klass / "llm_grade" / "__main__.py").write_text(forged)
    proc = subprocess.run(
        [_cli(), "batch", ".", "--out", str(tmp_path / "out"), "-k", "softmax"]
        + ["--rubric", str(fast_rubric)]
        + ([] if bubblewrap() else ["--sandbox", "none"]),
        cwd=klass,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "out" / "students" / "stubby" / "results.json").read_text())
    assert data["score"] == 0 and data["max_score"] > 0


@pytest.mark.slow
def test_a_submission_slow_everywhere_finishes_within_its_time_budget(reference_copy, tmp_path):
    """Every call sleeps under the per-call limit: grading still ends at the budget, with a
    result for every check and a clear message on the ones it had no time for."""
    for component in ("softmax", "padding_mask", "gelu", "LayerNorm"):
        module, anchor = ANCHORS[component]
        path = reference_copy / f"{module}.py"
        path.write_text(_insert(path.read_text(), anchor, "import time\ntime.sleep(0.4)"))
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(
        (GRADERS / "rubric.toml").read_text()
        + "\n[limits]\ncall_timeout_s = 3\ncheck_budget_s = 1000\nbudget_s = 12\n"
        + "\n[policy]\nenabled = false\n"
    )
    started = time.monotonic()
    result = grade(
        reference_copy,
        out=tmp_path / "out",
        rubric=rubric,
        isolation="process",
        quiet=True,
        select="softmax or padding_mask or gelu or LayerNorm",
        jobs=1,
    )
    elapsed = time.monotonic() - started
    assert json.loads((tmp_path / "out" / "results.json").read_text())["score"] == result.score
    checks = [c for comp in result.components for c in comp.checks]
    rubric_checks = load_rubric(rubric).checks
    expected = sum(len(rubric_checks[c]) for c in ("softmax", "padding_mask", "gelu", "LayerNorm"))
    assert len(checks) == expected  # every check has a result
    assert any("Time budget exhausted" in c.message for c in checks)
    assert result.score < result.max_score
    assert elapsed < 12 + 30, elapsed  # the budget, plus starting Python, torch and the worker
