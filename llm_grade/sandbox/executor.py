"""The side of the submission handle that runs next to learner code.

An :class:`Executor` imports a submission, keeps the objects it builds in a table, and
answers plain requests (``build``, ``call``, ``load_state_dict``, ...) with plain replies:
tensors, numbers, strings, lists, dicts, and error records. It never decides a score.

In ``--isolation none`` it runs inside the grading process; in ``--isolation process`` the
same class runs inside a sandboxed worker and only the transport between the two changes.
Learner side: imports nothing from the trusted side.

Here: the object table, importing the submission, the dispatch of requests, and calls into
learner code (``call``, ``gradients``). The requests on modules (build, load, structure,
oracles) are in :mod:`llm_grade.sandbox.module_ops`, error records in
:mod:`llm_grade.sandbox.learner_errors`.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_grade.components import module_of
from llm_grade.sandbox.forbidden import RuntimeGuard
from llm_grade.sandbox.learner_errors import (
    _Forbidden,
    _ImportFailed,
    _StateDictMismatch,
    culprit,
    error_record,
    learner_traceback,
)
from llm_grade.sandbox.module_ops import ModuleOps, no_torch_init

CALL_SEED = 1234  # every call starts from the same RNG state: dropout masks are reproducible
GRADER_IDS = 1 << 40  # object ids from here on are chosen by the grader (deferred builds)
_package_ids = itertools.count()


@contextmanager
def cpu_profiler() -> Iterator[Any]:
    """PyTorch's profiler with its CPU backend without Kineto (milliseconds to start, where
    Kineto takes a second), its deprecation notice silenced, and the two lines its native
    side writes to stderr as it starts and stops (``USDT: ... profiler_start``) kept off the
    learner's terminal; yields the profile."""
    with warnings.catch_warnings(), _native_stderr_to_null():
        warnings.simplefilter("ignore")
        with torch.autograd.profiler.profile(use_kineto=False) as prof:
            yield prof


@contextmanager
def _native_stderr_to_null() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the block (what C++ code writes there is lost)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to keep quiet
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start_profiler_thread() -> None:
    """Start PyTorch's profiler once, empty: its first use starts a thread that stays, and
    the grader counts a thread left after a request against the learner's code (it is
    started before the grader's census of an idle worker, so ``op_profile`` leaves none)."""
    with cpu_profiler():
        pass


def operator_table(prof: Any, top: int = 10) -> list:
    """A profile's operators by self CPU time, most first: ``[name, self_us, calls]``."""
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        [str(e.key)[:80], round(float(e.self_cpu_time_total), 1), int(e.count)]
        for e in rows[: max(1, min(int(top), 30))]
    ]


class Ref(dict):
    """A reference to an object in the executor's table, as plain data: ``{"ref": id}``."""

    @classmethod
    def to(cls, id_: int, component: str) -> Ref:
        return cls(ref=id_, component=component)


class Executor(ModuleOps):
    """Import a submission folder and run requests against it."""

    def __init__(self, root: str | Path, forbidden: dict[str, list[str]] | None = None):
        self.root = Path(root).resolve()
        self.objects: dict[int, Any] = {}
        self._ids = itertools.count(1)
        self._modules: dict[str, Any] = {}
        self._import_errors: dict[str, dict] = {}
        self.package = f"_llm_grade_submission_{next(_package_ids)}"
        self.oracle_names: list[str] = []
        # the trusted oracles sent so far (see op_load_oracles): name -> class or function
        self.oracles: dict[str, Any] = {}
        self._oracle_ns: dict[str, Any] = {"__name__": "llm_grade_oracles"}
        self.oracle_codes: set = set()  # their code objects (the runtime guard exempts them)
        self._swap_plan: list | None = None
        self._swap_key: tuple = ()
        self.guard = RuntimeGuard(
            self.root, forbidden or {}, _Forbidden, trusted_codes=self.oracle_codes
        )
        self.device = torch.device("cpu")
        self._make_package()

    # ------------------------------------------------------------------ loading

    def _make_package(self) -> None:
        """An empty package around the submission's modules, so that their relative imports
        (``from .attention import softmax``) work. The submission's own ``__init__.py`` is
        never executed: staging does not even copy it."""
        spec = importlib.machinery.ModuleSpec(self.package, None, is_package=True)
        spec.submodule_search_locations = [str(self.root)]
        sys.modules[self.package] = importlib.util.module_from_spec(spec)

    def _module(self, name: str):
        if name in self._modules:
            return self._modules[name]
        if name in self._import_errors:
            raise _ImportFailed(self._import_errors[name])
        if not (self.root / f"{name}.py").is_file():
            record = {
                "kind": "missing",
                "component": name,
                "message": f"Your submission has no {name}.py.",
                "import_of": name,
                "cause": name,
            }
            self._import_errors[name] = record
            raise _ImportFailed(record)
        try:
            with self.guard.active():
                module = importlib.import_module(f"{self.package}.{name}")
        except BaseException as exc:  # noqa: BLE001
            record = self._error(exc, name, f"import {name}.py")
            record.update(import_of=name, cause=culprit(exc, self.root) or name)
            self._import_errors[name] = record
            raise _ImportFailed(record) from None
        self._modules[name] = module
        return module

    def _lookup(self, component: str):
        module = self._module(module_of(component))
        try:
            return getattr(module, component)
        except AttributeError:
            raise _ImportFailed(
                {
                    "kind": "missing",
                    "component": component,
                    "message": f"{module_of(component)}.py defines no `{component}`: "
                    f"API.md asks for it with exactly this name.",
                }
            ) from None

    def _error(self, exc: BaseException, component: str, call: str) -> dict:
        return error_record(exc, component, call, self.root)

    # ------------------------------------------------------------------ requests

    def handle(self, request: dict) -> dict:
        """Answer a request with ``{"ok": True, "value": v}`` or ``{"ok": False, "error": {}}``."""
        op = request["op"]
        component = request.get("component", "")
        try:
            value = getattr(self, f"op_{op}")(**request.get("args", {}))
        except (_ImportFailed, _StateDictMismatch) as exc:
            return {"ok": False, "error": exc.record}
        except BaseException as exc:  # noqa: BLE001 - learner code may raise anything
            if isinstance(exc, KeyboardInterrupt):
                raise
            return {"ok": False, "error": self._error(exc, component, request.get("call", op))}
        return {"ok": True, "value": value}

    def _obj(self, ref: dict) -> Any:
        return self.objects[ref["ref"]]

    def _resolve(self, value: Any) -> Any:
        """Replace refs by the objects they stand for, recursively."""
        if isinstance(value, dict) and "ref" in value and len(value) <= 2:
            return self._obj(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self._resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        return value

    def _store(self, obj: Any, component: str, id_: int | None = None) -> Ref:
        if id_ is None:
            id_ = next(self._ids)
        elif id_ in self.objects or id_ < GRADER_IDS:
            raise ValueError(f"object id {id_} is taken")  # an engine bug, never the learner's
        if self.device.type != "cpu" and isinstance(obj, nn.Module):
            with self.guard.active():
                obj.to(self.device)
        self.objects[id_] = obj
        return Ref.to(id_, component)

    def op_device(self, name: str) -> None:
        """Build and run everything on ``name`` from now on (inputs arrive on the CPU and
        results leave on it). Matrix products keep full float32 precision (no TF32)."""
        self.device = torch.device(name)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

    def _on_device(self, value: Any) -> Any:
        if self.device.type == "cpu":
            return value
        if type(value) is torch.Tensor:
            return value.to(self.device)
        if isinstance(value, (list, tuple)):
            return type(value)(self._on_device(v) for v in value)
        if isinstance(value, dict):
            return {k: self._on_device(v) for k, v in value.items()}
        return value

    def op_batch(self, requests: list[dict]) -> dict:
        """Answer several requests in order, in one round trip; stop at the first error.

        Returns ``{"values": [...], "failed": None}`` or, when request ``i`` failed,
        ``{"values": values before i, "failed": i, "error": its error record}``.
        """
        values: list[Any] = []
        for i, request in enumerate(requests):
            reply = self.handle(request)
            if not reply["ok"]:
                return {"values": values, "failed": i, "error": reply["error"]}
            values.append(reply["value"])
        return {"values": values, "failed": None}

    def op_release(self, refs: list[int]) -> None:
        """Forget objects the grader no longer needs (the end of a Hypothesis example)."""
        for id_ in refs:
            self.objects.pop(id_, None)

    def op_preload(self, module: str) -> None:
        """Import ``module`` now, so a module that kills the process at import time is found
        before grading (the error of one that raises is kept for every later request)."""
        try:
            self._module(module)
        except _ImportFailed:
            pass

    def op_call(
        self,
        target: Any,
        method: str | None,
        args: list,
        kwargs: dict,
        echo_inputs: bool = False,
        grad: bool = False,
        autocast: str | None = None,
        watch: bool = True,
    ) -> Any:
        if isinstance(target, str):
            fn = self._lookup(target)
        else:
            obj = self._obj(target)
            fn = obj if method in (None, "forward") else getattr(obj, method)
        args = self._on_device(self._resolve(args))
        kwargs = self._on_device(self._resolve(kwargs))
        # CPU generator only: torch.manual_seed also queues seeds for lazy CUDA/XPU init and
        # formats a stack trace each time (about 1 ms a call)
        torch.default_generator.manual_seed(CALL_SEED)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(CALL_SEED)
        precision = (
            torch.autocast(self.device.type, dtype=getattr(torch, autocast))
            if autocast
            else nullcontext()
        )
        component = target if isinstance(target, str) else target.get("component", "")
        seen = len(self.guard.violations)
        with (
            self.guard.active(),
            self._swapped_oracles(),
            torch.set_grad_enabled(grad),
            precision,
            self.guard.watching(component) if watch else nullcontext(),
        ):
            out = fn(*args, **kwargs)
        if len(self.guard.violations) > seen:  # raised, and caught by the learner's code
            raise _Forbidden(self.guard.violations[seen])
        if echo_inputs:
            return {"out": out, "args": list(args), "kwargs": kwargs}
        return out

    def op_hold(self, value: Any) -> Ref:
        """Keep ``value`` (plain data: a tensor) in the object table, so that later requests
        name it instead of sending it again (efficiency timing sends each input once)."""
        return self._store(value, "")

    def op_repeat(
        self,
        target: Any,
        method: str | None,
        args: list,
        kwargs: dict,
        repeats: int = 1,
        backward: bool = False,
    ) -> None:
        """Make the call ``repeats`` times (each with a backward pass from its output's sum
        when ``backward``), for the grader's efficiency timing: nothing comes back, and the
        grader's own clock times the round trip (learner code can only make it longer).

        Without the forbidden-operator watch (a Python callback on every operator, which the
        reference timed on the grader's side does not pay): these calls only time, every
        score is decided already, and the watch saw the same code while it was graded."""
        obj = None if isinstance(target, str) else self._obj(target)
        for _ in range(max(1, min(int(repeats), 200))):
            if obj is not None and backward:
                obj.zero_grad(set_to_none=True)
            out = self.op_call(target, method, args, kwargs, grad=backward, watch=False)
            if not backward:
                continue
            if isinstance(out, (tuple, list)):
                out = out[0]
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                raise TypeError("the output does not depend on anything that trains")
            with self.guard.active():
                out.float().sum().backward()

    def op_gradients(
        self, target: dict, method: str | None, args: list, kwargs: dict, seed: int = 0
    ) -> dict:
        """Backpropagate a fixed random projection of the output; return each parameter's grad."""
        out = self._forward_for_backward(target, method, args, kwargs)
        weights = torch.randn(
            out.shape,
            generator=torch.Generator().manual_seed(seed),
            dtype=out.dtype if out.is_floating_point() else torch.float32,
        )
        with self.guard.active():
            (out * weights.to(out.device)).sum().backward()
        return self._gradients_of(target)

    def _forward_for_backward(
        self, target: dict, method: str | None, args: list, kwargs: dict, watch: bool = True
    ) -> torch.Tensor:
        """Zero the module's gradients and call it with gradients enabled: its output (the
        first, for a tuple), which must be a tensor."""
        self._obj(target).zero_grad(set_to_none=True)
        out = self.op_call(target, method, args, kwargs, grad=True, watch=watch)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"forward returned a {type(out).__name__}, not a tensor")
        return out

    def _gradients_of(self, target: dict) -> dict:
        """Every named parameter's gradient (None where it has none), as plain tensors."""
        return {
            name: (None if p.grad is None else p.grad.detach().clone())
            for name, p in self._obj(target).named_parameters()
        }

    def op_profile(
        self, target: dict, method: str | None, args: list, kwargs: dict, top: int = 10
    ) -> list:
        """One forward and backward pass (from the output's sum) under PyTorch's profiler
        (its CPU backend without Kineto: milliseconds to start, where Kineto takes a
        second); the ``top`` operators by self time, ``[name, self_us, calls]`` each, for
        the report. Informational: nothing is scored from it."""
        with cpu_profiler() as prof:
            out = self._forward_for_backward(target, method, args, kwargs, watch=False)
            if out.requires_grad:
                with self.guard.active():
                    out.float().sum().backward()
        return operator_table(prof, top)

    def op_train_step(
        self,
        target: dict,
        method: str | None,
        args: list,
        kwargs: dict,
        state_dict: dict,
        targets: Any,
    ) -> dict:
        """One step of the grader's training loop, less the optimizer (which the grader runs):
        load the grader's weights, run the forward pass with gradients, backpropagate the mean
        cross-entropy of the logits against ``targets`` and return the logits and every
        parameter's gradient. The grader recomputes the loss from the logits itself."""
        report = self.op_load_state_dict(target, state_dict)
        if any(report.values()):
            raise _StateDictMismatch(
                {"kind": "state_dict", "component": target.get("component", ""), **report}
            )
        # without the forbidden-operator watch (a Python callback on every operator): every
        # component's own checks watched this code, and no score depends on what it calls here
        out = self._forward_for_backward(target, method, args, kwargs, watch=False)
        targets = self._on_device(self._resolve(targets))
        if out.requires_grad and out.is_floating_point() and out.shape[:-1] == targets.shape:
            with self.guard.active():
                loss = torch.nn.functional.cross_entropy(
                    out.float().reshape(-1, out.shape[-1]), targets.reshape(-1)
                )
                loss.backward()
        return {"logits": out.detach(), "grads": self._gradients_of(target)}


__all__ = [
    "no_torch_init",
    "Executor",
    "Ref",
    "CALL_SEED",
    "learner_traceback",
    "GRADER_IDS",
]
