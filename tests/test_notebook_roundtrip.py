"""The notebook workflow end to end: build the assignment notebooks, fill them as a learner
would, grade them (same scores as a folder), run them headless in a real kernel (nbclient,
ipykernel) and read what the "check my work" cells show, and write feedback notebooks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from lg_paths import REFERENCE
from notebooks import RUNNABLE_NOISE, fill

from llm_grade.components import COMPONENTS, MODULES, exactly
from llm_grade.engine.run import grade
from llm_grade.notebook.build import build_notebooks, notebook_name

BUGGY_SOFTMAX = (
    "x_max = x.amax(dim=dim, keepdim=True)",
    "x_max = 0 * x.amax(dim=dim, keepdim=True)",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("course")
    build_notebooks(out)
    return out


def _course(tmp_path: Path, built: Path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(built, course)
    return course


def _buggy_reference(tmp_path: Path) -> Path:
    folder = tmp_path / "buggy"
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "attention.py"
    text = path.read_text()
    assert text.count(BUGGY_SOFTMAX[0]) == 1
    path.write_text(text.replace(*BUGGY_SOFTMAX))
    return folder


def _names(module: str) -> list[str]:
    return [n for n, m in COMPONENTS.items() if m == module]


def _shown(cell) -> str:
    """What a check cell displayed (its HTML, or text)."""
    parts = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        parts.append(data.get("text/html") or data.get("text/plain") or output.get("text", ""))
    return "\n".join(parts)


def _points(html: str) -> tuple[float, float]:
    m = re.search(r'<span class="big">([\d.]+)</span> <span class="of">/ ([\d.]+) points', html)
    assert m, html[:2000]
    return float(m.group(1)), float(m.group(2))


def _run(notebook: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(str(notebook), as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    client.execute()
    return nb


# ------------------------------------------------------------------------- graded as files


@pytest.mark.slow
def test_built_notebooks_filled_with_the_reference_get_full_marks(tmp_path, built):
    course = _course(tmp_path, built)
    for module in MODULES:
        notebook = fill(course / notebook_name(module), REFERENCE)
        names = _names(module)
        result = grade(notebook, isolation="process", quiet=True, select=exactly(names))
        scores = {c.name: (c.score, c.max_score) for c in result.components if c.name in names}
        assert all(s == top for s, top in scores.values()), (module, scores)


def test_an_unfilled_notebook_is_not_implemented_yet(tmp_path, built):
    result = grade(
        _course(tmp_path, built) / notebook_name("attention"),
        isolation="process",
        quiet=True,
        select=exactly(_names("attention")),
    )
    attention = [c for c in result.components if c.name in _names("attention")]
    assert attention and all(c.status == "not_implemented" for c in attention)


# ------------------------------------------------------------------------- in a kernel


def test_check_cells_grade_inline_in_a_real_kernel(tmp_path, built):
    """A headless kernel runs the whole attention notebook: noise, a buggy softmax, and a cell
    that patches torch.allclose *in the kernel* (it runs there: check() never uses it)."""
    course = _course(tmp_path, built)
    notebook = fill(
        course / notebook_name("attention"),
        _buggy_reference(tmp_path),
        noise=RUNNABLE_NOISE,
        extra=[
            "import torch\ntorch.allclose = lambda *a, **k: True\n"
            "torch.testing.assert_close = lambda *a, **k: None",
            'from llm_grade.notebook import check\ncheck("softmax")',
            'check("gelu")',
        ],
    )
    nb = _run(notebook)
    checks = {
        c.metadata["llm_grade"]["component"]: _shown(c)
        for c in nb.cells
        if c.metadata.get("llm_grade", {}).get("role") == "check"
    }
    assert set(checks) == set(_names("attention"))
    for name, html in checks.items():
        assert html.count('class="llm-grade"') == 1, name  # shown once, not twice
        got, top = _points(html)
        assert (got < top) if name == "softmax" else (got == top), (name, got, top)
    assert "read " in checks["softmax"] and "cells this kernel ran" in checks["softmax"]
    assert "adding a constant does not change the result" in checks["softmax"]  # the failure
    # after the kernel's allclose was patched: still the same failing score
    patched, untouched = _shown(nb.cells[-2]), checks["softmax"]
    assert _points(patched) == _points(untouched)
    assert "gelu is not defined yet: run the cell that defines it" in _shown(nb.cells[-1])


@pytest.mark.slow
def test_later_notebooks_load_the_definitions_of_earlier_ones(tmp_path, built):
    course = _course(tmp_path, built)
    for module in ("attention", "feedforward", "normalization"):
        fill(course / notebook_name(module), REFERENCE, noise=[])
    notebook = fill(course / notebook_name("blocks"), REFERENCE, noise=RUNNABLE_NOISE)
    nb = _run(notebook)
    shown = {
        c.metadata["llm_grade"]["component"]: _shown(c)
        for c in nb.cells
        if c.metadata.get("llm_grade", {}).get("role") == "check"
    }
    for name in _names("blocks"):
        got, top = _points(shown[name])
        assert got == top, (name, shown[name][-3000:])
    assert "definitions loaded from 02_attention.ipynb" in shown["EncoderLayer"]


def test_check_outside_jupyter_prints_text(tmp_path):
    script = tmp_path / "work.py"
    source = (REFERENCE / "attention.py").read_text().replace(*BUGGY_SOFTMAX)
    script.write_text(
        source.replace("from __future__ import annotations\n", "")
        + "\n\nfrom llm_grade.notebook import check\nresult = check('softmax')\n"
        "print('SCORE', result.score)\n"
    )
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert "softmax: 4 / 6 points" in run.stdout
    assert "Hint:" in run.stdout and "(read work.py;" in run.stdout
    assert "SCORE 4.0" in run.stdout


# ------------------------------------------------------------------------- feedback notebooks


def test_feedback_notebook_puts_feedback_after_each_graded_cell(tmp_path, built):
    from click.testing import CliRunner

    from llm_grade.cli import main

    notebook = fill(
        _course(tmp_path, built) / notebook_name("attention"), _buggy_reference(tmp_path)
    )
    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("<script>alert('hi')</script> [x](javascript:1)"))
    nb.cells.append(nbformat.v4.new_raw_cell("<img src=x onerror=alert(1)>"))
    nbformat.write(nb, str(notebook))
    out = tmp_path / "feedback" / "attention-feedback.ipynb"
    run = CliRunner().invoke(
        main,
        [
            "grade",
            str(notebook),
            "-q",
            "-k",
            exactly(_names("attention")),
            "--feedback-notebook",
            str(out),
        ],
    )
    assert run.exit_code == 0, run.output
    fb = nbformat.read(str(out), as_version=4)
    nbformat.validate(fb)
    assert fb.cells[0].metadata["llm_grade"]["role"] == "summary"
    assert fb.cells[0].source.startswith("## llm-grade feedback: ")
    for i, cell in enumerate(fb.cells):
        meta = cell.metadata.get("llm_grade", {})
        if meta.get("role") == "feedback":
            stub = fb.cells[i - 1]
            assert stub.metadata["llm_grade"] == {**stub.metadata["llm_grade"], "role": "stub"}
            assert stub.metadata["llm_grade"]["component"] == meta["component"]
    softmax = next(
        c
        for c in fb.cells
        if c.metadata.get("llm_grade", {}).get("component") == "softmax"
        and c.metadata["llm_grade"]["role"] == "feedback"
    )
    assert "`softmax`: 4 / 6 points" in softmax.source and "Hint:" in softmax.source
    page = out.with_suffix(".html").read_text()
    assert "llm-grade feedback" in page
    assert "<script>alert('hi')</script>" not in page and "javascript:1" not in page
    assert "<img src=x onerror" not in page
