"""The forbidden-API rule's static scan (trusted side): forbidden calls found in the source.

Reads each module of a submission as an AST (learner code never runs here) and finds the
direct uses of a component's forbidden APIs, in its own code or in the helpers it uses,
resolving import aliases (``import torch.nn.functional as F``, ``sm = F.softmax``) and the
APIs' twins. The tables and the runtime guard that catches what a scan cannot see live on the
learner side, in :mod:`llm_grade.sandbox.forbidden`.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llm_grade.components import COMPONENTS
from llm_grade.sandbox.forbidden import Violation, expand, matches


def _imports(tree: ast.Module) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(local name -> dotted library path, local name -> (curriculum module, name)) from the
    module's imports (relative imports of the other curriculum modules in the second)."""
    names: dict[str, str] = {}
    local: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                local[alias.asname or alias.name] = (node.module, alias.name)
    # module-level aliases of library names: `sm = F.softmax`, `G = F` (until nothing changes)
    for _ in range(4):
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id not in names:
                    dotted = _dotted(node.value, names)
                    if dotted:
                        names[target.id] = dotted
    return names, local


def _dotted(node: ast.AST, aliases: Mapping[str, str]) -> str | None:
    """Resolve ``F.softmax`` (or ``getattr(F, "softmax")``) to ``torch.nn.functional.softmax``
    (None if not from an import)."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            parts.append(node.args[1].value)
            node = node.args[0]
        else:
            break
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *reversed(parts)])
    return None


def _canonical(name: str) -> str:
    # torch.nn classes also live under torch.nn.modules.*; use the names API.md uses
    for alt, canon in (
        ("torch.nn.modules.activation.", "torch.nn."),
        ("torch.nn.modules.normalization.", "torch.nn."),
        ("torch.nn.modules.transformer.", "torch.nn."),
        ("torch.nn.modules.batchnorm.", "torch.nn."),
        ("torch.nn.modules.instancenorm.", "torch.nn."),
        ("torch._C._nn.", "torch.nn.functional."),
        ("torch._C._VariableFunctions.", "torch."),
        ("torch.functional.", "torch."),
    ):
        if name.startswith(alt):
            return canon + name[len(alt) :]
    return name


@dataclass
class _Definition:
    """A top-level function or class of a submission module: what it uses."""

    module: str
    name: str
    file: str
    apis: list[tuple[str, int]]  # dotted library names it refers to, with their lines
    methods: list[tuple[str, int]]  # attribute names on unknown objects (x.softmax)
    refs: set[tuple[str, str]]  # other top-level definitions it refers to


def _definitions(module: str, source: str, filename: str) -> dict[str, _Definition]:
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError:
        return {}  # the import fails anyway and is reported as an error
    aliases, local = _imports(tree)
    top = {
        n.name
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
    }
    found: dict[str, _Definition] = {}
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            continue
        d = _Definition(module, node.name, Path(filename).name, [], [], set())
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Attribute, ast.Name, ast.Call)):
                dotted = _dotted(sub, aliases)
                if dotted:
                    d.apis.append((_canonical(dotted), sub.lineno))
                elif isinstance(sub, ast.Attribute):
                    d.methods.append((sub.attr, sub.lineno))
            if isinstance(sub, ast.Name) and sub.id != node.name:
                if sub.id in top:
                    d.refs.add((module, sub.id))
                elif sub.id in local:
                    d.refs.add(local[sub.id])
        found[node.name] = d
    return found


def scan_sources(
    sources: Mapping[str, str], forbidden: Mapping[str, list[str]], root: Path | None = None
) -> list[Violation]:
    """Forbidden uses by each graded component, in its own code or in the helpers it uses
    (functions and classes of the submission that are not graded names, followed through
    the modules), under any of the forbidden APIs' names (see :func:`expand`)."""
    defs: dict[tuple[str, str], _Definition] = {}
    for module, source in sources.items():
        filename = str((root or Path(".")) / f"{module}.py")
        for name, d in _definitions(module, source, filename).items():
            defs[(module, name)] = d
    found: list[Violation] = []
    for (module, name), definition in defs.items():
        if COMPONENTS.get(name) != module or not forbidden.get(name):
            continue
        patterns = expand(forbidden[name])
        tensor_methods = {p.rsplit(".", 1)[1] for p in patterns if p.startswith("torch.Tensor.")}
        seen, todo = {(module, name)}, [definition]
        while todo:
            d = todo.pop()
            for api, line in d.apis:
                if matches(api, patterns):
                    found.append(Violation(name, api, d.file, line, "static"))
            for attr, line in d.methods:
                if attr in tensor_methods:  # x.softmax(...) on some tensor
                    found.append(Violation(name, f"torch.Tensor.{attr}", d.file, line, "static"))
            for ref in d.refs:  # helpers only: another graded name is graded on its own
                if ref in defs and ref not in seen and COMPONENTS.get(ref[1]) != ref[0]:
                    seen.add(ref)
                    todo.append(defs[ref])
    # one report per (component, api, line): ``F.softmax`` is both a Name and an Attribute
    return sorted(set(found), key=lambda v: (v.component, v.file, v.line, v.api))


def scan_source(
    source: str, module: str, filename: str, forbidden: Mapping[str, list[str]]
) -> list[Violation]:
    """Forbidden uses inside the graded components that one module's source defines."""
    return scan_sources({module: source}, forbidden, Path(filename).parent)


def scan_submission(root: Path, forbidden: Mapping[str, list[str]]) -> list[Violation]:
    """Scan every module file of a submission folder."""
    sources = {}
    for module in dict.fromkeys(COMPONENTS.values()):
        path = root / f"{module}.py"
        if path.is_file():
            sources[module] = path.read_text(encoding="utf-8", errors="replace")
    return scan_sources(sources, forbidden, root)
