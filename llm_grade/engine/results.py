"""Grading results as dataclasses, and their one JSON form (``results.json``).

Data flows one way: graders -> :class:`CheckResult` -> :class:`GradeResult` -> exporters.
Exporters read these objects (or the JSON) and never re-run anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llm_grade.output.text import clean_text, clean_tree

STATUSES = ("passed", "failed", "error", "not_implemented", "forbidden", "skipped")
SCHEMA_VERSION = 1


_TEXT_FIELDS = frozenset(
    {"title", "message", "hint", "counterexample", "traceback", "blocked_by"}
)


@dataclass
class CheckResult:
    """One rubric check of one component (one grader test)."""

    name: str  # the check id, e.g. "causality"
    component: str  # the API name, e.g. "MultiHeadAttention"
    title: str  # the property in plain words
    status: str
    points: float
    max_points: float
    message: str = ""
    hint: str = ""
    counterexample: str = ""
    traceback: str = ""
    hidden: bool = False
    duration_s: float = 0.0
    nodeid: str = ""
    # a small 2-D slice where the output differs: {"expected": [[float]], "got": [[float]],
    # "where": str}; the HTML report draws |got - expected| from it
    diff: dict | None = None
    # the module file ("attention.py") whose import failed, so that this check could not run
    # (the import error is reported once, for every check it stopped)
    blocked_by: str = ""
    # a training check's loss curves (llm_grade/grading/training.py), for the report:
    # {"steps", "lr", "reference": [float], "learner": [float]}
    curves: dict | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        # learner-controlled text (messages, tracebacks, printed values) never reaches a
        # terminal or a file with escapes or control characters in it, however it was set
        if name in _TEXT_FIELDS and value is not None:
            value = clean_text(value)
        elif name in ("diff", "curves") and isinstance(value, dict):
            value = clean_tree(value)
        super().__setattr__(name, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ComponentResult:
    name: str
    module: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.checks), 4)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_points for c in self.checks), 4)

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.checks} - {"skipped"} or {"skipped"}
        for status in ("forbidden", "not_implemented"):
            if statuses == {status}:
                return status
        if "forbidden" in statuses:
            return "forbidden"
        return "passed" if statuses <= {"passed", "skipped"} else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "score": self.score,
            "max_score": self.max_score,
            "status": self.status,
            "tests": [c.to_dict() for c in self.checks],
        }


@dataclass
class GradeResult:
    submission: str
    components: list[ComponentResult]
    duration_s: float
    environment: dict[str, Any]
    isolation: dict[str, Any] = field(default_factory=dict)
    rubric: str = ""
    # pictures of what the learner's code computes on a fixed input (attention weights,
    # positional encodings, LayerNorm statistics), as plain JSON lists (see
    # llm_grade/output/figures.py)
    artifacts: dict = field(default_factory=dict)
    # module file name -> SHA-256 of the bytes that were graded
    sources: dict[str, str] = field(default_factory=dict)
    # what the grader left out of the submission, and why (symbolic links, __init__.py, ...)
    notes: list[str] = field(default_factory=list)
    # a notebook or script submission: {"file": "work.ipynb", "cells": {name: "cell 4"},
    # "not_run": [...], "problems": [...]} (see llm_grade.notebook.extract); {} for a folder
    origin: dict = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        # as in CheckResult: learner-controlled text is cleaned however it is set
        if name == "submission":
            value = clean_text(value)
        elif name in ("notes", "artifacts", "origin"):
            value = clean_tree(value)
        super().__setattr__(name, value)

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.components), 4)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_score for c in self.components), 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "submission": self.submission,
            "score": self.score,
            "max_score": self.max_score,
            "duration_s": round(self.duration_s, 3),
            "environment": self.environment,
            "isolation": self.isolation,
            "rubric": self.rubric,
            "components": [c.to_dict() for c in self.components],
            "artifacts": self.artifacts,
            "sources": self.sources,
            "notes": self.notes,
            "origin": self.origin,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradeResult:
        components = [
            ComponentResult(c["name"], c.get("module", ""), [CheckResult(**t) for t in c["tests"]])
            for c in data["components"]
        ]
        return cls(
            submission=data["submission"],
            components=components,
            duration_s=data.get("duration_s", 0.0),
            environment=data.get("environment", {}),
            isolation=data.get("isolation", {}),
            rubric=data.get("rubric", ""),
            artifacts=data.get("artifacts") or {},
            sources=data.get("sources") or {},
            notes=data.get("notes") or [],
            origin=data.get("origin") or {},
        )
