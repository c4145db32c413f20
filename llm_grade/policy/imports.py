"""Which curriculum modules of a submission import which, read from their source (trusted side).

A static reading (``ast`` only: learner code never runs here), because it serves the moments
when running the code would be wrong or impossible: ``llm-grade watch`` re-grades, after a
save, the changed module and every module that imports it, directly or through another one
(a bug fixed in ``attention.py`` can change how ``blocks.py`` behaves, or whether it imports
at all); and the report can name which modules depend on a module that does not import.

Only imports of the submission's own curriculum modules
(:data:`llm_grade.components.MODULES`) count: relative ones (``from .attention import x``,
``from . import attention``), and absolute sibling ones (``import attention``,
``from attention import x``), wherever they are in the file (a function body too: the import
runs when the function does). A file that does not parse imports nothing we can know of.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from llm_grade.components import MODULES


def _imported(tree: ast.AST) -> Iterable[str]:
    """The top-level module names ``tree`` imports as siblings (level 0 or 1)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level <= 1:
            if node.module:  # from .attention import x / from attention import x
                yield node.module.partition(".")[0]
            elif node.level == 1:  # from . import attention, blocks
                yield from (alias.name for alias in node.names)


def module_imports(sources: dict[str, str]) -> dict[str, set[str]]:
    """For each module name in ``sources`` (name -> source text), the other curriculum
    modules it imports. Never raises for a file that does not parse: the learner may be
    in the middle of typing, and the grader reports that file's own error."""
    known = set(MODULES)
    graph: dict[str, set[str]] = {}
    for name, source in sources.items():
        try:
            tree = ast.parse(source, filename=f"{name}.py")
        except (SyntaxError, ValueError):  # ValueError: a NUL byte in the source
            graph[name] = set()
            continue
        graph[name] = {m for m in _imported(tree) if m in known and m != name}
    return graph


def dependents(graph: dict[str, set[str]], changed: set[str]) -> set[str]:
    """``changed`` and every module that imports one of them, directly or transitively
    (``graph`` as :func:`module_imports` returns it; an import cycle is walked once)."""
    importers: dict[str, set[str]] = {}
    for module, imported in graph.items():
        for name in imported:
            importers.setdefault(name, set()).add(module)
    found = set(changed)
    todo = list(changed)
    while todo:
        for module in importers.get(todo.pop(), ()):
            if module not in found:
                found.add(module)
                todo.append(module)
    return found
