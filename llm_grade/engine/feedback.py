"""Render results as the text a learner reads (../shared/FEEDBACK.md).

Shapes first, numbers rounded, our own frames never shown. Hidden checks show only their
name, points and a generic line in the learner's view.
"""

from __future__ import annotations

import re

from llm_grade.components import module_of
from llm_grade.engine.results import CheckResult, ComponentResult, GradeResult

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
        r"is invalid for input of size",
        "view/reshape needs sizes whose product is the input's size: check the sizes you "
        "pass (B, T, n_heads, d_head come from the tensor you reshape: x.size(0), x.size(1)) "
        "and that a mask is not reshaped like the activations.",
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


# the forward arguments of each graded name, in order (API.md): to name the sizes of a call
FORWARD_ARGS: dict[str, tuple[str, ...]] = {
    "softmax": ("x", "dim"),
    "causal_mask": ("seq_len", "device"),
    "padding_mask": ("tokens", "pad_id"),
    "scaled_dot_product_attention": ("q", "k", "v", "mask"),
    "AttentionHead": ("x", "context", "mask"),
    "MultiHeadAttention": ("query", "key", "value", "mask"),
    "gelu": ("x", "approximate"),
    "FeedForward": ("x",),
    "LayerNorm": ("x",),
    "AddNorm": ("x", "sublayer_out"),
    "TokenEmbedding": ("tokens",),
    "SinusoidalPositionalEncoding": ("x",),
    "LearnedPositionalEmbedding": ("x",),
    "EncoderLayer": ("x", "mask"),
    "DecoderLayer": ("x", "memory", "tgt_mask", "memory_mask"),
    "TransformerBlock": ("x", "mask"),
    "Encoder": ("x", "mask"),
    "Decoder": ("x", "memory", "tgt_mask", "memory_mask"),
    "Transformer": ("src", "tgt", "src_mask", "tgt_mask"),
    "Transformer.encode": ("src", "src_mask"),
    "Transformer.decode": ("tgt", "memory", "tgt_mask", "memory_mask"),
    "GPT": ("tokens", "mask"),
    "greedy_decode": ("model", "src", "max_len", "bos_id", "eos_id", "src_mask"),
}

_SIZES_IN_ERROR = [
    r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)",
    r"expanded size of the tensor \((\d+)\) must match the existing size \((\d+)\)",
    r"\((\d+)x(\d+) and (\d+)x(\d+)\)",
    r"shape '\[([-\d, ]+)\]' is invalid for input of size (\d+)",
]


def _split_args(text: str) -> list[str]:
    """``a, b (1, 2), c`` -> ``["a", "b (1, 2)", "c"]``: commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts


def size_names(call: str) -> dict[int, list[str]]:
    """Which argument each size of a call comes from: ``{8: ["d_model", "query.size(2)"]}``.

    ``call`` is the handle's description of the call, e.g. ``MultiHeadAttention(d_model=8,
    n_heads=2).forward(float64 tensor of shape (2, 3, 8), ...)``."""
    names: dict[int, list[str]] = {}
    match = re.match(r"^(\w+)(?:\((.*?)\))?(?:\.(\w+))?\((.*)\)$", call.strip(), flags=re.S)
    if not match:
        return names
    component, init, method, args = match.groups()
    for key, value in re.findall(r"(\w+)=(-?\d+)(?=,|$)", init or ""):
        names.setdefault(int(value), []).append(key)
    key = f"{component}.{method}" if method not in (None, "forward") else component
    params = FORWARD_ARGS.get(key, ())
    for i, arg in enumerate(_split_args(args)):
        name, _, rest = arg.partition("=") if re.match(r"^\w+=", arg) else ("", "", arg)
        name = name or (params[i] if i < len(params) else f"argument {i + 1}")
        shape = re.search(r"tensor of shape \(([^)]*)\)", rest)
        if shape:
            dims = [int(d) for d in re.findall(r"-?\d+", shape.group(1))]
            for j, n in enumerate(dims):
                names.setdefault(n, []).append(f"{name}.size({j})")
        elif re.fullmatch(r"-?\d+", rest.strip()):
            names.setdefault(int(rest), []).append(name)
    return names


def _sizes_in(message: str) -> list[int]:
    for pattern in _SIZES_IN_ERROR:
        found = re.search(pattern, message, flags=re.IGNORECASE)
        if found:
            out = []
            for group in found.groups():
                out += [int(x) for x in re.findall(r"\d+", group)]
            return out
    return []


def _evidence(message: str, call: str) -> tuple[str, list[list[str]]]:
    """``"In this call 3 = x.size(1), 5 = memory.size(1)."`` and the names of each size."""
    names = size_names(call) if call else {}
    sizes = list(dict.fromkeys(_sizes_in(message)))[:4]
    found = [(n, names.get(n, [])) for n in sizes]
    said = [f"{n} = {' = '.join(ns[:3])}" for n, ns in found if ns]
    text = f"In this call {', '.join(said)}." if said else ""
    return text, [ns for _, ns in found]


def _lengths(ns: list[str]) -> set[str]:
    """The arguments whose sequence length these sizes are (``x.size(1)``, a mask's axes)."""
    return {
        n.split(".")[0]
        for n in ns
        if n.endswith(".size(1)") or ("mask" in n and n.endswith((".size(0)", ".size(2)")))
    }


def crash_hint(message: str, call: str = "", check: str = "", exc_type: str = "") -> str:
    """A hint for a crash in learner code, from what the error and the call show."""
    if exc_type == "ValueError" and check and not check.startswith("rejects_"):
        return (
            "Your code raised ValueError for arguments API.md allows: check the condition "
            "before that raise (> or >=, and which size it compares with which limit)."
        )
    evidence, groups = _evidence(message, call)
    if len(groups) >= 2 and re.search(r"must match|expand|broadcast", message, re.IGNORECASE):
        a, b = groups[0], groups[1]
        batch = {x for x in a + b if x.endswith(".size(0)") and "mask" not in x}
        if batch and any(x.endswith(".size(1)") for x in a + b) and not (_lengths(a) & _lengths(b)):
            return (
                f"{evidence} A size that should be a sequence length is the batch size, or "
                "the other way round: tensors are [B, T, d_model], so T = x.size(1) and "
                "B = x.size(0)."
            ).strip()
        if _lengths(a) and _lengths(b) and not (_lengths(a) & _lengths(b)):
            return (
                f"{evidence} A tensor made for one sequence meets one made for another: check "
                "that each mask and tensor goes with the sequence it was built for (e.g. "
                "tgt_mask with the self-attention, memory_mask with the cross-attention, "
                "queries from x and keys from memory)."
            ).strip()
    for pattern, hint in _CRASH_HINTS:
        if re.search(pattern, message, flags=re.IGNORECASE):
            return f"{evidence} {hint}".strip()
    fallback = "Read the traceback from the bottom: the last line of your code is where it failed."
    return f"{evidence} {fallback}".strip()


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
    blocked = blocked_by(component)
    if blocked:
        stopped = next(c for c in component.checks if c.blocked_by)
        return f"could not run: {blocked} {_why(stopped)}"
    return {
        "passed": "all checks pass",
        "not_implemented": "not implemented yet",
        "forbidden": "refused code" if _refused(component) else "forbidden API",
    }.get(
        component.status,
        f"{sum(c.status not in ('passed', 'skipped') for c in component.checks)} "
        f"of {len(component.checks)} checks fail",
    )


def blocked_by(component: ComponentResult) -> str:
    """The module whose import stopped every check of ``component`` that did not pass
    ("attention.py"), or ""."""
    causes = {c.blocked_by for c in component.checks if c.status not in ("passed", "skipped")}
    return causes.pop() if len(causes) == 1 and "" not in causes else ""


def _why(check: CheckResult) -> str:
    missing = check.message.startswith(f"Your submission has no {check.blocked_by}")
    return "is missing" if missing else "does not import"


def import_failures(result: GradeResult) -> dict[str, list[CheckResult]]:
    """Module file -> the checks its import stopped, first the one that showed the error
    for that module itself (its own traceback, not an importer's)."""
    found: dict[str, list[CheckResult]] = {}
    for component in result.components:
        for check in component.checks:
            if check.blocked_by and check.status == "error":
                found.setdefault(check.blocked_by, []).append(check)
    for module, checks in found.items():
        own = [c for c in checks if f"{module_of(c.component)}.py" == module]
        checks.sort(key=lambda c: c not in own)
    return found


def format_import_failure(module: str, checks: list[CheckResult]) -> str:
    """One block for a module that does not import: the error once, then what it stopped."""
    first = checks[0]
    stopped = list(dict.fromkeys(c.component for c in checks))
    files = (f"{module_of(c)}.py" for c in stopped)
    importers = [f for f in dict.fromkeys(files) if f != module]  # curriculum order
    n = len(stopped)
    what = f"{module} {_why(first)}"
    lines = [header(what, f"{n} component{'s' * (n != 1)} could not run")]
    lines.append(_indent(first.message))
    if first.traceback:
        lines.append(_indent(first.traceback))
    where = f" (and {', '.join(importers)}, which import{'s' * (len(importers) == 1)} it)"
    lines.append(
        _indent(
            f"Could not run: {', '.join(stopped)}" + (where if importers else "") + "."
        )
    )
    if first.hint:
        lines.append(_indent(f"Hint: {first.hint}"))
    return "\n".join(lines)


def failure_blocks(
    result: GradeResult, *, learner_view: bool = True, not_started: bool = False
) -> list[str]:
    """Every failure once, in curriculum order: first each module that does not import
    (once, however many checks it stopped), then each failing check; a component not
    started is one line (with ``not_started``), a forbidden one is one block."""
    broken = import_failures(result)
    blocks = [format_import_failure(module, checks) for module, checks in broken.items()]
    for component in result.components:
        if component.status == "not_implemented":
            if not_started:
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
            if c.status in ("failed", "error") and not (c.blocked_by and c.status == "error")
        ]
    return [b for b in blocks if b]


def _refused(component: ComponentResult) -> bool:
    return any("not allowed in a submission" in c.message for c in component.checks)


def format_report(result: GradeResult, *, learner_view: bool = True) -> str:
    """The full text report: every failure block, then the summary."""
    blocks = failure_blocks(result, learner_view=learner_view, not_started=True)
    return "\n\n".join([*blocks, format_summary(result)])
