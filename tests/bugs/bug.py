"""The record type of the bug catalogue (see README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bug:
    id: str  # short kebab-case name, e.g. "mask-after-softmax"
    module: str  # reference module to edit, e.g. "attention"
    find: str  # exact text of the reference, must occur exactly once
    replace: str  # the buggy text
    component: str  # the component that must lose points
    hint: str  # case-insensitive substring of the hint (or message) the learner sees
    also: tuple[str, ...] = field(default_factory=tuple)  # other components allowed to lose
