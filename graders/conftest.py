"""Grader fixtures. Running ``pytest graders/`` turns the run into a grading run.

``sub`` is the submission handle (the only way to reach learner code) and ``ref`` the
reference package (trusted, never given to learner code).
"""

from pathlib import Path

import pytest

from llm_grade.engine.plugin import activate, add_conftest_options, grading_session


def pytest_addoption(parser: pytest.Parser) -> None:
    add_conftest_options(parser)  # the old spellings (--submission, --device...), deprecated


def pytest_configure(config: pytest.Config) -> None:
    activate(config, Path(__file__).resolve().parent)


@pytest.fixture(scope="session")
def sub(pytestconfig: pytest.Config):
    return grading_session(pytestconfig).submission()


@pytest.fixture(scope="session")
def ref(pytestconfig: pytest.Config):
    return grading_session(pytestconfig).reference()
