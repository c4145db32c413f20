"""Helpers that grader tests share: reference modules with random weights, student/reference
pairs with the same weights, and the messages for state_dict mismatches.

Graders never touch learner objects directly: a "student" here is a reference (``{"ref": id}``)
that only the submission handle can use.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llm_grade.components import module_of
from llm_grade.grading.outcomes import CheckFailure, StateDictReport
from llm_grade.sandbox.wire import Opaque


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


def state_dict_message(component: str, report: StateDictReport, call: str = "") -> str:
    """``expected attribute `q_proj` in MultiHeadAttention, found `query`, ...``; for a shape
    that differs, which constructor arguments the expected sizes are (from ``call``, the
    build's description)."""
    from llm_grade.engine.feedback import size_names

    names = size_names(call) if call else {}

    def heads(keys: list[str]) -> list[str]:
        return sorted({k.rsplit(".", 1)[0] if "." in k else k for k in keys})

    parts = []
    if report.missing:
        expected = ", ".join(f"`{k}`" for k in heads(report.missing))
        found = ", ".join(f"`{k}`" for k in heads(report.unexpected)) or "nothing in its place"
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


# Built reference modules, kept for reuse by a later Hypothesis example with the same
# arguments (building is a good part of a check's time; every parameter is re-randomized).
# A module is handed to one example at a time: it returns to the pool when the example ends.
_POOL: dict[tuple, list[nn.Module]] = {}
_LENT: list[tuple[tuple, nn.Module]] = []


def _reference_module(ref_pkg, component: str, dtype: torch.dtype, kwargs: dict) -> nn.Module:
    try:
        key = (ref_pkg.__name__, component, dtype, tuple(sorted(kwargs.items())))
        hash(key)
    except TypeError:  # an unhashable argument: build it fresh
        return reference_of(ref_pkg, component)(**kwargs).to(dtype)
    free = _POOL.get(key)
    if free:
        module = free.pop()
    else:
        from llm_grade.sandbox.executor import no_torch_init

        with no_torch_init():  # every parameter is randomized next
            module = reference_of(ref_pkg, component)(**kwargs).to(dtype)
    _LENT.append((key, module))
    return module


def return_references() -> None:
    """The Hypothesis example that borrowed reference modules ended: they can be reused (the
    pool keeps the 64 returned last)."""
    for key, module in _LENT:
        module.zero_grad(set_to_none=True)
        _POOL.setdefault(key, []).append(module)
        _POOL[key] = _POOL.pop(key)  # most recently returned last
    _LENT.clear()
    while sum(map(len, _POOL.values())) > 64:
        oldest = next(iter(_POOL))
        _POOL[oldest].pop(0)
        if not _POOL[oldest]:
            del _POOL[oldest]


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


# ---------------------------------------------------------------- structure (isolation-proof)

SHARED_LAYERS_HINT = (
    "Build a new layer for each position in the stack: nn.ModuleList(Layer(...) for _ in "
    "range(n_layers)). [Layer(...)] * n_layers repeats one layer, so all share one set of "
    "weights."
)
SHARED_MODULE_HINT = (
    "Create every sub-module API.md lists with its own constructor call (self.b = AddNorm(...), "
    "not self.b = self.a): sub-layers that share one module share their weights."
)
TIED_HINT = (
    "Don't tie weights: API.md lists these as separate parameters (e.g. lm_head is its own "
    "nn.Linear; `lm_head.weight = tok_embed.embedding.weight` makes them one tied tensor)."
)
PARAMETER_HINT = (
    "Weights that train are nn.Parameter objects, created by nn.Linear / nn.Embedding or "
    "nn.Parameter(...); register_buffer is for fixed tables only: a buffer never trains."
)
OWN_CLASS_HINT = (
    "Build graded sub-modules from your own classes (the ones API.md names, e.g. your "
    "LayerNorm from normalization.py), not from torch.nn's versions of them."
)
ARGS_HINT = (
    "Pass the composite's own arguments on to the sub-modules it builds (d_model, n_heads, "
    "d_ff, dropout, eps ...), as API.md lists them."
)


def _plain_tree(tree: Any) -> tuple[list, list] | None:
    """The worker's structure report, if it has exactly the plain shape it should."""
    if not isinstance(tree, dict):
        return None
    modules, params = tree.get("modules"), tree.get("parameters")
    if not (isinstance(modules, list) and isinstance(params, list)):
        return None
    for row in modules:
        if not (
            isinstance(row, list)
            and len(row) == 5
            and all(type(v) is str for v in row[:3])
            and type(row[3]) is int
            and isinstance(row[4], list)
        ):
            return None
    for row in params:
        if not (isinstance(row, list) and len(row) == 3 and type(row[0]) is str):
            return None
        if not (type(row[1]) is int and type(row[2]) is int):
            return None
    return modules, params


def _top_level(paths: list[str]) -> list[str]:
    """``paths`` without those inside another one of them (``blocks.1`` hides ``blocks.1.attn``)."""
    return [p for p in paths if not any(p.startswith(q + ".") for q in paths if q != p)]


def expect_own_structure(
    sub,
    ref_pkg,
    component: str,
    kwargs: dict[str, Any],
    *,
    children: dict[str, tuple[str, dict[str, Any]]],
    case: str,
    probe: tuple,
    seed: int = 0,
) -> None:
    """The learner's module tree, as built (no oracle injected in its place), is the one API.md
    describes: every parameter its own tensor, every layer its own module, graded sub-modules
    built from the learner's own classes with the composite's arguments, as many parameters as
    the reference.

    The evidence of sharing is tensor data: load random weights (every tensor its own values)
    and read them back; a shared tensor holds the values loaded last. The rest comes from the
    worker's plain description of the tree, checked for shape before it is read (it names what
    is shared, and tells torch.nn's classes from the learner's). ``probe`` are arguments of
    one forward call, made first: a module whose forward is still a stub is "not implemented
    yet", however complete its ``__init__`` is.
    """
    reference = _reference_module(ref_pkg, component, torch.float64, kwargs)
    randomize_(reference, seed)
    loaded = reference.state_dict()
    student = sub.build_loaded(
        component, kwargs, dtype=torch.float64, train=False, state_dict=loaded
    )
    started(lambda: sub.call(student, *probe))  # a stub's forward: "not implemented yet"
    back = sub.state_dict(student)
    plain = _plain_tree(sub.structure(student))
    if not isinstance(back, dict):
        raise CheckFailure(f"{component}.state_dict() did not return a dict.", counterexample=case)
    modules, params = plain if plain is not None else ([], [])
    names = [name for name, _, _ in params]

    def weighty(path: str) -> bool:  # a shared nn.Dropout or activation is harmless
        return path in children or any(n.startswith(path + ".") for n in names)

    groups: dict[int, list[str]] = {}
    for path, _, _, group, _ in modules:
        groups.setdefault(group, []).append(path)
    shared = [paths for paths in groups.values() if len(paths) > 1 and weighty(paths[0])]
    top = _top_level([p for paths in shared for p in paths])
    shared = [[p for p in paths if p in top] for paths in shared]
    shared = [paths for paths in shared if len(paths) > 1]
    for key, value in loaded.items():
        got = back.get(key)
        if type(got) is not torch.Tensor or got.shape != value.shape:
            raise CheckFailure(
                f"state_dict()[{key!r}] is missing after loading the reference's weights.",
                counterexample=case,
                hint=SHARED_MODULE_HINT,
            )
        if torch.equal(got.to(value.dtype), value):
            continue
        twin = next(
            (
                k
                for k, v in loaded.items()
                if k != key and v.shape == value.shape and torch.equal(got.to(v.dtype), v)
            ),
            None,
        )
        _shared_failure(component, key, twin, shared, case)
    if plain is None:
        raise CheckFailure(
            f"{component}'s module tree could not be read (named_modules / named_parameters "
            "returned something unexpected).",
            counterexample=case,
            hint="Don't override named_modules, named_parameters or __getattr__ of nn.Module.",
        )
    if shared:
        _shared_failure(component, None, None, shared, case)
    ref_params = dict(reference.named_parameters())
    missing = [name for name in ref_params if name not in set(names)]
    if missing:
        raise CheckFailure(
            f"{component}: {', '.join(f'`{n}`' for n in missing[:3])} "
            f"{'is' if len(missing) == 1 else 'are'} in the state_dict but not a parameter "
            "(a buffer or a plain tensor): it would never train.",
            counterexample=case,
            hint=PARAMETER_HINT,
        )
    count = sum({group: numel for _, numel, group in params}.values())
    expected = sum(p.numel() for p in reference.parameters())
    if count != expected:
        raise CheckFailure(
            f"{component} has {count} parameters, the reference {expected}.",
            counterexample=case,
            hint=TIED_HINT,
        )
    by_path = {row[0]: row for row in modules}
    for path, (child, child_kwargs) in children.items():
        row = by_path.get(path)
        if row is None:
            raise CheckFailure(
                f"{component} has no sub-module `{path}`.", counterexample=case, hint=OWN_CLASS_HINT
            )
        _, name, origin, _, args = row
        if origin not in ("oracle", "submission") or name != child:
            where = {"torch": "torch.nn's", "other": "another library's"}.get(origin, "your")
            shown = f"{name} (nn.{name})" if origin == "torch" else name
            raise CheckFailure(
                f"{component}.{path} is {where} {shown}, expected your {child} (API.md).",
                counterexample=case,
                hint=OWN_CLASS_HINT,
            )
        built = dict(a for a in args if isinstance(a, list) and len(a) == 2)
        if origin == "oracle":
            for arg, value in child_kwargs.items():
                if arg in built and built[arg] != value:
                    raise CheckFailure(
                        f"{component}.{path} was built with {arg}={built[arg]!r}, expected "
                        f"{arg}={value!r} (from {component}'s own arguments).",
                        counterexample=case,
                        hint=ARGS_HINT,
                    )


def _shared_failure(component: str, key, twin, shared: list[list[str]], case: str) -> None:
    """Say what is shared: two layers of a stack, two sub-modules, or two parameters."""
    both = [k for k in (key, twin) if k]
    paths = next(
        (ps for ps in shared if any(k.startswith(p + ".") for p in ps for k in both)),
        shared[0] if shared and not both else None,
    )
    if paths:
        a, b = paths[:2]
        layers = _layer_pair(a + ".x", b + ".x")
        what = (
            f"`{a}` and `{b}` are one and the same module"
            + (" (one layer repeated in the stack)" if layers else "")
            + ": after loading the reference's weights (every tensor its own random values) "
            "both hold the values loaded last."
        )
        hint = SHARED_LAYERS_HINT if layers else SHARED_MODULE_HINT
    else:
        what = (
            f"`{key}` and `{twin}` are one shared tensor: after loading the reference's "
            f"weights (every tensor its own random values) `{key}` holds the values loaded "
            f"into `{twin}`."
            if twin
            else f"`{key}` is shared: after loading the reference's weights it holds other values."
        )
        hint = TIED_HINT
    raise CheckFailure(f"{component}: {what}", counterexample=case, hint=hint)


def _layer_pair(a: str | None, b: str | None) -> bool:
    """``layers.0.x`` and ``layers.1.x``: the same parameter of two layers of one stack."""
    if not (a and b):
        return False
    pa, pb = a.split("."), b.split(".")
    return (
        len(pa) == len(pb) > 2
        and pa[0] == pb[0]
        and pa[1] != pb[1]
        and pa[1].isdigit()
        and pb[1].isdigit()
        and pa[2:] == pb[2:]
    )


def expect_dropout_statistics(
    sub,
    pair: Pair,
    args: tuple,
    *,
    replicas: int,
    case: str,
    hint: str,
    what: str,
) -> None:
    """In train(), the learner's output has the reference's distribution over dropout draws:
    the same mean and the same spread, element by element (dropout in the right place, with
    the right p). ``args`` are inputs repeated ``replicas`` times along the batch axis, so one
    call draws ``replicas`` independent dropout masks.

    Never flaky: both sides are seeded, and the bounds are wide against what a correct
    placement can give (the mean difference in units of its own standard error: about 1 on
    average for a correct module; the total variance within a factor 1.6 of the reference's).
    """
    got = sub.call(pair.student, *args)
    pair.reference.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(20_000)
        with torch.no_grad():
            expected = pair.reference(*args)
    pair.reference.eval()
    if isinstance(expected, tuple):
        expected = expected[0]
    if isinstance(got, Opaque) or type(got) is not torch.Tensor or got.shape != expected.shape:
        raise CheckFailure(
            f"{what} in train() is not a tensor of shape {tuple(expected.shape)}.",
            counterexample=case,
            hint=hint,
        )
    if not bool(torch.isfinite(got).all()):
        raise CheckFailure(
            f"{what} in train() contains NaN or inf.", counterexample=case, hint=hint
        )
    n = replicas
    got = got.to(torch.float64).reshape(n, -1)
    expected = expected.to(torch.float64).reshape(n, -1)
    m_l, m_r = got.mean(0), expected.mean(0)
    v_l, v_r = got.var(0), expected.var(0)
    z2 = ((m_l - m_r) ** 2 / ((v_l + v_r) / n + 1e-18)).mean().item()
    ratio = (v_l.sum() / v_r.sum().clamp_min(1e-30)).item()
    if z2 > 4.0 or not (0.6 <= ratio <= 1.6):
        worst = int(((m_l - m_r).abs()).argmax())
        detail = (
            f"over {n} dropout draws: mean differs from the reference's by "
            f"{z2**0.5:.1f} standard errors on average; spread (variance) {ratio:.2f} "
            f"times the reference's\n  mean at the worst entry: expected "
            f"{m_r[worst].item():.4f}, got {m_l[worst].item():.4f}"
        )
        raise CheckFailure(
            f"In train(), {what} is not distributed like the reference's: dropout is in "
            "another place or uses another p.",
            counterexample=f"{case}\n  {detail}",
            hint=hint,
        )


DEVICE_HINT = (
    "Everything must work on any device: create new tensors on the device of the input "
    "(torch.ones(..., device=x.device), causal_mask(T, device=x.device)) and keep fixed tables "
    "in register_buffer so that .to(device) moves them with the module."
)
# errors that say only that a correct module cannot run on the meta device (it looks at
# values: .item(), bool(), printing): the check cannot tell anything then, and passes
_META_LIMITS = ("meta tensor", "on meta", "data-dependent", "Cannot copy out of meta")


def on_meta(value: Any) -> Any:
    """``value`` with every tensor moved to the meta device (shapes and dtypes, no data)."""
    if type(value) is torch.Tensor:
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return type(value)(on_meta(v) for v in value)
    return value


def expect_on_meta(
    sub,
    target: Any,
    args: tuple,
    *,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    case: str,
    what: str,
    method: str | None = None,
) -> None:
    """With its inputs (and, for a module, its parameters and buffers) on the meta device,
    ``target`` must compute an output there: a tensor made on the CPU inside it, or a table
    kept as a plain attribute, meets a meta tensor and fails, on any machine. (The meta
    device has shapes and dtypes but no data.)"""
    from llm_grade.grading.outcomes import LearnerError, NotImplementedYet

    sub.call(target, *args, method=method)  # on the CPU first: a stub is "not implemented"
    if isinstance(target, dict):
        sub.configure(target, device="meta")
    case = f"{case}, on the meta device"
    try:
        got = sub.call(target, *on_meta(args), method=method)
    except NotImplementedYet:
        return  # NotImplementedError from torch: "cannot copy out of meta tensor" (.cpu())
    except LearnerError as exc:
        text = exc.exc_message
        if any(limit in text for limit in _META_LIMITS):
            return  # it reads values: the meta device cannot tell us anything here
        if "device" in text:
            raise CheckFailure(
                f"{what} on the meta device failed: {exc.exc_message}",
                counterexample=case,
                hint=DEVICE_HINT,
            ) from None
        raise
    if isinstance(got, (tuple, list)) and got:
        got = got[0]
    if type(got) is not torch.Tensor:
        raise CheckFailure(
            f"{what} on the meta device returned {type(got).__name__}, not a tensor.",
            counterexample=case,
        )
    if not got.is_meta:
        raise CheckFailure(
            f"{what}: with every input on the meta device the output is on {got.device.type}.",
            counterexample=case,
            hint=DEVICE_HINT,
        )
    if tuple(got.shape) != tuple(shape) or got.dtype != dtype:
        raise CheckFailure(
            f"{what} on the meta device has shape {tuple(got.shape)} and dtype {got.dtype}, "
            f"expected {tuple(shape)} and {dtype}.",
            counterexample=case,
            hint=DEVICE_HINT,
        )


def raises_value_error(action, *, names: tuple[str, ...], what: str, case: str, hint: str):
    """``action()`` (a call through the handle) must raise ValueError naming one of ``names``."""
    from llm_grade.grading.outcomes import LearnerError, NotImplementedYet

    try:
        action()
    except NotImplementedYet:
        raise
    except LearnerError as exc:
        if exc.exc_type == "ValueError":
            if any(name in exc.exc_message for name in names):
                return
            raise CheckFailure(
                f"The ValueError's message doesn't name the argument: {exc.exc_message!r}",
                counterexample=case,
                hint=f"Say which argument is wrong and its value, e.g. "
                f"f'{names[0]} must be ..., got {{{names[0]}}}'.",
            ) from None
        raise CheckFailure(
            f"{what} raised {exc.exc_type}: {exc.exc_message}; expected ValueError.",
            counterexample=case,
            hint=hint,
        ) from None
    raise CheckFailure(f"{what} did not raise ValueError.", counterexample=case, hint=hint)


def started(action) -> None:
    """Run a valid call first: a stub's NotImplementedError means "not started", not a fail."""
    from llm_grade.grading.outcomes import LearnerError, NotImplementedYet

    try:
        action()
    except NotImplementedYet:
        raise
    except LearnerError:
        pass  # a crash on valid input costs the other checks, not this one


VALIDATE_HINT = (
    "Validate the arguments first, in __init__ (or at the top of the function), and raise "
    "ValueError naming the argument: sizes must be positive (n_layers, d_model, d_ff, ...), "
    "0 <= dropout < 1 (API.md lists every case)."
)


def expect_rejects(
    sub, component: str, valid: dict[str, Any], bad: dict[str, Any], probe: tuple
) -> None:
    """``component(**valid)`` builds and runs on ``probe`` (a stub is "not implemented yet");
    ``component(**{**valid, **bad})`` raises ValueError naming the argument of ``bad``."""
    from llm_grade.grading.compare import case_str

    started(lambda: sub.call(sub.build(component, **valid), *probe))
    kwargs = {**valid, **bad}
    raises_value_error(
        lambda: (sub.build(component, **kwargs), sub.flush()),
        names=tuple(bad),
        what=f"{component}({case_str(**kwargs)})",
        case=case_str(**kwargs),
        hint=VALIDATE_HINT,
    )
