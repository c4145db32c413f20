"""What a learner reads in the terminal: ``llm-grade grade`` on the example, on a submission
with a syntax error and on the stubs, captured as a user's shell would (a separate process,
stdout piped)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lg_paths import REFERENCE, STUBS

from llm_grade.components import COMPONENTS
from llm_grade.engine.results import CheckResult, ComponentResult, GradeResult

PROGRESS = re.compile(r"^[.FEsx]{3,}\s*(\[\s*\d+%\])?$", re.MULTILINE)
NODE_ID = re.compile(r"\w+\.py::\w+|::Test\w+|test_\w+\b")
PAIRS = (
    re.compile(r"^\s*(expected\b[^:]*):\s*(.+?)\n\s*(got\b[^:]*):\s*(.+?)$", re.MULTILINE),
    re.compile(r"^\s*(.*\bbefore):\s*(.+?)\n\s*(.*\bafter):\s*(.+?)$", re.MULTILINE),
)


def grade_output(*args: str, cwd: Path, env: dict | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "llm_grade", "grade", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def assert_ours_only(text: str) -> None:
    """No pytest progress characters, node ids, install paths or counts of pytest's."""
    assert not PROGRESS.search(text), text
    assert not NODE_ID.search(text), NODE_ID.search(text).group(0)
    for pytest_words in ("short test summary", "FAILURES", "passed in", "site-packages", "\x1b"):
        assert pytest_words not in text


def shown_pairs(text: str) -> list[tuple[str, str]]:
    """Every expected/got (and before/after) pair of printed values: (first, second)."""
    found = []
    for pattern in PAIRS:
        for match in pattern.finditer(text):
            found.append((match.group(2).strip(), re.sub(r"\s+\(max abs.*$", "", match.group(4))))
    return found


@pytest.fixture(scope="module")
def neutral(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("neutral")


def test_the_example_reads_as_our_report_with_every_pair_visibly_different(neutral):
    text = grade_output("--example", cwd=neutral)
    assert_ours_only(text)
    assert "Grading llm-grade's examples/buggy (129 checks)" in text  # no install path
    lines = text.splitlines()
    # a line per component, in curriculum order, before the failures
    live = [line.split()[1] for line in lines if re.match(r"^  [✓✗·] \w+", line)]
    assert live == list(COMPONENTS)
    assert text.index("greedy_decode") < text.index("Failures") < text.index("Total")
    # the counts cover every check of both grading processes
    counts = re.search(r"^(\d+) checks: (.*) \([\d.]+ s\)$", text, re.MULTILINE)
    assert counts, text[-2000:]
    numbers = [int(n) for n in re.findall(r"(\d+) [a-z]", counts.group(2))]
    assert sum(numbers) == int(counts.group(1)) > 100
    pairs = shown_pairs(text)
    assert len(pairs) >= 5, text
    for first, second in pairs:
        assert first != second, (first, second)
    assert re.search(r"^Total\s+89 / 100$", text, re.MULTILINE)


@pytest.fixture(scope="module")
def broken_feedforward(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("syntax") / "submission"
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "feedforward.py"
    text = path.read_text()
    assert "\ndef gelu(" in text
    path.write_text(text.replace("\ndef gelu(", "\ndef gelu(:", 1))
    return folder


def test_a_module_that_does_not_import_is_reported_once(neutral, broken_feedforward):
    select = "gelu or FeedForward or LayerNorm or EncoderLayer or GPT"
    text = grade_output(str(broken_feedforward), "-k", select, cwd=neutral)
    assert_ours_only(text)
    assert text.count("SyntaxError") == 1, text
    assert text.count("feedforward.py does not import") == 1 + 2 * 4  # block; line + row each
    block = text[text.index("Failures") : text.index("Component")]
    assert 'File "feedforward.py", line' in block
    assert "blocks.py, transformer.py, which import it" in " ".join(block.split())
    assert "_llm_grade_submission" not in text
    for name in ("gelu", "FeedForward", "EncoderLayer", "GPT"):
        row = re.search(rf"^  {name} \((.*)\)\s+0 / \d+$", text, re.MULTILINE)
        assert row and row.group(1) == "could not run: feedforward.py does not import", name
    assert re.search(r"^  LayerNorm \(all checks pass\)", text, re.MULTILINE)


def test_the_stubs_stay_not_implemented_even_when_a_module_they_import_is_broken(
    neutral, tmp_path_factory
):
    text = grade_output(str(STUBS), "-k", "softmax or LayerNorm or EncoderLayer", cwd=neutral)
    assert_ours_only(text)
    assert "Failures" not in text
    for name in ("softmax", "LayerNorm", "EncoderLayer"):
        assert re.search(rf"^  · {name}\s+not implemented yet$", text, re.MULTILINE), text
    # the learner breaks attention.py, which blocks.py imports: the blocks stay "not started"
    folder = tmp_path_factory.mktemp("stubs-copy") / "mine"
    shutil.copytree(STUBS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    attention = folder / "attention.py"
    attention.write_text(attention.read_text().replace("-> torch.Tensor:", "-> torch.Tensor", 1))
    text = grade_output(str(folder), "-k", "softmax or EncoderLayer", cwd=neutral)
    assert text.count("attention.py does not import") == 3  # the block, the line, the row
    assert re.search(r"^  · EncoderLayer\s+not implemented yet$", text, re.MULTILINE), text


def test_quiet_prints_the_table_only_and_verbose_every_check():
    from click.testing import CliRunner

    from llm_grade.cli import main

    args = ["grade", str(REFERENCE), "-k", "softmax", "--jobs", "1"]
    quiet = CliRunner().invoke(main, [*args, "-q"]).output
    assert quiet.lstrip().startswith("Component")
    assert "✓" not in quiet and "Total" in quiet
    verbose = CliRunner().invoke(main, [*args, "-v"]).output
    checks = [line for line in verbose.splitlines() if line.startswith("      ✓ ")]
    assert len(checks) == 6


def _result(status: str) -> GradeResult:
    check = CheckResult("causality", "softmax", "sums to one", status, 0.0, 1.0, nodeid="n")
    return GradeResult("x", [ComponentResult("softmax", "attention", [check])], 1.0, {})


def test_an_end_to_end_check_skipped_for_a_failing_part_reads_as_skipped_at_once():
    """GPT.mixed_precision counts only once the parts it runs pass (explain.settle, after the
    run); the live line of GPT already says what the results will: a pass, one skipped."""
    from rich.console import Console

    from llm_grade.engine.explain import NOT_RUN
    from llm_grade.output.terminal import TerminalReport

    stream = io.StringIO()
    report = TerminalReport(out=Console(file=stream, width=100), live=False)
    mha = CheckResult("matches_reference", "MultiHeadAttention", "t", "failed", 0.0, 1.0)
    gpt = [CheckResult(f"c{i}", "GPT", "t", "passed", 1.0, 1.0) for i in range(3)]
    e2e = CheckResult("mixed_precision", "GPT", "t", "error", 0.0, 0.5, message=NOT_RUN + ".")
    checks = [mha, *gpt, e2e]
    for i, c in enumerate(checks):
        c.nodeid = f"n{i}"
    report.plan([(c.component, c.nodeid) for c in checks])
    for c in checks:
        report.check_done(c)
    lines = stream.getvalue().splitlines()
    assert any(re.fullmatch(r"  ✓ GPT\s+3 checks pass, 1 skipped", line) for line in lines), lines
    assert any("✗ MultiHeadAttention" in line for line in lines)
    assert e2e.status == "error"  # (decided on copies: the results are settled once, later)


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    from rich.console import Console

    from llm_grade.output.terminal import TerminalReport

    def render(**console) -> str:
        stream = io.StringIO()
        report = TerminalReport(out=Console(file=stream, **console), live=False)
        report.plan([("softmax", "n")])
        result = _result("failed")
        report.check_done(result.components[0].checks[0])
        report.finish(result)
        return stream.getvalue()

    assert "\x1b[" not in render()  # not a terminal: plain text
    assert re.search(r"\x1b\[[\d;]*3[1-7]m", render(force_terminal=True))  # red, green ...
    monkeypatch.setenv("NO_COLOR", "1")
    assert not re.search(r"\x1b\[[\d;]*3[1-7]m", render(force_terminal=True))


def test_pytest_graders_prints_the_same_report_and_fails_like_pytest():
    """`pytest graders/` with the plugin: our lines and table, no progress characters, no
    FAILURES sections or node ids of pytest's; its exit status is pytest's (1: a check fails).
    (pytest's warnings summary, with its node ids, stays: -W ignore leaves it out here.)"""
    from lg_paths import GRADERS, REPO

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(GRADERS), "-p", "no:cacheprovider", "-W", "ignore"]
        + ["--grade-submission", str(REPO / "examples" / "buggy"), "-k", "LayerNorm"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_ours_only(proc.stdout)
    assert re.search(r"^  ✗ LayerNorm\s+5 of 9 checks fail$", proc.stdout, re.MULTILINE)
    assert re.search(r"^Total\s+2\.5 / 6$", proc.stdout, re.MULTILINE), proc.stdout
