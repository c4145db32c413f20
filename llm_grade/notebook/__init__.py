"""Jupyter notebooks: graded like folders, built from the stubs, checked inline.

- :mod:`llm_grade.notebook.extract` turns any notebook or ``.py`` script into the modules of a
  submission, from the definitions in its code cells, without running them.
- :mod:`llm_grade.notebook.build` writes the assignment notebooks (``llm-grade notebook build``).
- :func:`check` grades the definitions of the running kernel (the "check my work" cells) and
  :func:`load_definitions` brings an earlier notebook's definitions into this one.
- :mod:`llm_grade.notebook.feedback` writes a learner's notebook back with feedback cells.

Importing this package is cheap: nothing here imports torch or pytest until it is used.
"""

from __future__ import annotations

__all__ = ["check", "load_definitions"]


def __getattr__(name: str):
    if name in __all__:
        from llm_grade.notebook import inline

        return getattr(inline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
