"""Hypothesis profiles: ``llm-grade`` (deterministic, for scores) and ``llm-grade-dev``.

Scores must not depend on the run or the machine: the grading profile derandomizes (the
examples come from a fixed seed per test), keeps no example database, runs a fixed number of
examples and has no deadline (slow but correct code must pass; time limits are the
isolation layer's job). ``llm-grade-dev`` explores randomly for local bug-hunting.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

GRADING = "llm-grade"
DEV = "llm-grade-dev"

_COMMON = dict(
    deadline=None,
    report_multiple_bugs=False,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
)


def _cache_function_digests() -> None:
    """Hypothesis hashes a test's source (``inspect.getsource`` and re-tokenizing it) twice
    per test and run, for the derandomized seed and the database key: about 0.3 s of a full
    grade, paid again by every grading of a long-lived process. The digest of one function
    object never changes, so it is computed once per function (the same bytes: the same
    seed, so the same examples)."""
    import weakref

    from hypothesis import core

    original = getattr(core, "function_digest", None)
    if original is None or getattr(original, "_llm_grade_cached", False):
        return
    cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def function_digest(function):
        try:
            return cache[function]
        except (KeyError, TypeError):
            pass
        digest = original(function)
        try:
            cache[function] = digest
        except TypeError:  # not weakly referenceable: not cached
            pass
        return digest

    function_digest._llm_grade_cached = True
    core.function_digest = function_digest


def register(max_examples: int = 20) -> None:
    _cache_function_digests()
    settings.register_profile(
        GRADING, derandomize=True, database=None, max_examples=max_examples, **_COMMON
    )
    settings.register_profile(
        DEV, derandomize=False, database=None, max_examples=max_examples, **_COMMON
    )


def load_profile(config, max_examples: int) -> None:
    """Use the grading profile unless ``--hypothesis-profile`` asked for another."""
    register(max_examples)
    chosen = config.getoption("hypothesis_profile", default=None)
    settings.load_profile(chosen or GRADING)
    if config.getoption("hypothesis_seed", default=None) is None:
        # --hypothesis-seed sets a process-wide seed that would outlive its run: a later
        # grading in the same process (tests, a notebook) must be derandomized again
        from hypothesis import core

        core.global_force_seed = None


def describe(config, max_examples: int) -> dict:
    """The Hypothesis settings a run grades with, for its results (what a regrade needs)."""
    import hypothesis

    seed = config.getoption("hypothesis_seed", default=None)
    return {
        "hypothesis": hypothesis.__version__,
        "hypothesis_profile": config.getoption("hypothesis_profile", default=None) or GRADING,
        "hypothesis_seed": "derandomized" if seed is None else str(seed),
        "max_examples": max_examples,
    }
