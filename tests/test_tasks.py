"""``llm-grade grade --train``: the learner's models trained on synthetic tasks next to the
reference (llm_grade/grading/tasks.py). A correct submission learns both tasks on every seed;
a model that cannot learn a task fails with the accuracies and a hint; what learner code
decides in the worker (its greedy_decode, an output that does not come from the weights)
cannot raise the accuracy; a slow model is stopped, not judged."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch
from lg_paths import REFERENCE

from llm_grade.engine.environment import load_package
from llm_grade.engine.run import grade
from llm_grade.grading import tasks
from llm_grade.output.figures import tasks_view
from llm_grade.output.report import render_submission
from llm_grade.output.terminal import task_lines
from llm_grade.sandbox.handle import open_submission

TRANSFORMER, GPT = tasks.TASKS


@pytest.fixture(scope="module")
def ref():
    return load_package(REFERENCE, "_llm_grade_reference")


@pytest.fixture(autouse=True)
def one_thread():
    """As a grading runs (the session's one thread): tiny tensors on two threads next to
    other test processes spend their time waiting on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(folder, ref, task, seed: int = 0) -> dict:
    """One task in this process (isolation none: the same code path as the worker's, faster)."""
    sub = open_submission(folder, isolation="none")
    try:
        sub.begin_check("")
        return tasks.run_task(sub, ref, task, seed)
    finally:
        sub.close()


def _copy(tmp_path, edit: str = "", module: str = "transformer", find: str = ""):
    folder = tmp_path / "submission"
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / f"{module}.py"
    source = path.read_text()
    if find:
        assert source.count(find) == 1, find
        source = source.replace(find, edit)
    else:
        source += edit
    path.write_text(source)
    return folder


# seeds of the correct-submission test: 3 in the suite (about 12 core-seconds a seed),
# LLM_GRADE_TRAIN_SEEDS=10 for the ten the margin was checked on (README: "Does it learn?")
SEEDS = range(int(os.environ.get("LLM_GRADE_TRAIN_SEEDS", "3")))


@pytest.mark.parametrize(
    "seed", [pytest.param(s, marks=[pytest.mark.slow] if s else []) for s in SEEDS]
)
def test_a_correct_submission_learns_both_tasks_on_every_seed(torch_nn_variant, ref, seed):
    # torch.nn building blocks: correct, but not the reference's rounding, so its training
    # drifts from the reference's: the margin must hold that
    for task in tasks.TASKS:
        entry = _run(torch_nn_variant, ref, task, seed)
        assert entry["passed"] is True, entry.get("message")
        mine, theirs = entry["learner"], entry["reference"]
        assert theirs["accuracy"] >= 0.85  # the reference learns the task on this seed
        assert mine["accuracy"] >= theirs["accuracy"] - tasks.MARGIN
        assert mine["accuracy_before"] <= 0.05 and theirs["accuracy_before"] <= 0.05
        assert len(mine["losses"]) == len(theirs["losses"]) == task.steps
        assert mine["losses"][-1] < 0.3 * mine["losses"][0]
        assert entry["examples"] and set(entry["examples"][0]) == {"input", "expected", "got"}


def test_train_through_the_engine_reaches_results_terminal_and_report(tmp_path, capsys):
    result = grade(
        REFERENCE,
        select="learns_one_batch",
        isolation="process",
        train=True,
        train_seed=3,
        out=tmp_path,
        jobs=2,  # (the second group's helper gets --grade-train too)
    )
    printed = capsys.readouterr().out
    found = json.loads((tmp_path / "results.json").read_text())["artifacts"]["tasks"]
    assert set(found) == {"Transformer", "GPT"}
    for entry in found.values():
        assert entry["passed"] is True, entry
        assert entry["seed"] == 3 and entry["learner"]["accuracy"] >= 0.6
    assert result.score == result.max_score  # (the two training checks): no points from it
    assert "Training Transformer to reverse 4 digits (800 steps)" in printed
    assert "Does it learn? (--train" in printed
    assert "✓ GPT, continue an arithmetic sequence" in printed
    html = render_submission(result)
    assert 'id="tasks"' in html and "reverse 4 digits" in html


def test_training_through_the_worker_is_deterministic(ref):
    task = dataclasses.replace(GPT, steps=40)
    runs = []
    for _ in range(2):
        sub = open_submission(REFERENCE, isolation="process")
        try:
            sub.begin_check("")
            runs.append(tasks.run_task(sub, ref, task, seed=5))
        finally:
            sub.close()
    for run in runs:  # (the time it took is all that may differ)
        for side in ("learner", "reference"):
            assert run[side].pop("seconds") > 0
    assert runs[0]["learner"]["losses"] == runs[1]["learner"]["losses"]
    assert runs[0] == runs[1]


def test_without_train_nothing_is_trained():
    result = grade(REFERENCE, quiet=True, select="GPT and structure")
    assert "tasks" not in (result.artifacts or {})


def test_a_gpt_that_sees_later_tokens_fails_with_both_accuracies(tmp_path, ref):
    # no causal mask: while training each position reads the token it should predict, so
    # the loss falls, but greedy generation (where that token is not there yet) fails
    folder = _copy(
        tmp_path,
        module="blocks",
        find="        allowed = causal_mask(x.size(1), device=x.device)  # (T, T)",
        edit="        allowed = torch.ones(x.size(1), x.size(1), dtype=torch.bool)",
    )
    entry = _run(folder, ref, GPT)
    assert entry["passed"] is False
    assert entry["learner"]["accuracy"] < 0.3 <= entry["reference"]["accuracy"] - tasks.MARGIN
    assert entry["learner"]["losses"][-1] < entry["reference"]["losses"][-1]  # it "learned"
    assert "learned less than the reference" in entry["message"]
    assert f"{entry['learner']['accuracy']:.0%}" in entry["message"]
    assert "causal mask" in entry["hint"]
    (line,) = task_lines({"GPT": entry})
    assert line[0] is False and "the reference" in line[1]


GREEDY_KNOWS_THE_TASK = """

def greedy_decode(model, src, max_len, bos_id, eos_id, src_mask=None):
    n = src.shape[0]
    bos, eos = torch.full((n, 1), bos_id), torch.full((n, 1), eos_id)
    return torch.cat([bos, src.flip(1), eos], 1)[:, :max_len]
"""


def test_a_greedy_decode_that_knows_the_task_does_not_raise_the_accuracy(tmp_path, ref):
    folder = _copy(tmp_path, GREEDY_KNOWS_THE_TASK)
    short = dataclasses.replace(TRANSFORMER, steps=60)  # the model itself learns little
    entry = _run(folder, ref, short)
    assert entry["learner"]["accuracy"] < 0.5  # decoded here, step by step
    assert entry["passed"] is False
    assert "greedy_decode differs on" in entry["message"]


OUTPUT_NOT_FROM_THE_WEIGHTS = """

_GPT = GPT


class GPT(_GPT):
    def forward(self, tokens, mask=None):
        out = super().forward(tokens, mask)
        prev = torch.cat([tokens[:, :1], tokens[:, :-1]], 1)
        guess = (2 * tokens - prev) % out.shape[-1]
        return out + 100 * torch.nn.functional.one_hot(guess, out.shape[-1])
"""


def test_a_model_that_does_the_task_before_training_fails(tmp_path, ref):
    folder = _copy(tmp_path, OUTPUT_NOT_FROM_THE_WEIGHTS)
    entry = _run(folder, ref, dataclasses.replace(GPT, steps=60))
    assert entry["learner"]["accuracy_before"] > 0.9
    assert entry["passed"] is False
    assert "before any training" in entry["message"]


def test_a_model_too_slow_for_the_budget_is_stopped_not_judged(monkeypatch, ref):
    monkeypatch.setattr(tasks, "BUDGET_S", 0.0)
    entry = _run(REFERENCE, ref, dataclasses.replace(GPT, steps=60))
    assert entry["passed"] is None
    assert entry["message"].startswith("Stopped after 1 of 60 steps")
    assert len(entry["learner"]["losses"]) == 1
    (line,) = task_lines({"GPT": entry})
    assert line[0] is None


def test_a_model_that_does_not_run_is_reported_not_trained(tmp_path, ref):
    folder = _copy(
        tmp_path,
        find="        x = self.pos_embed(self.tok_embed(tokens))  # (B, T, d_model)",
        edit="        raise RuntimeError('boom')",
    )
    entry = _run(folder, ref, dataclasses.replace(GPT, steps=5))
    assert entry["error"].startswith("not trained:")
    assert "boom" in entry["error"]
    assert "learner" not in entry
    (line,) = task_lines({"GPT": entry})
    assert line[0] is None and "not trained" in line[1]


def test_the_report_view_keeps_to_plain_well_formed_data():
    view = tasks_view(
        {
            "GPT": {
                "task": "t",
                "learner": {"losses": [3.0] * 400, "accuracy": 0.5},
                "reference": {"losses": [float(400 - i) / 100 for i in range(400)], "accuracy": 1},
                "bound": 0.75,
                "passed": False,
                "examples": [{"input": "1 2", "expected": "3 4", "got": "<b>x</b>"}, "junk"],
                "message": "m",
            },
            "junk": 7,
        }
    )
    (gpt,) = view
    assert gpt["yours"] == "50%" and gpt["reference"] == "100%" and gpt["bound"] == "75%"
    assert gpt["passed"] is False and len(gpt["examples"]) == 1
    assert len(gpt["chart"]["reference"].split()) == 100  # smoothed to 100 points
    assert tasks_view({"GPT": {"task": "t", "error": "not trained: x"}})[0]["chart"] is None


def test_the_reversal_is_asked_on_inputs_it_never_trained_on():
    held = TRANSFORMER.held_out_of(torch.Generator().manual_seed(1), tasks.HELD_OUT)
    g = torch.Generator().manual_seed(2)
    trained = torch.cat([TRANSFORMER.sample(g, 32, held) for _ in range(TRANSFORMER.steps)])
    asked = {tuple(row) for row in held[:, : tasks.LENGTH].tolist()}
    seen = {tuple(row) for row in trained[:, : tasks.LENGTH].tolist()}
    assert len(asked) == tasks.HELD_OUT and not asked & seen
    assert len(seen) > 0.9 * (tasks.DIGITS**tasks.LENGTH - tasks.HELD_OUT)  # most others are
    # and the rows are what the task says: the digits, BOS, the digits reversed, EOS
    row = trained[0].tolist()
    assert row[4] == tasks.BOS and row[5:9] == row[:4][::-1] and row[9] == tasks.EOS
