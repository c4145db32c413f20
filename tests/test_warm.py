"""Warm starts keep no state: workers forked from one template, submissions graded by one
process, the same scores as a cold start; a hang costs one wait, not one per check; and -k
starts only what it needs."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from lg_paths import GRADERS, REFERENCE

from llm_grade.engine.run import grade
from llm_grade.sandbox import template
from llm_grade.sandbox.confine import bubblewrap

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or bubblewrap() is None, reason="worker templates need bubblewrap"
)

FAST = "\n[limits]\ncall_timeout_s = 3\n"
NO_POLICY = "\n[policy]\nenabled = false\n"

# at import, everything a worker could leave for the next one: a file in /tmp and /dev/shm,
# a process that outlives it, a System V segment, and patched torch and builtins
POISON = textwrap.dedent(
    """
    import builtins, ctypes, os, time
    open("/tmp/llm-grade-poison", "w").write("x")
    try:
        open("/dev/shm/llm-grade-poison", "w").write("x")
    except OSError:
        pass
    ctypes.CDLL(None).shmget(0x11E6, 4096, 0o1666)
    torch.exp = lambda x: x * 0
    torch.Tensor.exp = lambda self: self * 0
    builtins.LLM_GRADE_POISON = True
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(120)
        os._exit(0)
    """
)

# softmax that is wrong whenever anything of the poison is still there
DETECT = textwrap.dedent(
    """
    def _poisoned():
        import builtins, os
        if os.path.exists("/tmp/llm-grade-poison") or os.path.exists("/dev/shm/llm-grade-poison"):
            return True
        if getattr(builtins, "LLM_GRADE_POISON", False):
            return True
        try:
            if len(open("/proc/sysvipc/shm").read().splitlines()) > 1:
                return True
        except OSError:
            pass
        mine = {1, os.getpid(), os.getppid()}  # the namespace's init, this worker, its template
        return any(p.isdigit() and int(p) not in mine for p in os.listdir("/proc"))
    """
)


def _rubric(folder: Path, extra: str) -> Path:
    path = folder / "rubric.toml"
    path.write_text((GRADERS / "rubric.toml").read_text() + extra)
    return path


def _copy(folder: Path) -> Path:
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


ANCHOR = "    x_max = x.amax(dim=dim, keepdim=True)\n"


def _poisoner(folder: Path) -> Path:
    path = _copy(folder) / "attention.py"
    path.write_text(path.read_text() + POISON)
    return folder


def _detector(folder: Path) -> Path:
    path = _copy(folder) / "attention.py"
    text = path.read_text().replace(
        ANCHOR, "    if _poisoned():\n        return x * 0\n" + ANCHOR, 1
    )
    path.write_text(text + DETECT)
    return folder


def _checks(result) -> list[tuple[str, str, str, float]]:
    return [
        (c.component, c.name, c.status, c.points) for comp in result.components for c in comp.checks
    ]


def test_a_poisoned_worker_leaves_nothing_for_the_next_submission(tmp_path):
    rubric = _rubric(tmp_path, NO_POLICY)
    poisoner = _poisoner(tmp_path / "poisoner")
    detector = _detector(tmp_path / "detector")
    select = "softmax or causal_mask"

    clean = grade(detector, select=select, jobs=1, rubric=rubric, quiet=True, isolation="process")
    assert clean.score == clean.max_score > 0
    areas = list(template._areas.values())
    assert len(areas) >= 1
    poisoned = grade(
        poisoner, select=select, jobs=1, rubric=rubric, quiet=True, isolation="process"
    )
    assert poisoned.score < poisoned.max_score  # torch.exp was patched in its own workers
    templates = {id(a.template): a.template.pid for a in template._areas.values()}

    after = grade(detector, select=select, jobs=1, rubric=rubric, quiet=True, isolation="process")
    # the same template forked the workers of all three, and nothing crossed
    assert {id(a.template): a.template.pid for a in template._areas.values()} == templates
    assert _checks(after) == _checks(clean)
    assert after.score == after.max_score


def test_warm_workers_score_exactly_as_cold_ones(tmp_path, monkeypatch):
    buggy = Path(__file__).resolve().parents[1] / "examples" / "buggy"
    select = "softmax or MultiHeadAttention or LayerNorm or EncoderLayer"
    warm = grade(buggy, select=select, jobs=1, quiet=True, isolation="process")
    assert warm.isolation["worker_starts"] >= 2  # one per group: both forked
    monkeypatch.setenv("LLM_GRADE_NO_TEMPLATE", "1")
    cold = grade(buggy, select=select, jobs=1, quiet=True, isolation="process")
    assert _checks(warm) == _checks(cold)
    assert [c.message for comp in warm.components for c in comp.checks] == [
        c.message for comp in cold.components for c in comp.checks
    ]


def test_a_worker_that_dies_is_replaced_with_the_oracles_it_held(tmp_path):
    """A crash in one component's check restarts the worker: the checks after it (which use
    trusted parts) still get those parts."""
    sub = _copy(tmp_path / "sub")
    path = sub / "attention.py"
    path.write_text(
        path.read_text().replace(
            "    x_max = x.amax(dim=dim, keepdim=True)\n",
            "    import os\n    os._exit(3)\n",
            1,
        )
    )
    result = grade(
        sub,
        select="softmax or MultiHeadAttention",
        jobs=1,
        rubric=_rubric(tmp_path, NO_POLICY),
        quiet=True,
        isolation="process",
    )
    by_name = {c.name: c for c in result.components}
    assert by_name["softmax"].score == 0
    assert all("exited" in c.message for c in by_name["softmax"].checks), by_name["softmax"]
    mha = by_name["MultiHeadAttention"]
    assert mha.score == mha.max_score, [c.message for c in mha.checks if c.status != "passed"]


def test_a_hang_costs_one_timeout_per_process_not_one_per_check(tmp_path):
    sub = _copy(tmp_path / "sub")
    path = sub / "attention.py"
    path.write_text(
        path.read_text().replace(
            "    x_max = x.amax(dim=dim, keepdim=True)\n", "    while True:\n        pass\n", 1
        )
    )
    result = grade(
        sub,
        select="softmax or GPT",
        jobs=2,
        rubric=_rubric(tmp_path, FAST + NO_POLICY),
        quiet=True,
        isolation="process",
    )
    by_name = {c.name: c for c in result.components}
    softmax = by_name["softmax"].checks
    waited = [c for c in softmax if "timed out after" in c.message and "Not run" not in c.message]
    assert 1 <= len(waited) <= 2, [c.message for c in softmax]  # one per grading process
    assert all(c.status == "error" and c.points == 0 for c in softmax)
    assert all("timed out" in c.message for c in softmax)
    gpt = by_name["GPT"]
    mixed = next(c for c in gpt.checks if c.name == "mixed_precision")
    assert mixed.status == "skipped" and "depends on softmax" in mixed.message
    assert gpt.score == gpt.max_score  # the hang in softmax costs GPT nothing
    # two waits of 3 s at most (one per process), plus grading itself
    assert sum(c.duration_s for c in softmax) < 2 * 3 + 5


def test_templates_are_only_shared_by_runs_with_the_same_masks(tmp_path):
    inside = tmp_path / "hidden"  # under /tmp: the private /tmp hides it anyway
    inside.mkdir()
    assert template.normalized_masks([inside]) == []
    outside = Path(os.path.expanduser("~")).resolve()
    kept = template.normalized_masks([outside, outside / "sub-folder-that-does-not-exist"])
    assert kept == ([outside] if not outside.is_relative_to("/tmp") else [])


def test_one_grading_process_grades_many_submissions_and_keeps_nothing_between(tmp_path):
    """The batch's long-lived grading process: the poisoner between two gradings of the
    detector changes nothing, and the process (and its template) is the same throughout."""
    from llm_grade.classroom.server import GradingServer
    from llm_grade.engine.options import GradingOptions
    from llm_grade.output.exporters import load_results

    rubric = _rubric(tmp_path, NO_POLICY)
    poisoner = _poisoner(tmp_path / "poisoner")
    detector = _detector(tmp_path / "detector")
    server = GradingServer(tmp_path)
    options = GradingOptions(
        isolation="process", jobs=1, rubric=rubric, select="softmax or causal_mask"
    )
    try:
        scores = []
        for n, folder in enumerate((detector, poisoner, detector)):
            out = tmp_path / f"out{n}"
            out.mkdir()
            code, why = server.grade(folder, options.replace(out=out), timeout=300)
            assert code == 0, why
            scores.append(_checks(load_results(out)))
        pid = server.proc.pid
        assert server.starts == 1 and server.proc.poll() is None
    finally:
        server.close()
    assert scores[2] == scores[0]
    assert all(status == "passed" for _, _, status, _ in scores[0])
    assert any(status != "passed" for _, _, status, _ in scores[1])
    assert pid


def test_k_of_api_names_collects_only_their_graders():
    from llm_grade.engine.run import pytest_args

    def files(select):
        return sorted(Path(a).name for a in pytest_args(select=select) if a.endswith(".py"))

    assert files("softmax") == ["test_attention.py"]
    assert files("softmax or GPT") == ["test_attention.py", "test_transformer.py"]
    assert files("attention and not causal") == []  # any other -k: every grader, pytest picks
    assert any(Path(a).name == "graders" for a in pytest_args(select="attention and not causal"))


def test_a_small_selection_is_graded_without_a_second_process(monkeypatch):
    from llm_grade.engine import groups

    def no_helper(*args, **kwargs):
        raise AssertionError("a helper process was started for -k softmax")

    monkeypatch.setattr(groups, "HelperProcess", no_helper)
    result = grade(REFERENCE, select="softmax", jobs=2, isolation="process", quiet=True)
    assert result.score == result.max_score > 0
    assert [c.name for c in result.components] == ["softmax"]


def test_reference_modules_shared_between_runs_score_as_fresh_ones():
    """Long-lived grading processes keep one pool of reference modules for all their runs
    (``share_references_between_runs``): the scores and messages stay a fresh pool's."""
    from llm_grade.grading import context

    buggy = Path(__file__).resolve().parents[1] / "examples" / "buggy"
    select = "MultiHeadAttention or LayerNorm or EncoderLayer"
    fresh = grade(buggy, select=select, jobs=1, quiet=True, isolation="process")
    context.share_references_between_runs()
    try:
        runs = [grade(buggy, select=select, jobs=1, quiet=True, isolation="process")]
        assert len(context._SHARED[0]) > 0
        runs.append(grade(buggy, select=select, jobs=1, quiet=True, isolation="process"))
    finally:
        context._SHARED.clear()
    for run in runs:
        assert _checks(run) == _checks(fresh)
        assert [c.message for comp in run.components for c in comp.checks] == [
            c.message for comp in fresh.components for c in comp.checks
        ]
    assert fresh.score < fresh.max_score  # the example's bugs are there to be found


def test_pytest_graders_with_two_processes_reads_a_relative_submission(tmp_path):
    """``pytest graders/ --grade-submission my-llm`` (a path relative to where pytest runs)
    grades with two processes by default: the second finds the same folder, so the score is
    the one process's."""
    import subprocess

    shutil.copytree(
        Path(__file__).resolve().parents[1] / "examples" / "buggy",
        tmp_path / "my-llm",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    select = "MultiHeadAttention or LayerNorm or GPT or Transformer"  # enough for a helper
    totals = []
    for jobs in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", str(GRADERS), "--grade-submission", "my-llm"]
            + ["-k", select, "--grade-jobs", jobs, "-q", "-p", "no:cacheprovider"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # bugs found
        assert "does not exist" not in done.stdout
        totals.append([line for line in done.stdout.splitlines() if "/" in line][-12:])
    assert totals[0] == totals[1]
