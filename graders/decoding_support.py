"""Helpers of the greedy_decode grader (graders/test_transformer.py): the hints, the
strategy for scripted seq2seq specimens, the choice of eos, and the token-by-token comparison
whose message names the first rule the output breaks.

Trusted side: grader helpers. They reach learner code only through the submission handle
``sub``; ``ref`` is the reference package.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from llm_grade.grading.compare import case_str, expect_tensor, fail
from llm_grade.grading.strategies import padding_from_lengths, token_batches
from llm_grade.grading.toolkit import reference_of
from llm_grade.sandbox.specimens import ScriptedSeq2Seq

# isort: split
# beside this file: graders/ is on sys.path (pytest inserts a test file's folder)
from transformer_support import PAD

START_HINT = "Start every row with bos_id: ys = torch.full((B, 1), bos_id, dtype=torch.long)."
STOP_HINT = (
    "greedy decoding: stop when every row has produced eos (keep a `finished` flag per row and "
    "stop once finished.all()), or when ys.size(1) reaches max_len."
)
PAD_EOS_HINT = (
    "greedy decoding: keep appending eos to finished rows: next_token = "
    "torch.where(finished, eos_id, next_token), then finished |= next_token == eos_id."
)
PREFIX_HINT = (
    "feed the whole prefix ys to decode at each step and take the last position's logits: "
    "logits = model.out_proj(model.decode(ys, memory, memory_mask=src_mask)); "
    "next_token = logits[:, -1].argmax(-1). Encode src once, with src_mask."
)
SRC_MASK_HINT = (
    "src_mask is ignored: encode once with memory = model.encode(src, src_mask) and pass "
    "memory_mask=src_mask to every model.decode call."
)


# ----------------------------------------------------------------------------- greedy_decode


def _expect_decoded(
    got,
    expected: torch.Tensor,
    *,
    case: str,
    max_len: int,
    bos_id: int,
    eos_id: int,
    candidates: tuple = (),
) -> None:
    """``got`` must equal ``expected`` token for token; the message names the first rule that
    ``got`` breaks (start, length, eos padding, stopping, the tokens themselves)."""
    B = expected.shape[0]
    got = expect_tensor(
        got,
        "greedy_decode output",
        dtype=torch.long,
        case=case,
        hint="Return the token ids as a LongTensor [B, L]: build ys with dtype=torch.long "
        "and torch.cat the argmax (already long) onto it.",
    )
    detail = f"  expected: {expected.tolist()}"
    if got.dim() != 2 or got.shape[0] != B:
        fail(
            f"greedy_decode returned shape {tuple(got.shape)}, expected ({B}, L).",
            case=case,
            detail=detail,
            hint="Keep one row per source sentence: ys has shape [B, L].",
        )
    detail += f"\n  got:      {got.tolist()}"
    L = got.shape[1]
    if L > max_len:
        fail(
            f"The output has length {L}, longer than max_len={max_len}.",
            case=case,
            detail=detail,
            hint="The bos token counts: stop once ys.size(1) == max_len. " + STOP_HINT,
        )
    if L == 0 or bool((got[:, 0] != bos_id).any()):
        fail(
            f"Not every row starts with bos_id={bos_id}.", case=case, detail=detail, hint=START_HINT
        )
    for b in range(B):
        hits = (got[b, 1:] == eos_id).nonzero()
        if len(hits) and bool((got[b, 1 + hits[0, 0] :] != eos_id).any()):
            fail(
                f"Row {b} goes on with other tokens after it produced eos_id={eos_id}.",
                case=case,
                detail=detail,
                hint=PAD_EOS_HINT,
            )
    if L > expected.shape[1]:
        fail(
            f"The output has length {L}, expected {expected.shape[1]}: decoding went on after "
            "every row had produced eos.",
            case=case,
            detail=detail,
            hint=STOP_HINT,
        )
    if L < expected.shape[1]:
        fail(
            f"The output has length {L}, expected {expected.shape[1]}: decoding stopped "
            "before every row had produced eos (and before max_len).",
            case=case,
            detail=detail,
            hint=STOP_HINT,
        )
    if not torch.equal(got, expected):
        b, p = (got != expected).nonzero()[0].tolist()
        hint = next((h for value, h in candidates if torch.equal(got, value)), PREFIX_HINT)
        fail(
            f"Token {p} of row {b} is {int(got[b, p])}, expected {int(expected[b, p])} (the "
            "argmax of the model's logits at the last position).",
            case=case,
            detail=detail,
            hint=hint,
        )


@st.composite
def scripted(draw, eos_from_model: bool = True):
    """Arguments of a :class:`ScriptedSeq2Seq` and the source side of a greedy_decode call.

    With ``eos_from_model`` the model emits eos at the steps ``eos_after`` (-1: never; max_len
    or more: too late). Without, it knows nothing of eos (its eos_id 0 is a token it never
    emits): the test picks greedy_decode's eos_id among the tokens it does emit.
    """
    B = draw(st.integers(1 if eos_from_model else 2, 3))
    vocab = draw(st.integers(4, 12))
    max_len = draw(st.integers(1 if eos_from_model else 3, 8))
    bos_id = draw(st.integers(0, vocab - 1))
    if eos_from_model:
        eos_id = draw(st.integers(0, vocab - 1).filter(lambda e: e != bos_id))
        stops = st.sampled_from([-1, *range(1, max_len + 2)])
        eos_after = draw(st.lists(stops, min_size=B, max_size=B))
    else:
        eos_id, eos_after = 0, [-1] * B
    S = draw(st.integers(1, 5))
    src, lengths = draw(token_batches(vocab=vocab, B=B, T=S, pad_id=PAD))
    src_mask = padding_from_lengths(lengths, S) if draw(st.booleans()) else None
    spec = dict(vocab=vocab, eos_id=eos_id, eos_after=eos_after)
    call = dict(src=src, max_len=max_len, bos_id=bos_id, eos_id=eos_id, src_mask=src_mask)
    return spec, call


def _eos_choices(free: torch.Tensor, bos_id: int) -> list[int]:
    """Tokens of the free-running output ``free [B, L]`` to use as eos: preferably ones after
    which some finished row's model would go on with other tokens while another row still
    runs (so finished rows must be padded), else any generated token other than bos."""
    B, L = free.shape
    generated = sorted(set(free[:, 1:].flatten().tolist()) - {bos_id})
    useful = []
    for e in generated:
        firsts = []
        for b in range(B):
            hits = (free[b, 1:] == e).nonzero()
            firsts.append(int(hits[0, 0]) + 1 if len(hits) else L)
        stop = min(max(firsts), L - 1)  # the last step while some row still runs
        if any(
            f < stop and bool((free[b, f + 1 : stop + 1] != e).any()) for b, f in enumerate(firsts)
        ):
            useful.append(e)
    return useful or generated


def _pick_eos(data, free: torch.Tensor, bos_id: int, vocab: int) -> int:
    choices = _eos_choices(free, bos_id) or [(bos_id + 1) % vocab]
    return data.draw(st.sampled_from(choices), label="eos_id")


def _run_scripted(sub, ref, spec: dict, call: dict, *, note: str):
    decode = reference_of(ref, "greedy_decode")
    expected = decode(ScriptedSeq2Seq(**spec), **call)
    model = sub.specimen("ScriptedSeq2Seq", **spec)
    args = (call["src"], call["max_len"], call["bos_id"], call["eos_id"], call["src_mask"])
    got = sub.call("greedy_decode", model, *args)
    src = call["src"]
    case = case_str(
        B=src.shape[0],
        S=src.shape[1],
        vocab=spec["vocab"],
        max_len=call["max_len"],
        bos_id=call["bos_id"],
        eos_id=call["eos_id"],
    )
    case += f", src_mask={'None' if call['src_mask'] is None else 'padding [B, 1, S]'}"
    case += f"\n  model: {note}\n  src={src.tolist()}"
    _expect_decoded(
        got,
        expected,
        case=case,
        max_len=call["max_len"],
        bos_id=call["bos_id"],
        eos_id=call["eos_id"],
    )
