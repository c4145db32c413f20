"""The forbidden-API rule's tables and its runtime guard (learner side: runs in the worker).

API.md forbids some library calls per component (``softmax`` may not call ``torch.softmax``);
the table is the rubric's (the defaults are the bundled graders/rubric.toml's, see
:func:`llm_grade.engine.rubric.defaults`) and reaches the worker as its first frame. Here:
the same functionality under other names (:data:`TWINS`) and the ATen operators each family
runs (:data:`FAMILY_OPS`), shared with the static scan on the trusted side
(:mod:`llm_grade.policy.forbidden`), and the runtime guard that catches what a scan cannot
see (``getattr(F, "soft" + "max")``): while learner code runs, each forbidden function is
wrapped; a call walks up the stack to the innermost frame in the submission's files and
blames the graded component whose source holds that frame. The worker imports this module
(through llm_grade.sandbox.executor); it needs nothing from llm_grade.policy.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import functools
import importlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llm_grade.components import COMPONENTS


@dataclass(frozen=True)
class Violation:
    """A forbidden call found in a component's code."""

    component: str
    api: str
    file: str
    line: int
    how: str  # "static" (found in the source) or "runtime" (caught while running)


def matches(name: str, patterns: Iterable[str]) -> str | None:
    """The first pattern (``fnmatch`` style) that the dotted ``name`` matches, if any."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern):
            return pattern
    return None


# --------------------------------------------------------------------------- forbidden families

# The same functionality under other names: a rubric that forbids one forbids its twins (a
# softmax from log_softmax().exp(), softmin(-x), nn.Softmax; LayerNorm from group_norm with
# one group; attention from the multi-head helper or flex attention).
TWINS: dict[str, tuple[str, ...]] = {
    "torch.softmax": (
        "torch.softmax",
        "torch.log_softmax",
        "torch.nn.functional.softmax",
        "torch.nn.functional.log_softmax",
        "torch.nn.functional.softmin",
        "torch.nn.functional.gumbel_softmax",
        "torch.Tensor.softmax",
        "torch.Tensor.log_softmax",
        "torch.special.softmax",
        "torch.special.log_softmax",
        "torch.sparse.softmax",
        "torch.sparse.log_softmax",
        "torch.masked.softmax",
        "torch.masked.log_softmax",
        "torch.masked.softmin",
        "torch.nn.Softmax",
        "torch.nn.Softmax2d",
        "torch.nn.LogSoftmax",
        "torch.nn.Softmin",
    ),
    "torch.nn.functional.layer_norm": (
        "torch.layer_norm",
        "torch.native_layer_norm",
        "torch.nn.functional.layer_norm",
        "torch.nn.functional.group_norm",
        "torch.group_norm",
        "torch.native_group_norm",
        "torch.nn.functional.instance_norm",
        "torch.instance_norm",
        "torch.nn.functional.batch_norm",
        "torch.batch_norm",
        "torch.native_batch_norm",
        "torch.nn.LayerNorm",
        "torch.nn.GroupNorm",
        "torch.nn.InstanceNorm1d",
        "torch.nn.BatchNorm1d",
    ),
    "torch.nn.functional.gelu": ("torch.nn.functional.gelu", "torch.nn.GELU"),
    "torch.nn.functional.scaled_dot_product_attention": (
        "torch.nn.functional.scaled_dot_product_attention",
        "torch.nn.functional.multi_head_attention_forward",
        "torch.nn.attention.*",
        "torch.nn.MultiheadAttention",
    ),
}
_FAMILY = {name: family for family, names in TWINS.items() for name in names}

# What each family runs underneath (ATen operators, as a TorchDispatchMode sees them, whatever
# Python name, alias or thread reached them; tests/test_forbidden.py checks them against the
# installed torch). nn.MultiheadAttention in training runs plain ops (and _softmax, which MHA
# may use): the static scan and the constructor guard catch it.
FAMILY_OPS: dict[str, frozenset[str]] = {
    "torch.softmax": frozenset(
        {
            "_softmax",
            "_log_softmax",
            "_safe_softmax",
            "_masked_softmax",
            "_sparse_softmax",
            "_sparse_log_softmax",
        }
    ),
    "torch.nn.functional.layer_norm": frozenset(
        {
            "native_layer_norm",
            "native_group_norm",
            "native_batch_norm",
            "_native_batch_norm_legit",
            "_native_batch_norm_legit_no_training",
            "_native_batch_norm_legit_functional",
            "cudnn_batch_norm",
            "miopen_batch_norm",
        }
    ),
    "torch.nn.functional.gelu": frozenset({"gelu"}),
    "torch.nn.functional.scaled_dot_product_attention": frozenset(
        {
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_fused_attention_overrideable",
            "_flash_attention_forward",
            "_efficient_attention_forward",
            "_native_multi_head_attention",
            "_safe_softmax",  # the math path of F.scaled_dot_product_attention
        }
    ),
}


def forbidden_ops(patterns: Iterable[str]) -> dict[str, str]:
    """ATen operator name -> the forbidden family it belongs to, for ``patterns``."""
    patterns = list(patterns)
    ops: dict[str, str] = {}
    for family, names in TWINS.items():
        if any(matches(name, patterns) for name in names):
            ops.update(dict.fromkeys(FAMILY_OPS.get(family, ()), family))
    return ops


def expand(patterns: Iterable[str]) -> list[str]:
    """``patterns`` and the twins of every API they name (see :data:`TWINS`)."""
    out = list(patterns)
    for pattern in list(out):
        for name, family in _FAMILY.items():
            if fnmatch.fnmatchcase(name, pattern):
                out += [twin for twin in TWINS[family] if twin not in out]
    return out


# --------------------------------------------------------------------------- runtime guard


class _SourceIndex:
    """Which graded component's source holds a given (file, line) of the submission."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.spans: dict[str, list[tuple[int, int, str]]] = {}
        for module in dict.fromkeys(COMPONENTS.values()):
            path = self.root / f"{module}.py"
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
            except (OSError, SyntaxError):
                continue
            self.spans[str(path)] = [
                (n.lineno, n.end_lineno or n.lineno, n.name)
                for n in tree.body
                if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                and COMPONENTS.get(n.name) == module
            ]

    def in_submission(self, filename: str) -> bool:
        return filename.startswith(str(self.root))

    def component_at(self, filename: str, line: int) -> str | None:
        for start, end, name in self.spans.get(filename, ()):
            if start <= line <= end:
                return name
        return None


class RuntimeGuard:
    """Wrap forbidden APIs so that a call from a component that may not use them raises.

    The wrappers pass every call through unchanged unless a submission frame is on the
    stack and the component it belongs to forbids that API.
    """

    def __init__(
        self,
        root: Path,
        forbidden: Mapping[str, list[str]],
        make_error,
        trusted_codes: set | frozenset = frozenset(),
    ):
        self._root = Path(root)
        # code objects of the trusted oracles the grader sent: their calls are never blamed
        # (identity, not a file name: code compiled under any name is not one of these)
        self.trusted_codes = trusted_codes
        self.forbidden = {name: expand(patterns) for name, patterns in forbidden.items()}
        self.make_error = make_error  # Violation -> exception to raise
        self.violations: list[Violation] = []
        self._depth = 0
        self.ops = {name: forbidden_ops(patterns) for name, patterns in self.forbidden.items()}
        if any(self.ops.values()):
            _op_watch_class()  # imports torch's dispatch machinery now, not inside a call

    @functools.cached_property
    def index(self) -> _SourceIndex:
        # read at the first guarded call, not when the worker starts: the grader may still be
        # writing the staged files then
        return _SourceIndex(self._root)

    def _blame(self, api: str) -> Violation | None:
        frame = sys._getframe(2)
        first: tuple[str, int] | None = None
        while frame is not None:
            filename = frame.f_code.co_filename
            if first is None and frame.f_code in self.trusted_codes:
                return None  # called by a trusted oracle, not by the learner
            if self.index.in_submission(filename):
                if first is None:
                    first = (filename, frame.f_lineno)
                component = self.index.component_at(filename, frame.f_lineno)
                if component is not None:
                    if matches(api, self.forbidden.get(component, ())):
                        return Violation(component, api, Path(first[0]).name, first[1], "runtime")
                    return None
            frame = frame.f_back
        return None

    def _wrap(self, api: str, fn):
        guard = self

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            violation = guard._blame(api)
            if violation is not None:
                guard.violations.append(violation)
                raise guard.make_error(violation)
            return fn(*args, **kwargs)

        guarded.__llm_grade_guarded__ = True
        return guarded

    @functools.cached_property
    def _targets(self) -> list[tuple[object, str, str]]:
        """(owner, attribute, api name) for every forbidden API that can be resolved here."""
        import torch

        targets = []

        patterns = {p for ps in self.forbidden.values() for p in ps}
        for pattern in sorted(patterns):
            owner_path, _, attr = pattern.rpartition(".")
            try:
                owner = (
                    torch.Tensor
                    if owner_path == "torch.Tensor"
                    else importlib.import_module(owner_path)
                )
            except ImportError:
                continue
            if any(c in attr for c in "*?["):  # public callables only (not __name__ & co)
                names = [
                    n
                    for n in fnmatch.filter(dir(owner), attr)
                    if not n.startswith("_") and callable(getattr(owner, n, None))
                ]
            else:
                names = [attr]
            targets += [(owner, name, f"{owner_path}.{name}") for name in names]
        return targets

    @functools.cached_property
    def _patches(self) -> list[tuple[object, str, object, object]]:
        """(owner, attribute, original, wrapper), built once: entering and leaving the guard
        is then just two setattr per API (it happens around every call into learner code)."""
        import torch

        patches = []
        for owner, attr, api in self._targets:
            original = getattr(owner, attr, None)
            if original is None or getattr(original, "__llm_grade_guarded__", False):
                continue
            if isinstance(original, type) and issubclass(original, torch.nn.Module):
                # a class: guard its constructor, which every alias of the class shares
                patches.append(
                    (original, "__init__", original.__init__, self._wrap(api, original.__init__))
                )
            else:
                patches.append((owner, attr, original, self._wrap(api, original)))
        return patches

    def _blame_op(self, component: str, op: str) -> Violation | None:
        """A forbidden ATen op ran during a call into ``component``: blame the learner unless
        the innermost code that decided to run it is a trusted oracle."""
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code in self.trusted_codes:
                return None
            filename = frame.f_code.co_filename
            if self.index.in_submission(filename):
                family = self.ops[component][op]
                api = f"{family} (it runs aten.{op})"
                return Violation(component, api, Path(filename).name, frame.f_lineno, "runtime")
            frame = frame.f_back
        return None

    def watching(self, component: str):
        """While ``component``'s code runs: every ATen operator that a forbidden API of it
        runs underneath raises (see :data:`FAMILY_OPS`), unless a trusted part ran it."""
        if not self.ops.get(component):
            return contextlib.nullcontext()
        return _op_watch_class()(self, component)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Install the wrappers for the duration of a call into learner code."""
        self._depth += 1
        if self._depth == 1:
            for owner, attr, _, wrapper in self._patches:
                setattr(owner, attr, wrapper)
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                for owner, attr, original, _ in self._patches:
                    setattr(owner, attr, original)


@functools.cache
def _op_watch_class():
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpWatch(TorchDispatchMode):
        """Sees every ATen operator that runs; raises on the component's forbidden ones."""

        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            # nothing here is ever compiled: without this, the first operator imports
            # torch._dynamo (1.4 s and a few hundred MB in every worker)
            return False

        def __init__(self, guard: RuntimeGuard, component: str):
            super().__init__()
            # names of our own: TorchDispatchMode keeps attributes of its own on instances
            self._lg_guard, self._lg_component = guard, component
            self._lg_ops = guard.ops[component]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name in self._lg_ops:
                guard = self._lg_guard
                violation = guard._blame_op(self._lg_component, name)
                if violation is not None:
                    guard.violations.append(violation)
                    raise guard.make_error(violation)
            return func(*args, **(kwargs or {}))

    return OpWatch

