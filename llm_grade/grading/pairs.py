"""Reference/learner pairs: reference modules with random weights, the learner's module built
with the same weights, gradient checks, and the messages for state_dict mismatches.

Trusted side: helpers of the graders. They reach learner code only through the submission
handle ``sub``; a "student" here is a reference (``{"ref": id}``) that only the handle can use.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llm_grade.components import module_of
from llm_grade.grading.context import current
from llm_grade.grading.outcomes import CheckFailure, StateDictReport


def reference_of(ref_pkg, component: str):
    """The reference's class or function named ``component``."""
    module = importlib.import_module(f"{ref_pkg.__name__}.{module_of(component)}")
    return getattr(module, component)


@torch.no_grad()
def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Give every parameter random values (norm gains near 1, everything else around 0), so a
    learner's formula is compared on generic weights, not on the identity init of a LayerNorm."""
    g = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    for owner in module.modules():  # the order of named_parameters(), without the lookups
        for leaf, p in owner._parameters.items():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if isinstance(owner, nn.Embedding):
                p.copy_(noise)
            elif leaf == "weight" and p.dim() == 1:  # a norm's gain
                p.copy_(noise.mul_(0.5).add_(1.0))
            elif p.dim() >= 2:
                p.copy_(noise.div_(math.sqrt(p.shape[-1])))
            else:
                p.copy_(noise.mul_(0.5))
    return module


def module_paths(keys: list[str]) -> list[str]:
    """The modules that hold these state_dict keys (``blocks.0.ffn.fc1.weight`` ->
    ``blocks.0.ffn.fc1``), sorted, each once."""
    return sorted({k.rsplit(".", 1)[0] if "." in k else k for k in keys})


def state_dict_message(component: str, report: StateDictReport, call: str = "") -> str:
    """``expected attribute `q_proj` in MultiHeadAttention, found `query`, ...``; for a shape
    that differs, which constructor arguments the expected sizes are (from ``call``, the
    build's description)."""
    from llm_grade.engine.feedback import size_names

    names = size_names(call) if call else {}
    parts = []
    if report.missing:
        expected = ", ".join(f"`{k}`" for k in module_paths(report.missing))
        found = ", ".join(f"`{k}`" for k in module_paths(report.unexpected))
        found = found or "nothing in its place"
        parts.append(f"expected attribute {expected} in {component}, found {found}")
    elif report.unexpected:
        biases = [k for k in report.unexpected if k.endswith(".bias")]
        parts.append(
            f"{component} has parameters API.md does not list: "
            + ", ".join(f"`{k}`" for k in report.unexpected)
            + (" (a layer API.md builds with bias=False?)" if biases else "")
        )
    for key, own, theirs in report.shape_mismatch:
        said = [
            f"{n} = {'/'.join(names[n][:2])}"
            for n, o in zip(theirs, own, strict=False)
            if n != o and names.get(n)
        ]
        parts.append(
            f"`{key}` has shape {own}, expected {theirs}"
            + (f" ({', '.join(said)}: is that argument used?)" if said else "")
        )
    return "; ".join(parts) + "."


STATE_DICT_HINT = (
    "Create the sub-modules and parameters with exactly the names API.md lists (they become "
    "the state_dict keys), so the reference's weights load with load_state_dict(strict=True)."
)


def _reference_module(ref_pkg, component: str, dtype: torch.dtype, kwargs: dict) -> nn.Module:
    """A reference module from this run's pool (see
    :class:`~llm_grade.grading.context.ReferencePool`)."""
    from llm_grade.sandbox.module_ops import no_torch_init

    def build() -> nn.Module:
        with no_torch_init():  # every parameter is randomized next
            return reference_of(ref_pkg, component)(**kwargs).to(dtype)

    key = (ref_pkg.__name__, component, dtype, tuple(sorted(kwargs.items())))
    return current().pool.borrow(key, build)  # (an unhashable key is built fresh there)


def return_references() -> None:
    """The Hypothesis example that borrowed reference modules ended: they can be reused."""
    current().pool.give_back()


@dataclass
class Pair:
    """A learner module (``student``, a handle reference) and the reference module with the
    same weights, both in the same dtype and train/eval mode."""

    student: dict
    reference: nn.Module


def build_pair(
    sub,
    ref_pkg,
    component: str,
    *,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    train: bool = False,
    children: dict[str, tuple[str, dict[str, Any]]] | None = None,
    **kwargs: Any,
) -> Pair:
    """Build ``component(**kwargs)`` twice (learner, reference), randomize the reference's
    weights and load them into the learner's module (strict).

    ``children`` maps sub-module paths (``"self_attn"``, ``"layers.0"``) to the graded
    component and arguments that live there; each is replaced by a trusted oracle with the
    same weights, so the learner's composite is graded on its own wiring.
    """
    reference = _reference_module(ref_pkg, component, dtype, kwargs)
    randomize_(reference, seed)
    reference.train(train)
    # a key or shape mismatch raises CheckFailure(state_dict_message(...)) at the first
    # request that waits for an answer (the build travels with it)
    student = sub.build_loaded(
        component, kwargs, dtype=dtype, train=train, state_dict=reference.state_dict()
    )
    for path, (child, child_kwargs) in (children or {}).items():
        sub.inject_oracle(
            student,
            path,
            child,
            child_kwargs,
            dtype=dtype,
            train=train,
            state_dict=reference.get_submodule(path).state_dict(),
        )
    return Pair(student, reference)


GRAPH_HINT = (
    "Something cuts the graph or freezes a weight: .detach(), .data, .item(), torch.no_grad(), "
    "requires_grad_(False), a register_buffer where an nn.Parameter belongs, or rebuilding a "
    "tensor with torch.tensor(...). Keep every step a tensor op on trainable parameters."
)


def expect_gradients(sub, pair: Pair, *args: Any, case: str, method: str | None = None) -> None:
    """Every parameter that gets a gradient in the reference gets one in the learner's module.

    (Some parameters get none by construction, e.g. the key bias in attention: a constant
    added to every score cancels in the softmax; the reference tells which.)
    """
    from llm_grade.grading.outcomes import LearnerError

    try:
        grads = sub.gradients(pair.student, *args, method=method)
    except LearnerError as exc:
        if "does not require grad" not in exc.exc_message:
            raise
        raise CheckFailure(
            "No gradient reaches any parameter: the output does not depend on anything "
            "that trains.",
            counterexample=case,
            hint=GRAPH_HINT,
        ) from None
    ref_out = pair.reference(*args) if method is None else getattr(pair.reference, method)(*args)
    if isinstance(ref_out, tuple):
        ref_out = ref_out[0]
    pair.reference.zero_grad(set_to_none=True)
    weights = torch.randn(
        ref_out.shape, generator=torch.Generator().manual_seed(0), dtype=ref_out.dtype
    )
    (ref_out * weights).sum().backward()
    for name, p in pair.reference.named_parameters():
        if p.grad is None or not bool((p.grad.abs() > 1e-12).any()):
            continue
        g = grads.get(name) if isinstance(grads, dict) else None
        if type(g) is not torch.Tensor or not bool((g != 0).any()):
            raise CheckFailure(
                f"No gradient reaches `{name}`.",
                counterexample=case,
                hint=GRAPH_HINT,
            )


def same_inputs(before: list, after: list) -> bool:
    """True when every tensor argument is unchanged after the call (no in-place edits)."""
    for a, b in zip(before, after, strict=False):
        if isinstance(a, torch.Tensor):
            if type(b) is not torch.Tensor or a.shape != b.shape or a.dtype != b.dtype:
                return False
            if not torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)):
                return False
    return True
