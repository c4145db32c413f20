"""Hostile submissions are contained: grading completes, the attack earns nothing, honest
components keep their points, nothing outside the worker changes, no process survives."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import textwrap
import time
from pathlib import Path

import pytest
from lg_paths import GRADERS, REFERENCE, REPO

from llm_grade.engine import grade
from llm_grade.isolation import bubblewrap

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


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack_is_contained(attack, reference_copy, tmp_path, fast_rubric):
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
        rubric=fast_rubric,
        isolation="process",
        quiet=True,
        select=" or ".join((attack.target, *attack.honest)),
    )
    elapsed = time.monotonic() - started

    by_name = {c.name: c for c in result.components}
    target = by_name[attack.target]
    if attack.earns_nothing:
        assert target.score == 0, f"{attack.id}: the attack earned {target.score} points"
        if attack.message:
            shown = " ".join(c.message for c in target.checks)
            assert attack.message.lower() in shown.lower(), shown
    else:
        assert target.score == target.max_score, [c.message for c in target.checks]
    for name in attack.honest:
        assert by_name[name].score == by_name[name].max_score, f"{name} lost points"
    # the trusted results file is ours, nothing else in the output folder changed
    data = json.loads((out / "results.json").read_text())
    assert data["score"] == result.score and data["isolation"]["mode"] == "process"
    assert (out / "sentinel.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "sentinel.txt"]
    assert _tree_hash(REFERENCE) == before
    assert Path.cwd() == REPO or Path.cwd().exists()
    time.sleep(0.2)
    assert _processes_with(marker) == [], "a process outlived the worker"
    assert elapsed < 120


def test_the_sandbox_is_bubblewrap_on_linux_ci():
    if os.environ.get("CI") and sys.platform == "linux":
        assert bubblewrap() is not None, ".ci/run installs bubblewrap; the sandbox must work"


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
