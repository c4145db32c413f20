"""The training check (GPT.learns_one_batch, Transformer.learns_one_batch): the reference trains,
an untrainable model fails with a message that names the cause, a wrong but trainable
component costs nothing there, and a model that answers from memory instead of from the
weights it is sent does not pass (llm_grade/grading/training.py)."""

from __future__ import annotations

import pytest
from lg_paths import REFERENCE

from llm_grade.engine.run import grade

SELECT = "learns_one_batch"


def _check(result, component: str):
    (check,) = [
        c
        for comp in result.components
        if comp.name == component
        for c in comp.checks
        if c.name == SELECT
    ]
    return check


def _edit(folder, module: str, find: str, replace: str) -> None:
    path = folder / f"{module}.py"
    source = path.read_text()
    assert source.count(find) == 1, find
    path.write_text(source.replace(find, replace))


def test_the_reference_trains_and_its_curves_reach_the_results():
    result = grade(REFERENCE, quiet=True, select=SELECT, isolation="process")
    for component in ("GPT", "Transformer"):
        check = _check(result, component)
        assert check.status == "passed", check.message
        curves = check.curves
        assert len(curves["learner"]) == len(curves["reference"]) == curves["steps"] + 1
        # the learner's own model is the reference here: the same curve, and it falls
        assert curves["learner"][-1] < 0.6 * curves["learner"][0]
        assert curves["learner"] == pytest.approx(curves["reference"], rel=1e-3)


UNTRAINABLE = [
    pytest.param(
        "transformer",
        "        self.blocks = nn.ModuleList(\n"
        "            TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)\n"
        "        )",
        "        self.blocks = [\n"
        "            TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)\n"
        "        ]",
        "GPT",
        ["`blocks.0", "nn.ModuleList"],
        id="gpt-layers-in-a-python-list",
    ),
    pytest.param(
        "feedforward",
        "        return self.fc2(self.dropout(gelu(self.fc1(x))))",
        "        return self.fc2(self.dropout(gelu(self.fc1(x).detach())))",
        "GPT",
        ["`blocks.0.ffn.fc1`", ".detach()"],
        id="feedforward-detach",
    ),
    pytest.param(
        "feedforward",
        "        return self.fc2(self.dropout(gelu(self.fc1(x))))",
        "        return self.fc2(self.dropout(gelu(self.fc1(x).detach())))",
        "Transformer",
        ["ffn.fc1`", ".detach()"],
        id="feedforward-detach-transformer",
    ),
    pytest.param(
        "transformer",
        "        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)\n",
        "        self.lm_head_weight = torch.randn(vocab_size, d_model) / d_model**0.5\n",
        "GPT",
        ["`lm_head`", "nn.Parameter"],
        id="gpt-plain-tensor-parameters",
    ),
]


@pytest.mark.parametrize(("module", "find", "replace", "component", "said"), UNTRAINABLE)
def test_an_untrainable_model_fails_with_its_cause(
    module, find, replace, component, said, reference_copy
):
    _edit(reference_copy, module, find, replace)
    if "lm_head_weight" in replace:  # the forward pass uses the plain tensor
        _edit(
            reference_copy,
            "transformer",
            "        return self.lm_head(self.norm(x))",
            "        return self.norm(x) @ self.lm_head_weight.T",
        )
    result = grade(reference_copy, quiet=True, select=SELECT, isolation="process")
    check = _check(result, component)
    assert check.status == "failed"
    shown = f"{check.message} {check.hint}"
    for text in said:
        assert text in shown, shown


def test_a_wrong_but_trainable_layernorm_costs_nothing_here(reference_copy):
    """Credit isolation: the training check compares the learner's model with itself."""
    _edit(
        reference_copy,
        "normalization",
        "        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, (..., 1)",
        "        var = x.var(dim=-1, keepdim=True)",
    )
    result = grade(reference_copy, quiet=True, select=SELECT, isolation="process")
    for component in ("GPT", "Transformer"):
        assert _check(result, component).status == "passed"


def test_a_model_that_answers_from_memory_does_not_pass(reference_copy):
    """The loss is the trusted side's, from the logits; a model that learns the targets from
    the gradients' traffic and ignores its weights gives other logits for its first weights."""
    _edit(
        reference_copy,
        "transformer",
        "        return self.lm_head(self.norm(x))",
        "        out = self.lm_head(self.norm(x))\n"
        "        _SEEN.append(1)\n"
        "        return out * (1.0 + 5.0 * len(_SEEN))",
    )
    _edit(reference_copy, "transformer", "class GPT(", "_SEEN = []\n\n\nclass GPT(")
    result = grade(
        reference_copy, quiet=True, select="GPT and learns_one_batch", isolation="process"
    )
    check = _check(result, "GPT")
    assert check.status == "failed"
    assert "does not follow the weights" in check.message


def test_the_written_out_adamw_is_torchs():
    """training.AdamW (no torch.optim: its first optimizer imports torch._dynamo) makes the
    same steps as torch.optim.AdamW with the same defaults, to the last bit, a parameter
    without a gradient left alone, the learning rate changed between steps (a schedule)."""
    import torch

    from llm_grade.grading.training import AdamW

    g = torch.Generator().manual_seed(0)
    ours = [torch.randn(5, 3, generator=g).requires_grad_(), torch.randn(4, generator=g)]
    ours[1].requires_grad_()
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    a, b = AdamW(ours, lr=1e-2), torch.optim.AdamW(theirs, lr=1e-2)
    for step in range(25):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            grad = torch.randn(p.shape, generator=g)
            p.grad = None if (i == 1 and step % 3 == 0) else grad
            q.grad = None if p.grad is None else grad.clone()
        a.lr = b.param_groups[0]["lr"] = 1e-2 * (1 + step % 4)
        a.step()
        b.step()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_logits_that_turn_non_finite_while_training_say_training_diverged():
    import torch

    from llm_grade.grading.compare import CheckFailure
    from llm_grade.grading.training import _logits

    bad = torch.zeros(2, 3, 5)
    bad[1, 2, 4] = float("nan")
    with pytest.raises(CheckFailure, match="After 7 AdamW steps the logits are not finite"):
        _logits(bad, (2, 3, None), "case", 7)
    assert _logits(torch.zeros(2, 3, 5), (2, 3, None), "case", 7).shape == (2, 3, 5)
