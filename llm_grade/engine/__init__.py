"""The engine (trusted side): one grading run, whoever starts it.

``options`` defines every grading option once (the CLI, the pytest options, batch's command
lines and the worker's arguments are generated from it); ``run`` is what every front-end
calls (:func:`llm_grade.engine.run.grade`); ``plugin`` holds the thin pytest hooks,
``session`` the scoring session they drive, ``groups`` the two fixed groups of checks (and
the helper process of ``jobs=2``), ``environment`` the device and versions; ``rubric`` and
``profiles`` are the instructor's settings, ``warm`` the grading server that keeps all of
this loaded between ``llm-grade grade`` commands (its helper process is in ``groups``),
``results`` / ``feedback`` / ``explain`` what a run produces. Nothing here runs learner
code: it reaches it only through :mod:`llm_grade.sandbox.handle`. (The worker imports
``options`` for its argument table; nothing else here.)
"""
