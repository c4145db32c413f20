"""The submission policy: which Python a submission may use, checked from its source.

Learner code runs in a sandboxed worker, but in its own process a submission that reaches the
interpreter's machinery (``sys``, ``exec``, ``__globals__``, ``torch._C``, a patched
``torch.allclose``) can still tamper with what the graders measure. This module reads each
module's source on the trusted side, as an AST only: learner code never runs here. It reports
what a from-scratch Transformer has no need for, with an explanation that teaches, and builds
the source that the worker imports instead: a refused component becomes a stub that scores 0,
a refused helper or top-level statement is removed, so nothing refused ever runs. Line numbers
are kept, so tracebacks still point at the learner's lines.

Dotted names reached through imports (``F._canonical_mask``, ``typing.sys``) are resolved on
the real modules, importing only modules the policy allows. A source check cannot prove a
program harmless; it is one layer, in front of the sandbox. Here: the rules applied to each
node (:class:`_Checker`) and the entry points (:func:`check_module`, :func:`check_submission`).
The package's other modules, all trusted side: ``rules`` (the tables and their explanations,
:class:`Policy`), ``names`` (walking dotted names on the real modules), ``visitor`` (scopes and
aliases), ``cleaner`` (the source the worker imports). docs/submission-policy.md explains the
rules to learners and instructors.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from llm_grade.components import COMPONENTS
from llm_grade.policy.cleaner import _Cleaner
from llm_grade.policy.names import _format_attrs, _walk
from llm_grade.policy.rules import (
    _ALWAYS,
    _GRADER_PACKAGES,
    _WHY,
    _WHY_GRADER,
    _WHY_IMPORT,
    _WHY_PROCESS,
    ALLOWED_DUNDER_NAMES,
    CLASS_HOOKS,
    CURRICULUM,
    REFLECTION,
    REFUSED_BUILTINS,
    ModuleCheck,
    Policy,
    PolicyViolation,
    _attr_refusal,
    _is_dunder,
    _is_private,
)
from llm_grade.policy.visitor import _DEFS, _const_attr, _Exports, _own, _Visitor


def _is_main_block(stmt: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order), at the top level."""
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = {type(s).__name__: s for s in (test.left, test.comparators[0])}
    name, const = sides.get("Name"), sides.get("Constant")
    return (
        isinstance(name, ast.Name)
        and name.id == "__name__"
        and isinstance(const, ast.Constant)
        and const.value == "__main__"
    )


class _Checker(_Visitor):
    """The policy's rules, applied to each node of a module's top-level statements."""

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for key, construct, why in self.import_hits.get(id(node), []):
                self._add(node, key, construct, why)
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.Attribute):
            self._attribute(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.ClassDef):
            self._class(node)
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
            root, parts = self._chain(node.value)  # `copy.dispatch_table[T] = f`
            if self._paths(root, parts):
                text = ".".join([root.id, *parts]) + "[...]"
                self._add(node, "monkeypatch", text, _WHY["monkeypatch"].format(n=text))

    # ----------------------------------------------------------------- the rules

    def _imports(
        self, node: ast.Import | ast.ImportFrom
    ) -> Iterator[tuple[str | None, tuple[str, ...] | None, tuple[str, str, str] | None]]:
        """(local name, dotted path, refusal) for each name an import binds."""
        if isinstance(node, ast.Import):
            for alias in node.names:
                path = tuple(alias.name.split("."))
                hit = self._import_hit(path, f"import {alias.name}")
                yield alias.asname or path[0], path if alias.asname else path[:1], hit
            return
        names = [a.name for a in node.names]
        text = f"from {'.' * node.level}{node.module or ''} import {', '.join(names)}"
        if "*" in names:
            yield None, None, ("star-import", text, _WHY["star-import"])
        elif node.level:
            wanted = [node.module] if node.module else names
            bad = [n for n in wanted if node.level > 1 or n not in CURRICULUM]
            for name in bad:
                key = "relative-import" if node.level > 1 else name.split(".")[0]
                yield None, None, (key, text, _WHY["relative"])
            for alias in [] if bad else node.names:
                path = (node.module, alias.name) if node.module else (alias.name,)
                yield alias.asname or alias.name, path, None
        elif node.module.split(".")[0] not in self.allowed:
            top = node.module.split(".")[0]
            yield None, None, (top, text, self._import_why(top))
            for alias in node.names:
                yield alias.asname or alias.name, None, None
        else:
            for alias in node.names:
                path = (*node.module.split("."), alias.name)
                hit = self._import_hit(path, f"from {node.module} import {alias.name}")
                yield alias.asname or alias.name, path, hit

    def _import_hit(self, path: tuple[str, ...], text: str) -> tuple[str, str, str] | None:
        if path[0] in _ALWAYS:
            return None
        if path[0] not in self.allowed:
            return path[0], text, self._import_why(path[0])
        hit, _ = _walk(path, self.allowed)
        return None if hit is None else (hit[1], text, hit[2])

    def _import_why(self, top: str) -> str:
        libs = ", ".join(sorted(self.policy.modules - _ALWAYS))
        hint = _WHY_GRADER if top in _GRADER_PACKAGES else _WHY_PROCESS
        return _WHY_IMPORT.format(libs=libs, n=top, hint=hint)

    def _name(self, node: ast.Name) -> None:
        name, parent = node.id, self.parents.get(id(node))
        called = isinstance(parent, ast.Call) and parent.func is node
        if _is_dunder(name):
            if name not in ALLOWED_DUNDER_NAMES:
                self._add(node, name, name, _WHY["dunder-name"].format(n=name))
        elif not isinstance(node.ctx, ast.Load):
            return  # rebinding a builtin's name is harmless; reading it back is checked
        elif name in REFUSED_BUILTINS and self._local(name) is None:
            construct = f"{name}(...)" if called else name
            self._add(node, name, construct, REFUSED_BUILTINS[name].format(n=name))
        elif name in REFLECTION and self._local(name) is None:
            if not (called and _const_attr(parent) is not None):
                self._add(node, name, f"computed {name}(...)", _WHY["reflection"].format(n=name))
        elif name == "type" and called and len(parent.args) == 3 and self._local(name) is None:
            self._add(node, "type", "type(name, bases, dict)", _WHY["type"])
        elif self._is_alias(name) and not self._extends(node):
            self._check_chain(node)

    def _attribute(self, node: ast.Attribute) -> None:
        root, parts = self._chain(node)
        if self._paths(root, parts):
            if not self._extends(node):
                self._check_chain(node)
            return
        if self._of_refused_import(root):
            return
        refusal = _attr_refusal(node.attr)
        if refusal:
            self._add(node, node.attr, f"attribute .{node.attr}", refusal)
        elif _is_private(node.attr) and not _own(node.value):
            why = _WHY["private-attr"].format(n=node.attr)
            self._add(node, node.attr, f"attribute .{node.attr}", why)
        parent = self.parents.get(id(node))
        if node.attr in ("format", "format_map") and isinstance(parent, ast.Call):
            if parent.func is node:
                self._format(node.value, parent)

    def _call(self, node: ast.Call) -> None:
        attr = self._const_reflection(node)
        if attr is None:
            return
        root, parts = self._chain(node)
        if self._paths(root, parts):
            if not self._extends(node):
                self._check_chain(node)
        elif _is_private(attr) and not _own(node.args[0]) and not self._of_refused_import(root):
            construct = f"{node.func.id}(..., {attr!r})"
            self._add(node, attr, construct, _WHY["private-attr"].format(n=attr))

    def _check_chain(self, node: ast.AST) -> None:
        """A whole dotted chain from an imported module: walk it on the real objects."""
        root, parts = self._chain(node)
        name = root.id
        fn = node.func.id if isinstance(node, ast.Call) else None
        reaches_module, refused_but_allowed = False, False
        for path, offset in self._paths(root, parts):
            hit, module = _walk(path, self.allowed)
            if hit:
                index, key, why = hit
                if self.policy.allows(key):
                    refused_but_allowed = True
                    continue
                shown = ".".join([name, *parts[: max(0, index - offset + 1)]])
                self._add(node, key, shown, why)
                return
            reaches_module = reaches_module or module
        text = ".".join([name, *parts])
        if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            shown = f"del {text}" if isinstance(node.ctx, ast.Del) else f"{text} = ..."
            self._add(node, "monkeypatch", shown, _WHY["monkeypatch"].format(n=text))
        elif fn in ("setattr", "delattr"):
            shown = f"{fn}({'.'.join([name, *parts[:-1]])}, {parts[-1]!r}, ...)"
            self._add(node, "monkeypatch", shown, _WHY["monkeypatch"].format(n=text))
        elif reaches_module and not refused_but_allowed and fn in (None, "getattr"):
            if not self._harmless(node):
                self._add(node, "module-value", text, _WHY["module-value"].format(n=text))

    def _harmless(self, node: ast.AST) -> bool:
        """A module used where it does not flow on: an alias, a comparison, a truth test."""
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Assign) and parent.value is node:
            return all(isinstance(t, ast.Name) for t in parent.targets)
        if isinstance(parent, ast.AnnAssign) and parent.value is node:
            return isinstance(parent.target, ast.Name)
        return isinstance(parent, ast.Compare) or self._in_test(node)

    def _in_test(self, node: ast.AST) -> bool:
        parent = self.parents.get(id(node))
        if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            return parent.test is node
        if isinstance(parent, ast.UnaryOp):
            return isinstance(parent.op, ast.Not)
        if isinstance(parent, ast.comprehension):
            return any(node is cond for cond in parent.ifs)
        return isinstance(parent, ast.BoolOp) and self._in_test(parent)

    def _format(self, receiver: ast.AST, call: ast.Call) -> None:
        template = None
        if isinstance(receiver, ast.Name) and receiver.id == "str" and call.args:
            receiver = call.args[0]
        if isinstance(receiver, ast.Constant) and isinstance(receiver.value, str):
            template = receiver.value
        elif isinstance(receiver, ast.JoinedStr):
            if all(isinstance(v, ast.Constant) for v in receiver.values):
                template = "".join(str(v.value) for v in receiver.values)
        if template is None:
            self._add(call, "format", "computed .format(...)", _WHY["format"].format(n=".format"))
            return
        for field, attr in _format_attrs(template):
            if _attr_refusal(attr) or _is_private(attr):
                shown = f"format field {{{field}}}"
                self._add(call, attr, shown, _WHY["format"].format(n=f"{{{field}}}"))

    def _class(self, node: ast.ClassDef) -> None:
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                shown = f"class {node.name}(metaclass=...)"
                self._add(node, "metaclass", shown, _WHY["metaclass"])
        stack = list(node.body)
        while stack:
            n = stack.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if n.name in CLASS_HOOKS:
                    self._add(n, n.name, f"def {n.name}", _WHY["hook"].format(n=n.name))
            elif not isinstance(n, (ast.ClassDef, ast.expr)):
                stack += list(ast.iter_child_nodes(n))


# --------------------------------------------------------------------------- public API


def check_module(
    source: str, module: str, policy: Policy, filename: str | None = None
) -> ModuleCheck:
    """Check one module's source against ``policy`` and build the source the worker imports.

    A source that does not parse is returned unchanged with no violations: importing it fails
    later and is reported as the learner's error. Names this module takes from another of the
    submission's modules (``from .attention import F``) are resolved only by
    :func:`check_submission`, which sees every module.
    """
    return _check_module(source, module, policy, filename, {})


def check_submission(sources: dict[str, str], policy: Policy) -> dict[str, ModuleCheck]:
    """Check every module of a submission (module name -> source)."""
    bodies: dict[str, list[ast.stmt]] = {}
    for module, source in sources.items():
        try:
            bodies[module] = [s for s in ast.parse(source).body if not _is_main_block(s)]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    exports: _Exports = {}
    for _ in range(len(bodies) + 1 if policy.enabled else 0):  # `F` passed along modules
        found = {m: _Checker(b, m, f"{m}.py", policy, exports).aliases for m, b in bodies.items()}
        if found == exports:
            break
        exports = found
    return {m: _check_module(src, m, policy, None, exports) for m, src in sources.items()}


def _check_module(
    source: str, module: str, policy: Policy, filename: str | None, exports: _Exports
) -> ModuleCheck:
    file = Path(filename or f"{module}.py").name
    try:
        tree = ast.parse(source, filename=file)
    except (SyntaxError, ValueError):
        return ModuleCheck(module, [], source, set())
    except (RecursionError, MemoryError):  # too deep to check here: nothing of it may run
        graded = {name for name, m in COMPONENTS.items() if m == module}
        if not policy.enabled or policy.allows("nesting"):
            return ModuleCheck(module, [], source, set())
        blank = re.sub(r"[^\r\n]+", "", source)
        nesting = PolicyViolation(file, 1, "deeply nested code", "nesting", _WHY["nesting"], None)
        return ModuleCheck(module, [nesting], blank, graded)
    body = [s for s in tree.body if not _is_main_block(s)]
    found = _Checker(body, module, file, policy, exports).run() if policy.enabled else []
    refused = {v.component for _, v in found if v.component}
    if any(v.component is None for _, v in found):
        refused |= {name for name, m in COMPONENTS.items() if m == module}
    removed = {id(stmt) for stmt, v in found if v.component is None}
    cleaner = _Cleaner(source)
    for stmt in reversed(tree.body):
        graded = isinstance(stmt, _DEFS) and COMPONENTS.get(stmt.name) == module
        if _is_main_block(stmt):
            cleaner.blank(stmt)
        elif graded and stmt.name in refused:
            cleaner.stub(stmt)
        elif id(stmt) in removed and isinstance(stmt, _DEFS):
            cleaner.stub(stmt)  # a helper keeps its name, so imports of it still work
        elif id(stmt) in removed:
            cleaner.remove(stmt)
    violations = list(dict.fromkeys(sorted((v for _, v in found), key=lambda v: v.line)))
    return ModuleCheck(module, violations, cleaner.text(), refused)
