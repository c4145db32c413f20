"""Small pictures of what the learner's code does, for the HTML report.

Collected once at the end of a grading run, through the submission handle like every other
call into learner code, and stored in ``results.json["artifacts"]`` as plain lists, so that
reports render them without running anything (exporters never re-run code).
"""

from __future__ import annotations

from typing import Any

import torch

from llm_grade.grading.toolkit import reference_of

T_ATTENTION = 6
PE_SHAPE = (24, 16)


def _plain(t: torch.Tensor) -> list:
    return [[round(float(v), 4) for v in row] for row in t.to(torch.float64)]


def _learner(fn) -> tuple[Any, str | None]:
    """Run ``fn``; (value, None) or (None, a one-line reason)."""
    from llm_grade.grading.outcomes import GradingOutcome, NotImplementedYet, WorkerFailure

    try:
        return fn(), None
    except NotImplementedYet:
        return None, "not implemented yet"
    except (GradingOutcome, WorkerFailure) as exc:
        return None, exc.message.splitlines()[0]


def _attention(sub, ref) -> dict:
    g = torch.Generator().manual_seed(7)
    q = torch.randn(1, T_ATTENTION, 4, generator=g, dtype=torch.float64) * 2
    k = torch.randn(1, T_ATTENTION, 4, generator=g, dtype=torch.float64) * 2
    v = torch.randn(1, T_ATTENTION, 4, generator=g, dtype=torch.float64)
    mask = torch.ones(T_ATTENTION, T_ATTENTION, dtype=torch.bool).tril()
    _, expected = reference_of(ref, "scaled_dot_product_attention")(q, k, v, mask)
    got, error = _learner(lambda: sub.call("scaled_dot_product_attention", q, k, v, mask))
    weights = None
    if error is None:
        w = got[1] if isinstance(got, (tuple, list)) and len(got) == 2 else None
        if type(w) is torch.Tensor and w.shape[-2:] == (T_ATTENTION, T_ATTENTION):
            weights = _plain(torch.nan_to_num(w.reshape(-1, T_ATTENTION, T_ATTENTION)[0]))
        else:
            error = "did not return (out, weights) with weights of shape [..., T, T]"
    return {
        "description": f"scaled_dot_product_attention on one sequence of {T_ATTENTION} "
        f"tokens (d_k=4) with causal_mask({T_ATTENTION})",
        "mask": mask.tolist(),
        "reference": _plain(expected[0]),
        "learner": weights,
        "error": error,
    }


# the tiny worked example of curriculum 1.2: three tokens, d_k = 4, small integers, so that
# q @ k^T / sqrt(d_k) is a table of halves a learner can compute by hand
WORKED_Q = [[2, 0, 1, 0], [0, 1, 0, 2], [1, 1, 1, 0]]
WORKED_K = [[1, 0, 0, 0], [0, 1, 1, 0], [2, 0, 0, 1]]
WORKED_V = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]]


def _worked_example(sub, ref) -> dict:
    """scaled_dot_product_attention on the fixed worked example: the inputs, the scores, and
    the weights and output of the reference and of the learner's code, rounded for tables."""
    q, k, v = (torch.tensor(m, dtype=torch.float64) for m in (WORKED_Q, WORKED_K, WORKED_V))
    scores = q @ k.T / 2.0  # sqrt(d_k) = 2
    out, weights = reference_of(ref, "scaled_dot_product_attention")(q, k, v)
    got, error = _learner(lambda: sub.call("scaled_dot_product_attention", q, k, v))
    learner = None
    if error is None:
        pair = got if isinstance(got, (tuple, list)) and len(got) == 2 else (None, None)
        l_out, l_weights = pair
        if (
            type(l_out) is torch.Tensor
            and type(l_weights) is torch.Tensor
            and tuple(l_out.shape) == (3, 4)
            and tuple(l_weights.shape) == (3, 3)
        ):
            learner = {
                "weights": _plain(torch.nan_to_num(l_weights)),
                "out": _plain(torch.nan_to_num(l_out)),
            }
        else:
            error = "did not return (out [3, 4], weights [3, 3]) for q, k, v of shape [3, 4]"
    return {
        "description": "scaled_dot_product_attention(q, k, v) on 3 tokens with d_k = 4, no "
        "mask: scores = q @ k^T / sqrt(4), weights = softmax of each row, out = weights @ v",
        "q": WORKED_Q,
        "k": WORKED_K,
        "v": WORKED_V,
        "scores": _plain(scores),
        "reference": {"weights": _plain(weights), "out": _plain(out)},
        "learner": learner,
        "error": error,
    }


def _positional_encoding(sub, ref) -> dict:
    seq_len, d_model = PE_SHAPE
    expected = reference_of(ref, "sinusoidal_positional_encoding")(
        seq_len, d_model, dtype=torch.float64
    )
    got, error = _learner(
        lambda: sub.call("sinusoidal_positional_encoding", seq_len, d_model, dtype=torch.float64)
    )
    table = None
    if error is None:
        if type(got) is torch.Tensor and tuple(got.shape) == PE_SHAPE:
            table = _plain(torch.nan_to_num(got))
        else:
            error = f"did not return a tensor of shape {PE_SHAPE}"
    return {
        "description": f"sinusoidal_positional_encoding({seq_len}, {d_model}): positions "
        f"down, features across",
        "reference": _plain(expected),
        "learner": table,
        "error": error,
    }


def _stats(y: torch.Tensor) -> dict:
    mean = y.mean(dim=-1)
    var = ((y - mean.unsqueeze(-1)) ** 2).mean(dim=-1)
    return {"mean": [round(float(m), 5) for m in mean], "var": [round(float(v), 5) for v in var]}


def _layernorm(sub, ref) -> dict:
    g = torch.Generator().manual_seed(3)
    scales = torch.tensor([1e-3, 0.1, 1.0, 10.0, 100.0, 1.0, 3.0, 0.5], dtype=torch.float64)
    x = torch.randn(8, 16, generator=g, dtype=torch.float64) * scales.unsqueeze(1) + 5
    expected = reference_of(ref, "LayerNorm")(16).double()(x)
    stats, error = None, None

    def run():
        module = sub.build("LayerNorm", d_model=16)
        sub.configure(module, dtype=torch.float64, train=False)
        return sub.call(module, x)

    got, error = _learner(run)
    if error is None:
        if type(got) is torch.Tensor and got.shape == x.shape:
            stats = _stats(torch.nan_to_num(got))
        else:
            error = "did not return a tensor shaped like its input"
    return {
        "description": "LayerNorm(16) at its initial weight and bias on 8 rows whose scales "
        "range from 1e-3 to 100 (every row should have mean 0, variance 1)",
        "reference": _stats(expected.detach()),
        "learner": stats,
        "error": error,
    }


def collect(sub, ref, only: list[str] | None = None) -> dict:
    """The artifacts of one submission (a part that fails is recorded, never raised); with
    ``only``, just those."""
    from llm_grade.grading.outcomes import WorkerFailure

    sub.use_oracles([])  # the learner's own code all the way down
    artifacts = {}
    hung = [c for c, (kind, _) in getattr(sub, "too_slow", {}).items() if kind == "timeout"]
    for name, fn in (
        ("attention", _attention),
        ("worked_example", _worked_example),
        ("positional_encoding", _positional_encoding),
        ("layernorm", _layernorm),
    ):
        if only is not None and name not in only:
            continue
        if hung:  # the learner's code runs all the way down: it would hang again
            artifacts[name] = {"error": f"not drawn: {hung[0]} timed out while graded"}
            continue
        try:
            artifacts[name] = fn(sub, ref)
        except (Exception, WorkerFailure) as exc:  # noqa: BLE001 - a picture never breaks grading
            artifacts[name] = {"error": f"could not collect: {exc}"}
    return artifacts


__all__ = ["collect"]
