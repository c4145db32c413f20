"""The submission policy's rules (trusted side): what is refused, and why, in words that teach.

The tables of refused builtins, names, attributes and dotted names inside allowed packages
(``DENIED``), the learner-facing explanations (``_WHY``), the rubric's ``[policy]`` table
(:class:`Policy`) and the verdicts (:class:`PolicyViolation`, :class:`ModuleCheck`), with the
small name tests that apply the attribute rules. Pure data and string tests: nothing here
imports or runs learner code. docs/submission-policy.md explains the rules to learners.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from llm_grade.components import MODULES

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
