"""Error records of the executor: what a failure in learner code becomes on the wire.

Learner side (imported by :mod:`llm_grade.sandbox.executor` inside the worker): the exceptions
the executor raises internally (a forbidden call, an import that failed, a state_dict that does
not fit), :func:`error_record` (any exception -> a plain error record) and
:func:`learner_traceback`, which trims a traceback to the frames in the submission's files.
Imports nothing from the trusted side.
"""

from __future__ import annotations

import linecache
import traceback
from pathlib import Path

from llm_grade.sandbox.forbidden import Violation


class _Forbidden(Exception):
    def __init__(self, violation: Violation):
        super().__init__(f"{violation.api} is forbidden in {violation.component}")
        self.violation = violation


class _StateDictMismatch(Exception):
    def __init__(self, record: dict):
        super().__init__("state_dict keys or shapes differ")
        self.record = record


class _ImportFailed(Exception):
    def __init__(self, record: dict):
        super().__init__(record.get("message", "import failed"))
        self.record = record


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


def culprit(exc: BaseException, root: Path) -> str | None:
    """The submission module (file stem) an import error comes from: the file of a syntax
    error, else the deepest frame in the submission (``blocks.py`` importing a broken
    ``attention.py`` fails in attention.py)."""
    root_s = str(root)
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename.startswith(root_s):
        return Path(exc.filename).stem
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root_s)]
    return Path(frames[-1].filename).stem if frames else None


def error_record(exc: BaseException, component: str, call: str, root: Path) -> dict:
    """The plain error record for ``exc``, raised by ``call`` into ``component``'s code."""
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
        "traceback": learner_traceback(exc, root),
    }
