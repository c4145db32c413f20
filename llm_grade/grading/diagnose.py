"""What the difference between a learner's output and the expected one looks like.

A mismatch is rarely random: a missing scale is a constant factor, a wrong sign flips every
value, a transpose swaps two axes, a head-split bug permutes blocks of features, an
off-by-one shifts positions, a bug on one path shows up only at some positions. This module
finds such a pattern in two tensors (trusted side, plain tensors, small sizes) and says it in
words, so that the hint can be chosen from the evidence rather than from the check alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pattern:
    kind: str  # "zero", "factor", "sign", "offset", "transpose", "shift", "permutation", "local"
    text: str  # the evidence, in words


# what each kind usually means, when the grader has nothing more specific
ADVICE: dict[str, str] = {
    "zero": "Nothing reaches the output: look for a multiplication by zero, a mask that "
    "blocks everything, or a result that is overwritten.",
    "factor": "A constant factor usually means a scale is missing, extra or inverted "
    "(sqrt(d_k), sqrt(d_model), 1 / (1 - p)).",
    "sign": "The sign is flipped: look for a subtraction in the wrong order or a stray minus.",
    "offset": "Every value is off by the same constant: look for a constant added or a bias "
    "used twice (or not at all).",
    "transpose": "Two axes are swapped: check every transpose / permute and the order of the "
    "axes in view / reshape.",
    "shift": "The values are right but one position off: check the start and end of your "
    "ranges and slices (arange(T), x[:, :T], positions 0..T-1).",
    "permutation": "The values are right but in another order: check how you split and "
    "re-assemble axes (view, transpose, reshape) and in which order you loop.",
    "local": "",
}


def _close(a: torch.Tensor, b: torch.Tensor, scale: float) -> bool:
    return bool(((a - b).abs() <= 1e-5 * scale + 1e-7).all())


def find_pattern(got: torch.Tensor, expected: torch.Tensor) -> Pattern | None:
    """The simplest pattern that turns ``expected`` into ``got`` (same shape, finite)."""
    if got.shape != expected.shape or expected.numel() < 2 or not expected.is_floating_point():
        return None
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if not (bool(torch.isfinite(g).all()) and bool(torch.isfinite(e).all())):
        return None
    scale = max(e.abs().max().item(), 1e-12)
    if g.abs().max().item() <= 1e-7 * scale + 1e-12:
        return Pattern("zero", "your output is all zeros")
    ee = (e * e).sum().item()
    if ee > 0:
        c = (g * e).sum().item() / ee
        if _close(g, c * e, scale * max(1.0, abs(c))) and abs(c - 1) > 1e-3:
            if abs(c + 1) <= 1e-3:
                return Pattern("sign", "every value has the opposite sign (got = -expected)")
            return Pattern("factor", f"every value is {_factor(c)} times the expected one")
    d = g - e
    if (
        d.numel() > 1
        and _close(d, d.mean().expand_as(d), scale)
        and abs(d.mean().item()) > 1e-3 * scale  # not rounding that happens to be uniform
    ):
        return Pattern("offset", f"every value is off by the same {d.mean().item():.4g}")
    if e.dim() >= 2 and e.shape[-1] == e.shape[-2] and e.shape[-1] > 1:
        if _close(g, e.transpose(-1, -2), scale):
            return Pattern("transpose", "got is the expected output with its last two axes swapped")
    found = _rearranged(g, e, scale)
    if found is not None:
        return found
    if _close(g.flatten().sort().values, e.flatten().sort().values, scale):
        return Pattern(
            "permutation",
            "your output holds exactly the expected values, but in other places (axes "
            "reshaped or viewed in the wrong order)",
        )
    return _local(g, e, scale)


def _factor(c: float) -> str:
    """``0.5 (= 1/sqrt(4))``: a factor, with the square root it is when it is one."""
    shown = f"{c:.4g}"
    for n in range(2, 65):
        if math.isclose(abs(c), math.sqrt(n), rel_tol=1e-4):
            return f"{shown} (= sqrt({n}))"
        if math.isclose(abs(c), 1 / math.sqrt(n), rel_tol=1e-4):
            return f"{shown} (= 1/sqrt({n}))"
    return shown


def _rearranged(g: torch.Tensor, e: torch.Tensor, scale: float) -> Pattern | None:
    """Slices along one axis (or blocks of the last one) in another order."""
    last = e.shape[-1]
    # blocks of the last axis first (heads: blocks of d_head features), then whole axes
    candidates = [(e.dim() - 1, k) for k in range(last // 2, 1, -1) if last % k == 0]
    candidates += [(axis, 1) for axis in range(e.dim()) if e.shape[axis] > 1]
    for axis, block in candidates:
        if block > 1:
            gs = g.reshape(*g.shape[:-1], last // block, block)
            es = e.reshape(*e.shape[:-1], last // block, block)
            ax = e.dim() - 1
        else:
            gs, es, ax = g, e, axis
        n = es.shape[ax]
        gm = gs.movedim(ax, 0).reshape(n, -1)
        em = es.movedim(ax, 0).reshape(n, -1)
        dist = torch.cdist(gm, em, p=float("inf"))
        match = dist.argmin(1)
        if not bool((dist.min(1).values <= 1e-5 * scale + 1e-7).all()):
            continue
        perm = match.tolist()
        if perm == list(range(n)):
            continue
        what = f"blocks of {block} features along the last axis" if block > 1 else f"axis {ax}"
        if len(set(perm)) < n:
            if len(set(perm)) == 1:
                return Pattern(
                    "permutation",
                    f"every slice along {what} equals expected slice {perm[0]} (one slice "
                    "repeated)",
                )
            continue
        if block > 1:
            return Pattern(
                "permutation",
                f"the {n} blocks of {block} features of the last axis are the expected ones "
                f"in another order (got block i = expected block {perm}[i])",
            )
        for k in range(1, n):
            if perm == [(i - k) % n for i in range(n)]:
                return Pattern("shift", f"the slices along {what} are shifted by {k}")
            if perm == [(i + k) % n for i in range(n)]:
                return Pattern("shift", f"the slices along {what} are shifted by {-k}")
        if perm == list(range(n))[::-1]:
            return Pattern("permutation", f"the slices along {what} are in reverse order")
        shown = perm if n <= 8 else perm[:8] + ["…"]
        return Pattern(
            "permutation",
            f"the slices along {what} are the expected ones in another order "
            f"(got[i] = expected[{shown}[i]])",
        )
    return None


def _local(g: torch.Tensor, e: torch.Tensor, scale: float) -> Pattern | None:
    """The errors sit at a few indices of one axis (the rest is right)."""
    bad = (g - e).abs() > 1e-5 * scale + 1e-7
    best = None
    for axis in range(e.dim()):
        n = e.shape[axis]
        if n < 2:
            continue
        rows = bad.movedim(axis, 0).reshape(n, -1).any(1)
        k = int(rows.sum())
        if 0 < k < n and (best is None or k / n < best[0]):
            best = (k / n, axis, rows.nonzero().flatten().tolist(), n)
    if best is None:
        return None
    _, axis, where, n = best
    shown = where if len(where) <= 6 else where[:6] + ["…"]
    return Pattern(
        "local",
        f"only index {shown} of axis {axis} (size {n}) differ{'s' if len(where) == 1 else ''}; "
        "the rest is right",
    )
