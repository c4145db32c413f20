"""Does the learner's model train? Overfitting one fixed batch with AdamW.

A model can match the reference in ``eval()`` and still be untrainable: a ``.detach()``, a
``torch.no_grad()``, layers kept in a Python list or a weight kept as a plain tensor cut the
gradient or hide a weight from the optimizer. The check here trains the learner's whole model
(its own code all the way down, float32, dropout 0, seeded) on one tiny batch for a few AdamW
steps and asks that (a) every parameter the reference's training moves gets a gradient from
the learner's model and (b) the loss falls at least halfway from the reference's first loss to
the reference's last one (the reference trained from the same weights, the same way).

Who decides what (trusted side): this process owns the weights and the optimizer. Each step
the worker loads the weights it is sent, runs the learner's forward pass and its backward pass
(``Submission.train_step``) and sends back plain tensors, the logits and the gradients; the
loss is computed *here* from those logits, AdamW runs here. The last loss comes from a plain
forward call with the trained weights (the targets do not travel with it), and the learner's
model is then run once more from its first weights, which must give back its first logits (a
model whose output does not follow the weights it is sent cannot pass by remembering). A wrong but
trainable component (a LayerNorm without eps, say) costs nothing here: the learner's model is
only compared with itself and the bound is wide.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from llm_grade.grading.compare import CheckFailure, expect_tensor
from llm_grade.grading.outcomes import LearnerError, StateDictReport, WorkerFailure
from llm_grade.grading.pairs import module_paths, state_dict_message

STEPS = 20
LR = 1e-2
SHARE = 0.5  # of the reference's fall in loss, at least


@dataclass(frozen=True)
class Batch:
    args: tuple  # the forward pass's inputs
    targets: torch.Tensor  # [B, T] token ids the logits [B, T, V] should predict
    what: str  # the batch in words, for the counterexample


def gpt_batch(vocab_size: int, seed: int, B: int = 4, T: int = 8) -> Batch:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab_size, (B, T + 1), generator=g)
    return Batch((tokens[:, :-1],), tokens[:, 1:], f"tokens [{B}, {T}] -> next tokens")


def seq2seq_batch(src_vocab: int, tgt_vocab: int, seed: int, B: int = 4, T: int = 8) -> Batch:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, src_vocab, (B, T), generator=g)
    tgt = torch.randint(0, tgt_vocab, (B, T + 1), generator=g)
    return Batch((src, tgt[:, :-1]), tgt[:, 1:], f"src [{B}, {T}], tgt [{B}, {T}] -> next tokens")


class AdamW:
    """``torch.optim.AdamW`` with its defaults (betas 0.9, 0.999, eps 1e-8, weight decay 0.01),
    for parameters whose ``.grad`` is set or None (None: left alone, as torch does). Written
    out because the first ``torch.optim`` optimizer of a process imports ``torch._dynamo``
    (about a second here), which a grading would pay in every worker and helper."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float = 0.01):
        self.params, self.lr, self.wd = list(params), lr, weight_decay
        self.betas, self.eps = (0.9, 0.999), 1e-8
        self.state: dict[int, list] = {}  # index -> [steps, exp_avg, exp_avg_sq]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One step for every parameter with a gradient, with torch's ``_foreach`` kernels
        (the same arithmetic as a loop over the parameters, in a few calls instead of a
        few hundred: most of a tiny model's optimizer time is the calls)."""
        b1, b2 = self.betas
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        for i in live:
            p = self.params[i]
            if i not in self.state:
                self.state[i] = [0, torch.zeros_like(p), torch.zeros_like(p)]
            self.state[i][0] += 1
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        m = [self.state[i][1] for i in live]
        v = [self.state[i][2] for i in live]
        steps = [self.state[i][0] for i in live]
        torch._foreach_mul_(params, 1 - self.lr * self.wd)
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, [(1 - b2**t) ** 0.5 for t in steps])
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, m, denom, [-self.lr / (1 - b1**t) for t in steps])


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1)))


def _at(value, step: int):
    """A per-step value: ``value(step)`` when it is a schedule, else ``value``."""
    return value(step) if callable(value) else value


def train_reference(
    model: torch.nn.Module, batch, steps: int = STEPS, lr=LR, *, final: bool = True
):
    """The reference trained in this process: (losses before each step, and after the last
    when ``final``; the names of the parameters whose gradient was ever non-zero, when
    ``final``, else an empty set). ``batch`` and ``lr`` are a :class:`Batch` and a float, or
    a step's (``batch(step)``)."""
    model.train()
    named = list(model.named_parameters())
    opt = AdamW([p for _, p in named], lr=_at(lr, 0))
    losses, moved = [], set()
    for step in range(steps):
        data, opt.lr = _at(batch, step), _at(lr, step)
        opt.zero_grad(set_to_none=True)
        logits = model(*data.args)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), data.targets.reshape(-1))
        loss.backward()
        if final:
            moved |= {n for n, p in named if p.grad is not None and p.grad.any()}
        opt.step()
        losses.append(float(loss.detach()))
    if final:
        with torch.no_grad():
            losses.append(_loss(model(*batch.args), batch.targets))
    return losses, moved


@dataclass
class LearnerRun:
    losses: list[float]
    got_gradient: set[str]  # parameters whose gradient was ever non-zero
    first_logits: torch.Tensor
    state: dict[str, torch.Tensor]  # the trained weights
    stopped: bool = False  # at the deadline, before the last step


def _usable_gradients(grads: dict, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The learner's gradients that can be used: plain floating-point tensors of their
    parameter's shape, finite and not all zero (judged from their norms, in one call)."""
    kept = {}
    for name, p in params.items():
        g = grads.get(name)
        if type(g) is torch.Tensor and tuple(g.shape) == tuple(p.shape) and g.is_floating_point():
            kept[name] = g.to(p.dtype)
    if not kept:
        return {}
    norms = torch.stack(torch._foreach_norm(list(kept.values())))  # inf, nan: not finite
    usable = (norms.isfinite() & (norms > 0)).tolist()
    return {name: g for (name, g), ok in zip(kept.items(), usable, strict=True) if ok}


def train_learner(
    sub,
    student: dict,
    initial: dict[str, torch.Tensor],
    trainable: list[str],
    batch,
    case: str,
    steps: int = STEPS,
    lr=LR,
    *,
    final: bool = True,
    deadline: float | None = None,
    progress=None,
) -> LearnerRun | None:
    """Train the learner's model with the optimizer on this side (see the module docstring);
    None when it does not run at all (it crashes, or its first logits are not finite).
    ``batch`` and ``lr`` as in :func:`train_reference`; past ``deadline`` (a
    ``time.monotonic()`` value) the run stops early; ``progress(step)`` after each step."""
    params = {n: initial[n].detach().clone().requires_grad_(True) for n in trainable}
    opt = AdamW(list(params.values()), lr=_at(lr, 0))
    losses, got, first, stopped = [], set(), None, False
    for step in range(steps):
        if deadline is not None and step and time.monotonic() > deadline:
            stopped = True
            break
        data, opt.lr = _at(batch, step), _at(lr, step)
        state = {**initial, **{n: p.detach().clone() for n, p in params.items()}}
        try:
            reply = sub.train_step(student, *data.args, state_dict=state, targets=data.targets)
        except (LearnerError, WorkerFailure):  # (a hang in a part: as GPT.mixed_precision)
            if step:
                raise
            return None  # the model does not run: other checks say why, not this one
        reply = reply if isinstance(reply, dict) else {}
        value = reply.get("logits")
        if step == 0 and type(value) is torch.Tensor and not bool(value.isfinite().all()):
            return None  # likewise: NaN before any training is a component's own bug
        logits = _logits(value, (*data.targets.shape, None), case, step)
        if first is None:
            first = logits
        losses.append(_loss(logits, data.targets))
        grads = reply.get("grads") if isinstance(reply.get("grads"), dict) else {}
        opt.zero_grad(set_to_none=True)
        for name, g in _usable_gradients(grads, params).items():
            params[name].grad = g
            got.add(name)
        opt.step()
        if progress is not None:
            progress(step + 1)
    state = {**initial, **{n: p.detach().clone() for n, p in params.items()}}
    if final:
        losses.append(_loss(_forward(sub, student, state, batch, case, steps), batch.targets))
    return LearnerRun(losses, got, first, state, stopped)


def _logits(value: Any, shape: tuple, case: str, step: int) -> torch.Tensor:
    # (finiteness below, with what it means while training)
    logits = expect_tensor(value, "logits while training", case=case, finite=False)
    if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(shape[:2]):
        raise CheckFailure(
            f"While training, the logits have shape {tuple(logits.shape)}, expected "
            f"[{shape[0]}, {shape[1]}, vocab_size].",
            counterexample=case,
        )
    if not bool(logits.isfinite().all()):
        raise CheckFailure(
            f"After {step} AdamW steps the logits are not finite (NaN or inf): training "
            "diverged where the reference's did not.",
            counterexample=case,
            hint="Look for a division or a log that can blow up, e.g. a LayerNorm without "
            "eps, or a softmax without subtracting the row maximum.",
        )
    return logits.float()


def _forward(sub, student: dict, state: dict, batch: Batch, case: str, step: int):
    """The learner's logits for ``batch`` with weights ``state``: a plain call, which the
    targets do not travel with (the final loss cannot come from a peek at them)."""
    sub.load_state_dict(student, state)
    value = sub.call(student, *batch.args)
    return _logits(value, (*batch.targets.shape, None), case, step)


UNREGISTERED_LIST = (
    "Layers kept in a plain Python list are invisible to model.parameters(), state_dict() and "
    "every optimizer: keep them in an nn.ModuleList (self.blocks = nn.ModuleList([...]))."
)
UNREGISTERED_TENSOR = (
    "A weight kept as a plain tensor (self.w = torch.randn(...)) is not a parameter: "
    "model.parameters() and the optimizer never see it, so it never trains. Wrap it in "
    "nn.Parameter, or use the nn.Linear / nn.Embedding that API.md names."
)
NO_GRADIENT = (
    "Something cuts the graph before these weights: a .detach(), .data, .item() or "
    "torch.no_grad() in the forward pass of the module that holds them (or of the one that "
    "feeds it), or requires_grad=False. The optimizer then never changes them: the model "
    "cannot learn what they compute."
)


def _listed(heads: list[str]) -> str:
    return ", ".join(f"`{h}`" for h in heads[:6]) + (" ..." if len(heads) > 6 else "")


def unregistered_message(component: str, report: StateDictReport) -> tuple[str, str]:
    """What the learner's parameters lack, and why that stops training (message, hint)."""
    if report.shape_mismatch or not report.missing:
        return state_dict_message(component, report), ""
    heads = module_paths(report.missing)
    message = (
        f"{component}'s parameters lack {_listed(heads)}: the optimizer never sees them, so "
        "they never train (and the model's weights cannot be loaded or saved)."
    )
    indexed = any(part.isdigit() for h in heads for part in h.split("."))
    return message, UNREGISTERED_LIST if indexed else UNREGISTERED_TENSOR


def starting_point(reference: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The weights both models start from (the reference's, copied) and the names of the
    parameters that train."""
    initial = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    return initial, [n for n, p in reference.named_parameters() if p.requires_grad]


def learner_model(
    sub, component: str, kwargs: dict, initial: dict[str, torch.Tensor], case: str
) -> dict:
    """The learner's ``component`` (its own code all the way down), float32, in train mode,
    loaded with ``initial``; one whose parameters differ raises :class:`CheckFailure`
    saying what the optimizer cannot see."""
    sub.use_oracles([])
    student = sub.build(component, **kwargs)
    sub.configure(student, train=True, dtype=torch.float32)
    report = sub.load_state_dict(student, initial)
    if report.missing or report.unexpected or report.shape_mismatch:
        message, hint = unregistered_message(component, report)
        raise CheckFailure(message, counterexample=case, hint=hint)
    return student


def expect_learns_one_batch(
    sub, reference: torch.nn.Module, component: str, kwargs: dict, batch: Batch, case: str
) -> dict:
    """The check (see the module docstring); returns the loss curves for the report (None
    when the learner's model does not run in float32: its components' checks say why)."""
    initial, trainable = starting_point(reference)
    ref_losses, moved = train_reference(reference, batch)
    student = learner_model(sub, component, kwargs, initial, case)
    run = train_learner(sub, student, initial, trainable, batch, case)
    if run is None:  # as GPT.mixed_precision: what only a working model can show
        return None
    curves = {"steps": STEPS, "lr": LR, "reference": ref_losses, "learner": run.losses}
    again = _forward(sub, student, initial, batch, case, STEPS)
    if not torch.allclose(again, run.first_logits, atol=1e-4, rtol=1e-4):
        raise CheckFailure(
            "Your model's output does not follow the weights it is given: the same first "
            "weights, loaded again after training, gave other logits.",
            counterexample=case,
            hint="Keep no state between forward calls (no caches, counters or copies of a "
            "weight made in __init__): compute from the module's parameters every time.",
        )
    frozen = [n for n in trainable if n in moved and n not in run.got_gradient]
    if len(frozen) == len(moved):
        raise CheckFailure(
            "No gradient reaches any parameter while training: the loss does not depend on "
            "anything the optimizer can change.",
            counterexample=case,
            hint=NO_GRADIENT,
        )
    if frozen:
        raise CheckFailure(
            f"While training, no gradient reaches {_listed(module_paths(frozen))} "
            f"({len(frozen)} of {len(moved)} parameter tensors), so AdamW never changes them.",
            counterexample=case,
            hint=NO_GRADIENT,
        )
    bound = ref_losses[0] - SHARE * (ref_losses[0] - ref_losses[-1])
    if run.losses[-1] > bound:
        raise CheckFailure(
            f"The loss does not fall enough: {run.losses[0]:.3f} -> {run.losses[-1]:.3f} in "
            f"{STEPS} AdamW steps (lr {LR:g}) on one batch; the reference, from the same "
            f"weights: {ref_losses[0]:.3f} -> {ref_losses[-1]:.3f}. Expected at most "
            f"{bound:.3f} (halfway).",
            counterexample=case,
            hint="Every weight gets a gradient, but the gradients do not lower the loss: "
            "is the output scaled oddly (a missing 1/sqrt(d_k), logits multiplied by a "
            "large constant), or does the forward pass use a weight twice or not at all?",
        )
    return curves


def learns_one_batch(
    sub, ref_pkg, component: str, sizes: dict, n_heads: int, n_layers: int, seed: int
) -> None:
    """The graders' check for ``component`` (GPT or Transformer) of these sizes: the reference
    randomized with ``seed``, the batch drawn from it; the curves go to the results."""
    from llm_grade.grading.compare import case_str
    from llm_grade.grading.pairs import randomize_, reference_of

    kwargs = {**sizes, "n_heads": n_heads, "n_layers": n_layers, "dropout": 0.0}
    reference = randomize_(reference_of(ref_pkg, component)(**kwargs), seed).float()
    if component == "GPT":
        batch = gpt_batch(kwargs["vocab_size"], seed)
    else:
        batch = seq2seq_batch(kwargs["src_vocab_size"], kwargs["tgt_vocab_size"], seed)
    case = case_str(**kwargs, seed=seed) + f"; {batch.what}"
    sub.notes["curves"] = expect_learns_one_batch(sub, reference, component, kwargs, batch, case)


__all__ = [
    "expect_learns_one_batch",
    "learner_model",
    "starting_point",
    "gpt_batch",
    "learns_one_batch",
    "seq2seq_batch",
    "train_reference",
]
