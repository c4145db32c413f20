"""Paths of the repository's folders, for llm-grade's own tests.

(A module of its own with a unique name: ``tests/reference/conftest.py`` would shadow a plain
``from conftest import ...`` when pytest-xdist imports both.)
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `import reference` / `import stubs` without an install
    sys.path.insert(0, str(REPO))

REFERENCE = REPO / "reference"
STUBS = REPO / "stubs"
ORACLES = REPO / "llm_grade" / "oracles"
GRADERS = REPO / "graders"
