"""Efficiency feedback: a correct but slow component keeps every point and is told why it is
slow; the reference itself is never called slow; nothing of it changes a score."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from lg_paths import GRADERS, REFERENCE

from llm_grade.engine.rubric import RubricError, load_rubric
from llm_grade.engine.run import grade

# the reference's vectorised heads, from its split to the re-assembled output
FIRST, LAST = "        q = self._split_heads(", "        return self.out_proj(out)"
# correct, and the way many learners first write it: one head at a time
LOOP_OVER_HEADS = """\
        q_all, k_all, v_all = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        if mask is not None and mask.dim() == 2:
            mask = mask.unsqueeze(0)
        heads = []
        for h in range(self.n_heads):
            sl = slice(h * self.d_head, (h + 1) * self.d_head)
            q, k, v = q_all[..., sl], k_all[..., sl], v_all[..., sl]
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            heads.append(self.dropout(softmax(scores, dim=-1)) @ v)
        out = torch.cat(heads, dim=-1)
"""
SELECT = "softmax or MultiHeadAttention or LayerNorm or GPT"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    loop = tmp_path_factory.mktemp("eff") / "loop"
    shutil.copytree(REFERENCE, loop, ignore=shutil.ignore_patterns("__pycache__"))
    path = loop / "attention.py"
    source = path.read_text()
    vectorised = source[source.index(FIRST) : source.index(LAST)]
    assert "transpose(1, 2)" in vectorised
    path.write_text(source.replace(vectorised, LOOP_OVER_HEADS))
    options = dict(select=SELECT, jobs=1, isolation="process", quiet=True)
    return {"reference": grade(REFERENCE, **options), "loop": grade(loop, **options)}


def test_a_loop_over_heads_keeps_its_points_and_is_told_why_it_is_slow(graded):
    loop, reference = graded["loop"], graded["reference"]
    assert loop.score == loop.max_score == reference.score  # correct: every point
    timed = loop.artifacts["efficiency"]["MultiHeadAttention"]
    assert timed["ratio"] > 10, timed
    assert "loop over heads" in timed["warning"]
    assert timed["learner_ms"] > timed["reference_ms"] > 0


def test_the_reference_is_never_called_slow(graded):
    timed = graded["reference"].artifacts["efficiency"]
    assert set(timed) == {"softmax", "MultiHeadAttention", "LayerNorm", "GPT"}
    for component, entry in timed.items():
        assert "warning" not in entry and "error" not in entry, (component, entry)
        assert entry["ratio"] < 5, (component, entry)  # identical code: about 1x


def test_the_report_and_the_terminal_show_it(graded, capsys):
    from llm_grade.output.report import render_submission
    from llm_grade.output.terminal import TerminalReport, console

    html = render_submission(graded["loop"])
    assert 'id="efficiency"' in html and 'class="slow"' in html
    report = TerminalReport(out=console())
    report.finish(graded["loop"])
    text = capsys.readouterr().out
    assert "Efficiency (no points" in text and "MultiHeadAttention took" in text
    report = TerminalReport(out=console())
    report.finish(graded["reference"])
    assert "Efficiency" not in capsys.readouterr().out


def test_the_warning_ratio_is_the_rubrics(tmp_path):
    text = (GRADERS / "rubric.toml").read_text()
    assert load_rubric(GRADERS / "rubric.toml").warn_ratio == 10
    path = tmp_path / "rubric.toml"
    path.write_text(text + "\n[efficiency]\nwarn_ratio = 4\n")
    assert load_rubric(path).warn_ratio == 4
    path.write_text(text + "\n[efficiency]\nwarn_ratio = 0.5\n")
    with pytest.raises(RubricError, match="warn_ratio"):
        load_rubric(path)


def test_a_component_that_hangs_is_not_timed(tmp_path):
    sub = tmp_path / "sub"
    shutil.copytree(REFERENCE, sub, ignore=shutil.ignore_patterns("__pycache__"))
    path = sub / "attention.py"
    anchor = "    x_max = x.amax(dim=dim, keepdim=True)\n"
    path.write_text(path.read_text().replace(anchor, "    while True:\n        pass\n", 1))
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(
        (GRADERS / "rubric.toml").read_text()
        + "\n[limits]\ncall_timeout_s = 3\n\n[policy]\nenabled = false\n"
    )
    result = grade(
        sub, select="softmax or LayerNorm", jobs=1, isolation="process", quiet=True, rubric=rubric
    )
    assert "efficiency" not in result.artifacts
    assert Path(sub).exists()


def test_gpt_is_profiled_next_to_the_reference(graded):
    """The top operators by self time of one forward and backward pass of GPT, the learner's
    (in the worker) and the reference's; a loop over heads shows as more operator calls."""
    from llm_grade.output.report import render_submission

    for name in ("reference", "loop"):
        profile = graded[name].artifacts["efficiency"]["GPT"]["profile"]
        for side in ("learner", "reference"):
            rows = profile[side]
            assert 3 <= len(rows) <= 10, (name, side, rows)
            # operators (aten::mm, torch::autograd::AccumulateGrad) and autograd's backward
            # nodes (DivBackward0): which make the top ten depends on the machine's timing
            assert all("::" in r[0] or re.fullmatch(r"\w+Backward\d*", r[0]) for r in rows), rows
            assert all(r[1] >= 0 and r[2] >= 1 for r in rows), rows
            assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    loop = graded["loop"].artifacts["efficiency"]["GPT"]["profile"]
    assert sum(r[2] for r in loop["learner"]) > sum(r[2] for r in loop["reference"])
    html = render_submission(graded["loop"])
    assert "Where GPT's time goes" in html and loop["learner"][0][0] in html


def test_the_profiler_leaves_nothing_on_the_learners_terminal():
    """PyTorch's profiler logs two native lines to stderr as it starts and stops (``USDT:
    ... profiler_start``): a grade must not show them."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from llm_grade.sandbox.executor import cpu_profiler\n"
        "with cpu_profiler() as prof:\n"
        "    torch.ones(3).sum()\n"
        "print(len(prof.key_averages()) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert out.stderr == ""
