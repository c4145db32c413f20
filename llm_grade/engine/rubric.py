"""The rubric: an instructor-editable TOML file with points, visibility, forbidden APIs and
tolerances. ``graders/rubric.toml`` is the default; ``--rubric PATH`` picks another.

The bundled ``graders/rubric.toml`` is also the one place the defaults are written: a rubric
that leaves out a component's ``forbidden`` list, a ``[tolerance]`` entry or
``[grading] max_examples`` gets the bundled rubric's (:func:`defaults`).

Every grader test must have a rubric entry and every entry a test: a mismatch stops grading
with a message for the instructor rather than silently scoring out of a different total.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from llm_grade.components import COMPONENTS
from llm_grade.policy import Policy


class RubricError(ValueError):
    """The rubric file is malformed or does not match the graders."""


@functools.cache
def _bundled() -> dict:
    from llm_grade.paths import bundled

    return tomllib.loads((bundled("graders") / "rubric.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Defaults:
    """What a rubric gets for what it leaves out (read from the bundled rubric)."""

    forbidden: dict[str, list[str]]  # component -> forbidden API patterns
    tolerance: dict[str, dict[str, float]]  # dtype name -> {"atol", "rtol"}
    max_examples: int


def defaults() -> Defaults:
    data = _bundled()
    return Defaults(
        forbidden={
            component: [str(x) for x in entry["forbidden"]]
            for component, entry in data.get("components", {}).items()
            if "forbidden" in entry
        },
        tolerance={
            name: {"atol": float(v["atol"]), "rtol": float(v["rtol"])}
            for name, v in data.get("tolerance", {}).items()
            if name not in ("cuda", "mps")
        },
        max_examples=int(data["grading"]["max_examples"]),
    )


def __getattr__(name: str):
    if name == "DEFAULT_TOLERANCES":  # dtype name -> {"atol", "rtol"}
        return defaults().tolerance
    if name == "DEFAULT_FORBIDDEN":  # component -> forbidden API patterns
        return defaults().forbidden
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Checks renamed or split since an earlier rubric: an instructor's rubric that still names
# the old check gives its points (and visibility) to its successors, in equal parts.
RENAMED: dict[tuple[str, str], tuple[str, ...]] = {
    ("LayerNorm", "honours_eps"): ("uses_eps", "rejects_bad_eps"),
    ("sinusoidal_positional_encoding", "honours_base_and_dtype"): ("honours_base", "honours_dtype"),
}

# Checks added since the first rubric (graders round two): a rubric that does not list one
# grades it for 0 points (shown, not counted) and says so in the results' notes, so an
# instructor's rubric keeps its total and its meaning until they give the check points.
ADDED: dict[str, tuple[str, ...]] = {
    "count_parameters": ("counts_shared_once",),
    "TokenEmbedding": ("gradients_reach_every_parameter",),
    "sinusoidal_positional_encoding": ("honours_base", "honours_dtype"),
    "SinusoidalPositionalEncoding": (
        "full_length",
        "keeps_x_dtype",
        "rejects_too_long",
        "runs_on_any_device",
    ),
    "LearnedPositionalEmbedding": (
        "full_length",
        "gradients_reach_every_parameter",
        "keeps_x_dtype",
        "rejects_too_long",
    ),
    "softmax": ("stable_per_row",),
    "causal_mask": ("rejects_negative_length",),
    "padding_mask": ("runs_on_any_device",),
    "scaled_dot_product_attention": ("runs_on_any_device", "stable_per_row"),
    "AttentionHead": ("rejects_bad_arguments",),
    "MultiHeadAttention": (
        "dropout_on_the_weights",
        "masks_hold_in_training",
        "rejects_bad_arguments",
        "runs_on_any_device",
    ),
    "FeedForward": ("dropout_placement", "rejects_bad_arguments"),
    "LayerNorm": (
        "gradients_reach_every_parameter",
        "rejects_bad_eps",
        "stable_per_row",
        "starts_as_identity",
        "uses_eps",
    ),
    "AddNorm": ("dropout_placement", "rejects_bad_arguments", "structure"),
    "EncoderLayer": ("structure",),
    "DecoderLayer": ("structure",),
    "TransformerBlock": ("dropout_placement", "runs_on_any_device", "structure"),
    "Encoder": ("rejects_bad_arguments",),
    "Decoder": ("rejects_bad_arguments",),
    "Transformer": ("learns_one_batch", "rejects_bad_arguments", "runs_on_any_device", "structure"),
    "GPT": ("learns_one_batch", "rejects_bad_arguments", "structure"),
    "greedy_decode": ("keeps_the_mode", "rejects_bad_max_len", "runs_without_gradients"),
}


@dataclass(frozen=True)
class CheckSpec:
    points: float
    hidden: bool = False


@dataclass
class Rubric:
    path: Path
    checks: dict[str, dict[str, CheckSpec]]  # component -> check id -> spec
    forbidden: dict[str, list[str]]
    tolerance: dict[str, dict[str, float]]  # dtype name -> {"atol", "rtol"}
    max_examples: int
    limits: dict[str, float] = field(default_factory=dict)
    # device ("cuda", "mps") -> dtype name -> {"atol", "rtol"}: replaces ``tolerance`` there
    device_tolerance: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # what Python a submission may use (the [policy] table; see llm_grade/policy/)
    policy: Policy = field(default_factory=Policy)
    # how an older rubric was read (renamed checks, checks it predates): for the results
    notes: list[str] = field(default_factory=list)
    # [efficiency] warn_ratio: slower than the reference by more than this: a warning
    # (informational, 0 points: llm_grade/grading/efficiency.py)
    warn_ratio: float = 10.0

    @property
    def total(self) -> float:
        return sum(s.points for checks in self.checks.values() for s in checks.values())

    def spec(self, component: str, check: str) -> CheckSpec:
        try:
            return self.checks[component][check]
        except KeyError:
            raise RubricError(
                f"{self.path}: no points for check {check!r} of {component!r}; add "
                f"`{check} = <points>` under [components.{component}.checks]"
            ) from None

    def tol(self, dtype_name: str) -> dict[str, float]:
        return dict(self.tolerance.get(dtype_name, self.tolerance["float32"]))


def rubric_sha256(path: Path) -> str:
    """The SHA-256 of a rubric file's bytes: what results record and the CI log prints, to
    compare with the rubric an instructor published."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_rubric(path: Path) -> Rubric:
    """Read and validate a rubric file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RubricError(f"rubric file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"{path} is not valid TOML: {exc}") from None
    checks: dict[str, dict[str, CheckSpec]] = {}
    notes: list[str] = []
    default = defaults()
    forbidden: dict[str, list[str]] = {k: list(v) for k, v in default.forbidden.items()}
    for component, entry in data.get("components", {}).items():
        if component not in COMPONENTS:
            raise RubricError(f"{path}: [components.{component}] is not a graded name of API.md")
        if "forbidden" in entry:
            forbidden[component] = [str(x) for x in entry["forbidden"]]
        specs = {}
        for check, value in entry.get("checks", {}).items():
            if isinstance(value, (int, float)):
                specs[check] = CheckSpec(float(value))
            elif isinstance(value, dict) and "points" in value:
                specs[check] = CheckSpec(float(value["points"]), bool(value.get("hidden", False)))
            else:
                raise RubricError(
                    f"{path}: {component}.{check} must be a number or "
                    f"{{points = N, hidden = true|false}}"
                )
        notes += _upgrade(component, specs)
        checks[component] = specs
    grading = data.get("grading", {})
    if grading.get("forbidden_api_rule", True) is False:
        forbidden = {}
    tolerance = {k: dict(v) for k, v in default.tolerance.items()}
    devices: dict[str, dict[str, dict[str, float]]] = {}

    def tol(where: str, value: object) -> dict[str, float]:
        if not (isinstance(value, dict) and {"atol", "rtol"} <= set(value)):
            raise RubricError(f"{path}: tolerance.{where} must be {{ atol = A, rtol = R }}")
        return {"atol": float(value["atol"]), "rtol": float(value["rtol"])}

    for name, value in data.get("tolerance", {}).items():
        if name in ("cuda", "mps"):  # [tolerance.cuda]: per-dtype entries for that device
            devices[name] = {d: tol(f"{name}.{d}", v) for d, v in value.items()}
        else:
            tolerance[name] = tol(name, value)
    try:
        policy = Policy.from_mapping(data.get("policy", {}))
    except ValueError as exc:
        raise RubricError(f"{path}: {exc}") from None
    ratio = data.get("efficiency", {}).get("warn_ratio", 10.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 1:
        raise RubricError(f"{path}: efficiency.warn_ratio must be a number above 1")
    return Rubric(
        path,
        checks,
        forbidden,
        tolerance,
        int(grading.get("max_examples", default.max_examples)),
        {k: float(v) for k, v in data.get("limits", {}).items()},
        devices,
        policy,
        notes,
        float(ratio),
    )


def _upgrade(component: str, specs: dict[str, CheckSpec]) -> list[str]:
    """Read an older rubric's entries for ``component`` as today's checks (in place)."""
    notes = []
    for (owner, old), new in RENAMED.items():
        if owner == component and old in specs and not any(n in specs for n in new):
            spec = specs.pop(old)
            for name in new:
                specs[name] = CheckSpec(round(spec.points / len(new), 4), spec.hidden)
            notes.append(
                f"rubric: {component}.{old} is now {' and '.join(new)}; its "
                f"{spec.points:g} points are shared between them"
            )
    missing = [name for name in ADDED.get(component, ()) if name not in specs]
    for name in missing:
        specs[name] = CheckSpec(0.0)
    if missing:
        notes.append(
            f"rubric: no points for {', '.join(f'{component}.{n}' for n in missing)} (checks "
            "newer than this rubric): graded for 0 points; give them points to count them"
        )
    return notes
