"""Where the bundled folders live, in a source checkout and in an installed wheel.

In the repository, ``reference/``, ``stubs/``, ``graders/``, ``reports/`` and ``examples/``
sit at the top level next to ``llm_grade/``. A wheel carries them as ``llm_grade/_bundled/``
(see ``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE_NAMES = ("reference", "stubs", "graders", "reports", "examples")


def bundled(name: str) -> Path:
    """Path of the bundled folder ``name`` (one of :data:`BUNDLE_NAMES`)."""
    if name not in BUNDLE_NAMES:
        raise ValueError(f"unknown bundled folder {name!r}; expected one of {BUNDLE_NAMES}")
    for root in (_PACKAGE_DIR / "_bundled", _PACKAGE_DIR.parent):
        candidate = root / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"the bundled folder {name!r} is missing from this installation of llm-grade "
        f"(looked in {_PACKAGE_DIR / '_bundled'} and {_PACKAGE_DIR.parent}); reinstall llm-grade"
    )
