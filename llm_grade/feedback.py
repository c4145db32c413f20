"""Render results as the text a learner reads (../shared/FEEDBACK.md).

Shapes first, numbers rounded, our own frames never shown. Hidden checks show only their
name, points and a generic line in the learner's view.
"""

from __future__ import annotations

import re

from .components import module_of
from .results import CheckResult, ComponentResult, GradeResult

WIDTH = 78

# typical crash messages -> what usually causes them
_CRASH_HINTS: list[tuple[str, str]] = [
    (
        r"cannot be converted to type .*(Half|BFloat16) without overflow",
        "A constant does not fit in this dtype (float16 ends at 65504): mask with "
        "float('-inf') or torch.finfo(scores.dtype).min instead of -1e9.",
    ),
    (
        r"Expected all tensors to be on the same device|on the same device",
        "A tensor was made on the CPU while the model runs elsewhere: create new tensors with "
        "device=x.device, and keep fixed tables in register_buffer so .to(device) moves them.",
    ),
    (
        r"shapes cannot be multiplied|size mismatch|must match the size",
        "Check the in/out sizes of your nn.Linear layers and which dimensions you transpose "
        "or reshape.",
    ),
    (
        r"view size is not compatible",
        "After transpose() a tensor is not contiguous: use .reshape() or .contiguous().view().",
    ),
    (
        r"The size of tensor a .* must match|expand|broadcast",
        "Two tensors don't broadcast: print their shapes; a mask may need an extra dimension "
        "(e.g. unsqueeze(1) for the heads).",
    ),
    (
        r"expected scalar type|dtype|Float but found Double|Double but found Float",
        "Mixed dtypes: create new tensors with dtype=x.dtype and device=x.device.",
    ),
    (
        r"out of range|index .* is out of bounds",
        "An index is out of range: check positions against max_len and ids against the vocabulary.",
    ),
    (
        r"has no attribute",
        "An attribute is missing: API.md lists the attribute names every module must create.",
    ),
    (
        r"takes .* positional argument|unexpected keyword argument|missing .* required",
        "The signature differs from API.md: keep the argument names, order and defaults.",
    ),
    (
        r"bitwise_not|~.*bool|invert",
        "Masks are torch.bool tensors (True = may attend): use ~mask or mask.logical_not().",
    ),
]


def crash_hint(message: str) -> str:
    for pattern, hint in _CRASH_HINTS:
        if re.search(pattern, message, flags=re.IGNORECASE):
            return hint
    return "Read the traceback from the bottom: the last line of your code is where it failed."


def points(x: float) -> str:
    return f"{x:g}"


def header(left: str, right: str) -> str:
    gap = max(2, WIDTH - len(left) - len(right))
    return f"{left}{' ' * gap}{right}"


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def format_check(check: CheckResult, *, learner_view: bool = True) -> str:
    """One failing check as a block of text (empty for a passed check)."""
    title = f"{check.component} — {check.title}"
    if check.status == "passed":
        return ""
    if check.hidden and learner_view:
        return (
            header(
                f"{title} (hidden test)",
                f"{points(check.points)} / {points(check.max_points)} points",
            )
            + "\n  This hidden check did not pass; its details are shown to instructors only."
        )
    if check.status == "not_implemented":
        return (
            f"{check.component} — not implemented yet ({points(check.points)} / "
            f"{points(check.max_points)} points). Open {module_of(check.component)}.py to "
            f"begin."
        )
    right = (
        "error"
        if check.status == "error"
        else (f"{points(check.points)} / {points(check.max_points)} points")
    )
    lines = [header(title, right)]
    if check.status == "forbidden":
        lines.append(_indent(check.message))
        if check.hint:
            lines.append(_indent(f"Hint: {check.hint}"))
        lines.append("  The whole component scores 0 while this is in its code.")
        return "\n".join(lines)
    lines.append(_indent(check.message))
    if check.traceback:
        lines.append(_indent(check.traceback))
    if check.counterexample:
        first, *rest = check.counterexample.splitlines()
        label = "Called with: " if check.status == "error" else "Smallest case found: "
        lines.append(f"  {label}{first}" if first else "")
        lines += [_indent(line, "  ") for line in rest]
    if check.hint:
        lines.append(_indent(f"Hint: {check.hint}"))
    return "\n".join(line for line in lines if line is not None)


def format_summary(result: GradeResult) -> str:
    """Points per component, one line each, then the total."""
    lines = [header("Component", "points")]
    for component in result.components:
        lines.append(
            header(
                f"  {component.name} ({component_label(component)})",
                f"{points(component.score)} / {points(component.max_score)}",
            )
        )
    lines.append(header("Total", f"{points(result.score)} / {points(result.max_score)}"))
    return "\n".join(lines)


def component_label(component: ComponentResult) -> str:
    return {
        "passed": "all checks pass",
        "not_implemented": "not implemented yet",
        "forbidden": "refused code" if _refused(component) else "forbidden API",
    }.get(
        component.status,
        f"{sum(c.status != 'passed' for c in component.checks)} "
        f"of {len(component.checks)} checks fail",
    )


def _refused(component: ComponentResult) -> bool:
    return any("not allowed in a submission" in c.message for c in component.checks)


def format_report(result: GradeResult, *, learner_view: bool = True) -> str:
    """The full text report: every failure block, then the summary."""
    blocks = []
    for component in result.components:
        if component.status == "not_implemented":
            check = component.checks[0]
            blocks.append(
                f"{component.name} — not implemented yet (0 / "
                f"{points(component.max_score)} points). Open "
                f"{module_of(component.name)}.py to begin."
            )
            continue
        if component.status == "forbidden":
            check = next(c for c in component.checks if c.status == "forbidden")
            blocks.append(format_check(check, learner_view=learner_view))
            continue
        blocks += [
            format_check(c, learner_view=learner_view)
            for c in component.checks
            if c.status != "passed"
        ]
    return "\n\n".join([b for b in blocks if b] + [format_summary(result)])
