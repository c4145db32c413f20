"""The submission handle's speed-ups keep its meaning: queued requests fail where they belong,
objects are released after each example, oracles are not rebuilt when they are already in
place, reference modules are reused but never shared, and weights load as load_state_dict."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from lg_paths import REFERENCE
from torch import nn

from llm_grade.engine.environment import load_package
from llm_grade.grading import toolkit
from llm_grade.grading.outcomes import CheckFailure, LearnerError
from llm_grade.sandbox.executor import Executor
from llm_grade.sandbox.handle import Submission
from llm_grade.sandbox.module_ops import _plain_loading, no_torch_init
from llm_grade.sandbox.wire import sanitize

MHA = {"d_model": 8, "n_heads": 2, "dropout": 0.0}


def _in_process(root: Path) -> tuple[Submission, Executor, list[dict]]:
    """A handle on ``root`` whose executor (and every request it gets) the test can see."""
    executor = Executor(root)
    sent: list[dict] = []

    def transport(request: dict) -> dict:
        sent.append(request)
        reply = executor.handle(sanitize(request))
        if reply["ok"]:
            reply["value"] = sanitize(reply["value"])
        return reply

    return Submission(root, transport, "none"), executor, sent


@pytest.fixture(scope="module")
def ref():
    return load_package(REFERENCE, "_llm_grade_reference")


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    root = tmp_path / "submission"
    shutil.copytree(REFERENCE, root, ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "attention.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return root


def test_a_build_travels_with_the_next_call_in_one_round_trip(ref):
    sub, executor, sent = _in_process(REFERENCE)
    pair = toolkit.build_pair(sub, ref, "MultiHeadAttention", **MHA)
    assert sent == []  # nothing is needed yet
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    out = sub.call(pair.student, x, x, x)
    assert [r["op"] for r in sent] == ["batch"]
    assert [r["op"] for r in sent[0]["args"]["requests"]] == ["build_loaded", "call"]
    torch.testing.assert_close(out, pair.reference(x, x, x))


def test_a_failing_constructor_is_reported_as_the_constructor_not_the_call(tmp_path, ref):
    root = _broken(tmp_path, "self.d_head = d_model // n_heads", "raise RuntimeError('boom')")
    sub, _, _ = _in_process(root)
    pair = toolkit.build_pair(sub, ref, "MultiHeadAttention", **MHA)
    x = torch.zeros(1, 2, 8, dtype=torch.float64)
    with pytest.raises(LearnerError) as info:
        sub.call(pair.student, x, x, x)
    assert info.value.call.startswith("MultiHeadAttention(d_model=8")
    assert "forward" not in info.value.call
    assert "boom" in info.value.exc_message


def test_a_state_dict_mismatch_is_a_check_failure_naming_the_keys(tmp_path, ref):
    root = _broken(tmp_path, "self.out_proj = ", "self.o_proj = ")
    sub, _, _ = _in_process(root)
    toolkit.build_pair(sub, ref, "MultiHeadAttention", **MHA)
    with pytest.raises(CheckFailure) as info:
        sub.flush()
    assert "`out_proj`" in info.value.message and "`o_proj`" in info.value.message
    assert "load_state_dict(strict=True)" in info.value.hint


def test_an_example_that_raised_leaves_nothing_queued_and_its_objects_are_released(ref):
    sub, executor, sent = _in_process(REFERENCE)
    pair = toolkit.build_pair(sub, ref, "MultiHeadAttention", **MHA)
    x = torch.randn(1, 2, 8, dtype=torch.float64)
    sub.call(pair.student, x, x, x)
    assert pair.student["ref"] in executor.objects
    toolkit.build_pair(sub, ref, "FeedForward", d_model=8, d_ff=16)  # an example that raised
    sub.end_example()
    sub.flush()
    assert executor.objects == {}
    assert "build_loaded" not in [r["op"] for r in sent[-1]["args"]["requests"]]


def test_an_oracle_already_in_place_is_not_rebuilt_but_a_different_one_is(ref):
    sub, executor, _ = _in_process(REFERENCE)
    sub.use_oracles(["MultiHeadAttention", "FeedForward", "AddNorm", "LayerNorm"])
    kw = {"d_model": 8, "n_heads": 2, "d_ff": 16, "dropout": 0.1}
    children = {"self_attn": ("MultiHeadAttention", {**MHA, "dropout": 0.1})}
    pair = toolkit.build_pair(sub, ref, "EncoderLayer", children=children, **kw)
    sub.flush()
    layer = executor.objects[pair.student["ref"]]
    kept = layer.self_attn
    assert type(kept) is executor.oracles["MultiHeadAttention"]  # the trusted one, sent as source
    # the learner's layer built the oracle itself, with the same arguments: kept as it is
    sub.inject_oracle(
        pair.student,
        "self_attn",
        "MultiHeadAttention",
        {**MHA, "dropout": 0.1},
        dtype=torch.float64,
        train=False,
        state_dict=pair.reference.self_attn.state_dict(),
    )
    sub.flush()
    assert layer.self_attn is kept
    # other arguments (or other weights): a fresh oracle with what the grader asked for
    sub.inject_oracle(
        pair.student,
        "self_attn",
        "MultiHeadAttention",
        {**MHA, "dropout": 0.3},
        dtype=torch.float64,
        train=False,
        state_dict=pair.reference.self_attn.state_dict(),
    )
    sub.flush()
    assert layer.self_attn is not kept
    assert dict(layer.self_attn.init_args)["dropout"] == 0.3
    for key, value in pair.reference.self_attn.state_dict().items():
        torch.testing.assert_close(layer.self_attn.state_dict()[key], value)


def test_reference_modules_are_reused_across_examples_but_never_shared_within_one(ref):
    toolkit.return_references()
    sub, _, _ = _in_process(REFERENCE)
    a = toolkit.build_pair(sub, ref, "FeedForward", seed=1, d_model=4, d_ff=8).reference
    b = toolkit.build_pair(sub, ref, "FeedForward", seed=2, d_model=4, d_ff=8).reference
    assert a is not b
    assert not torch.equal(a.fc1.weight, b.fc1.weight)
    toolkit.return_references()
    c = toolkit.build_pair(sub, ref, "FeedForward", seed=1, d_model=4, d_ff=8).reference
    assert c is a or c is b
    fresh = toolkit.randomize_(ref.feedforward.FeedForward(4, 8).double(), 1)
    for key, value in fresh.state_dict().items():  # re-randomized exactly as a new module
        assert torch.equal(c.state_dict()[key], value)
    toolkit.return_references()


def test_weights_load_by_copy_only_when_nothing_customises_loading():
    plain = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    assert _plain_loading(plain)

    class Renaming(nn.Linear):
        def _load_from_state_dict(self, *args, **kwargs):
            super()._load_from_state_dict(*args, **kwargs)

    assert not _plain_loading(nn.Sequential(Renaming(3, 4)))
    hooked = nn.Linear(3, 4)
    hooked.register_load_state_dict_post_hook(lambda module, keys: None)
    assert not _plain_loading(nn.Sequential(hooked))


def test_skipped_initialisation_is_restored_afterwards():
    with no_torch_init():
        nn.Linear(3, 4)
    torch.manual_seed(0)
    layer = nn.Linear(300, 4)
    assert 0 < float(layer.weight.detach().abs().max()) <= 1 / 300**0.5 + 1e-6


def test_device_auto_falls_back_to_what_the_machine_has_and_names_are_checked():
    from llm_grade.engine.environment import resolve_device

    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto") == (expected or "cpu")
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(pytest.UsageError, match="expected cpu, cuda, mps or auto"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(pytest.UsageError, match="has no cuda device"):
            resolve_device("cuda")


def test_gpu_tolerances_come_from_the_rubric_and_apply_only_on_that_device(tmp_path):
    from lg_paths import GRADERS

    from llm_grade.engine.rubric import load_rubric

    rubric = load_rubric(GRADERS / "rubric.toml")
    assert rubric.device_tolerance["cuda"]["float32"]["atol"] > rubric.tolerance["float32"]["atol"]
    assert rubric.tolerance["float16"]["atol"] < rubric.tolerance["bfloat16"]["atol"]
    bad = tmp_path / "rubric.toml"
    bad.write_text("[tolerance.cuda]\nfloat32 = { atol = 1e-3 }\n")
    with pytest.raises(Exception, match=r"tolerance.cuda.float32 must be"):
        load_rubric(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_modules_and_inputs_move_there_and_results_come_back_to_the_cpu(ref):
    sub, executor, _ = _in_process(REFERENCE)
    sub.set_device("cuda")
    pair = toolkit.build_pair(sub, ref, "MultiHeadAttention", dtype=torch.float32, **MHA)
    x = torch.randn(2, 3, 8)
    out = sub.call(pair.student, x, x, x)
    assert executor.objects[pair.student["ref"]].q_proj.weight.is_cuda
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, pair.reference(x, x, x), atol=1e-3, rtol=1e-3)
    low = sub.call(pair.student, x, x, x, autocast=torch.float16)
    assert low.device.type == "cpu" and low.dtype == torch.float16


def test_a_call_can_run_under_autocast_on_the_cpu(ref):
    sub, _, _ = _in_process(REFERENCE)
    pair = toolkit.build_pair(sub, ref, "FeedForward", dtype=torch.float32, d_model=4, d_ff=8)
    x = torch.randn(2, 3, 4)
    assert sub.call(pair.student, x).dtype == torch.float32
    low = sub.call(pair.student, x, autocast=torch.bfloat16)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), pair.reference(x), atol=0.1, rtol=0.1)
