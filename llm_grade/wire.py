"""What may cross the boundary between learner code and the grader: plain data only.

:func:`sanitize` runs on the learner's side of the boundary and maps any value to plain data:
exact ``torch.Tensor`` objects (detached copies), numbers, strings, ``None``, devices, dtypes,
lists, tuples and string-keyed dicts of those, and object references. Anything else becomes an
:class:`Opaque` record that names its type, so a grader can say "returned a numpy.ndarray"
instead of ever holding a learner-made object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

MAX_DEPTH = 8
MAX_ITEMS = 10_000


@dataclass(frozen=True)
class Opaque:
    """Stands for a value that is not plain data (kept: its type name only)."""

    type_name: str

    def __str__(self) -> str:
        return f"a {self.type_name}"


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    if isinstance(value, torch.Tensor) and cls is not torch.Tensor:
        return f"{module}.{cls.__qualname__} (a torch.Tensor subclass)"
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def sanitize(value: Any, depth: int = 0) -> Any:
    """Plain-data copy of ``value`` (see the module docstring)."""
    if depth > MAX_DEPTH:
        return Opaque("structure nested too deeply")
    cls = type(value)
    if cls is torch.Tensor:
        # a plain tensor: copy its data so later learner code cannot change what we hold
        return value.detach().clone()
    if value is None or cls in (bool, int, float, str):
        return value
    if cls is torch.device:
        return torch.device(str(value))
    if cls is torch.dtype:
        return value
    if cls in (list, tuple):
        if len(value) > MAX_ITEMS:
            return Opaque(f"{cls.__name__} of {len(value)} items")
        return cls(sanitize(v, depth + 1) for v in value)
    if isinstance(value, dict):  # dict, OrderedDict (state_dict), executor Ref -> plain dict
        if len(value) > MAX_ITEMS or not all(type(k) is str for k in value):
            return Opaque("dict with non-string keys")
        out = {k: sanitize(v, depth + 1) for k, v in value.items()}
        return out
    return Opaque(type_name(value))
