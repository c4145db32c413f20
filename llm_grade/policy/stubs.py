"""Which components a submission has not started: their definition is still the stub's.

A component whose function or class is, statement for statement, the bundled stub's
(docstrings, comments and blank lines aside) can only raise ``NotImplementedError``. The run
reports such a component as *not implemented yet* whatever else happens to it: when a module
it imports does not import, or its own file has a syntax error elsewhere, the learner still
reads "not implemented yet", not a crash they did not write (see
:meth:`llm_grade.engine.session.GradingSession.assemble`). It never raises a score: only
checks that did not pass are relabelled, and they score 0 either way.

Trusted side, static: reads the source text with :mod:`ast`; nothing is executed.
"""

from __future__ import annotations

import ast
import functools
import re

from llm_grade.components import COMPONENTS

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# first characters of a line that does not start a top-level statement
_NOT_A_STATEMENT = ("", " ", "\t", "#", ")", "]", "}")
_TOP_DEF = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)")


def _strip_docstrings(node: ast.AST) -> ast.AST:
    for child in ast.walk(node):
        body = getattr(child, "body", None)
        if (
            isinstance(child, (*_DEFS, ast.Module))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            child.body = body[1:] or [ast.Pass()]
    return node


def _shape(node: ast.AST) -> str:
    return ast.dump(_strip_docstrings(node), annotate_fields=False, include_attributes=False)


def _bound_elsewhere(tree: ast.Module) -> set[str]:
    """Names a module binds at the top level other than by a def or class (``softmax =
    mine``, an import, a def inside an ``if``): such a name may not be the stub's
    definition at run time."""
    names: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _DEFS):
                if not top:
                    names.add(child.name)
                continue  # what a body binds is local to it
            if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                names.add(child.id)
            elif isinstance(child, ast.alias):
                names.add((child.asname or child.name).split(".")[0])
            elif isinstance(child, (ast.Global, ast.Nonlocal)):
                names.update(child.names)
            visit(child, False)

    visit(tree, True)
    return names


def _definitions(source: str) -> dict[str, list[str]]:
    """Top-level name -> the shapes of its definitions (several when it is defined again)."""
    found: dict[str, list[str]] = {}
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _definitions_of_chunks(source)
    for node in tree.body:
        if isinstance(node, _DEFS):
            found.setdefault(node.name, []).append(_shape(node))
    for name in _bound_elsewhere(tree):
        found.setdefault(name, []).append("")  # bound some other way: never the stub's
    return found


def _definitions_of_chunks(source: str) -> dict[str, list[str]]:
    """For a file that does not parse: each top-level def or class (with its decorators)
    parsed on its own, so the definitions before and after a syntax error still count."""
    found: dict[str, list[str]] = {}
    lines = source.splitlines()
    starts = [i for i, line in enumerate(lines) if line[:1] not in _NOT_A_STATEMENT]
    starts.append(len(lines))
    for k in range(len(starts) - 1):
        match = _TOP_DEF.match(lines[starts[k]])
        if not match:
            continue
        first = k
        while first > 0 and lines[starts[first - 1]].startswith("@"):
            first -= 1
        chunk = "\n".join(lines[starts[first] : starts[k + 1]])
        try:
            tree = ast.parse(chunk)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            found.setdefault(match.group(1), []).append("")  # the broken one: not the stub
            continue
        for node in tree.body:
            if isinstance(node, _DEFS):
                found.setdefault(node.name, []).append(_shape(node))
    return found


@functools.cache
def _stub_shapes(module: str) -> dict[str, str]:
    from llm_grade.paths import bundled

    path = bundled("stubs") / f"{module}.py"
    if not path.is_file():
        return {}
    defined = _definitions(path.read_text(encoding="utf-8"))
    return {name: shapes[0] for name, shapes in defined.items() if len(shapes) == 1}


def untouched(sources: dict[str, str]) -> set[str]:
    """The components of ``sources`` (module name -> text) whose one definition is the
    stub's."""
    out: set[str] = set()
    for module, text in sources.items():
        stubs = _stub_shapes(module)
        if not stubs:
            continue
        defined = _definitions(text)
        for component, home in COMPONENTS.items():
            if home != module or component not in stubs:
                continue
            if defined.get(component) == [stubs[component]]:
                out.add(component)
    return out
