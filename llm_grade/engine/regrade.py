"""Reproducible regrades: ``llm-grade regrade results.json``.

Every ``results.json`` records what made its score, under ``environment``: llm-grade's
version, the rubric's SHA-256, the Hypothesis profile and seed, torch's version, the device,
the ``-k`` selection, the isolation and the SHA-256 of the submission as handed in.
:func:`regrade` grades the recorded submission again with the recorded settings, and says
three things: what differs in how it was made, which checks changed, and whether any score
moved. The command's exit status is 1 when one did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llm_grade.engine.results import GradeResult
from llm_grade.engine.rubric import rubric_sha256

# what is compared between the recorded run and the regrade (label, environment key)
RECORDED = (
    ("llm-grade", "llm_grade"),
    ("rubric SHA-256", "rubric_sha256"),
    ("torch", "torch"),
    ("Hypothesis", "hypothesis"),
    ("Hypothesis profile", "hypothesis_profile"),
    ("Hypothesis seed", "hypothesis_seed"),
    ("device", "device"),
    ("submission SHA-256", "submission_sha256"),
)


class RegradeError(ValueError):
    """The recorded run cannot be repeated (the submission or its rubric is gone)."""


@dataclass
class Regrade:
    before: GradeResult
    after: GradeResult
    differences: list[str] = field(default_factory=list)  # how the two runs were made
    changed: list[str] = field(default_factory=list)  # checks whose outcome changed
    moved_checks: int = 0  # checks whose points changed

    @property
    def moved(self) -> bool:
        return self.before.score != self.after.score or self.moved_checks > 0

    def lines(self) -> list[str]:
        from llm_grade.engine.feedback import points

        out = [
            f"Recorded: {points(self.before.score)} / {points(self.before.max_score)}. "
            f"Regraded: {points(self.after.score)} / {points(self.after.max_score)}."
        ]
        out += [f"  differs: {d}" for d in self.differences]
        out += [f"  changed: {c}" for c in self.changed]
        if not self.changed:
            out.append("Every check has the outcome and the points it had.")
        out.append("A score moved." if self.moved else "No score moved: the grade is reproduced.")
        return out


def _checks(result: GradeResult) -> dict[str, tuple[str, float, float]]:
    return {
        f"{c.component}.{c.name}": (c.status, c.points, c.max_points)
        for comp in result.components
        for c in comp.checks
    }


def regrade(results_json: Path, *, quiet: bool = True) -> Regrade:
    """Grade the submission ``results_json`` records, the way it records."""
    from llm_grade.engine.run import grade
    from llm_grade.output.exporters import load_results

    before = load_results(results_json)
    env = before.environment or {}
    submission = Path(before.submission)
    if not submission.exists():
        raise RegradeError(f"the recorded submission {submission} does not exist any more")
    rubric = Path(before.rubric) if before.rubric else None
    if rubric is not None and not rubric.is_file():
        raise RegradeError(f"the recorded rubric {rubric} does not exist any more")
    extra = []
    profile = env.get("hypothesis_profile")
    if profile and profile != "llm-grade":
        extra.append(f"--hypothesis-profile={profile}")
    seed = env.get("hypothesis_seed")
    if seed and seed != "derandomized":
        extra.append(f"--hypothesis-seed={seed}")
    isolation = env.get("isolation") or (before.isolation or {}).get("mode") or "process"
    after = grade(
        submission,
        isolation=isolation,
        rubric=rubric,
        select=env.get("select") or None,
        device=env.get("device", "cpu"),
        quiet=quiet,
        extra=extra,
    )
    report = Regrade(before, after)
    now = after.environment or {}
    for label, key in RECORDED:
        if key in env and env.get(key) != now.get(key):
            report.differences.append(f"{label}: {env.get(key)} then, {now.get(key)} now")
    if rubric is not None and "rubric_sha256" not in env:  # an older results.json
        report.differences.append(f"rubric SHA-256 not recorded then; {rubric_sha256(rubric)} now")
    old, new = _checks(before), _checks(after)
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None or b is None:
            report.changed.append(f"{name}: {'new check' if a is None else 'no longer graded'}")
            report.moved_checks += 1
            continue
        what = f"{name}: {a[0]} -> {b[0]}"
        if a[1] != b[1] or a[2] != b[2]:
            what += f", points {a[1]:g}/{a[2]:g} -> {b[1]:g}/{b[2]:g}"
            report.moved_checks += 1
        report.changed.append(what)
    return report
