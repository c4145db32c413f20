"""The engine (trusted side): one grading run, whoever starts it.

``run`` is what every front-end calls (:func:`llm_grade.engine.run.grade`); ``plugin`` holds
the thin pytest hooks, ``session`` the scoring session they drive, ``groups`` the two fixed
groups of checks (and the helper process of ``--jobs 2``), ``rubric`` and ``profiles`` the
instructor's settings, ``results`` / ``feedback`` / ``explain`` what a run produces. Nothing
here runs learner code: it reaches it only through :mod:`llm_grade.sandbox.handle`.
"""
