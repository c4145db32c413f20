"""``python -m llm_grade`` is the ``llm-grade`` command."""

from llm_grade.cli import main

main()
