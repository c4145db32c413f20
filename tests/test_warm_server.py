"""The warm grading server behind ``llm-grade grade``: what it prints and scores is what a cold
run prints and scores, nothing of one grading reaches the next, and it steps aside when it
must (``--isolation none``, llm-grade changed, turned off)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from lg_paths import REPO
from test_warm import NO_POLICY, _detector, _poisoner, _rubric

from llm_grade.sandbox.confine import bubblewrap

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or bubblewrap() is None,
    reason="the warm server is Linux-only; its workers need bubblewrap here",
)

CLI = [sys.executable, "-m", "llm_grade"]


def _env(name: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    return {**env, "LLM_GRADE_SERVER": "1", "LLM_GRADE_SERVER_NAME": name, **more}


def _run(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _served(env, cwd) -> int:
    status = _run(["server", "status"], env, cwd)
    assert status.returncode == 0, status.stdout + status.stderr
    return int(status.stdout.split(" grading")[-2].rsplit(" ", 1)[-1])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("warm")


@pytest.fixture(scope="module")
def server(base):
    """A server of this module's own (its own address), ready for gradings in ``base``."""
    env = _env(f"test-{uuid.uuid4().hex[:12]}")
    started = _run(["server", "start", str(base)], env, base)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "ready" in started.stdout
    yield env
    _run(["server", "stop"], env, base)


def _results(out: Path) -> list:
    data = json.loads((out / "results.json").read_text())
    return [
        (comp["name"], c["name"], c["status"], c["points"], c["message"])
        for comp in data["components"]
        for c in comp["tests"]
    ]


def test_a_warm_grade_prints_and_scores_what_a_cold_one_does(server, base):
    tmp_path = base
    sub = tmp_path / "buggy"
    shutil.copytree(REPO / "examples" / "buggy", sub, ignore=shutil.ignore_patterns("__pycache__"))
    args = ["grade", "buggy", "--out"]
    cold_env = {**server, "LLM_GRADE_SERVER": "0"}
    before = _served(server, tmp_path)
    cold = _run([*args, "cold"], cold_env, tmp_path)
    assert _served(server, tmp_path) == before
    warm = _run([*args, "warm"], server, tmp_path)
    assert _served(server, tmp_path) == before + 1  # it went through the server
    assert warm.returncode == cold.returncode == 0, warm.stderr
    assert _results(tmp_path / "warm") == _results(tmp_path / "cold")

    # the same report, line for line (but the seconds it took, and where results went)
    def lines(text: str) -> list[str]:
        return [ln.split(" (")[0] for ln in text.splitlines() if not ln.startswith("Results")]

    assert lines(warm.stdout) == lines(cold.stdout)
    assert "89 / 100" in warm.stdout
    # a usage error comes back as click prints it, with its exit status
    bad = _run(["grade", "no-such-folder"], server, tmp_path)
    assert bad.returncode == 1 and "does not exist" in bad.stderr


def test_no_state_crosses_between_gradings_of_one_server(server, base):
    """A poisoner graded by the server between two gradings of the detector (whose softmax
    fails if any of the poison is left: files in /tmp, /dev/shm, a live process, a SysV
    segment, patched torch or builtins) changes nothing; a cold run agrees."""
    tmp_path = base / "poison"
    tmp_path.mkdir()
    rubric = _rubric(tmp_path, NO_POLICY)
    before = _served(server, tmp_path)
    _poisoner(tmp_path / "poisoner")
    _detector(tmp_path / "detector")
    select = ["-k", "softmax or causal_mask", "--rubric", str(rubric), "--jobs", "1"]
    scores = []
    for n, folder in enumerate(("detector", "poisoner", "detector")):
        done = _run(["grade", folder, *select, "--out", f"out{n}"], server, tmp_path)
        assert done.returncode == 0, done.stderr
        scores.append(_results(tmp_path / f"out{n}"))
    assert _served(server, tmp_path) == before + 3
    assert scores[2] == scores[0]
    assert all(status == "passed" for _, _, status, _, _ in scores[0])
    assert any(status != "passed" for _, _, status, _, _ in scores[1])


def test_the_server_steps_aside(server, base):
    """(Last in this module: it stops the server.)"""
    tmp_path = base
    before = _served(server, tmp_path)
    shutil.copytree(
        REPO / "reference", tmp_path / "sub", ignore=shutil.ignore_patterns("__pycache__")
    )
    # learner code would run in the grading process: never in the server
    fast = _run(["grade", "sub", "-k", "softmax", "--isolation", "none"], server, tmp_path)
    assert fast.returncode == 0 and "6 / 6" in fast.stdout
    # turned off
    off = _run(["grade", "sub", "-k", "softmax"], {**server, "LLM_GRADE_SERVER": "0"}, tmp_path)
    assert off.returncode == 0 and "6 / 6" in off.stdout
    assert _served(server, tmp_path) == before
    # a request from another llm-grade (another fingerprint) stops it; the client grades cold
    from llm_grade.engine import warm

    name = "\0llm-grade-" + f"{os.getuid()}-{server['LLM_GRADE_SERVER_NAME']}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(name)
        request = {"command": "grade", "params": {}, "fingerprint": "other", "sent_at": time.time()}
        conn.sendall((json.dumps(request) + "\n").encode())
        kind, _ = warm._recv(conn)
    assert kind == b"X"
    deadline = time.monotonic() + 20
    while _run(["server", "status"], server, tmp_path).returncode == 0:
        assert time.monotonic() < deadline, "the stale server did not stop"
        time.sleep(0.2)
