"""What one failure says about another, decided once every check of a run is known.

Checks run in two groups (two workers, perhaps two processes), so no check can look at
another while it runs. After the run, in the grading process:

- **end-to-end checks** that run the learner's whole model (``GPT.mixed_precision``) count
  only when every component they cover passes its own checks; otherwise they are
  "skipped: depends on X" and cost nothing (a bug costs its own component, once);
- a **secondary check** (causality, padding, dropout, ...) that fails while the component's
  equivalence check (``matches_reference``) fails too is probably the same bug: it keeps its
  message and its score, but its hint says so instead of suggesting a second, unrelated fix;
  likewise a check that crashed with the very error an earlier check already showed.
"""

from __future__ import annotations

from llm_grade.components import parts_of
from llm_grade.engine.results import CheckResult, ComponentResult

# (component, check) -> the components whose own checks must all pass for it to count
END_TO_END: dict[tuple[str, str], tuple[str, ...]] = {
    ("GPT", "mixed_precision"): parts_of("GPT"),
}

# the check that compares a component with the reference (or its closed form) as a whole
EQUIVALENCE = (
    "matches_reference",
    "matches_closed_form",
    "matches_exact_formula",
    "lower_triangular",
    "marks_real_tokens",
    "follows_the_model",
)

# checks about something the equivalence check never looks at: their failures are their own
INDEPENDENT = (
    "rejects_",
    "structure",
    "independent_layers",
    "keeps_",
    "device_",
    "honours_",
    "counts_",
    "picks_",
)


def _lost(component: ComponentResult) -> bool:
    return any(c.points < c.max_points for c in component.checks)


def settle(components: list[ComponentResult]) -> None:
    """Apply the rules above to the results of one run (in place)."""
    by_name = {c.name: c for c in components}
    for (owner, check_name), covers in END_TO_END.items():
        component = by_name.get(owner)
        check = _find(component, check_name)
        others = [c for c in component.checks if c is not check] if check else []
        if check is None or all(c.status == "not_implemented" or c.blocked_by for c in others):
            if check is not None and others and check.message.startswith(NOT_RUN):
                _as_others(check, others[0])  # what running it would have shown
            continue  # not started, or could not run: nothing to protect, no points for free
        failing = [name for name in covers if name in by_name and _lost(by_name[name])]
        if not failing:
            continue
        shown = ", ".join(failing[:4]) + (" ..." if len(failing) > 4 else "")
        check.status, check.points = "skipped", check.max_points
        check.message = (
            f"skipped: depends on {shown}. This end-to-end check runs your whole model; it "
            f"counts once {'that component passes' if len(failing) == 1 else 'they pass'} "
            "its own checks, so a bug there costs points only once."
        )
        check.hint = check.counterexample = check.traceback = ""
        check.diff = None
    for component in components:
        _defer_secondary(component)


# the message of an end-to-end check that was not run, because a component it covers was
# known to fail already (see GradingSession.begin): settle decides its result all the same
NOT_RUN = "Not run: this end-to-end check runs your whole model"


def _as_others(check: CheckResult, other: CheckResult) -> None:
    """``check`` as the component's other checks ended (not implemented, could not run)."""
    check.status, check.points = other.status, 0.0
    check.message, check.hint, check.blocked_by = other.message, other.hint, other.blocked_by
    check.traceback, check.counterexample, check.diff = other.traceback, "", None


def _find(component: ComponentResult | None, name: str) -> CheckResult | None:
    if component is None:
        return None
    return next((c for c in component.checks if c.name == name), None)


def _independent(check: CheckResult) -> bool:
    return check.name.startswith(INDEPENDENT)


def _defer_secondary(component: ComponentResult) -> None:
    failing = [
        c for c in component.checks if c.status in ("failed", "error") and not c.blocked_by
    ]
    if len(failing) < 2:
        return
    primary = next((c for c in failing if c.name in EQUIVALENCE), None)
    seen: dict[str, CheckResult] = {}  # a crash's message -> the first check that showed it
    for check in failing:
        if check.message:
            first = seen.setdefault(check.message, check)
            if first is not check:
                what = "error" if check.status == "error" else "problem"
                check.hint = (
                    f"The same {what} as in '{first.title}' (see there): fixing it once fixes both."
                )
                continue
        if primary is None or check is primary or _independent(check):
            continue
        if check.status == "error" and primary.status != "error":
            continue  # a crash of its own: its hint fits it
        check.hint = (
            f"Probably the same bug as '{primary.title}', which fails too: fix that first, "
            "then grade again (this check is likely to pass with it)."
        )
