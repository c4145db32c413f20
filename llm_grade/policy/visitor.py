"""The policy's AST walk (trusted side): scopes, import aliases and dotted chains.

:class:`_Visitor` walks a module's top-level statements (learner code is only parsed, never
run), keeping track of which names a scope binds and which local names stand for library
objects (``import torch.nn.functional as F``, ``G = F``, ``from .attention import F``). The
rules applied at each node live in its subclass, :class:`llm_grade.policy.checker._Checker`,
which supplies ``_imports`` (what an import binds) and ``_check`` (the rules for one node).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from llm_grade.components import COMPONENTS
from llm_grade.policy.names import _walk
from llm_grade.policy.rules import (
    _ALWAYS,
    _WHY,
    CURRICULUM,
    REFLECTION,
    Policy,
    PolicyViolation,
    _attr_refusal,
)

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class _Scope:
    """Names a function-like scope binds (class scopes bind nothing that reliably shadows)."""

    is_class: bool
    bound: set[str]
    alias_bound: set[str]  # bound by an import or an alias assignment (`G = F`)
    declared_global: set[str]


def _const_attr(call: ast.AST) -> str | None:
    """The constant, ordinary attribute name of ``getattr(x, "name", ...)``-style calls."""
    if not isinstance(call, ast.Call) or len(call.args) < 2:
        return None
    if any(isinstance(a, ast.Starred) for a in call.args[:2]):
        return None
    name = call.args[1]
    if not isinstance(name, ast.Constant) or not isinstance(name.value, str):
        return None
    return name.value if _attr_refusal(name.value) is None else None


def _own(expr: ast.AST) -> bool:
    """``self``, ``cls`` or ``super()``: a class's own attributes may be private."""
    if isinstance(expr, ast.Name):
        return expr.id in ("self", "cls")
    return (
        isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and (expr.func.id == "super")
    )


_Exports = dict[str, dict[str, set[tuple[str, ...]]]]  # module -> alias name -> dotted paths


class _Visitor:
    """One pass over a module's top-level statements (``__main__`` blocks left out); the
    rules come from the subclass (``_imports``, ``_check``)."""

    def __init__(
        self, body: list[ast.stmt], module: str, file: str, policy: Policy, exports: _Exports
    ):
        self.body, self.module, self.file, self.policy = body, module, file, policy
        self.exports = exports  # other modules' aliases: `from .attention import F`
        self.allowed = policy.modules | _ALWAYS
        self.parents: dict[int, ast.AST] = {}
        for stmt in body:
            for node in ast.walk(stmt):
                for child in ast.iter_child_nodes(node):
                    self.parents[id(child)] = node
        self.found: list[tuple[ast.stmt, PolicyViolation]] = []
        self.stmt: ast.stmt = body[0] if body else ast.Pass()
        self.scopes: list[_Scope] = []
        self.aliases: dict[str, set[tuple[str, ...]]] = {}  # local name -> dotted paths
        self.own_modules: dict[str, str] = {}  # local name -> curriculum module (`import blocks`)
        self.import_hits: dict[int, list[tuple[str, str, str]]] = {}
        self._collect_aliases()

    def run(self) -> list[tuple[ast.stmt, PolicyViolation]]:
        """Check every statement; return (top-level statement, violation) pairs."""
        for stmt in self.body:
            self.stmt = stmt
            try:
                self._visit(stmt)
            except RecursionError:
                self.scopes = []
                self._add(stmt, "nesting", "deeply nested code", _WHY["nesting"])
        return self.found

    # ----------------------------------------------------------------- names and aliases

    def _collect_aliases(self) -> None:
        refused: set[str] = set()
        assigns: list[tuple[list[str], ast.expr]] = []
        for stmt in self.body:
            for node in ast.walk(stmt):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    hits = self.import_hits.setdefault(id(node), [])
                    for local, path, hit in self._imports(node):
                        if hit:
                            hits.append(hit)
                        if local and (hit or path is None):
                            refused.add(local)
                        elif local and path and path[0] in CURRICULUM:
                            if len(path) == 1:
                                self.own_modules[local] = path[0]
                            elif self.exports.get(path[0], {}).get(path[1]):
                                paths = self.exports[path[0]][path[1]]
                                self.aliases.setdefault(local, set()).update(paths)
                        elif local and path and path[0] not in _ALWAYS:
                            self.aliases.setdefault(local, set()).add(path)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if all(isinstance(t, ast.Name) for t in targets):
                        assigns.append(([t.id for t in targets], node.value))
        self.refused_names = refused  # bound by a refused import: their uses add nothing
        for name in refused:
            self.aliases.pop(name, None)
        for _ in range(12 * len(assigns) + 1):  # `G = F`, `H = G`: up to the fixed point
            changed = False
            for names, value in assigns:
                for path, _ in self._paths(*self._chain(value)):
                    if len(path) > 12 or _walk(path, self.allowed)[0]:
                        continue  # a refused right-hand side is reported where it is written
                    for name in names:
                        if path not in self.aliases.setdefault(name, set()):
                            self.aliases[name].add(path)
                            changed = True
            if not changed:
                break

    def _local(self, name: str) -> _Scope | None:
        """The innermost function-like scope that binds ``name`` (None: global or builtin)."""
        for scope in reversed(self.scopes):
            if scope.is_class:
                continue
            if name in scope.declared_global:
                return None
            if name in scope.bound:
                return scope
        return None

    def _is_alias(self, name: str) -> bool:
        if name not in self.aliases:
            return False
        scope = self._local(name)
        return scope is None or name in scope.alias_bound

    def _paths(self, root: ast.AST, parts: list[str]) -> list[tuple[tuple[str, ...], int]]:
        """The dotted paths on real modules that a chain ``root.parts`` stands for, each with
        the offset from a path index to its index in ``parts`` (empty: not from a library)."""
        if not isinstance(root, ast.Name):
            return []
        if self._is_alias(root.id):
            return [(base + tuple(parts), len(base)) for base in sorted(self.aliases[root.id])]
        module = self.own_modules.get(root.id)
        if module is None or not parts or self._local(root.id) is not None:
            return []
        bases = self.exports.get(module, {}).get(parts[0], set())  # `attention.F.x`
        return [(base + tuple(parts[1:]), len(base) - 1) for base in sorted(bases)]

    def _of_refused_import(self, root: ast.AST) -> bool:
        return (
            isinstance(root, ast.Name)
            and root.id in self.refused_names
            and (self._local(root.id) is None)
        )

    def _const_reflection(self, node: ast.AST | None) -> str | None:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            return None
        if node.func.id not in REFLECTION or self._local(node.func.id) is not None:
            return None
        return _const_attr(node)

    def _chain(self, node: ast.AST) -> tuple[ast.AST, list[str]]:
        """The root and attribute names of ``a.b.c`` (``getattr(a, "b")`` counts as ``a.b``)."""
        parts: list[str] = []
        while True:
            attr = self._const_reflection(node)
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif attr is not None:
                parts.append(attr)
                node = node.args[0]
            else:
                parts.reverse()
                return node, parts

    def _extends(self, node: ast.AST) -> bool:
        """Whether ``node`` is the object of a longer chain (``node.x``, ``getattr(node, "x")``)."""
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Attribute):
            return parent.value is node
        return self._const_reflection(parent) is not None and parent.args[0] is node

    def _scope(self, node: ast.AST) -> _Scope:
        bound: set[str] = set()
        alias: set[str] = set()
        declared: set[str] = set()
        if isinstance(node, _COMPS):
            for gen in node.generators:
                bound |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            return _Scope(False, bound, alias, declared)
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        bound |= {a.arg for a in every if a is not None}
        body = node.body if isinstance(node.body, list) else [node.body]
        stack: list[tuple[ast.AST, bool]] = [(n, False) for n in body]
        while stack:
            n, in_comprehension = stack.pop()
            if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
                bound.add(n.target.id)
            if isinstance(n, (*_DEFS, ast.Lambda)):
                if not isinstance(n, ast.Lambda) and not in_comprehension:
                    bound.add(n.name)
                continue
            inner = in_comprehension or isinstance(n, _COMPS)
            stack += [(c, inner) for c in ast.iter_child_nodes(n)]
            if inner:
                continue
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
                bound.add(n.id)
            elif isinstance(n, (ast.Import, ast.ImportFrom)):
                local = {a.asname or a.name.split(".")[0] for a in n.names if a.name != "*"}
                bound |= local
                alias |= local
            elif isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None:
                if self._paths(*self._chain(n.value)):
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    alias |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(n, ast.ExceptHandler) and n.name:
                bound.add(n.name)
            elif isinstance(n, ast.Global):
                declared |= set(n.names)
            elif isinstance(n, ast.Nonlocal):
                bound |= set(n.names)
            elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
                bound.add(n.name)
            elif isinstance(n, ast.MatchMapping) and n.rest:
                bound.add(n.rest)
        return _Scope(False, bound - declared, alias, declared)

    # ----------------------------------------------------------------- traversal

    def _visit(self, node: ast.AST) -> None:
        self._check(node)
        if isinstance(node, _FUNCS):
            args = node.args
            outer: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d)]
            if not isinstance(node, ast.Lambda):
                every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                outer += node.decorator_list + [a.annotation for a in every if a and a.annotation]
                outer += [node.returns] if node.returns else []
            for n in outer:
                self._visit(n)
            self.scopes.append(self._scope(node))
            for n in node.body if isinstance(node.body, list) else [node.body]:
                self._visit(n)
            self.scopes.pop()
        elif isinstance(node, ast.ClassDef):
            for n in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self._visit(n)
            self.scopes.append(_Scope(True, set(), set(), set()))
            for n in node.body:
                self._visit(n)
            self.scopes.pop()
        elif isinstance(node, _COMPS):
            self._visit(node.generators[0].iter)  # evaluated in the enclosing scope
            self.scopes.append(self._scope(node))
            for i, gen in enumerate(node.generators):
                for n in [gen.target, *([gen.iter] if i else []), *gen.ifs]:
                    self._visit(n)
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for n in elts:
                self._visit(n)
            self.scopes.pop()
        else:
            for child in ast.iter_child_nodes(node):
                self._visit(child)

    def _add(self, node: ast.AST, key: str, construct: str, why: str) -> None:
        if self.policy.allows(key):
            return
        stmt = self.stmt
        graded = isinstance(stmt, _DEFS) and COMPONENTS.get(stmt.name) == self.module
        component = stmt.name if graded else None
        line = getattr(node, "lineno", 0)
        self.found.append((stmt, PolicyViolation(self.file, line, construct, key, why, component)))
