"""llm-grade: a testing and grading harness for people who build LLMs from scratch in PyTorch.

The engine lives here (submission loading, scoring, CLI); the reference solution, the learner
stubs, the graders and the report templates ship beside it (see :mod:`llm_grade.paths`).
"""

__version__ = "0.1.0"
