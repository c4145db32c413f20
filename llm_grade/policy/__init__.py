"""The submission policy (trusted side): which Python a submission may use, decided from its
source (an AST) before any of it runs; see docs/submission-policy.md."""

from llm_grade.policy.checker import (  # noqa: F401
    ModuleCheck,
    Policy,
    PolicyViolation,
    check_module,
    check_submission,
)
