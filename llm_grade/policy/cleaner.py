"""The cleaned source (trusted side): what the worker imports instead of the learner's file.

:class:`_Cleaner` edits a source line by line: a refused component becomes a stub that scores
0, a refused helper keeps its name as a stub, a refused top-level statement and every
``__main__`` block are blanked. Every line keeps its number and its line ending, so tracebacks
still point at the learner's lines. Text edits only: nothing here runs learner code.
"""

from __future__ import annotations

import ast
import re

from llm_grade.policy.visitor import _DEFS

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


def _start(stmt: ast.stmt) -> int:
    return min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])


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
