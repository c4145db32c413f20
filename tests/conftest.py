"""Shared fixtures for llm-grade's own tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lg_paths import GRADERS, REFERENCE


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
