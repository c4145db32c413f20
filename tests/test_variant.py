"""Two more correct submissions, written the way other learners would.

Correct code written another way must keep full marks. tests/fixtures/variant/ loops over heads
and concatenates them, scores attention with ``torch.einsum``, builds the sinusoidal table row by
row from a numpy helper, clones layers with ``copy.deepcopy``, and uses a dataclass config,
``functools.partial``, ``warnings.warn``, ``assert``, module constants, ``getattr(self, ...)``
and ``if __name__ == "__main__":`` demos that import ``sys``/``os`` and open files.
tests/fixtures/variant2/ masks with ``torch.where`` (no ``masked_fill``), keeps the ``pe``
buffer in float64, reshapes heads with ``unflatten``/``permute``/``flatten``, uses ``F.dropout``
(in attention and Add & Norm), ``torch.var(correction=0)`` with ``torch.rsqrt``, ``match``
statements, ``add_module``, ``functools.reduce`` and a softmax that gives fully masked rows zeros.
None of it may cost a point, and the submission policy must allow all of it: it is what a
from-scratch Transformer needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lg_paths import REPO

from llm_grade.components import COMPONENTS
from llm_grade.engine.run import grade
from llm_grade.policy import Policy, check_submission

VARIANT = REPO / "tests" / "fixtures" / "variant"
VARIANT2 = REPO / "tests" / "fixtures" / "variant2"
VARIANTS = pytest.mark.parametrize("variant", [VARIANT, VARIANT2], ids=["variant", "variant2"])


@pytest.mark.slow
@VARIANTS
def test_variant_scores_full_marks(variant):
    result = grade(variant, quiet=True, isolation="process")
    failing = [
        (c.component, c.name, c.message)
        for comp in result.components
        for c in comp.checks
        if c.status != "passed"
    ]
    assert failing == []
    assert result.score == result.max_score


@VARIANTS
def test_policy_allows_everything_in_the_variant(variant):
    sources = {path.stem: path.read_text() for path in sorted(Path(variant).glob("*.py"))}
    assert set(sources) == set(COMPONENTS.values())  # the seven modules, no __init__.py
    report = check_submission(sources, Policy())
    violations = [v.message() for check in report.values() for v in check.violations]
    assert violations == []
