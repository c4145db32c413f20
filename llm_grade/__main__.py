"""``python -m llm_grade`` is the ``llm-grade`` command."""

from .cli import main

main()
