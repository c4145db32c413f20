"""The side of the submission handle that runs next to learner code.

An :class:`Executor` imports a submission, keeps the objects it builds in a table, and
answers plain requests (``build``, ``call``, ``load_state_dict``, ...) with plain replies:
tensors, numbers, strings, lists, dicts, and error records. It never decides a score.

In ``--isolation none`` it runs inside the grading process; in ``--isolation process`` the
same class runs inside a sandboxed worker and only the transport between the two changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import linecache
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_grade.components import module_of
from llm_grade.sandbox.forbidden import RuntimeGuard, Violation

CALL_SEED = 1234  # every call starts from the same RNG state: dropout masks are reproducible
GRADER_IDS = 1 << 40  # object ids from here on are chosen by the grader (deferred builds)
_package_ids = itertools.count()


class Ref(dict):
    """A reference to an object in the executor's table, as plain data: ``{"ref": id}``."""

    @classmethod
    def to(cls, id_: int, component: str) -> Ref:
        return cls(ref=id_, component=component)


class _Forbidden(Exception):
    def __init__(self, violation: Violation):
        super().__init__(f"{violation.api} is forbidden in {violation.component}")
        self.violation = violation


def learner_traceback(exc: BaseException, root: Path, limit: int = 8) -> str:
    """Format ``exc``'s traceback keeping only frames from the submission's files."""
    root_s = str(root)
    lines = []
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root_s)]
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename.startswith(root_s):
        lines.append(f'  File "{Path(exc.filename).name}", line {exc.lineno}')
        if exc.text:
            lines.append(f"    {exc.text.strip()}")
    for frame in frames[-limit:]:
        lines.append(f'  File "{Path(frame.filename).name}", line {frame.lineno}, in {frame.name}')
        code = frame.line or linecache.getline(frame.filename, frame.lineno or 0).strip()
        if code:
            lines.append(f"    {code}")
    return "\n".join(lines)


class Executor:
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
                "message": f"Your submission has no {name}.py (expected in {self.root}).",
            }
            self._import_errors[name] = record
            raise _ImportFailed(record)
        try:
            with self.guard.active():
                module = importlib.import_module(f"{self.package}.{name}")
        except BaseException as exc:  # noqa: BLE001
            self._import_errors[name] = self._error(exc, name, f"import {name}.py")
            raise _ImportFailed(self._import_errors[name]) from None
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

    # ------------------------------------------------------------------ errors

    def _error(self, exc: BaseException, component: str, call: str) -> dict:
        if isinstance(exc, _Forbidden):
            v = exc.violation
            return {
                "kind": "forbidden",
                "component": v.component,
                "api": v.api,
                "file": v.file,
                "line": v.line,
            }
        if isinstance(exc, NotImplementedError):
            return {
                "kind": "not_implemented",
                "component": component,
                "call": call,
                "message": str(exc),
            }
        if isinstance(exc, _ImportFailed):
            return exc.record
        message = str(exc)
        if len(message) > 2000:
            message = message[:2000] + " …"
        return {
            "kind": "exception",
            "component": component,
            "call": call,
            "exc_type": type(exc).__name__,
            "message": message,
            "traceback": learner_traceback(exc, self.root),
        }

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

    def op_build(self, component: str, args: list, kwargs: dict, ref_id: int | None = None) -> Ref:
        cls = self._lookup(component)
        torch.default_generator.manual_seed(0)  # parameter initialisation is reproducible
        with self.guard.active(), self._swapped_oracles():
            obj = cls(*self._resolve(args), **self._resolve(kwargs))
        if not isinstance(obj, nn.Module):
            raise TypeError(
                f"{component}(...) built a {type(obj).__name__}, not an nn.Module; "
                f"does the class inherit from nn.Module?"
            )
        return self._store(obj, component, ref_id)

    def op_call(
        self,
        target: Any,
        method: str | None,
        args: list,
        kwargs: dict,
        echo_inputs: bool = False,
        grad: bool = False,
        autocast: str | None = None,
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
            self.guard.watching(component),
        ):
            out = fn(*args, **kwargs)
        if len(self.guard.violations) > seen:  # raised, and caught by the learner's code
            raise _Forbidden(self.guard.violations[seen])
        if echo_inputs:
            return {"out": out, "args": list(args), "kwargs": kwargs}
        return out

    def op_gradients(
        self, target: dict, method: str | None, args: list, kwargs: dict, seed: int = 0
    ) -> dict:
        """Backpropagate a fixed random projection of the output; return each parameter's grad."""
        obj = self._obj(target)
        obj.zero_grad(set_to_none=True)
        out = self.op_call(target, method, args, kwargs, grad=True)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"forward returned a {type(out).__name__}, not a tensor")
        weights = torch.randn(
            out.shape,
            generator=torch.Generator().manual_seed(seed),
            dtype=out.dtype if out.is_floating_point() else torch.float32,
        )
        with self.guard.active():
            (out * weights.to(out.device)).sum().backward()
        return {
            name: (None if p.grad is None else p.grad.detach().clone())
            for name, p in obj.named_parameters()
        }

    def op_build_loaded(
        self,
        component: str,
        args: list,
        kwargs: dict,
        dtype: str | None,
        train: bool,
        state_dict: dict,
        oracle: bool = False,
        ref_id: int | None = None,
        require_match: bool = False,
    ) -> dict:
        """Build (the learner's or the oracle's) ``component``, set dtype and mode, and load
        ``state_dict`` when its keys and shapes match: one round trip instead of three.

        The weights are about to be overwritten, so torch.nn's own initialisation of the
        layers is skipped while the module is built (the learner's ``__init__`` still runs).
        With ``require_match`` a key or shape mismatch is an error record (``"state_dict"``).
        """
        with no_torch_init():
            ref = (
                self.op_oracle(component, args, kwargs, ref_id=ref_id)
                if oracle
                else self.op_build(component, args, kwargs, ref_id=ref_id)
            )
        self.op_configure(ref, train=train, dtype=dtype)
        report = self.op_load_state_dict(ref, state_dict)
        if require_match and any(report.values()):
            self.objects.pop(ref["ref"], None)
            raise _StateDictMismatch({"kind": "state_dict", "component": component, **report})
        return {"ref": ref, "report": report}

    def op_inject_oracle(
        self,
        target: dict,
        path: str,
        component: str,
        kwargs: dict,
        dtype: str | None,
        train: bool,
        state_dict: dict,
    ) -> None:
        """Make sub-module ``path`` a trusted oracle ``component(**kwargs)`` with these weights.

        Usually it is one already: while a composite is graded, the learner's code builds the
        oracle classes in place of its own (see :meth:`op_use_oracles`), and the composite's
        state_dict has loaded the same weights. Then nothing is rebuilt.
        """
        owner = self._obj(target)
        cls = self._oracle(component)
        try:
            child = owner.get_submodule(path)
        except AttributeError:
            child = None
        if (
            type(child) is cls
            and getattr(child, "init_args", None) == cls.bind_init(**kwargs)
            and _same_tensors(child.state_dict(), state_dict)
            and all(m.training == train for m in child.modules())
        ):
            return
        built = self.op_build_loaded(component, [], kwargs, dtype, train, state_dict, oracle=True)
        self.op_inject(target, path, built["ref"])
        self.objects.pop(built["ref"]["ref"], None)  # the parent module keeps it alive

    def op_structure(self, target: dict) -> dict:
        """The module tree as plain data, for the grader's structure checks: every sub-module
        (path, class name, where the class comes from, the constructor arguments of an oracle,
        which paths are one object) and every parameter (name, size, which names are one
        tensor). Plain strings and numbers; the grader compares them with the reference's
        tree and never trusts them to raise a score on their own (the state_dict read-back is
        the evidence of sharing it relies on first)."""
        obj = self._obj(target)
        with self.guard.active():
            return self._structure(obj)

    def _structure(self, obj: nn.Module) -> dict:
        own = {id(m) for m in self._modules.values()}
        oracles = {id(v) for v in self.oracles.values()}
        groups: dict[int, int] = {}
        modules = []
        for path, module in obj.named_modules(remove_duplicate=False):
            cls = type(module)
            if id(cls) in oracles:
                origin = "oracle"
            elif id(sys.modules.get(cls.__module__)) in own:
                origin = "submission"
            elif cls.__module__.split(".")[0] == "torch":
                origin = "torch"
            else:
                origin = "other"
            args = getattr(module, "init_args", None) if origin == "oracle" else None
            modules.append(
                [
                    path,
                    cls.__name__,
                    origin,
                    groups.setdefault(id(module), len(groups)),
                    [[k, v] for k, v in args if type(v) in (int, float, bool, str)]
                    if isinstance(args, tuple)
                    else [],
                ]
            )
        tensors: dict[int, int] = {}
        parameters = [
            [name, int(p.numel()), tensors.setdefault(id(p), len(tensors))]
            for name, p in obj.named_parameters(remove_duplicate=False)
        ]
        return {"modules": modules, "parameters": parameters}

    def op_state_dict(self, target: dict) -> dict:
        return {k: v.detach().clone() for k, v in self._obj(target).state_dict().items()}

    def op_load_state_dict(self, target: dict, state_dict: dict) -> dict:
        obj = self._obj(target)
        own = obj.state_dict()
        report = {
            "missing": sorted(set(state_dict) - set(own)),
            "unexpected": sorted(set(own) - set(state_dict)),
            "shape_mismatch": sorted(
                [k, list(own[k].shape), list(v.shape)]
                for k, v in state_dict.items()
                if k in own and own[k].shape != v.shape
            ),
        }
        if not any(report.values()):
            with self.guard.active(), torch.no_grad():
                if _plain_loading(obj):  # what load_state_dict(strict=True) does, less the walk
                    for key, tensor in own.items():
                        tensor.copy_(state_dict[key])
                else:
                    obj.load_state_dict(state_dict, strict=True)
        return report

    def op_configure(
        self,
        target: dict,
        train: bool | None = None,
        dtype: str | None = None,
        device: str | None = None,
    ) -> None:
        obj = self._obj(target)
        if train is not None:
            obj.train(train)
        if dtype is not None or device is not None:
            obj.to(device=device, dtype=getattr(torch, dtype) if dtype else None)

    def op_inject(self, target: dict, path: str, oracle: dict) -> None:
        """Replace the sub-module at ``path`` (e.g. ``"blocks.0.attn"``) by another object."""
        owner = self._obj(target)
        *parents, leaf = path.split(".")
        for name in parents:
            owner = getattr(owner, name)
        setattr(owner, leaf, self._obj(oracle))

    def op_specimen(self, name: str, kwargs: dict) -> Ref:
        from llm_grade.sandbox import specimens

        return self._store(getattr(specimens, name)(**kwargs), name)

    def op_oracle(self, component: str, args: list, kwargs: dict, ref_id: int | None = None) -> Ref:
        """Build a trusted sub-component from :mod:`llm_grade.oracles` (torch.nn code)."""
        cls = self._oracle(component)
        return self._store(cls(*self._resolve(args), **self._resolve(kwargs)), component, ref_id)

    def op_load_oracles(self, sources: list[list[str]]) -> None:
        """Define trusted oracles from their source, ``[[name, source], ...]`` with parts
        before the wholes that use them. Sent by the grader only for the parts of the
        component it grades: this process never holds a trusted version of that component."""
        for name, source in sources:
            if name in self.oracles:
                continue
            code = compile(source, f"<llm-grade oracle {name}>", "exec")
            self.oracle_codes.update(_code_objects(code))
            exec(code, self._oracle_ns)  # noqa: S102 - trusted source sent by the grader
            self.oracles[name] = self._oracle_ns[name]

    def _oracle(self, component: str) -> Any:
        try:
            return self.oracles[component]
        except KeyError:  # an engine bug: the grader injects only parts it has sent
            raise RuntimeError(f"no trusted {component} was sent to this worker") from None

    def op_use_oracles(self, names: list[str]) -> None:
        """Credit isolation: while later requests run, the learner's graded functions and
        classes in ``names`` are replaced by the trusted versions of :mod:`llm_grade.oracles`
        wherever a submission module refers to them (so grading ``EncoderLayer`` builds and
        runs the oracle ``MultiHeadAttention`` inside the learner's layer)."""
        self.oracle_names = list(names)
        self._swap_plan = None

    def _plan(self) -> list[tuple[Any, str, Any, Any]]:
        """(module, attribute, learner object, oracle) for every reference to swap."""
        key = (tuple(self.oracle_names), tuple(self._modules))
        if self._swap_plan is not None and self._swap_key == key:
            return self._swap_plan
        oracle_by_id = {}
        for name in self.oracle_names:
            # only modules already imported: swapping must never import (and run) new code
            module = self._modules.get(module_of(name))
            original = getattr(module, name, None) if module is not None else None
            if callable(original):
                oracle_by_id[id(original)] = (original, self._oracle(name))
        plan = []
        for module in self._modules.values():
            for attr, value in vars(module).items():
                hit = oracle_by_id.get(id(value))
                if hit is not None and hit[0] is value:
                    plan.append((module, attr, value, hit[1]))
        self._swap_plan, self._swap_key = plan, key
        return plan

    @contextmanager
    def _swapped_oracles(self) -> Iterator[None]:
        plan = self._plan() if self.oracle_names else []
        for module, attr, _, oracle in plan:
            setattr(module, attr, oracle)
        try:
            yield
        finally:
            for module, attr, original, _ in plan:
                setattr(module, attr, original)


def _code_objects(code) -> Iterator[Any]:
    """``code`` and every code object nested in it (functions, methods, comprehensions)."""
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_consts"):
            yield from _code_objects(const)


def _plain_loading(module: nn.Module) -> bool:
    """True when no module in the tree customises how its state_dict is made or loaded (own
    methods or hooks): copying into ``state_dict()``'s tensors is then what
    ``load_state_dict(strict=True)`` does, without its slower walk."""
    base = nn.Module
    for m in module.modules():
        cls = type(m)
        if (
            cls._load_from_state_dict is not base._load_from_state_dict
            or cls._save_to_state_dict is not base._save_to_state_dict
            or cls.state_dict is not base.state_dict
            or cls.load_state_dict is not base.load_state_dict
            or m._load_state_dict_pre_hooks
            or m._load_state_dict_post_hooks
            or m._state_dict_hooks
            or m._state_dict_pre_hooks
        ):
            return False
    return True


def _same_tensors(own: dict, wanted: dict) -> bool:
    """Same keys, and each tensor equal in dtype, shape and values."""
    if own.keys() != wanted.keys():
        return False
    for key, value in wanted.items():
        mine = own[key]
        if mine.dtype != value.dtype or mine.shape != value.shape:
            return False
        if not torch.equal(mine, value.to(mine.device)):
            return False
    return True


_TORCH_INIT = (
    (nn.Linear, "reset_parameters"),
    (nn.Embedding, "reset_parameters"),
    (nn.LayerNorm, "reset_parameters"),
    (nn.MultiheadAttention, "_reset_parameters"),
)


def _skip_init(self: nn.Module) -> None:
    """Stand-in for torch.nn's weight initialisation when the weights are loaded next."""


@contextmanager
def no_torch_init() -> Iterator[None]:
    """Skip torch.nn's random initialisation of its layers (about a third of the time to build
    a small Transformer) while a module whose weights are loaded right after is built."""
    saved = [(cls, name, cls.__dict__[name]) for cls, name in _TORCH_INIT]
    for cls, name, _ in saved:
        setattr(cls, name, _skip_init)
    try:
        yield
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)


class _StateDictMismatch(Exception):
    def __init__(self, record: dict):
        super().__init__("state_dict keys or shapes differ")
        self.record = record


class _ImportFailed(Exception):
    def __init__(self, record: dict):
        super().__init__(record.get("message", "import failed"))
        self.record = record


__all__ = ["no_torch_init", "Executor", "Ref", "CALL_SEED", "learner_traceback"]
