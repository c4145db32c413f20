"""Helpers that grader tests share, in one place to import them from: reference modules with
random weights, student/reference pairs with the same weights, the messages for state_dict
mismatches (:mod:`~llm_grade.grading.pairs`), structure checks
(:mod:`~llm_grade.grading.structure`), and dropout, meta-device and argument-validation checks
(:mod:`~llm_grade.grading.behaviour`).

Graders never touch learner objects directly: a "student" here is a reference (``{"ref": id}``)
that only the submission handle can use.
"""

from __future__ import annotations

from llm_grade.grading.behaviour import (
    DEVICE_HINT,
    VALIDATE_HINT,
    expect_dropout_statistics,
    expect_on_meta,
    expect_rejects,
    on_meta,
    raises_value_error,
    started,
)
from llm_grade.grading.pairs import (
    GRAPH_HINT,
    STATE_DICT_HINT,
    Pair,
    build_pair,
    expect_gradients,
    randomize_,
    reference_of,
    return_references,
    same_inputs,
    state_dict_message,
)

# a reference module from this run's pool (build_pair and expect_own_structure borrow them)
from llm_grade.grading.pairs import _reference_module as _reference_module
from llm_grade.grading.structure import (
    ARGS_HINT,
    OWN_CLASS_HINT,
    PARAMETER_HINT,
    SHARED_LAYERS_HINT,
    SHARED_MODULE_HINT,
    TIED_HINT,
    expect_own_structure,
)

__all__ = [
    "ARGS_HINT",
    "DEVICE_HINT",
    "GRAPH_HINT",
    "OWN_CLASS_HINT",
    "PARAMETER_HINT",
    "SHARED_LAYERS_HINT",
    "SHARED_MODULE_HINT",
    "STATE_DICT_HINT",
    "TIED_HINT",
    "VALIDATE_HINT",
    "Pair",
    "build_pair",
    "expect_dropout_statistics",
    "expect_gradients",
    "expect_on_meta",
    "expect_own_structure",
    "expect_rejects",
    "on_meta",
    "raises_value_error",
    "randomize_",
    "reference_of",
    "return_references",
    "same_inputs",
    "started",
    "state_dict_message",
]
