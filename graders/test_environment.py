"""Graders for environment.py (curriculum 0.2): pick a device, count a model's parameters.

Each class grades one API name; each test is one rubric check whose docstring's first line is
the property in plain words.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_grade.grading.compare import fail
from llm_grade.grading.outcomes import LearnerError, NotImplementedYet

DEVICE_ORDER_HINT = (
    "With prefer=None try the devices from fastest to slowest: cuda "
    "(torch.cuda.is_available()), then mps (torch.backends.mps.is_available()), then cpu, "
    "which is always there. Return a torch.device, e.g. torch.device('cpu'), not a string."
)


def _available(kind: str) -> bool:
    """Trusted availability of a device kind on the machine that grades."""
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _expect_device(got, kind: str, what: str, *, case: str, hint: str) -> None:
    """``got`` must be a ``torch.device`` of type ``kind`` (index None or 0)."""
    if type(got) is not torch.device:
        fail(
            f"{what} returned {got!r} ({type(got).__name__}), expected torch.device({kind!r}).",
            case=case,
            hint="Return a torch.device object: torch.device(name), not the name as a string.",
        )
    if got.type != kind or got.index not in (None, 0):
        fail(f"{what} returned {got}, expected torch.device({kind!r}).", case=case, hint=hint)


def _expect_raises(sub, fn, *args, exc_type: str, names: tuple[str, ...], case: str, hint: str):
    """``fn(*args)`` must raise ``exc_type`` with a message naming one of ``names``."""
    try:
        got = sub.call(fn, *args)
    except NotImplementedYet:
        raise
    except LearnerError as exc:
        if exc.exc_type != exc_type:
            fail(
                f"Expected {exc_type}, got {exc.exc_type}: {exc.exc_message}", case=case, hint=hint
            )
        if not any(name in exc.exc_message for name in names):
            fail(
                f"The {exc_type}'s message doesn't say what is wrong: {exc.exc_message!r}",
                case=case,
                hint=f"Name the argument or the device in the message, e.g. {names[0]!r}.",
            )
        return
    fail(f"Expected {exc_type}, but the call returned {got!r}.", case=case, hint=hint)


class TestGetDevice:
    component = "get_device"

    def test_picks_fastest_by_default(self, sub):
        """without a preference returns the fastest available device: cuda, then mps, then cpu"""
        expected = next(k for k in ("cuda", "mps", "cpu") if _available(k))
        available = [k for k in ("cuda", "mps") if _available(k)] or ["no accelerator"]
        case = f"get_device(); on this machine: {', '.join(available)}"
        _expect_device(
            sub.call("get_device"), expected, "get_device()", case=case, hint=DEVICE_ORDER_HINT
        )
        _expect_device(
            sub.call("get_device", None),
            expected,
            "get_device(None)",
            case=case.replace("get_device()", "get_device(None)"),
            hint=DEVICE_ORDER_HINT,
        )

    @given(kind=st.sampled_from(["cpu", "cuda", "mps", "tpu", "gpu"]))
    def test_honours_prefer(self, sub, kind):
        """returns the preferred device if available, RuntimeError if not, ValueError if unknown"""
        case = f"get_device({kind!r}); {kind} is " + (
            "unknown"
            if kind not in ("cpu", "cuda", "mps")
            else ("available" if _available(kind) else "not available") + " on this machine"
        )
        if kind not in ("cpu", "cuda", "mps"):
            _expect_raises(
                sub,
                "get_device",
                kind,
                exc_type="ValueError",
                names=("prefer", kind),
                case=case,
                hint="Only 'cpu', 'cuda', 'mps' (or None) are valid: raise ValueError naming "
                "`prefer` for anything else, before checking availability.",
            )
        elif _available(kind):
            _expect_device(
                sub.call("get_device", kind),
                kind,
                f"get_device({kind!r})",
                case=case,
                hint="When the preferred device is available, return torch.device(prefer).",
            )
        else:
            _expect_raises(
                sub,
                "get_device",
                kind,
                exc_type="RuntimeError",
                names=(kind,),
                case=case,
                hint="Check availability before returning: torch.cuda.is_available() for "
                "cuda, torch.backends.mps.is_available() for mps; if the preferred device "
                "is missing, raise RuntimeError saying which one (don't fall back silently).",
            )


def _mlp_counts(sizes: list[int], frozen: list[int]) -> tuple[int, int]:
    """(trainable, total) parameters of ``specimens.mlp(sizes, frozen)``, from the sizes alone."""
    per_layer = [a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    trainable = sum(n for i, n in enumerate(per_layer) if i not in frozen)
    return trainable, sum(per_layer)


@st.composite
def mlps(draw):
    """``(sizes, frozen)`` for a stack of Linear layers, some of them frozen."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5), label="sizes")
    layers = list(range(len(sizes) - 1))
    frozen = draw(st.lists(st.sampled_from(layers), unique=True), label="frozen") if layers else []
    return sizes, sorted(frozen)


def _mlp_case(sizes, frozen, call):
    layers = ", ".join(
        f"Linear({a}, {b}){' (frozen)' if i in frozen else ''}"
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    )
    return f"{call} on nn.Sequential({layers or ''})"


def _expect_count(got, expected: int, what: str, *, case: str, hint: str) -> None:
    if type(got) is not int:
        fail(
            f"{what} returned {got!r} ({type(got).__name__}), expected the int {expected}.",
            case=case,
            hint="Return a Python int: sum(p.numel() for p in ...) is one; a tensor is not "
            "(call .item() if you summed tensors).",
        )
    if got != expected:
        fail(f"{what} returned {got}, expected {expected}.", case=case, hint=hint)


TRAINABLE_HINT = (
    "Count p.numel() for the parameters with p.requires_grad when trainable_only=True (the "
    "default); frozen layers (requires_grad=False) are skipped."
)
ALL_HINT = (
    "With trainable_only=False count every parameter, frozen ones too: "
    "sum(p.numel() for p in model.parameters()). Count model.parameters(), not the "
    "state_dict: buffers are not parameters."
)


class TestCountParameters:
    component = "count_parameters"

    @given(mlp=mlps())
    def test_counts_trainable_by_default(self, sub, mlp):
        """by default counts the scalars of the trainable parameters only, as an int"""
        sizes, frozen = mlp
        model = sub.specimen("mlp", sizes=sizes, frozen=frozen)
        trainable, _ = _mlp_counts(sizes, frozen)
        for call, kwargs in (
            ("count_parameters(model)", {}),
            ("count_parameters(model, trainable_only=True)", {"trainable_only": True}),
        ):
            got = sub.call("count_parameters", model, **kwargs)
            _expect_count(
                got, trainable, call, case=_mlp_case(sizes, frozen, call), hint=TRAINABLE_HINT
            )

    @given(mlp=mlps(), vocab=st.integers(2, 6), rows=st.integers(1, 4))
    def test_counts_all_when_asked(self, sub, mlp, vocab, rows):
        """with trainable_only=False counts every parameter, frozen ones too, but never buffers"""
        sizes, frozen = mlp
        call = "count_parameters(model, trainable_only=False)"
        model = sub.specimen("mlp", sizes=sizes, frozen=frozen)
        _, total = _mlp_counts(sizes, frozen)
        got = sub.call("count_parameters", model, trainable_only=False)
        _expect_count(got, total, call, case=_mlp_case(sizes, frozen, call), hint=ALL_HINT)
        # a model with a buffer: Linear(vocab, vocab, bias=False) and a buffer of `rows` ints
        model = sub.specimen("ScriptedSeq2Seq", vocab=vocab, eos_id=0, eos_after=[-1] * rows)
        got = sub.call("count_parameters", model, trainable_only=False)
        case = (
            f"{call} on a module with one Linear({vocab}, {vocab}, bias=False) and a "
            f"buffer of {rows} values"
        )
        _expect_count(got, vocab * vocab, call, case=case, hint=ALL_HINT)

    @settings(max_examples=6)
    @given(width=st.integers(1, 6), trainable_only=st.booleans())
    def test_counts_shared_once(self, sub, width, trainable_only):
        """a parameter shared by two layers (tied weights) is counted once"""
        model = sub.specimen("tied", width=width)
        call = f"count_parameters(model, trainable_only={trainable_only})"
        case = (
            f"{call} on Linear({width}, {width}), Tanh, Linear({width}, {width}) whose two "
            "layers share one weight tensor"
        )
        _expect_count(
            sub.call("count_parameters", model, trainable_only=trainable_only),
            width * width + 2 * width,
            call,
            case=case,
            hint="Count each parameter once: model.parameters() yields a shared tensor once; "
            "named_parameters(remove_duplicate=False) or walking every module's own "
            "parameters counts it once per layer.",
        )
