"""Hints chosen from the evidence: what a mismatch looks like (llm_grade.grading.diagnose),
where the sizes in a crash come from (llm_grade.engine.feedback), and what one failure says
about another once the run is over (llm_grade.engine.explain)."""

from __future__ import annotations

import pytest
import torch

from llm_grade.engine.explain import settle
from llm_grade.engine.feedback import crash_hint, size_names
from llm_grade.engine.results import CheckResult, ComponentResult
from llm_grade.grading.compare import KnownCause, expect_close, hint_for
from llm_grade.grading.diagnose import find_pattern
from llm_grade.grading.outcomes import CheckFailure, StateDictReport
from llm_grade.grading.toolkit import state_dict_message
from llm_grade.sandbox.wire import decode, encode

E = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_patterns_of_a_mismatch():
    assert find_pattern(E * 2**-0.5, E).kind == "factor"
    assert "1/sqrt(2)" in find_pattern(E * 2**-0.5, E).text
    assert find_pattern(-E, E).kind == "sign"
    assert find_pattern(E + 0.25, E).kind == "offset"
    assert find_pattern(E.roll(1, dims=1), E).kind == "shift"
    assert find_pattern(torch.zeros_like(E), E).kind == "zero"
    heads = E.reshape(2, 3, 2, 2)[:, :, [1, 0]].reshape(2, 3, 4)
    assert "blocks of 2 features" in find_pattern(heads, E).text
    square = E[:, :, :3]
    assert find_pattern(square.transpose(-1, -2), square).kind == "transpose"
    mixed = E.transpose(1, 2).reshape(2, 3, 4)
    assert "in other places" in find_pattern(mixed, E).text
    local = E.clone()
    local[:, 0] += 1.0
    assert find_pattern(local, E).kind == "local"
    noise = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert find_pattern(noise, E) is None


def test_the_hint_follows_the_pattern_unless_a_known_cause_matched():
    try:
        expect_close(E * 8**0.5, E, "out", case="", hint="grader hint", explain={"factor": "SCALE"})
    except CheckFailure as exc:
        assert "times the expected one" in exc.message and exc.hint == "SCALE"
    try:
        expect_close(-E, E, "out", case="", hint="grader hint")
    except CheckFailure as exc:
        assert exc.hint.startswith("The sign is flipped") and exc.hint.endswith("grader hint")
    known = hint_for(-E, [(-E, "a known bug")], "default")
    assert isinstance(known, KnownCause)
    try:
        expect_close(-E, E, "out", case="", hint=known)
    except CheckFailure as exc:
        assert exc.hint == "a known bug"
    # two known wrong answers both reproduce it: the evidence does not tell, the default says
    both = hint_for(-E, [(-E, "one"), (-E, "two")], "default")
    assert not isinstance(both, KnownCause) and both.startswith("default") and "one / two" in both


CALL = (
    "DecoderLayer(d_model=8, n_heads=2, d_ff=16, dropout=0.0).forward(float64 tensor of shape "
    "(2, 3, 8), float64 tensor of shape (2, 5, 8), bool tensor of shape (3, 3), bool tensor of "
    "shape (2, 1, 5))"
)


def test_sizes_of_a_call_are_named_by_argument():
    names = size_names(CALL)
    assert "x.size(1)" in names[3] and "memory.size(1)" in names[5] and "d_model" in names[8]


def test_a_broadcast_error_between_two_sequences_says_so():
    message = "The size of tensor a (3) must match the size of tensor b (5) at non-singleton dim 3"
    hint = crash_hint(message, CALL, "matches_reference", "RuntimeError")
    assert "3 = x.size(1)" in hint and "5 = memory.size(1)" in hint
    assert "each mask and tensor goes with the sequence" in hint
    assert "unsqueeze" not in hint


def test_a_length_taken_from_the_batch_axis_says_so():
    call = (
        "SinusoidalPositionalEncoding(d_model=4, max_len=8).forward(float64 tensor of shape "
        "(2, 3, 4))"
    )
    message = "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dim 1"
    assert "T = x.size(1)" in crash_hint(message, call, "matches_reference", "RuntimeError")


def test_a_value_error_on_a_valid_call_points_at_the_condition():
    hint = crash_hint("T=4 exceeds max_len=4", "x", "dropout_only_in_training", "ValueError")
    assert "> or >=" in hint
    assert "> or >=" not in crash_hint("bad", "x", "rejects_bad_arguments", "ValueError")


def test_a_shape_mismatch_of_the_state_dict_names_the_argument():
    report = StateDictReport(shape_mismatch=[("pos_embed.embedding.weight", (1024, 16), (7, 16))])
    message = state_dict_message("GPT", report, "GPT(vocab_size=5, d_model=16, max_len=7)")
    assert "7 = max_len" in message


def _check(component, name, status="passed", points=1.0, message="", title=None):
    return CheckResult(
        name=name,
        component=component,
        title=title or name,
        status=status,
        points=points if status == "passed" else 0.0,
        max_points=points,
        message=message,
        hint="its own hint",
    )


def test_the_end_to_end_check_is_skipped_when_a_part_it_covers_fails():
    gpt = ComponentResult(
        "GPT",
        "transformer",
        [
            _check("GPT", "matches_reference"),
            _check("GPT", "mixed_precision", "failed", 0.5, "autocast differs"),
        ],
    )
    block = ComponentResult(
        "TransformerBlock", "blocks", [_check("TransformerBlock", "causality", "failed")]
    )
    settle([block, gpt])
    (mixed,) = [c for c in gpt.checks if c.name == "mixed_precision"]
    assert mixed.status == "skipped" and mixed.points == mixed.max_points
    assert "depends on TransformerBlock" in mixed.message
    assert gpt.status == "passed"


def test_an_unstarted_model_gets_no_end_to_end_points():
    gpt = ComponentResult(
        "GPT",
        "transformer",
        [
            _check("GPT", "matches_reference", "not_implemented"),
            _check("GPT", "mixed_precision", "not_implemented", 0.5),
        ],
    )
    block = ComponentResult(
        "TransformerBlock", "blocks", [_check("TransformerBlock", "causality", "not_implemented")]
    )
    settle([block, gpt])
    assert gpt.score == 0 and gpt.status == "not_implemented"


def test_secondary_failures_point_at_the_equivalence_check():
    mha = ComponentResult(
        "MultiHeadAttention",
        "attention",
        [
            _check(
                "MultiHeadAttention", "matches_reference", "failed", title="matches the reference"
            ),
            _check("MultiHeadAttention", "causality", "failed"),
            _check("MultiHeadAttention", "rejects_bad_head_count", "failed"),
            _check("MultiHeadAttention", "keeps_dtype_and_inputs", "error", message="boom"),
            _check("MultiHeadAttention", "padding_invariance", "error", message="boom"),
        ],
    )
    settle([mha])
    hints = {c.name: c.hint for c in mha.checks}
    assert hints["matches_reference"] == "its own hint"
    assert "Probably the same bug as 'matches the reference'" in hints["causality"]
    assert hints["rejects_bad_head_count"] == "its own hint"  # independent of the forward pass
    assert "The same error as in 'keeps_dtype_and_inputs'" in hints["padding_invariance"]


def test_meta_tensors_cross_the_wire_as_shapes():
    value = decode(encode({"mask": torch.ones(3, 3, dtype=torch.bool, device="meta")}))
    assert value["mask"].is_meta and value["mask"].shape == (3, 3)
    assert value["mask"].dtype == torch.bool


def test_expected_and_got_are_printed_so_that_they_visibly_differ():
    from llm_grade.grading.compare import expect_rows_unchanged

    expected = torch.linspace(0.1, 0.9, 12, dtype=torch.float64).reshape(1, 12)
    for change, at in ((1.3e-4, 9), (3e-8, 0), (-0.5, 11)):
        got = expected.clone()
        got[0, at] += change
        with pytest.raises(CheckFailure) as info:
            expect_close(got, expected, "output", case="case", hint="")
        lines = info.value.counterexample.splitlines()
        shown_expected = lines[1].split(":", 1)[1].strip()
        shown_got = lines[2].split(":", 1)[1].strip()
        assert shown_expected != shown_got, lines
        # the column that differs is on screen, and it is the only one that reads differently
        pairs = list(zip(shown_expected.split(", "), shown_got.split(", "), strict=True))
        assert sum(a != b for a, b in pairs) == 1, lines
    before = torch.full((1, 2, 8), 0.41912)
    after = before.clone()
    after[0, 1, 7] += 1.3e-4
    with pytest.raises(CheckFailure) as info:
        expect_rows_unchanged(
            before, after, torch.tensor([[True, True]]), what="x", case="", hint=""
        )
    detail = info.value.counterexample.splitlines()
    assert detail[0].split(":", 1)[1] != detail[1].split(":", 1)[1].split("(")[0].rstrip()
