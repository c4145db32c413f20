"""The rubric: an instructor-editable TOML file with points, visibility, forbidden APIs and
tolerances. ``graders/rubric.toml`` is the default; ``--rubric PATH`` picks another.

Every grader test must have a rubric entry and every entry a test: a mismatch stops grading
with a message for the instructor rather than silently scoring out of a different total.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .components import COMPONENTS
from .forbidden import DEFAULT_FORBIDDEN
from .policy import Policy


class RubricError(ValueError):
    """The rubric file is malformed or does not match the graders."""


DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {"atol": 1e-4, "rtol": 1e-4},
    "float64": {"atol": 1e-9, "rtol": 1e-7},
    # a model under torch.autocast vs itself in float32 (GPT.mixed_precision)
    "float16": {"atol": 1e-2, "rtol": 1e-2},
    "bfloat16": {"atol": 8e-2, "rtol": 8e-2},
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
    max_examples: int = 20
    limits: dict[str, float] = field(default_factory=dict)
    # device ("cuda", "mps") -> dtype name -> {"atol", "rtol"}: replaces ``tolerance`` there
    device_tolerance: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # what Python a submission may use (the [policy] table; see llm_grade/policy.py)
    policy: Policy = field(default_factory=Policy)

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


def load_rubric(path: Path) -> Rubric:
    """Read and validate a rubric file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RubricError(f"rubric file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"{path} is not valid TOML: {exc}") from None
    checks: dict[str, dict[str, CheckSpec]] = {}
    forbidden: dict[str, list[str]] = {k: list(v) for k, v in DEFAULT_FORBIDDEN.items()}
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
        checks[component] = specs
    grading = data.get("grading", {})
    if grading.get("forbidden_api_rule", True) is False:
        forbidden = {}
    tolerance = {k: dict(v) for k, v in DEFAULT_TOLERANCES.items()}
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
    return Rubric(
        path,
        checks,
        forbidden,
        tolerance,
        int(grading.get("max_examples", 20)),
        {k: float(v) for k, v in data.get("limits", {}).items()},
        devices,
        policy,
    )
