"""An instructor's rubric written before graders round two still grades: a check that was
split gives its points to the new checks, a check it predates counts 0 points (and the
results say so), and its total stays what the instructor wrote."""

from __future__ import annotations

from lg_paths import REFERENCE, REPO

from llm_grade.engine.rubric import ADDED, RENAMED, load_rubric
from llm_grade.engine.run import grade

OLD = REPO / "tests" / "fixtures" / "rubric_round_one.toml"


def test_an_old_rubric_keeps_its_total_and_splits_renamed_checks():
    rubric = load_rubric(OLD)
    assert rubric.total == 100
    layer_norm = rubric.checks["LayerNorm"]
    assert "honours_eps" not in layer_norm
    assert layer_norm["uses_eps"].points == layer_norm["rejects_bad_eps"].points == 0.5
    assert layer_norm["stable_per_row"].points == 0  # newer than this rubric
    assert any("honours_eps is now uses_eps and rejects_bad_eps" in n for n in rubric.notes)
    assert any("LayerNorm.stable_per_row" in n for n in rubric.notes)


def test_the_default_rubric_needs_no_upgrade():
    rubric = load_rubric(REPO / "graders" / "rubric.toml")
    assert rubric.notes == []
    for component, names in ADDED.items():
        assert set(names) <= set(rubric.checks[component]), component
    for (component, old), new in RENAMED.items():
        assert old not in rubric.checks[component] and set(new) <= set(rubric.checks[component])


def test_grading_with_an_old_rubric_scores_out_of_its_own_total():
    result = grade(REFERENCE, rubric=OLD, quiet=True, select="LayerNorm or softmax")
    assert result.max_score == 12  # LayerNorm 6 + softmax 6, as the old rubric has them
    assert result.score == result.max_score
    assert any("LayerNorm.stable_per_row" in note for note in result.notes)
