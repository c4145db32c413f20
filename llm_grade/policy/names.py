"""Dotted names resolved on the real modules (trusted side): ``F._canonical_mask``, ``typing.sys``.

A name a submission reaches through its imports is followed on the actual objects, importing
only top-level modules the policy allows and reading other objects statically (no property or
``__getattr__`` runs), so ``F.torch`` or ``typing.sys`` is seen for what it is. Learner code
never runs here; the rules it applies live in :mod:`llm_grade.policy.rules`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import string
import sys
import types
import warnings
from collections.abc import Iterator

from llm_grade.policy.rules import (
    _ALWAYS,
    _WHY,
    DENIED,
    _attr_refusal,
    _denied,
    _is_dunder,
    _is_private,
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
