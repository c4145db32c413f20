"""Shared fixtures for llm-grade's own tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from lg_paths import GRADERS, ORACLES, REFERENCE

# gradings in these tests never go through a warm grading server a developer left running
# (tests/test_warm_server.py starts servers of its own)
os.environ["LLM_GRADE_SERVER"] = "0"


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-n`` (pytest-xdist), a worker that runs out of tests takes pending ones from
    the other (``--dist worksteal``) instead of waiting: the suite's tests vary from
    milliseconds to minutes."""
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "worksteal"


@pytest.fixture
def reference_copy(tmp_path: Path) -> Path:
    """A fresh, writable copy of the reference as a submission folder."""
    dest = tmp_path / "submission"
    shutil.copytree(REFERENCE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="session")
def rubric_without_forbidden_rule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default rubric with the forbidden-API rule off (for the torch.nn variant)."""
    text = (GRADERS / "rubric.toml").read_text()
    assert "forbidden_api_rule = true" in text
    path = tmp_path_factory.mktemp("rubric") / "rubric.toml"
    path.write_text(text.replace("forbidden_api_rule = true", "forbidden_api_rule = false"))
    return path


@pytest.fixture(scope="session")
def rubric_without_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default rubric with the submission policy off: tests of the layers behind it (the
    runtime guard, the sandbox) use it, as an instructor who switched it off would."""
    path = tmp_path_factory.mktemp("rubric-no-policy") / "rubric.toml"
    path.write_text((GRADERS / "rubric.toml").read_text() + "\n[policy]\nenabled = false\n")
    return path


@pytest.fixture(scope="session")
def torch_nn_variant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The oracles (a correct solution written with torch.nn building blocks) as a submission
    folder: a submission's ``__init__.py`` is never run, so the decorator the oracles import
    from theirs becomes a plain one here."""
    dest = tmp_path_factory.mktemp("torch-nn-variant")
    for path in ORACLES.glob("*.py"):
        if path.name != "__init__.py":
            text = path.read_text().replace(
                "from . import recorded\n", "\n\ndef recorded(cls):\n    return cls\n"
            )
            (dest / path.name).write_text(text)
    return dest
