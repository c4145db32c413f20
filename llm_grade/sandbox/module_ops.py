"""The executor's operations on learner modules: build, load weights, read the tree, oracles.

Learner side (part of :class:`llm_grade.sandbox.executor.Executor`, inside the worker):
:class:`ModuleOps` holds the ``op_*`` requests that build a component (the learner's or a trusted
oracle's), set its dtype and mode, load or read its state_dict, describe its module tree, inject
a sub-module, and swap the learner's graded names for the oracles sent as source. The helpers
below it (:func:`no_torch_init`, :func:`_plain_loading`, ...) serve those requests. Imports
nothing from the trusted side.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from llm_grade.components import module_of
from llm_grade.sandbox.learner_errors import _StateDictMismatch

if TYPE_CHECKING:
    from llm_grade.sandbox.executor import Ref


class ModuleOps:
    """The executor's requests on modules; :class:`~llm_grade.sandbox.executor.Executor` holds
    the object table, the imported submission modules and the runtime guard they use."""

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
