"""The submission policy (trusted side): which Python a submission may use, decided from its
source (an AST) before any of it runs; see docs/submission-policy.md.

Modules: ``checker`` (the rules per AST node, :func:`check_module`, :func:`check_submission`),
``rules`` (the tables, their explanations, :class:`Policy`), ``names`` (dotted names resolved on
the real modules), ``visitor`` (scopes and import aliases), ``cleaner`` (the source the worker
imports), ``forbidden`` (the static forbidden-API scan).
"""

from llm_grade.policy.checker import check_module, check_submission  # noqa: F401
from llm_grade.policy.rules import (  # noqa: F401
    DEFAULT_MODULES,
    FRAME_ATTRS,
    ModuleCheck,
    Policy,
    PolicyViolation,
)
