"""Structure checks that hold under isolation: every parameter its own tensor, every layer its
own module, graded sub-modules built from the learner's own classes with the composite's
arguments (:func:`expect_own_structure`).

Trusted side: helpers of the graders. They reach learner code only through the submission
handle ``sub``.
"""

from __future__ import annotations

from typing import Any

import torch

from llm_grade.grading.behaviour import started
from llm_grade.grading.outcomes import CheckFailure
from llm_grade.grading.pairs import _reference_module, randomize_

SHARED_LAYERS_HINT = (
    "Build a new layer for each position in the stack: nn.ModuleList(Layer(...) for _ in "
    "range(n_layers)). [Layer(...)] * n_layers repeats one layer, so all share one set of "
    "weights."
)
SHARED_MODULE_HINT = (
    "Create every sub-module API.md lists with its own constructor call (self.b = AddNorm(...), "
    "not self.b = self.a): sub-layers that share one module share their weights."
)
TIED_HINT = (
    "Don't tie weights: API.md lists these as separate parameters (e.g. lm_head is its own "
    "nn.Linear; `lm_head.weight = tok_embed.embedding.weight` makes them one tied tensor)."
)
PARAMETER_HINT = (
    "Weights that train are nn.Parameter objects, created by nn.Linear / nn.Embedding or "
    "nn.Parameter(...); register_buffer is for fixed tables only: a buffer never trains."
)
OWN_CLASS_HINT = (
    "Build graded sub-modules from your own classes (the ones API.md names, e.g. your "
    "LayerNorm from normalization.py), not from torch.nn's versions of them."
)
ARGS_HINT = (
    "Pass the composite's own arguments on to the sub-modules it builds (d_model, n_heads, "
    "d_ff, dropout, eps ...), as API.md lists them."
)


def _plain_tree(tree: Any) -> tuple[list, list] | None:
    """The worker's structure report, if it has exactly the plain shape it should."""
    if not isinstance(tree, dict):
        return None
    modules, params = tree.get("modules"), tree.get("parameters")
    if not (isinstance(modules, list) and isinstance(params, list)):
        return None
    for row in modules:
        if not (
            isinstance(row, list)
            and len(row) == 5
            and all(type(v) is str for v in row[:3])
            and type(row[3]) is int
            and isinstance(row[4], list)
        ):
            return None
    for row in params:
        if not (isinstance(row, list) and len(row) == 3 and type(row[0]) is str):
            return None
        if not (type(row[1]) is int and type(row[2]) is int):
            return None
    return modules, params


def _top_level(paths: list[str]) -> list[str]:
    """``paths`` without those inside another one of them (``blocks.1`` hides ``blocks.1.attn``)."""
    return [p for p in paths if not any(p.startswith(q + ".") for q in paths if q != p)]


def expect_own_structure(
    sub,
    ref_pkg,
    component: str,
    kwargs: dict[str, Any],
    *,
    children: dict[str, tuple[str, dict[str, Any]]],
    case: str,
    probe: tuple,
    seed: int = 0,
) -> None:
    """The learner's module tree, as built (no oracle injected in its place), is the one API.md
    describes: every parameter its own tensor, every layer its own module, graded sub-modules
    built from the learner's own classes with the composite's arguments, as many parameters as
    the reference.

    The evidence of sharing is tensor data: load random weights (every tensor its own values)
    and read them back; a shared tensor holds the values loaded last. The rest comes from the
    worker's plain description of the tree, checked for shape before it is read (it names what
    is shared, and tells torch.nn's classes from the learner's). ``probe`` are arguments of
    one forward call, made first: a module whose forward is still a stub is "not implemented
    yet", however complete its ``__init__`` is.
    """
    reference = _reference_module(ref_pkg, component, torch.float64, kwargs)
    randomize_(reference, seed)
    loaded = reference.state_dict()
    student = sub.build_loaded(
        component, kwargs, dtype=torch.float64, train=False, state_dict=loaded
    )
    started(lambda: sub.call(student, *probe))  # a stub's forward: "not implemented yet"
    back = sub.state_dict(student)
    plain = _plain_tree(sub.structure(student))
    if not isinstance(back, dict):
        raise CheckFailure(f"{component}.state_dict() did not return a dict.", counterexample=case)
    modules, params = plain if plain is not None else ([], [])
    names = [name for name, _, _ in params]

    def weighty(path: str) -> bool:  # a shared nn.Dropout or activation is harmless
        return path in children or any(n.startswith(path + ".") for n in names)

    groups: dict[int, list[str]] = {}
    for path, _, _, group, _ in modules:
        groups.setdefault(group, []).append(path)
    shared = [paths for paths in groups.values() if len(paths) > 1 and weighty(paths[0])]
    top = _top_level([p for paths in shared for p in paths])
    shared = [[p for p in paths if p in top] for paths in shared]
    shared = [paths for paths in shared if len(paths) > 1]
    for key, value in loaded.items():
        got = back.get(key)
        if type(got) is not torch.Tensor or got.shape != value.shape:
            raise CheckFailure(
                f"state_dict()[{key!r}] is missing after loading the reference's weights.",
                counterexample=case,
                hint=SHARED_MODULE_HINT,
            )
        if torch.equal(got.to(value.dtype), value):
            continue
        twin = next(
            (
                k
                for k, v in loaded.items()
                if k != key and v.shape == value.shape and torch.equal(got.to(v.dtype), v)
            ),
            None,
        )
        _shared_failure(component, key, twin, shared, case)
    if plain is None:
        raise CheckFailure(
            f"{component}'s module tree could not be read (named_modules / named_parameters "
            "returned something unexpected).",
            counterexample=case,
            hint="Don't override named_modules, named_parameters or __getattr__ of nn.Module.",
        )
    if shared:
        _shared_failure(component, None, None, shared, case)
    ref_params = dict(reference.named_parameters())
    missing = [name for name in ref_params if name not in set(names)]
    if missing:
        raise CheckFailure(
            f"{component}: {', '.join(f'`{n}`' for n in missing[:3])} "
            f"{'is' if len(missing) == 1 else 'are'} in the state_dict but not a parameter "
            "(a buffer or a plain tensor): it would never train.",
            counterexample=case,
            hint=PARAMETER_HINT,
        )
    count = sum({group: numel for _, numel, group in params}.values())
    expected = sum(p.numel() for p in reference.parameters())
    if count != expected:
        raise CheckFailure(
            f"{component} has {count} parameters, the reference {expected}.",
            counterexample=case,
            hint=TIED_HINT,
        )
    by_path = {row[0]: row for row in modules}
    for path, (child, child_kwargs) in children.items():
        row = by_path.get(path)
        if row is None:
            raise CheckFailure(
                f"{component} has no sub-module `{path}`.", counterexample=case, hint=OWN_CLASS_HINT
            )
        _, name, origin, _, args = row
        if origin not in ("oracle", "submission") or name != child:
            where = {"torch": "torch.nn's", "other": "another library's"}.get(origin, "your")
            shown = f"{name} (nn.{name})" if origin == "torch" else name
            raise CheckFailure(
                f"{component}.{path} is {where} {shown}, expected your {child} (API.md).",
                counterexample=case,
                hint=OWN_CLASS_HINT,
            )
        built = dict(a for a in args if isinstance(a, list) and len(a) == 2)
        if origin == "oracle":
            for arg, value in child_kwargs.items():
                if arg in built and built[arg] != value:
                    raise CheckFailure(
                        f"{component}.{path} was built with {arg}={built[arg]!r}, expected "
                        f"{arg}={value!r} (from {component}'s own arguments).",
                        counterexample=case,
                        hint=ARGS_HINT,
                    )


def _shared_failure(component: str, key, twin, shared: list[list[str]], case: str) -> None:
    """Say what is shared: two layers of a stack, two sub-modules, or two parameters."""
    both = [k for k in (key, twin) if k]
    paths = next(
        (ps for ps in shared if any(k.startswith(p + ".") for p in ps for k in both)),
        shared[0] if shared and not both else None,
    )
    if paths:
        a, b = paths[:2]
        layers = _layer_pair(a + ".x", b + ".x")
        what = (
            f"`{a}` and `{b}` are one and the same module"
            + (" (one layer repeated in the stack)" if layers else "")
            + ": after loading the reference's weights (every tensor its own random values) "
            "both hold the values loaded last."
        )
        hint = SHARED_LAYERS_HINT if layers else SHARED_MODULE_HINT
    else:
        what = (
            f"`{key}` and `{twin}` are one shared tensor: after loading the reference's "
            f"weights (every tensor its own random values) `{key}` holds the values loaded "
            f"into `{twin}`."
            if twin
            else f"`{key}` is shared: after loading the reference's weights it holds other values."
        )
        hint = TIED_HINT
    raise CheckFailure(f"{component}: {what}", counterexample=case, hint=hint)


def _layer_pair(a: str | None, b: str | None) -> bool:
    """``layers.0.x`` and ``layers.1.x``: the same parameter of two layers of one stack."""
    if not (a and b):
        return False
    pa, pb = a.split("."), b.split(".")
    return (
        len(pa) == len(pb) > 2
        and pa[0] == pb[0]
        and pa[1] != pb[1]
        and pa[1].isdigit()
        and pb[1].isdigit()
        and pa[2:] == pb[2:]
    )
