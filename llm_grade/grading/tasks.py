"""Does the learner's model learn a task? ``llm-grade grade --train`` (off by default).

Matching the reference in ``eval()`` and overfitting one batch (:mod:`.training`) do not yet
answer a learner's real question: does my Transformer learn? With ``--train`` the learner's
whole model (its own code all the way down, float32, dropout 0) is trained a few hundred AdamW
steps on a small synthetic task, from the same first weights and on the same batches as the
reference, and then asked to do the task on held-out inputs:

- ``Transformer``: reverse 4 digits (teacher forcing, 800 steps), asked on 200 of the 10,000
  inputs, held out of training, decoded with the learner's ``greedy_decode``;
- ``GPT``: continue an arithmetic sequence mod 10 (``3 7`` -> ``1 5 9 3 7 1``) from its first
  two tokens, greedily (300 steps; there are only 90 such sequences, so this asks whether the
  model learned them, not whether it generalises beyond them).

The result is the exact-match accuracy on 200 inputs, next to the reference's, with both
loss curves. It passes when it is at least the reference's accuracy less :data:`MARGIN` (25
points): the margin is wide because a correct model's rounding differs from the reference's,
so its training drifts from the reference's step by step (the numbers the margin was chosen
from are in the README). A model that cannot learn the task (no positions, a position that
sees later ones) stays far below it. Informational: no points, the score does not depend on
it. Deterministic: everything is seeded (``--train-seed``).

Who decides what (trusted side): as in :mod:`.training`, this process owns the weights and
AdamW; the worker returns logits and gradients. The accuracy comes from decoding the learner's
trained model step by step *here* (one plain forward call a position, argmax here), so a
``greedy_decode`` that knows the task cannot raise it; the learner's ``greedy_decode`` is run
on the same model and must give the same tokens. The model is also decoded with its first
weights: a model that does the task before any training does not compute from its weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from llm_grade.grading.compare import CheckFailure, expect_tensor
from llm_grade.grading.outcomes import (
    GradingOutcome,
    LearnerError,
    NotImplementedYet,
    WorkerFailure,
)
from llm_grade.grading.training import (
    Batch,
    learner_model,
    starting_point,
    train_learner,
    train_reference,
)

MARGIN = 0.25  # of accuracy below the reference's that still passes
HELD_OUT = 200
EXAMPLES = 4  # held-out rows shown in the results
BUDGET_S = 45.0  # for the learner's training of one task; past it the training stops
BOS, EOS, DIGIT0 = 1, 2, 3  # the reversal task's tokens (0 is not used)


@dataclass(frozen=True)
class Task:
    component: str
    title: str  # the task in words
    kwargs: dict  # the model's constructor arguments
    steps: int
    lr: float
    warmup: int  # steps of linear warm-up, then a cosine decay to 0
    batch_size: int
    # n full sequences for training, none of them among ``held_out`` where the task has
    # inputs enough (sample(g, n, held_out)); the held-out ones (held_out_of(g, n))
    sample: Callable[[torch.Generator, int, torch.Tensor], torch.Tensor]
    held_out_of: Callable[[torch.Generator, int], torch.Tensor]
    unseen: bool  # the held-out inputs never appear in training
    batch: Callable[[torch.Tensor], Batch]  # teacher forcing on those sequences
    decode: Callable[[Callable, torch.Tensor], torch.Tensor]  # (forward, sequences) -> guess
    expected: Callable[[torch.Tensor], torch.Tensor]  # what the decode should give
    shown: Callable[[torch.Tensor, torch.Tensor], dict]  # one example, in words

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        done = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * 0.5 * (1 + math.cos(math.pi * done))

    @property
    def schedule(self) -> str:
        return (
            f"AdamW, lr {self.lr:g} (warm-up {self.warmup} steps, then cosine), batch "
            f"{self.batch_size}, {self.steps} steps"
        )


# ------------------------------------------------------------------ reversal (Transformer)

DIGITS, LENGTH = 10, 4  # 10,000 inputs: 200 held out, the model trains on the others


def _reversal_rows(src: torch.Tensor) -> torch.Tensor:
    """[n, L + 1 + L + 1]: the source digits, then BOS, the digits reversed, EOS."""
    n = len(src)
    bos, eos = torch.full((n, 1), BOS), torch.full((n, 1), EOS)
    return torch.cat([src, bos, src.flip(1), eos], 1)


def _codes(src: torch.Tensor) -> torch.Tensor:
    """Each row of digits as one number (its index among the DIGITS**LENGTH inputs)."""
    return ((src - DIGIT0) * DIGITS ** torch.arange(LENGTH)).sum(1)


def _reversal_held_out(g: torch.Generator, n: int) -> torch.Tensor:
    codes = torch.randperm(DIGITS**LENGTH, generator=g)[:n]
    return _reversal_rows(
        torch.stack([(codes // DIGITS**i) % DIGITS for i in range(LENGTH)], 1) + DIGIT0
    )


def _reversal_sample(g: torch.Generator, n: int, held_out: torch.Tensor) -> torch.Tensor:
    """n random inputs, none of them held out."""
    avoid = _codes(held_out[:, :LENGTH])
    kept = torch.empty(0, LENGTH, dtype=torch.long)
    while len(kept) < n:
        src = torch.randint(DIGIT0, DIGIT0 + DIGITS, (2 * n, LENGTH), generator=g)
        kept = torch.cat([kept, src[~torch.isin(_codes(src), avoid)]])
    return _reversal_rows(kept[:n])


def _split(seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return seqs[:, :LENGTH], seqs[:, LENGTH:]  # src, tgt (BOS ... EOS)


def _reversal_batch(seqs: torch.Tensor) -> Batch:
    src, tgt = _split(seqs)
    return Batch((src, tgt[:, :-1]), tgt[:, 1:], f"reverse {LENGTH} digits")


def _finished(tokens: torch.Tensor) -> torch.Tensor:
    """``greedy_decode``'s padding: after a row's first EOS, only EOS."""
    ended = (tokens == EOS).long().cumsum(1) > 0
    ended = torch.cat([torch.zeros_like(ended[:, :1]), ended[:, :-1]], 1)
    return torch.where(ended, torch.full_like(tokens, EOS), tokens)


def _reversal_decode(forward: Callable, seqs: torch.Tensor) -> torch.Tensor:
    """BOS, then the argmax of the last position, one forward call a position (max_len
    L + 2, as greedy_decode is asked)."""
    src, _ = _split(seqs)
    out = torch.full((len(src), 1), BOS)
    for _ in range(LENGTH + 1):
        out = torch.cat([out, forward(src, out)[:, -1].argmax(-1, keepdim=True)], 1)
    return _finished(out)


def _digits(t: torch.Tensor, first: int) -> str:
    names = {BOS: "<s>", EOS: "</s>"} if first == DIGIT0 else {}
    return " ".join(names.get(int(v), str(int(v) - first)) for v in t)


def _reversal_shown(seqs: torch.Tensor, got: torch.Tensor) -> dict:
    src, tgt = seqs[:LENGTH], seqs[LENGTH:]
    tokens = got[1:].tolist()  # after BOS, up to the first EOS
    tokens = tokens[: tokens.index(EOS)] if EOS in tokens else tokens
    return {
        "input": _digits(src, DIGIT0),
        "expected": _digits(tgt[1:-1], DIGIT0),
        "got": _digits(torch.tensor(tokens, dtype=torch.long), DIGIT0),
    }


# ------------------------------------------------------------- arithmetic sequences (GPT)

VOCAB, SEQ, PROMPT = 10, 8, 2


def _sequence_sample(g: torch.Generator, n: int, held_out: torch.Tensor | None = None):
    """n random sequences (there are only VOCAB * (VOCAB - 1) of them: none is held out)."""
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    step = torch.randint(1, VOCAB, (n, 1), generator=g)
    return (start + step * torch.arange(SEQ)) % VOCAB


def _sequence_batch(seqs: torch.Tensor) -> Batch:
    return Batch((seqs[:, :-1],), seqs[:, 1:], f"arithmetic sequences of {SEQ} tokens")


def _sequence_decode(forward: Callable, seqs: torch.Tensor) -> torch.Tensor:
    out = seqs[:, :PROMPT]
    while out.shape[1] < SEQ:
        out = torch.cat([out, forward(out)[:, -1].argmax(-1, keepdim=True)], 1)
    return out


def _sequence_shown(seqs: torch.Tensor, got: torch.Tensor) -> dict:
    return {
        "input": _digits(seqs[:PROMPT], 0),
        "expected": _digits(seqs[PROMPT:], 0),
        "got": _digits(got[PROMPT:], 0),
    }


SMALL = {"d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 16, "dropout": 0.0}
TASKS = (
    Task(
        "Transformer",
        f"reverse {LENGTH} digits",
        {"src_vocab_size": DIGIT0 + DIGITS, "tgt_vocab_size": DIGIT0 + DIGITS, "n_layers": 1}
        | SMALL,
        steps=800,
        lr=1e-2,
        warmup=50,
        batch_size=32,
        sample=_reversal_sample,
        held_out_of=_reversal_held_out,
        unseen=True,
        batch=_reversal_batch,
        decode=_reversal_decode,
        expected=lambda seqs: _split(seqs)[1],
        shown=_reversal_shown,
    ),
    Task(
        "GPT",
        f"continue an arithmetic sequence mod {VOCAB} from its first {PROMPT} tokens",
        {"vocab_size": VOCAB, "n_layers": 2} | SMALL,
        steps=300,
        lr=1e-2,
        warmup=50,
        batch_size=32,
        sample=_sequence_sample,
        held_out_of=_sequence_sample,
        unseen=False,
        batch=_sequence_batch,
        decode=_sequence_decode,
        expected=lambda seqs: seqs,
        shown=_sequence_shown,
    ),
)


# ------------------------------------------------------------------------------ running


def _reference_model(ref_pkg, task: Task, seed: int) -> torch.nn.Module:
    """The reference with its own initialisation, seeded (the learner's starts from it)."""
    from llm_grade.grading.pairs import reference_of

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return reference_of(ref_pkg, task.component)(**task.kwargs).float()


def _accuracy(guess: torch.Tensor, seqs: torch.Tensor, task: Task) -> float:
    """The share of rows decoded exactly right."""
    return round(float((guess == task.expected(seqs)).all(1).float().mean()), 4)


def _learner_forward(sub, student: dict, case: str) -> Callable:
    def forward(*args: torch.Tensor) -> torch.Tensor:
        logits = expect_tensor(sub.call(student, *args, watch=False), "logits", case=case)
        if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(args[-1].shape):
            raise CheckFailure(
                f"The logits have shape {tuple(logits.shape)}, expected "
                f"[{args[-1].shape[0]}, {args[-1].shape[1]}, vocab_size].",
                counterexample=case,
            )
        if not logits.is_floating_point():
            raise CheckFailure("The logits are not floating point.", counterexample=case)
        return logits

    return forward


def _greedy_decode(
    sub, student: dict, seqs: torch.Tensor, stepwise: torch.Tensor
) -> tuple[str, str]:
    """The learner's greedy_decode on its trained model, against the step-by-step decode:
    (a note, what is wrong), each '' when there is none."""
    src, _ = _split(seqs)
    try:
        got = sub.call("greedy_decode", student, src, LENGTH + 2, BOS, EOS, watch=False)
    except NotImplementedYet:
        return "greedy_decode is not implemented yet: decoded step by step only", ""
    except (GradingOutcome, WorkerFailure) as exc:
        return "", f"greedy_decode failed: {exc.message.splitlines()[0]}"
    if (
        type(got) is not torch.Tensor
        or got.dim() != 2
        or got.shape[0] != len(src)
        or not 1 <= got.shape[1] <= LENGTH + 2
        or got.is_floating_point()
    ):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return "", (
            f"greedy_decode returned {shape}, expected a LongTensor [{len(src)}, <= {LENGTH + 2}]"
        )
    padded = torch.full_like(stepwise, EOS)
    padded[:, : got.shape[1]] = got.long()
    differs = int((_finished(padded) != stepwise).any(1).sum())
    if not differs:
        return "", ""
    return "", (
        f"your greedy_decode differs on {differs} of {len(src)} rows from decoding the same "
        "model step by step (BOS, then the argmax of the last position's logits, until EOS)"
    )


def run_task(
    sub, ref_pkg, task: Task, seed: int, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Train the learner's model and the reference on ``task`` (see the module docstring):
    the results entry; a model that does not run gets ``{"error": ...}``. Never raises but
    for a lost worker."""
    held_out = task.held_out_of(torch.Generator().manual_seed(10_000 + seed), HELD_OUT)
    g = torch.Generator().manual_seed(1_000 + seed)
    batches = [task.batch(task.sample(g, task.batch_size, held_out)) for _ in range(task.steps)]
    entry: dict[str, Any] = {
        "task": task.title,
        "model": ", ".join(f"{k} {v}" for k, v in task.kwargs.items() if k != "dropout"),
        "schedule": task.schedule,
        "steps": task.steps,
        "seed": seed,
        "held_out": HELD_OUT,
        "unseen": task.unseen,  # the held-out inputs are not in the training batches
        "margin": MARGIN,
    }
    reference = _reference_model(ref_pkg, task, seed)
    initial, trainable = starting_point(reference)

    def ref_forward(*args: torch.Tensor) -> torch.Tensor:
        reference.eval()
        with torch.no_grad():
            return reference(*args)

    ref_before = _accuracy(task.decode(ref_forward, held_out), held_out, task)
    started = time.perf_counter()
    ref_losses, _ = train_reference(
        reference, lambda step: batches[step], task.steps, task.lr_at, final=False
    )
    ref_s = time.perf_counter() - started
    ref_guess = task.decode(ref_forward, held_out)
    entry["reference"] = {
        "losses": [round(v, 4) for v in ref_losses],
        "accuracy": _accuracy(ref_guess, held_out, task),
        "accuracy_before": ref_before,
        "seconds": round(ref_s, 2),
    }
    case = f"{task.component}({entry['model']}), seed {seed}: {task.title}"
    try:
        student = learner_model(sub, task.component, task.kwargs, initial, case)
        forward = _learner_forward(sub, student, case)
        sub.configure(student, train=False)
        before = _accuracy(task.decode(forward, held_out), held_out, task)
        sub.configure(student, train=True)
        started = time.perf_counter()
        run = train_learner(
            sub,
            student,
            initial,
            trainable,
            lambda step: batches[step],
            case,
            task.steps,
            task.lr_at,
            final=False,
            deadline=time.monotonic() + BUDGET_S,
            progress=progress,
        )
        seconds = time.perf_counter() - started
        if run is None:
            raise CheckFailure("Your model does not run in float32: its own checks say why.")
        sub.load_state_dict(student, run.state)
        sub.configure(student, train=False)
        guess = task.decode(forward, held_out)
        greedy = ("", "")
        if task.component == "Transformer":
            greedy = _greedy_decode(sub, student, held_out, guess)
    except (GradingOutcome, LearnerError) as exc:
        entry["error"] = f"not trained: {exc.message.splitlines()[0]}"
        return entry
    accuracy = _accuracy(guess, held_out, task)
    entry["learner"] = {
        "losses": [round(v, 4) for v in run.losses],
        "accuracy": accuracy,
        "accuracy_before": before,
        "seconds": round(seconds, 2),
    }
    entry["examples"] = [task.shown(held_out[i], guess[i]) for i in range(EXAMPLES)]
    entry.update(_verdict(entry, task, run.stopped, greedy))
    return entry


def _verdict(entry: dict, task: Task, stopped: bool, greedy: tuple[str, str]) -> dict[str, Any]:
    """passed (True, False, or None: not judged), the bound and what went wrong (``greedy``:
    the note and the problem of the learner's greedy_decode)."""
    note, wrong = greedy
    inputs = "held-out inputs" if task.unseen else "inputs"
    ref, mine = entry["reference"], entry["learner"]
    bound = max(0.0, ref["accuracy"] - MARGIN)
    found: dict[str, Any] = {"bound": round(bound, 4)}
    done = len(mine["losses"])
    if stopped:
        per_step = mine["seconds"] / max(1, done)
        found["passed"] = None
        found["message"] = (
            f"Stopped after {done} of {task.steps} steps: the {BUDGET_S:.0f} s for training "
            f"ran out ({per_step * 1000:.0f} ms a step; the reference: "
            f"{ref['seconds'] / task.steps * 1000:.0f} ms). See the efficiency table for "
            "the slow component."
        )
        return found
    if mine["accuracy_before"] > ref["accuracy_before"] + 0.5:
        found["passed"] = False
        found["message"] = (
            f"Your {task.component} does the task before any training "
            f"({mine['accuracy_before']:.0%} of the {inputs}): its output does not come "
            "from its weights."
        )
        return found
    if wrong:
        found["passed"] = False
        found["message"] = wrong[0].upper() + wrong[1:] + "."
        return found
    found["passed"] = mine["accuracy"] >= bound
    if note:
        found["note"] = note
    if not found["passed"]:
        found["message"] = (
            f"Your {task.component} learned less than the reference: {mine['accuracy']:.0%} of "
            f"{HELD_OUT} {inputs} right, the reference {ref['accuracy']:.0%} (at least "
            f"{bound:.0%} passes), after the same {task.steps} steps from the same weights "
            "on the same batches."
        )
        found["hint"] = (
            "Compare the loss curves. If yours falls like the reference's (or lower) but the "
            "task is not learned, the model sees what it should predict while training (a "
            "missing or wrong causal mask: no position may attend to a later one). "
            "If yours falls more slowly, the model cannot tell positions apart (the "
            "positional encoding is not added, or is added where it is lost) or a component "
            "scales its output oddly."
        )
    return found


def train_tasks(sub, ref_pkg, components: set[str], seed: int, progress=None) -> dict[str, Any]:
    """``{component: entry}`` for the tasks of the graded ``components`` (``--train``);
    ``progress(component, title, step, total)`` while training."""
    found: dict[str, Any] = {}
    for task in TASKS:
        if task.component not in components:
            continue
        tick = None
        if progress is not None:
            progress(task.component, task.title, 0, task.steps)

            def tick(step: int, task: Task = task) -> None:
                progress(task.component, task.title, step, task.steps)

        try:
            found[task.component] = run_task(sub, ref_pkg, task, seed, tick)
        except WorkerFailure as exc:
            found[task.component] = {"task": task.title, "error": f"not trained: {exc.message}"}
    return found


__all__ = ["MARGIN", "TASKS", "run_task", "train_tasks"]
