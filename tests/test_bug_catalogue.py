"""Every single-bug variant in tests/bugs/ is caught by the intended component, with the
intended hint, and costs no other component anything (credit isolation)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
from lg_paths import REFERENCE

from llm_grade.components import COMPONENTS, exactly, parts_of
from llm_grade.engine.run import grade

BUGS_DIR = Path(__file__).resolve().parent / "bugs"


def _load_bugs():
    sys.path.insert(0, str(BUGS_DIR))  # the catalogue files import `bug`
    try:
        bugs = []
        for path in sorted(BUGS_DIR.glob("*.py")):
            if path.stem == "bug":
                continue
            spec = importlib.util.spec_from_file_location(f"_bugs_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            bugs += module.BUGS
        return bugs
    finally:
        sys.path.remove(str(BUGS_DIR))


BUGS = _load_bugs()


def _components_of(module: str) -> str:
    """-k for exactly the components of ``module`` (``Encoder`` alone also selects
    ``EncoderLayer``: -k matches substrings)."""
    return exactly(name for name, mod in COMPONENTS.items() if mod == module)


def can_run(bug) -> set[str]:
    """The components whose checks can execute the code ``bug`` edits: the definition the
    edit is in, if it is a graded name, and every component of the module whose own
    definition reaches it through the module's helpers, unless it is one of that
    component's parts (then a trusted oracle stands in for it while the component is
    graded). An edit outside every definition reaches the whole module."""
    source = (REFERENCE / f"{bug.module}.py").read_text()
    line = source[: source.index(bug.find)].count("\n") + 1
    tree = ast.parse(source)
    defs = {
        node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    }
    own = [name for name, module in COMPONENTS.items() if module == bug.module]
    edited = next(
        (
            name
            for name, node in defs.items()
            if min([node.lineno, *(d.lineno for d in node.decorator_list)])
            <= line
            <= node.end_lineno
        ),
        None,
    )
    if edited is None:
        return set(own)

    def reaches(name: str, seen: set[str]) -> bool:
        """Whether the definition ``name`` uses ``edited``, itself or through helpers."""
        uses = {n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)}
        if edited in uses:
            return True
        helpers = {u for u in uses if u in defs and u not in COMPONENTS and u not in seen}
        return any(reaches(h, seen | {h}) for h in helpers)

    found = {edited} & set(own)
    found |= {c for c in own if edited not in parts_of(c) and reaches(c, {c})}
    return found | set(bug.also)


def _first_of_each_module() -> set[str]:
    first: dict[str, str] = {}
    for bug in BUGS:
        first.setdefault(bug.module, bug.id)
    return set(first.values())


QUICK = _first_of_each_module()  # the contributor's loop (-m "not slow"); the suite runs all


def test_can_run_finds_every_component_that_executes_the_edited_code():
    """The selection each catalogued bug is graded with (can_run) is read from the
    reference's source: a helper reaches every component that calls it, an edit outside the
    definitions reaches the whole module, a part a component is built from does not reach
    it (an oracle stands in), and a decorator belongs to the definition it decorates."""
    sys.path.insert(0, str(BUGS_DIR))
    try:
        from bug import Bug
    finally:
        sys.path.remove(str(BUGS_DIR))

    def edit(module: str, find: str, component: str = "") -> set[str]:
        return can_run(Bug("x", module, find, find, component, ""))

    # _check_positive is called by Encoder, Decoder and GPT (not by Transformer itself)
    assert edit("transformer", "def _check_positive(") == {"Encoder", "Decoder", "GPT"}
    assert edit("environment", '_KNOWN_DEVICES = ("cpu"') == {
        "get_device",
        "count_parameters",
    }
    # softmax is a part of MultiHeadAttention: a bug in it is graded on softmax alone
    assert edit("attention", "def softmax(") == {"softmax"}
    assert all(bug.component in can_run(bug) for bug in BUGS)


def test_the_catalogue_is_large_and_unique():
    assert len(BUGS) >= 40
    assert len({b.id for b in BUGS}) == len(BUGS)


@pytest.mark.parametrize(
    "bug",
    [pytest.param(b, marks=() if b.id in QUICK else pytest.mark.slow) for b in BUGS],
    ids=[b.id for b in BUGS],
)
def test_bug_is_caught_by_the_right_component_with_the_right_hint(bug, reference_copy):
    path = reference_copy / f"{bug.module}.py"
    source = path.read_text()
    assert source.count(bug.find) == 1, f"{bug.id}: the text to replace must occur exactly once"
    path.write_text(source.replace(bug.find, bug.replace))

    # Only the components that can run the edited code are graded (can_run): while one
    # component is graded, every other graded name the learner's code refers to is a trusted
    # oracle, so no other component executes it (test_credit_isolation_holds_across_modules
    # checks that claim on full gradings, test_can_run that the selection covers the bug).
    chosen = can_run(bug)
    assert bug.component in chosen, f"{bug.id}: {bug.component} cannot run the edited code"
    result = grade(reference_copy, quiet=True, select=exactly(chosen))

    losing = {c.name for c in result.components if c.score < c.max_score}
    assert bug.component in losing, f"{bug.id}: {bug.component} kept all its points"
    assert losing <= {bug.component, *bug.also}, f"{bug.id}: other components lost points"
    (component,) = [c for c in result.components if c.name == bug.component]
    shown = " ".join(f"{c.message} {c.hint}" for c in component.checks if c.status != "passed")
    assert bug.hint.lower() in shown.lower(), f"{bug.id}: expected hint {bug.hint!r}\n{shown}"


@pytest.mark.slow
@pytest.mark.parametrize("bug_id", ["mha-mask-after-softmax", "layernorm-unbiased-variance"])
def test_credit_isolation_holds_across_modules(bug_id, reference_copy):
    """A full grading: a bug in one module costs no component of any other module."""
    (bug,) = [b for b in BUGS if b.id == bug_id]
    path = reference_copy / f"{bug.module}.py"
    path.write_text(path.read_text().replace(bug.find, bug.replace))
    result = grade(reference_copy, quiet=True)
    losing = {c.name for c in result.components if c.score < c.max_score}
    assert losing == {bug.component}


def test_a_mask_value_that_overflows_float16_is_caught_end_to_end(reference_copy):
    """-1e9 as the mask value is right in float32 and float64 (attention keeps all its points)
    but breaks the model under autocast(float16): GPT's end-to-end mixed-precision check
    catches it, with the hint for it."""
    path = reference_copy / "attention.py"
    source = path.read_text()
    assert source.count('float("-inf")') == 2
    path.write_text(source.replace('masked_fill(~mask, float("-inf"))', "masked_fill(~mask, -1e9)"))
    result = grade(
        reference_copy,
        quiet=True,
        select="scaled_dot_product_attention or MultiHeadAttention or GPT",
    )
    losing = {
        (c.component, c.name)
        for comp in result.components
        for c in comp.checks
        if c.points < c.max_points
    }
    assert losing == {("GPT", "mixed_precision")}
    (check,) = [c for comp in result.components for c in comp.checks if c.name == "mixed_precision"]
    assert "float('-inf')" in check.hint and "float16" in check.hint


@pytest.mark.parametrize(
    "bug_id",
    [
        pytest.param("causal-mask-strict", marks=pytest.mark.slow),
        "softmax-no-max-subtraction",
        pytest.param("layernorm-unbiased-variance", marks=pytest.mark.slow),
    ],
)
def test_the_end_to_end_check_costs_nothing_for_a_bug_elsewhere(bug_id, reference_copy):
    """GPT.mixed_precision runs the learner's whole model, yet a bug in one component (NaN
    rows, a float32-consistent error) costs only that component: the check compares the model
    with itself and is vacuous where the model does not run in float32."""
    (bug,) = [b for b in BUGS if b.id == bug_id]
    path = reference_copy / f"{bug.module}.py"
    path.write_text(path.read_text().replace(bug.find, bug.replace))
    result = grade(reference_copy, quiet=True, select=f"{_components_of(bug.module)} or GPT")
    losing = {c.name for c in result.components if c.score < c.max_score}
    assert losing == {bug.component}
    # and it says why it did not count: it depends on a component that fails its own checks
    (check,) = [c for comp in result.components for c in comp.checks if c.name == "mixed_precision"]
    assert check.status == "skipped" and f"depends on {bug.component}" in check.message
