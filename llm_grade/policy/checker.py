"""The submission policy: which Python a submission may use, checked from its source.

Learner code runs in a sandboxed worker, but in its own process a submission that reaches the
interpreter's machinery (``sys``, ``exec``, ``__globals__``, ``torch._C``, a patched
``torch.allclose``) can still tamper with what the graders measure. This module reads each
module's source on the trusted side, as an AST only: learner code never runs here. It reports
what a from-scratch Transformer has no need for, with an explanation that teaches, and builds
the source that the worker imports instead: a refused component becomes a stub that scores 0,
a refused helper or top-level statement is removed, so nothing refused ever runs. Line numbers
are kept, so tracebacks still point at the learner's lines.

Dotted names reached through imports (``F._canonical_mask``, ``typing.sys``) are resolved on
the real modules, importing only modules the policy allows. A source check cannot prove a
program harmless; it is one layer, in front of the sandbox. One module on purpose (over 400
lines): the rules, their explanations and the checker that applies them belong together.
docs/submission-policy.md explains the rules to learners and instructors.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
import inspect
import re
import string
import sys
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llm_grade.components import COMPONENTS, MODULES

CURRICULUM: frozenset[str] = frozenset(MODULES)
DEFAULT_MODULES: frozenset[str] = CURRICULUM | frozenset(
    "torch math typing dataclasses functools itertools collections copy numpy warnings "
    "__future__ abc enum numbers".split()
)
_ALWAYS = CURRICULUM | {"__future__"}  # allowed whatever `modules` says, never imported here
_GRADER_PACKAGES = {"llm_grade", "reference", "graders", "tests", "stubs"}


def _each(names: str, why: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), why)


REFUSED_BUILTINS: dict[str, str] = {
    **_each(
        "exec eval compile",
        "`{n}` runs code built from a string while the program runs, which no check of your "
        "source can see. Write that code directly.",
    ),
    "__import__": "`__import__` imports a module named by a string, past the import rules. "
    "Use a plain `import` of an allowed module.",
    "open": "Graded code does not read or write files: a component gets its data as arguments "
    "and returns its results.",
    **_each(
        "globals locals vars",
        "`{n}()` hands out a namespace as a dictionary, which lets code read and rewrite names "
        "no check of your source can see. Use the names themselves (`self.weight`).",
    ),
    **_each(
        "breakpoint input help",
        "`{n}` waits for someone at a keyboard; nobody is there when a submission is graded, "
        'so it hangs or fails. Remove it, or move it under `if __name__ == "__main__":`.',
    ),
    **_each(
        "exit quit",
        "`{n}()` ends the whole process, the grader's with it. Raise an exception instead "
        "(`ValueError` for a bad argument).",
    ),
    "memoryview": "`memoryview` exposes raw memory buffers; a Transformer works with tensor "
    "operations.",
}
REFLECTION = ("getattr", "setattr", "delattr", "hasattr")
ALLOWED_DUNDER_NAMES = frozenset(
    "__name__ __doc__ __all__ __debug__ __version__ __author__ __slots__".split()
)
ALLOWED_DUNDER_ATTRS = frozenset("__init__ __name__ __qualname__ __doc__ __class__".split())
FRAME_ATTRS = frozenset(
    "f_back f_globals f_locals f_builtins f_code f_trace gi_frame gi_code gi_yieldfrom "
    "cr_frame cr_code cr_await ag_frame ag_code tb_frame tb_next".split()
)
_FILES = "reads or writes files (or maps them into memory); graded code gets its data as \
arguments and returns its results."
SPECIAL_ATTRS: dict[str, str] = {
    **_each("tofile dump from_file", "`.{n}` " + _FILES),
    "ctypes": "`.ctypes` hands out raw memory addresses; a Transformer works with tensor "
    "operations.",
}
# underscore names that are public API (namedtuple's methods)
PUBLIC_UNDERSCORE = frozenset("_replace _asdict _fields _field_defaults _make".split())
CLASS_HOOKS = frozenset(
    "__torch_function__ __torch_dispatch__ __del__ __getattribute__ __init_subclass__ "
    "__class_getitem__ __set_name__ __reduce__ __reduce_ex__ __instancecheck__ "
    "__subclasscheck__ __new__".split()
)

# dotted names inside allowed packages that a submission may not reach (fnmatch patterns allowed)
DENIED: dict[str, str] = {
    **_each(
        "torch.ops torch.library torch.overrides",
        "changes how torch operators are registered or dispatched for everything in the "
        "process, the grader's checks included. Write the computation with tensor operations.",
    ),
    **_each(
        "torch.classes torch.utils.cpp_extension torch.cuda.jiterator numpy.ctypeslib "
        "numpy.f2py numpy.distutils",
        "loads or builds native code, out of reach of any check; use tensor operations.",
    ),
    **_each(
        "torch.hub torch.utils.model_zoo",
        "downloads code or weights; a submission builds its model itself.",
    ),
    **_each(
        "torch.load torch.save torch.from_file torch.serialization torch.package "
        "torch.UntypedStorage.from_file torch.TypedStorage.from_file torch.utils.tensorboard "
        "numpy.load numpy.save numpy.savez numpy.savez_compressed numpy.loadtxt numpy.savetxt "
        "numpy.genfromtxt numpy.fromfile numpy.fromregex numpy.memmap numpy.DataSource "
        "numpy.rec.fromfile",
        _FILES,
    ),
    **_each(
        "torch.compile torch.compiler torch.jit torch.fx torch.export torch.onnx",
        "compiles or traces code into another form, which the graders cannot check; write "
        "plain eager PyTorch.",
    ),
    **_each(
        "torch.multiprocessing torch.distributed torch.utils.collect_env "
        "torch.utils.bottleneck torch.backends.xeon",
        "starts processes or talks to other machines; graded code computes in its own process.",
    ),
    **_each(
        "torch.utils.dlpack numpy.lib numpy.core",
        "is internals and file formats, not an API a model needs.",
    ),
    **_each(
        "typing.get_type_hints typing.ForwardRef typing.evaluate_forward_ref "
        "functools.singledispatch functools.singledispatchmethod torch.utils.benchmark "
        "torch.set_default_tensor_type numpy.testing",
        "turns strings into code (it evaluates annotations, code strings or dotted names), "
        "which no check of your source can see.",
    ),
    "torch.nn.modules.module.register_module_*": "installs a hook on every module in the "
    "process, the grader's reference included.",
    "copy.dispatch_table": "changes how objects are copied and pickled for everything in the "
    "process, the grader included.",
}

_WHY_IMPORT = 'A submission may import only what a from-scratch Transformer needs ({libs}) and \
its own modules; `{n}` {hint} Remove the import (a demo that needs it belongs under \
`if __name__ == "__main__":`).'
_WHY_GRADER = "is part of the grader: the answer key and the tests are not available to a \
submission, so write the code yourself."
_WHY_PROCESS = "reaches the grader's process (files, processes, the interpreter) rather than \
your model."
_WHY = {
    "star-import": "`from ... import *` hides which names come from where, so the graders "
    "cannot check them. Import the names you use (`from torch import nn`).",
    "relative": "Relative imports may name only the submission's own modules "
    f"({', '.join(MODULES)}), e.g. `from .attention import softmax`.",
    "dunder-name": "`{n}` is interpreter machinery of the grader's process (where the file "
    "lives, how it was loaded, the builtins), not part of your model. Use your own names.",
    "reflection": "`{n}` with a computed or special attribute name reaches attributes no check "
    "of your source can see. Write the attribute directly (`x.weight`), or use "
    '`{n}(x, "weight", ...)` with a constant, ordinary name.',
    "dunder-attr": "`.{n}` is interpreter machinery (a function's globals, an object's "
    "dictionary, a class's internals): a way to reach objects your code was not given, the "
    "grader's included. Use your objects' public attributes.",
    "frame-attr": "`.{n}` walks into frames, code objects or tracebacks, and through them into "
    "the caller's variables, the grader's included. A component works with its arguments.",
    "private": "`{n}` is a private part of a library (its name starts with `_`): internals that "
    "change without notice and can bypass what is graded. Use the public API.",
    "module": "`{n}` reaches a module that a submission may not use, through another module; "
    "what may not be imported may not be reached indirectly either.",
    "hook": "`{n}` changes how Python or torch treat your objects (creation, deletion, "
    "attribute lookup, pickling, isinstance, torch dispatch), which can fool the grader's "
    "checks. A Transformer module needs `__init__`, `forward` and ordinary methods.",
    "metaclass": "A metaclass changes how a class is built and how its instances behave, which "
    "can fool the grader's checks. Inherit from `nn.Module` and write ordinary methods.",
    "type": "`type(name, bases, dict)` builds a class at run time, with methods no check of "
    "your source can see. Write a `class` statement.",
    "monkeypatch": "Changing `{n}` changes the library for everything in the process, the "
    "grader's checks included. Keep changes to your own names and objects.",
    "module-value": "Using the module `{n}` as a value hides which of its names you use, so the "
    "graders cannot check them. Use its names directly (`torch.zeros`, `F.relu`).",
    "private-attr": "`.{n}` is another object's internals (its name starts with `_`) and may "
    "reach what your code was not given, such as a library's modules. Use the object's public "
    "API, or your own attributes on `self`.",
    "format": "`{n}` reaches attributes from inside a format string, which no check of your "
    "source can see. Use an f-string with ordinary attributes.",
    "nesting": "This code is nested too deeply to be checked. Split it into smaller "
    "expressions or functions.",
}


@dataclass(frozen=True)
class PolicyViolation:
    """One refused construct in a submission's source."""

    file: str  # file name only, e.g. "attention.py"
    line: int
    construct: str  # short code-like text, e.g. "import sys"
    key: str  # what an instructor lists in [policy] allow to permit it
    why: str  # why graders refuse it and what to write instead
    component: str | None  # graded name whose definition holds it; None: costs the module

    def message(self) -> str:
        """The learner-facing sentence: where, what, why, and how an instructor allows it."""
        return (
            f"{self.file}, line {self.line}: `{self.construct}` is not allowed in a submission. "
            f'{self.why} (An instructor can allow it: [policy] allow = ["{self.key}"].)'
        )


@dataclass(frozen=True)
class Policy:
    """The rubric's ``[policy]`` table: on or off, importable modules, allowed keys."""

    enabled: bool = True
    modules: frozenset[str] = DEFAULT_MODULES  # top-level modules a submission may import
    allow: frozenset[str] = frozenset()  # violation keys the instructor allows

    @classmethod
    def from_mapping(cls, table: dict) -> Policy:
        """Build from ``enabled``, ``modules`` (replaces the default), ``extra_modules`` (added)
        and ``allow``; any other key, or a value of the wrong type, raises ``ValueError``."""
        unknown = sorted(set(table) - {"enabled", "modules", "extra_modules", "allow"})
        if unknown:
            raise ValueError(
                f"unknown key(s) in [policy]: {', '.join(unknown)} "
                "(known: enabled, modules, extra_modules, allow)"
            )

        def names(key: str) -> frozenset[str]:
            value = table.get(key, [])
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"[policy] {key} must be a list of strings, got {value!r}")
            return frozenset(value)

        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"[policy] enabled must be true or false, got {enabled!r}")
        modules = names("modules") if "modules" in table else DEFAULT_MODULES
        return cls(enabled, modules | names("extra_modules"), names("allow"))

    def allows(self, key: str) -> bool:
        """Whether ``key`` (or, for a dotted key, any prefix of it) is in ``allow``."""
        parts = key.split(".")
        return any(".".join(parts[:i]) in self.allow for i in range(1, len(parts) + 1))


@dataclass
class ModuleCheck:
    """The policy's verdict on one module of a submission."""

    module: str
    violations: list[PolicyViolation]
    cleaned_source: str  # what the worker imports: refused code stubbed or blanked
    refused_components: set[str]  # graded names of the module that score 0


# --------------------------------------------------------------------------- helpers


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_private(name: str) -> bool:
    sunder = len(name) > 2 and name.endswith("_") and not name.startswith("__")  # enum's _value_
    return (
        name.startswith("_")
        and not _is_dunder(name)
        and not sunder
        and (name not in PUBLIC_UNDERSCORE)
    )


def _attr_refusal(name: str) -> str | None:
    """The reason an attribute name is refused on any object (dunders, frames, files)."""
    if _is_dunder(name) and name not in ALLOWED_DUNDER_ATTRS:
        return _WHY["dunder-attr"].format(n=name)
    if name in FRAME_ATTRS:
        return _WHY["frame-attr"].format(n=name)
    return SPECIAL_ATTRS[name].format(n=name) if name in SPECIAL_ATTRS else None


def _denied(dotted: str) -> str | None:
    """The DENIED entry that ``dotted`` or one of its prefixes matches."""
    parts = dotted.split(".")
    for i in range(2, len(parts) + 1):
        prefix = ".".join(parts[:i])
        for entry in DENIED:
            if prefix == entry or ("*" in entry and fnmatch.fnmatchcase(prefix, entry)):
                return entry
    return None


def _is_main_block(stmt: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order), at the top level."""
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = {type(s).__name__: s for s in (test.left, test.comparators[0])}
    name, const = sides.get("Name"), sides.get("Constant")
    return (
        isinstance(name, ast.Name)
        and name.id == "__name__"
        and isinstance(const, ast.Constant)
        and const.value == "__main__"
    )


_MISSING = object()


def _trusted_import(top: str) -> object:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(top)
    except Exception:  # a module the policy allows but this machine lacks
        return _MISSING


def _step(obj: object, part: str) -> object:
    """``obj.part`` on a trusted object: modules may import lazily, other objects are read
    statically (no property or ``__getattr__`` runs)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(obj, types.ModuleType):
                return getattr(obj, part)
            found = inspect.getattr_static(obj, part)
            return found.__func__ if isinstance(found, (staticmethod, classmethod)) else found
    except Exception:
        return _MISSING


def _origin(obj: object) -> str | None:
    """``module.qualname`` of a function or class, where it is defined."""
    if not isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        return None
    try:
        module, qualname = obj.__module__, obj.__qualname__
    except Exception:
        return None
    return f"{module}.{qualname}" if isinstance(module, str) and isinstance(qualname, str) else None


@functools.lru_cache(maxsize=4096)
def _walk(path: tuple[str, ...], allowed: frozenset[str]) -> tuple[tuple | None, bool]:
    """Follow a dotted name from an allowed top-level module on the real objects.

    Returns ``((index, key, why) | None, reaches_a_module)``: the first refused part (private,
    a module outside ``allowed``, a DENIED name, a refused attribute) or None. A missing
    attribute stops the real walk; the textual rules still apply to the rest.
    """
    trusted = path[0] in allowed and path[0] not in _ALWAYS
    obj = _trusted_import(path[0]) if trusted else _MISSING
    canon = [path[0]]
    for i, part in enumerate(path[1:], start=1):
        dotted = ".".join([*canon, part])
        entry = None if part.startswith("__") else _denied(dotted)
        if entry:
            return (i, entry, f"`{entry}` {DENIED[entry]}"), False
        refusal = _attr_refusal(part)
        if refusal:
            return (i, part, refusal), False
        if _is_dunder(part):
            return None, False  # an allowed dunder (`__name__`): nothing more to follow
        if _is_private(part):
            return (i, dotted, _WHY["private"].format(n=dotted)), False
        nxt = _MISSING if obj is _MISSING else _step(obj, part)
        canon.append(part)
        if isinstance(nxt, types.ModuleType):
            name = vars(nxt).get("__name__")
            name = name if isinstance(name, str) else "?"
            top = name.split(".")[0]
            known = sys.modules.get(dotted) is nxt and canon[0] in allowed  # os.path
            if top not in allowed and not known:
                return (i, top, _WHY["module"].format(n=dotted)), False
            entry = _denied(name)
            if entry:
                return (i, entry, f"`{entry}` {DENIED[entry]}"), False
            canon = name.split(".")
        elif nxt is not _MISSING:
            entry = _denied(_origin(nxt) or "")
            if entry:
                return (i, entry, f"`{entry}` {DENIED[entry]}"), False
        obj = nxt
    return None, isinstance(obj, types.ModuleType)


def _format_attrs(template: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(field, attribute) for every attribute a ``str.format`` template reaches."""
    try:
        items = list(string.Formatter().parse(template))
    except ValueError:
        return
    for _, field, spec, _ in items:
        for attr in re.findall(r"\.([^.\[]+)", field or ""):
            yield field or "", attr
        if spec and depth < 2:
            yield from _format_attrs(spec, depth + 1)


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPOUND = (
    *_DEFS,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.Match,
    getattr(ast, "TryStar", ast.Try),
)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _start(stmt: ast.stmt) -> int:
    return min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])


# --------------------------------------------------------------------------- the checker


@dataclass
class _Scope:
    """Names a function-like scope binds (class scopes bind nothing that reliably shadows)."""

    is_class: bool
    bound: set[str]
    alias_bound: set[str]  # bound by an import or an alias assignment (`G = F`)
    declared_global: set[str]


def _const_attr(call: ast.AST) -> str | None:
    """The constant, ordinary attribute name of ``getattr(x, "name", ...)``-style calls."""
    if not isinstance(call, ast.Call) or len(call.args) < 2:
        return None
    if any(isinstance(a, ast.Starred) for a in call.args[:2]):
        return None
    name = call.args[1]
    if not isinstance(name, ast.Constant) or not isinstance(name.value, str):
        return None
    return name.value if _attr_refusal(name.value) is None else None


def _own(expr: ast.AST) -> bool:
    """``self``, ``cls`` or ``super()``: a class's own attributes may be private."""
    if isinstance(expr, ast.Name):
        return expr.id in ("self", "cls")
    return (
        isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and (expr.func.id == "super")
    )


_Exports = dict[str, dict[str, set[tuple[str, ...]]]]  # module -> alias name -> dotted paths


class _Checker:
    """One pass over a module's top-level statements (``__main__`` blocks left out)."""

    def __init__(
        self, body: list[ast.stmt], module: str, file: str, policy: Policy, exports: _Exports
    ):
        self.body, self.module, self.file, self.policy = body, module, file, policy
        self.exports = exports  # other modules' aliases: `from .attention import F`
        self.allowed = policy.modules | _ALWAYS
        self.parents: dict[int, ast.AST] = {}
        for stmt in body:
            for node in ast.walk(stmt):
                for child in ast.iter_child_nodes(node):
                    self.parents[id(child)] = node
        self.found: list[tuple[ast.stmt, PolicyViolation]] = []
        self.stmt: ast.stmt = body[0] if body else ast.Pass()
        self.scopes: list[_Scope] = []
        self.aliases: dict[str, set[tuple[str, ...]]] = {}  # local name -> dotted paths
        self.own_modules: dict[str, str] = {}  # local name -> curriculum module (`import blocks`)
        self.import_hits: dict[int, list[tuple[str, str, str]]] = {}
        self._collect_aliases()

    def run(self) -> list[tuple[ast.stmt, PolicyViolation]]:
        """Check every statement; return (top-level statement, violation) pairs."""
        for stmt in self.body:
            self.stmt = stmt
            try:
                self._visit(stmt)
            except RecursionError:
                self.scopes = []
                self._add(stmt, "nesting", "deeply nested code", _WHY["nesting"])
        return self.found

    # ----------------------------------------------------------------- names and aliases

    def _collect_aliases(self) -> None:
        refused: set[str] = set()
        assigns: list[tuple[list[str], ast.expr]] = []
        for stmt in self.body:
            for node in ast.walk(stmt):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    hits = self.import_hits.setdefault(id(node), [])
                    for local, path, hit in self._imports(node):
                        if hit:
                            hits.append(hit)
                        if local and (hit or path is None):
                            refused.add(local)
                        elif local and path and path[0] in CURRICULUM:
                            if len(path) == 1:
                                self.own_modules[local] = path[0]
                            elif self.exports.get(path[0], {}).get(path[1]):
                                paths = self.exports[path[0]][path[1]]
                                self.aliases.setdefault(local, set()).update(paths)
                        elif local and path and path[0] not in _ALWAYS:
                            self.aliases.setdefault(local, set()).add(path)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if all(isinstance(t, ast.Name) for t in targets):
                        assigns.append(([t.id for t in targets], node.value))
        self.refused_names = refused  # bound by a refused import: their uses add nothing
        for name in refused:
            self.aliases.pop(name, None)
        for _ in range(12 * len(assigns) + 1):  # `G = F`, `H = G`: up to the fixed point
            changed = False
            for names, value in assigns:
                for path, _ in self._paths(*self._chain(value)):
                    if len(path) > 12 or _walk(path, self.allowed)[0]:
                        continue  # a refused right-hand side is reported where it is written
                    for name in names:
                        if path not in self.aliases.setdefault(name, set()):
                            self.aliases[name].add(path)
                            changed = True
            if not changed:
                break

    def _local(self, name: str) -> _Scope | None:
        """The innermost function-like scope that binds ``name`` (None: global or builtin)."""
        for scope in reversed(self.scopes):
            if scope.is_class:
                continue
            if name in scope.declared_global:
                return None
            if name in scope.bound:
                return scope
        return None

    def _is_alias(self, name: str) -> bool:
        if name not in self.aliases:
            return False
        scope = self._local(name)
        return scope is None or name in scope.alias_bound

    def _paths(self, root: ast.AST, parts: list[str]) -> list[tuple[tuple[str, ...], int]]:
        """The dotted paths on real modules that a chain ``root.parts`` stands for, each with
        the offset from a path index to its index in ``parts`` (empty: not from a library)."""
        if not isinstance(root, ast.Name):
            return []
        if self._is_alias(root.id):
            return [(base + tuple(parts), len(base)) for base in sorted(self.aliases[root.id])]
        module = self.own_modules.get(root.id)
        if module is None or not parts or self._local(root.id) is not None:
            return []
        bases = self.exports.get(module, {}).get(parts[0], set())  # `attention.F.x`
        return [(base + tuple(parts[1:]), len(base) - 1) for base in sorted(bases)]

    def _of_refused_import(self, root: ast.AST) -> bool:
        return (
            isinstance(root, ast.Name)
            and root.id in self.refused_names
            and (self._local(root.id) is None)
        )

    def _const_reflection(self, node: ast.AST | None) -> str | None:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            return None
        if node.func.id not in REFLECTION or self._local(node.func.id) is not None:
            return None
        return _const_attr(node)

    def _chain(self, node: ast.AST) -> tuple[ast.AST, list[str]]:
        """The root and attribute names of ``a.b.c`` (``getattr(a, "b")`` counts as ``a.b``)."""
        parts: list[str] = []
        while True:
            attr = self._const_reflection(node)
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif attr is not None:
                parts.append(attr)
                node = node.args[0]
            else:
                parts.reverse()
                return node, parts

    def _extends(self, node: ast.AST) -> bool:
        """Whether ``node`` is the object of a longer chain (``node.x``, ``getattr(node, "x")``)."""
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Attribute):
            return parent.value is node
        return self._const_reflection(parent) is not None and parent.args[0] is node

    def _scope(self, node: ast.AST) -> _Scope:
        bound: set[str] = set()
        alias: set[str] = set()
        declared: set[str] = set()
        if isinstance(node, _COMPS):
            for gen in node.generators:
                bound |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            return _Scope(False, bound, alias, declared)
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        bound |= {a.arg for a in every if a is not None}
        body = node.body if isinstance(node.body, list) else [node.body]
        stack: list[tuple[ast.AST, bool]] = [(n, False) for n in body]
        while stack:
            n, in_comprehension = stack.pop()
            if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
                bound.add(n.target.id)
            if isinstance(n, (*_DEFS, ast.Lambda)):
                if not isinstance(n, ast.Lambda) and not in_comprehension:
                    bound.add(n.name)
                continue
            inner = in_comprehension or isinstance(n, _COMPS)
            stack += [(c, inner) for c in ast.iter_child_nodes(n)]
            if inner:
                continue
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
                bound.add(n.id)
            elif isinstance(n, (ast.Import, ast.ImportFrom)):
                local = {a.asname or a.name.split(".")[0] for a in n.names if a.name != "*"}
                bound |= local
                alias |= local
            elif isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None:
                if self._paths(*self._chain(n.value)):
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    alias |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(n, ast.ExceptHandler) and n.name:
                bound.add(n.name)
            elif isinstance(n, ast.Global):
                declared |= set(n.names)
            elif isinstance(n, ast.Nonlocal):
                bound |= set(n.names)
            elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
                bound.add(n.name)
            elif isinstance(n, ast.MatchMapping) and n.rest:
                bound.add(n.rest)
        return _Scope(False, bound - declared, alias, declared)

    # ----------------------------------------------------------------- traversal

    def _visit(self, node: ast.AST) -> None:
        self._check(node)
        if isinstance(node, _FUNCS):
            args = node.args
            outer: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d)]
            if not isinstance(node, ast.Lambda):
                every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                outer += node.decorator_list + [a.annotation for a in every if a and a.annotation]
                outer += [node.returns] if node.returns else []
            for n in outer:
                self._visit(n)
            self.scopes.append(self._scope(node))
            for n in node.body if isinstance(node.body, list) else [node.body]:
                self._visit(n)
            self.scopes.pop()
        elif isinstance(node, ast.ClassDef):
            for n in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self._visit(n)
            self.scopes.append(_Scope(True, set(), set(), set()))
            for n in node.body:
                self._visit(n)
            self.scopes.pop()
        elif isinstance(node, _COMPS):
            self._visit(node.generators[0].iter)  # evaluated in the enclosing scope
            self.scopes.append(self._scope(node))
            for i, gen in enumerate(node.generators):
                for n in [gen.target, *([gen.iter] if i else []), *gen.ifs]:
                    self._visit(n)
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for n in elts:
                self._visit(n)
            self.scopes.pop()
        else:
            for child in ast.iter_child_nodes(node):
                self._visit(child)

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for key, construct, why in self.import_hits.get(id(node), []):
                self._add(node, key, construct, why)
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.Attribute):
            self._attribute(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.ClassDef):
            self._class(node)
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
            root, parts = self._chain(node.value)  # `copy.dispatch_table[T] = f`
            if self._paths(root, parts):
                text = ".".join([root.id, *parts]) + "[...]"
                self._add(node, "monkeypatch", text, _WHY["monkeypatch"].format(n=text))

    def _add(self, node: ast.AST, key: str, construct: str, why: str) -> None:
        if self.policy.allows(key):
            return
        stmt = self.stmt
        graded = isinstance(stmt, _DEFS) and COMPONENTS.get(stmt.name) == self.module
        component = stmt.name if graded else None
        line = getattr(node, "lineno", 0)
        self.found.append((stmt, PolicyViolation(self.file, line, construct, key, why, component)))

    # ----------------------------------------------------------------- the rules

    def _imports(
        self, node: ast.Import | ast.ImportFrom
    ) -> Iterator[tuple[str | None, tuple[str, ...] | None, tuple[str, str, str] | None]]:
        """(local name, dotted path, refusal) for each name an import binds."""
        if isinstance(node, ast.Import):
            for alias in node.names:
                path = tuple(alias.name.split("."))
                hit = self._import_hit(path, f"import {alias.name}")
                yield alias.asname or path[0], path if alias.asname else path[:1], hit
            return
        names = [a.name for a in node.names]
        text = f"from {'.' * node.level}{node.module or ''} import {', '.join(names)}"
        if "*" in names:
            yield None, None, ("star-import", text, _WHY["star-import"])
        elif node.level:
            wanted = [node.module] if node.module else names
            bad = [n for n in wanted if node.level > 1 or n not in CURRICULUM]
            for name in bad:
                key = "relative-import" if node.level > 1 else name.split(".")[0]
                yield None, None, (key, text, _WHY["relative"])
            for alias in [] if bad else node.names:
                path = (node.module, alias.name) if node.module else (alias.name,)
                yield alias.asname or alias.name, path, None
        elif node.module.split(".")[0] not in self.allowed:
            top = node.module.split(".")[0]
            yield None, None, (top, text, self._import_why(top))
            for alias in node.names:
                yield alias.asname or alias.name, None, None
        else:
            for alias in node.names:
                path = (*node.module.split("."), alias.name)
                hit = self._import_hit(path, f"from {node.module} import {alias.name}")
                yield alias.asname or alias.name, path, hit

    def _import_hit(self, path: tuple[str, ...], text: str) -> tuple[str, str, str] | None:
        if path[0] in _ALWAYS:
            return None
        if path[0] not in self.allowed:
            return path[0], text, self._import_why(path[0])
        hit, _ = _walk(path, self.allowed)
        return None if hit is None else (hit[1], text, hit[2])

    def _import_why(self, top: str) -> str:
        libs = ", ".join(sorted(self.policy.modules - _ALWAYS))
        hint = _WHY_GRADER if top in _GRADER_PACKAGES else _WHY_PROCESS
        return _WHY_IMPORT.format(libs=libs, n=top, hint=hint)

    def _name(self, node: ast.Name) -> None:
        name, parent = node.id, self.parents.get(id(node))
        called = isinstance(parent, ast.Call) and parent.func is node
        if _is_dunder(name):
            if name not in ALLOWED_DUNDER_NAMES:
                self._add(node, name, name, _WHY["dunder-name"].format(n=name))
        elif not isinstance(node.ctx, ast.Load):
            return  # rebinding a builtin's name is harmless; reading it back is checked
        elif name in REFUSED_BUILTINS and self._local(name) is None:
            construct = f"{name}(...)" if called else name
            self._add(node, name, construct, REFUSED_BUILTINS[name].format(n=name))
        elif name in REFLECTION and self._local(name) is None:
            if not (called and _const_attr(parent) is not None):
                self._add(node, name, f"computed {name}(...)", _WHY["reflection"].format(n=name))
        elif name == "type" and called and len(parent.args) == 3 and self._local(name) is None:
            self._add(node, "type", "type(name, bases, dict)", _WHY["type"])
        elif self._is_alias(name) and not self._extends(node):
            self._check_chain(node)

    def _attribute(self, node: ast.Attribute) -> None:
        root, parts = self._chain(node)
        if self._paths(root, parts):
            if not self._extends(node):
                self._check_chain(node)
            return
        if self._of_refused_import(root):
            return
        refusal = _attr_refusal(node.attr)
        if refusal:
            self._add(node, node.attr, f"attribute .{node.attr}", refusal)
        elif _is_private(node.attr) and not _own(node.value):
            why = _WHY["private-attr"].format(n=node.attr)
            self._add(node, node.attr, f"attribute .{node.attr}", why)
        parent = self.parents.get(id(node))
        if node.attr in ("format", "format_map") and isinstance(parent, ast.Call):
            if parent.func is node:
                self._format(node.value, parent)

    def _call(self, node: ast.Call) -> None:
        attr = self._const_reflection(node)
        if attr is None:
            return
        root, parts = self._chain(node)
        if self._paths(root, parts):
            if not self._extends(node):
                self._check_chain(node)
        elif _is_private(attr) and not _own(node.args[0]) and not self._of_refused_import(root):
            construct = f"{node.func.id}(..., {attr!r})"
            self._add(node, attr, construct, _WHY["private-attr"].format(n=attr))

    def _check_chain(self, node: ast.AST) -> None:
        """A whole dotted chain from an imported module: walk it on the real objects."""
        root, parts = self._chain(node)
        name = root.id
        fn = node.func.id if isinstance(node, ast.Call) else None
        reaches_module, refused_but_allowed = False, False
        for path, offset in self._paths(root, parts):
            hit, module = _walk(path, self.allowed)
            if hit:
                index, key, why = hit
                if self.policy.allows(key):
                    refused_but_allowed = True
                    continue
                shown = ".".join([name, *parts[: max(0, index - offset + 1)]])
                self._add(node, key, shown, why)
                return
            reaches_module = reaches_module or module
        text = ".".join([name, *parts])
        if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            shown = f"del {text}" if isinstance(node.ctx, ast.Del) else f"{text} = ..."
            self._add(node, "monkeypatch", shown, _WHY["monkeypatch"].format(n=text))
        elif fn in ("setattr", "delattr"):
            shown = f"{fn}({'.'.join([name, *parts[:-1]])}, {parts[-1]!r}, ...)"
            self._add(node, "monkeypatch", shown, _WHY["monkeypatch"].format(n=text))
        elif reaches_module and not refused_but_allowed and fn in (None, "getattr"):
            if not self._harmless(node):
                self._add(node, "module-value", text, _WHY["module-value"].format(n=text))

    def _harmless(self, node: ast.AST) -> bool:
        """A module used where it does not flow on: an alias, a comparison, a truth test."""
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Assign) and parent.value is node:
            return all(isinstance(t, ast.Name) for t in parent.targets)
        if isinstance(parent, ast.AnnAssign) and parent.value is node:
            return isinstance(parent.target, ast.Name)
        return isinstance(parent, ast.Compare) or self._in_test(node)

    def _in_test(self, node: ast.AST) -> bool:
        parent = self.parents.get(id(node))
        if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            return parent.test is node
        if isinstance(parent, ast.UnaryOp):
            return isinstance(parent.op, ast.Not)
        if isinstance(parent, ast.comprehension):
            return any(node is cond for cond in parent.ifs)
        return isinstance(parent, ast.BoolOp) and self._in_test(parent)

    def _format(self, receiver: ast.AST, call: ast.Call) -> None:
        template = None
        if isinstance(receiver, ast.Name) and receiver.id == "str" and call.args:
            receiver = call.args[0]
        if isinstance(receiver, ast.Constant) and isinstance(receiver.value, str):
            template = receiver.value
        elif isinstance(receiver, ast.JoinedStr):
            if all(isinstance(v, ast.Constant) for v in receiver.values):
                template = "".join(str(v.value) for v in receiver.values)
        if template is None:
            self._add(call, "format", "computed .format(...)", _WHY["format"].format(n=".format"))
            return
        for field, attr in _format_attrs(template):
            if _attr_refusal(attr) or _is_private(attr):
                shown = f"format field {{{field}}}"
                self._add(call, attr, shown, _WHY["format"].format(n=f"{{{field}}}"))

    def _class(self, node: ast.ClassDef) -> None:
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                shown = f"class {node.name}(metaclass=...)"
                self._add(node, "metaclass", shown, _WHY["metaclass"])
        stack = list(node.body)
        while stack:
            n = stack.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if n.name in CLASS_HOOKS:
                    self._add(n, n.name, f"def {n.name}", _WHY["hook"].format(n=n.name))
            elif not isinstance(n, (ast.ClassDef, ast.expr)):
                stack += list(ast.iter_child_nodes(n))


# --------------------------------------------------------------------------- cleaned source


_DEF_STUB = "def {}(*args, **kwargs): pass"


class _Cleaner:
    """Edits a source line by line; every line keeps its number and its line ending."""

    _STUB = "  # refused by the submission policy"

    def __init__(self, source: str):
        self.lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", source)

    def _content(self, lineno: int) -> str:
        return self.lines[lineno - 1].rstrip("\r\n")

    def _set(self, lineno: int, text: str) -> None:
        line = self.lines[lineno - 1]
        self.lines[lineno - 1] = text + line[len(line.rstrip("\r\n")) :]

    def blank(self, stmt: ast.stmt) -> None:
        for lineno in range(_start(stmt), (stmt.end_lineno or stmt.lineno) + 1):
            self._set(lineno, "")

    def stub(self, stmt: ast.stmt) -> None:
        self.blank(stmt)
        kind = "class {}: pass" if isinstance(stmt, ast.ClassDef) else _DEF_STUB
        self._set(_start(stmt), kind.format(stmt.name) + self._STUB)

    def remove(self, stmt: ast.stmt) -> None:
        """Blank a statement; a simple one that shares a line keeps its neighbours."""
        if isinstance(stmt, _COMPOUND):
            self.blank(stmt)
            return
        first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
        head = self._content(first).encode()[: stmt.col_offset].decode(errors="replace")
        tail = self._content(last).encode()[stmt.end_col_offset or 0 :].decode(errors="replace")
        rest = tail.strip().lstrip(";").strip()
        tail = "pass" + tail if rest and not rest.startswith("#") else ""
        self.blank(stmt)
        if first == last:
            self._set(first, head + tail if head.strip() or tail else "")
        else:
            self._set(first, head if head.strip() else "")
            self._set(last, tail)

    def text(self) -> str:
        return "".join(self.lines)


# --------------------------------------------------------------------------- public API


def check_module(
    source: str, module: str, policy: Policy, filename: str | None = None
) -> ModuleCheck:
    """Check one module's source against ``policy`` and build the source the worker imports.

    A source that does not parse is returned unchanged with no violations: importing it fails
    later and is reported as the learner's error. Names this module takes from another of the
    submission's modules (``from .attention import F``) are resolved only by
    :func:`check_submission`, which sees every module.
    """
    return _check_module(source, module, policy, filename, {})


def check_submission(sources: dict[str, str], policy: Policy) -> dict[str, ModuleCheck]:
    """Check every module of a submission (module name -> source)."""
    bodies: dict[str, list[ast.stmt]] = {}
    for module, source in sources.items():
        try:
            bodies[module] = [s for s in ast.parse(source).body if not _is_main_block(s)]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    exports: _Exports = {}
    for _ in range(len(bodies) + 1 if policy.enabled else 0):  # `F` passed along modules
        found = {m: _Checker(b, m, f"{m}.py", policy, exports).aliases for m, b in bodies.items()}
        if found == exports:
            break
        exports = found
    return {m: _check_module(src, m, policy, None, exports) for m, src in sources.items()}


def _check_module(
    source: str, module: str, policy: Policy, filename: str | None, exports: _Exports
) -> ModuleCheck:
    file = Path(filename or f"{module}.py").name
    try:
        tree = ast.parse(source, filename=file)
    except (SyntaxError, ValueError):
        return ModuleCheck(module, [], source, set())
    except (RecursionError, MemoryError):  # too deep to check here: nothing of it may run
        graded = {name for name, m in COMPONENTS.items() if m == module}
        if not policy.enabled or policy.allows("nesting"):
            return ModuleCheck(module, [], source, set())
        blank = re.sub(r"[^\r\n]+", "", source)
        nesting = PolicyViolation(file, 1, "deeply nested code", "nesting", _WHY["nesting"], None)
        return ModuleCheck(module, [nesting], blank, graded)
    body = [s for s in tree.body if not _is_main_block(s)]
    found = _Checker(body, module, file, policy, exports).run() if policy.enabled else []
    refused = {v.component for _, v in found if v.component}
    if any(v.component is None for _, v in found):
        refused |= {name for name, m in COMPONENTS.items() if m == module}
    removed = {id(stmt) for stmt, v in found if v.component is None}
    cleaner = _Cleaner(source)
    for stmt in reversed(tree.body):
        graded = isinstance(stmt, _DEFS) and COMPONENTS.get(stmt.name) == module
        if _is_main_block(stmt):
            cleaner.blank(stmt)
        elif graded and stmt.name in refused:
            cleaner.stub(stmt)
        elif id(stmt) in removed and isinstance(stmt, _DEFS):
            cleaner.stub(stmt)  # a helper keeps its name, so imports of it still work
        elif id(stmt) in removed:
            cleaner.remove(stmt)
    violations = list(dict.fromkeys(sorted((v for _, v in found), key=lambda v: v.line)))
    return ModuleCheck(module, violations, cleaner.text(), refused)
