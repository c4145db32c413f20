"""Process isolation: same scores as in-process on honest submissions, a fallback without
bubblewrap that says so, and hidden checks that learners never see the details of."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from lg_paths import GRADERS, REFERENCE, REPO, STUBS

from llm_grade.engine.feedback import format_report
from llm_grade.engine.run import grade
from llm_grade.grading.outcomes import WorkerFailure
from llm_grade.sandbox.handle import open_submission

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the worker sandbox is Linux-only")

BUGGY = REPO / "examples" / "buggy"


def _scores(result):
    return {
        (c.component, c.name): (c.status, c.points)
        for comp in result.components
        for c in comp.checks
    }


@pytest.mark.slow
# the buggy example has both passing and failing checks in every module (and the reference,
# module by module, scores full marks sandboxed in tests/test_notebook_roundtrip.py)
@pytest.mark.parametrize("submission", [BUGGY, STUBS], ids=["buggy", "stubs"])
def test_process_isolation_scores_like_in_process(submission, tmp_path):
    in_process = grade(submission, quiet=True, isolation="none")
    isolated = grade(submission, quiet=True, isolation="process")
    assert _scores(isolated) == _scores(in_process)
    assert isolated.isolation["mode"] == "process" and isolated.isolation["trusted"]
    assert in_process.isolation["trusted"] is False
    if submission == BUGGY:  # the same code as a plain learner notebook (no markers, noise
        # cells between the definitions: tests/notebooks.py) scores the same, check by check
        from notebooks import as_notebook

        notebook = as_notebook(BUGGY, tmp_path / "work.ipynb")
        from_notebook = grade(notebook, quiet=True, isolation="process", out=tmp_path / "out")
        assert _scores(from_notebook) == _scores(isolated)
        assert from_notebook.submission == str(notebook.resolve())
        assert from_notebook.origin["cells"]["LayerNorm"].startswith("cell ")
        assert any("Not run by the grader" in n for n in from_notebook.notes)
        saved = json.loads((tmp_path / "out" / "results.json").read_text())
        assert saved["origin"]["file"] == "work.ipynb"


def test_without_bubblewrap_the_worker_still_runs_and_the_results_say_so():
    sub = open_submission(REFERENCE, isolation="process", sandbox="none")
    try:
        out = sub.call("softmax", torch.tensor([0.0, 0.0]))
        assert torch.equal(out, torch.tensor([0.5, 0.5]))
        assert sub.describe()["sandbox"].startswith("none (--sandbox none)")
        assert sub.describe()["trusted"] is False  # learner code could reach this machine
    finally:
        sub.close()


def test_a_timeout_costs_one_call_and_the_next_call_gets_a_fresh_worker(reference_copy):
    path = reference_copy / "attention.py"
    path.write_text(
        path.read_text().replace(
            "    return (tokens != pad_id).unsqueeze(1)", "    while True:\n        pass"
        )
    )
    sub = open_submission(reference_copy, isolation="process", limits={"call_timeout_s": 2})
    try:
        with pytest.raises(WorkerFailure, match="timed out after 2 s"):
            sub.call("padding_mask", torch.tensor([[1, 0]]), 0)
        assert torch.equal(sub.call("causal_mask", 2), torch.ones(2, 2, dtype=torch.bool).tril())
    finally:
        sub.close()


def test_hidden_checks_show_only_name_and_points_to_learners(tmp_path):
    text = (GRADERS / "rubric.toml").read_text()
    old = "checks.rows_are_distributions = 1"
    assert old in text
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(
        text.replace(old, "checks.rows_are_distributions = { points = 1, hidden = true }")
    )
    broken = tmp_path / "sub"
    broken.mkdir()
    for path in REFERENCE.glob("*.py"):
        (broken / path.name).write_text(path.read_text())
    attention = broken / "attention.py"
    attention.write_text(
        attention.read_text().replace(
            "    return exp / exp.sum(dim=dim, keepdim=True)",
            "    return exp / exp.sum(dim=dim, keepdim=True) * 1.5",
        )
    )
    result = grade(broken, rubric=rubric, quiet=True, select="softmax")
    (hidden,) = [
        c for comp in result.components for c in comp.checks if c.name == "rows_are_distributions"
    ]
    assert hidden.hidden and hidden.status == "failed" and "sum to" in hidden.message
    learner = format_report(result, learner_view=True)
    instructor = format_report(result, learner_view=False)
    assert "hidden test" in learner and "sum to" not in learner.split("hidden test")[1][:300]
    assert "sum to" in instructor


@pytest.mark.slow
def test_each_group_of_checks_gets_a_fresh_worker_whether_serial_or_parallel(tmp_path):
    """The checks form two fixed groups, each run by a fresh worker: one after the other
    (--jobs 1), or the second in a helper process (--jobs 2). The same checks share a worker
    either way, so even a submission with state that leaks between checks scores the same."""
    root = tmp_path / "submission"
    shutil.copytree(REFERENCE, root, ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "attention.py"
    # state that leaks across checks: softmax breaks after its 25th call in one worker
    path.write_text(
        path.read_text().replace(
            "    x_max = x.amax(dim=dim, keepdim=True)\n",
            "    global _CALLS\n    _CALLS = globals().get('_CALLS', 0) + 1\n"
            "    if _CALLS > 25:\n        x = x * 2\n"
            "    x_max = x.amax(dim=dim, keepdim=True)\n",
            1,
        )
    )
    select = "softmax or scaled_dot_product_attention or gelu or LayerNorm"
    serial = grade(root, isolation="process", select=select, quiet=True)
    parallel = grade(root, isolation="process", select=select, quiet=True, jobs=2)
    assert serial.isolation["worker_starts"] == 2

    def checks(result):
        return {
            (c.component, c.name): (c.status, c.points)
            for comp in result.components
            for c in comp.checks
        }

    assert checks(serial) == checks(parallel)
    assert serial.score == parallel.score < serial.max_score


ALIGNMENT_PROBE = '''
def alignment_dependent(torch):
    """How many of 200 random float32 matmuls round differently when one input lies at
    another address (Intel MKL does so unless conditional reproducibility is on)."""
    g = torch.Generator().manual_seed(0)
    count = 0
    for _ in range(200):
        m, k, n = (int(v) for v in torch.randint(1, 70, (3,), generator=g))
        a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
        base = a @ b
        for offset in range(1, 16):
            moved = torch.empty(m * k + offset)[offset:].view(m, k)
            moved.copy_(a)
            if not torch.equal(moved @ b, base):
                count += 1
                break
    return count
'''


@pytest.mark.skipif("mkl" not in torch.__config__.show().lower(), reason="torch without MKL")
def test_float_results_do_not_depend_on_memory_alignment_on_either_side(reference_copy, tmp_path):
    # the trusted side: a fresh interpreter that imports llm_grade, as every front-end does
    script = tmp_path / "probe.py"
    script.write_text(
        "import llm_grade, torch\ntorch.set_num_threads(1)\n"
        + ALIGNMENT_PROBE
        + "\nprint(alignment_dependent(torch))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"
    # the worker: a learner's softmax that returns the count
    path = reference_copy / "attention.py"
    path.write_text(
        path.read_text()
        + ALIGNMENT_PROBE
        + "\n\ndef softmax(x, dim=-1):\n"
        + "    return torch.tensor(float(alignment_dependent(torch)))\n"
    )
    sub = open_submission(reference_copy, isolation="process")
    try:
        assert float(sub.call("softmax", torch.zeros(2))) == 0.0
    finally:
        sub.close()
