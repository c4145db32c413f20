"""Any notebook or script is a submission (llm_grade/notebook/extract.py): the definitions of
its code cells are placed into their modules without running anything, the same code scores the
same as a folder, and a notebook that cannot be read costs one clear line, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from lg_paths import REFERENCE, REPO
from notebooks import as_notebook, batch, fill
from test_bug_catalogue import BUGS  # noqa: E402 (the catalogue of learner bugs)

from llm_grade.cli import main
from llm_grade.engine.run import GradingError, grade
from llm_grade.notebook.build import build_notebooks, notebook_name
from llm_grade.notebook.extract import (
    MAX_SOURCE,
    Cell,
    SourceError,
    extract,
    extract_file,
    script_cells,
)

EXAMPLE = REPO / "examples" / "buggy"


def _nb(path: Path, *cells: str, outputs: str = "") -> Path:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Work")]
        + [nbformat.v4.new_code_cell(c) for c in cells]
    )
    if outputs:
        nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=outputs)]
    nbformat.write(nb, str(path))
    return path


def _cells(*sources: str) -> list[Cell]:
    return [Cell(i, s, f"cell {i + 1}") for i, s in enumerate(sources)]


def _scores(result) -> dict[str, float]:
    return {c.name: c.score for c in result.components}


# ------------------------------------------------------------------------- extraction


def test_later_definitions_win_and_helpers_travel_with_what_uses_them():
    e = extract(
        _cells(
            "import torch\nimport numpy as np  # unused: left out\nfrom torch import nn",
            "def softmax(x, dim=-1):\n    return None  # first try",
            "SCALE, ONE = 2.0, 1\nNEG = float('-inf')\n\ndef _stable(x, dim):\n"
            "    return x - x.amax(dim=dim, keepdim=True) * SCALE / SCALE * ONE",
            "def softmax(x, dim=-1):\n    e = torch.exp(_stable(x, dim))\n"
            "    return e / e.sum(dim=dim, keepdim=True)",
            "class LayerNorm(nn.Module):\n    def forward(self, x):\n        return _stable(x, -1)",
        ),
        "work.ipynb",
    )
    assert sorted(e.modules) == ["attention.py", "normalization.py"]
    attention = e.modules["attention.py"]
    assert "first try" not in attention  # cell 4's softmax replaced cell 2's
    assert attention.count("def softmax") == 1 and "def _stable" in attention
    assert "SCALE, ONE = 2.0, 1" in attention and "NEG" not in attention  # only what is used
    assert "numpy" not in attention and "import torch" in attention
    # the helper is copied into every module that uses it
    assert "def _stable" in e.modules["normalization.py"]
    assert "from torch import nn" in e.modules["normalization.py"]
    assert e.cells == {"softmax": "cell 4", "LayerNorm": "cell 5"}
    for source in e.modules.values():
        compile(source, "module", "exec")


def test_graded_names_of_other_modules_are_imported_and_cycles_cannot_arise():
    e = extract(
        _cells(
            "import torch",
            "def softmax(x, dim=-1):\n    return torch.exp(x) / torch.exp(x).sum(dim, True)",
            # a helper in attention.py that uses a later module's name: imported at the bottom
            "def causal_mask(T, device=None):\n    return _mask(T)\n\n"
            "def _mask(T):\n    return LayerNorm and torch.ones(T, T, dtype=torch.bool).tril()",
            "class LayerNorm(torch.nn.Module):\n    def forward(self, x):\n"
            "        return softmax(x)",
        ),
        "work.ipynb",
    )
    attention, norm = e.modules["attention.py"], e.modules["normalization.py"]
    assert "from .attention import softmax" in norm.split("class LayerNorm")[0]
    assert attention.rstrip().splitlines()[-1].startswith("from .normalization import LayerNorm")


def test_code_that_is_not_a_definition_is_listed_as_not_run():
    e = extract(
        _cells(
            "!pip install einops\n%matplotlib inline\nimport torch",
            "def gelu(x, approximate='none'):\n    return x * 0.5 * (1 + torch.erf(x / 2 ** 0.5))",
            "model = gelu(torch.randn(3))\nprint(model)\nfor step in range(3):\n    pass",
            "torch.allclose = lambda *a, **k: True  # patching the grader: never run",
            "%%bash\necho hi",
            "%%time\nfiles = !ls\ntorch.nn?\ndef _unused():\n    pass",
        ),
        "work.ipynb",
    )
    assert "allclose" not in e.modules["feedforward.py"]
    text = "\n".join(e.not_run)
    for fragment in (
        "cell 1: `!pip install einops`, `%matplotlib inline`",
        "cell 3: `model = gelu(torch.randn(3))`, `print(model)`, `for step in range(3):`",
        "cell 4: `torch.allclose = lambda *a, **k: True",
        "cell 5 (a %%bash cell)",
        "cell 6: `files = !ls`, `torch.nn?`",
    ):
        assert fragment in text
    assert any(n.startswith("Not run by the grader") for n in e.notes())


def test_a_name_set_by_code_that_is_not_run_is_explained():
    e = extract(
        _cells(
            "import torch\nMASK_VALUE = torch.finfo(torch.float32).min\nscale = torch.rand(1)",
            "def softmax(x, dim=-1):\n    x = x * scale + MASK_VALUE * 0\n    return x",
        ),
        "work.ipynb",
    )
    assert "MASK_VALUE = torch.finfo" in e.modules["attention.py"]  # a constant: kept
    (problem,) = e.problems
    assert problem.startswith("scale is set by code the grader does not run (work.ipynb, cell 1")
    assert "attention.py (softmax)" in problem


def test_a_cell_that_does_not_parse_costs_only_its_own_definitions(tmp_path: Path):
    path = _nb(
        tmp_path / "work.ipynb",
        "import torch",
        "def gelu(x, approximate='none')\n    return x",  # missing colon
        "def softmax(x, dim=-1):\n    return torch.exp(x) / torch.exp(x).sum(dim, keepdim=True)",
    )
    e = extract_file(path)
    assert list(e.cells) == ["softmax"]
    assert e.problems == [
        "work.ipynb, cell 3, line 1 does not parse (expected ':'), so no definition in cell 3 "
        "was graded"
    ]


def test_cells_that_python_cannot_even_parse_cost_only_themselves():
    e = extract(
        _cells(
            "X = " + "+".join(["1"] * 200_000),  # deeper than the parser's recursion limit
            "def gelu(x, approximate='none'):\n    return " + "lambda: " * 5000 + "1",
            "def softmax(x, dim=-1):\x00\n    return x",
            "def LayerNorm():\n    return 1",
        ),
        "work.ipynb",
    )
    assert list(e.cells) == ["LayerNorm"]
    first, second, third = e.problems
    assert first.startswith("cell 1 is nested too deeply to be read")
    assert second.startswith("cell 2 is nested too deeply to be read")
    assert "cell 3" in third and "null bytes" in third


def test_scripts_are_cells_too_and_markers_keep_working(tmp_path: Path):
    script = (
        "import torch\n\n# %%\nprint('exploring')\n\n# %% [markdown]\n# def gelu(x): prose\n\n"
        "# %% attention.py\nimport torch\n\ndef softmax(x, dim=-1):\n    return x\n\n"
        "# %%\ndef LayerNorm():\n    return 1\n"
    )
    cells = script_cells(script)
    assert [c.first_line for c in cells] == [1, 3, 9, 15]
    path = tmp_path / "work.py"
    path.write_text(script)
    e = extract_file(path)
    assert e.modules["attention.py"].startswith("# --- work.py, lines 9-14 of work.py ---")
    assert "def LayerNorm" in e.modules["normalization.py"]
    assert "gelu" not in "".join(e.modules.values())
    assert e.not_run == ["work.py, line 4: `print('exploring')`"]
    # a module line maps back to the script's own line
    norm = e.modules["normalization.py"].split("\n")
    at = next(i for i, line in enumerate(norm, 1) if line.startswith("def LayerNorm"))
    assert e.locate("normalization.py", at + 1) == "work.py, line 17"


def test_malformed_notebooks_get_one_clear_line(tmp_path: Path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    with pytest.raises(
        SourceError, match=r"^not a readable Jupyter notebook: it is not valid JSON"
    ):
        extract_file(broken)
    listless = tmp_path / "listless.ipynb"
    listless.write_text('{"cells": 3}')
    with pytest.raises(SourceError, match="has no list of cells"):
        extract_file(listless)
    nothing = _nb(tmp_path / "nothing.ipynb", "import torch\nprint(torch.ones(1))")
    with pytest.raises(SourceError, match="defines none of the graded names.* 1 code cell$"):
        extract_file(nothing)
    unparsable = _nb(tmp_path / "unparsable.ipynb", "def softmax(x:\n    return x")
    with pytest.raises(
        SourceError, match=r"\(work|unparsable.ipynb, cell 2, line 1 does not parse"
    ):
        extract_file(unparsable)


def test_a_40_mb_notebook_is_read_quickly_or_refused_in_one_line(tmp_path: Path):
    import time

    # 40 MB of outputs (plots, logs) beside the code: graded, the outputs never read
    big = _nb(
        tmp_path / "big.ipynb",
        "def gelu(x, approximate='none'):\n    return x",
        "print('log')",
        outputs="x" * (40 * 2**20),
    )
    assert big.stat().st_size > 40 * 2**20
    started = time.perf_counter()
    assert list(extract_file(big).cells) == ["gelu"]
    assert time.perf_counter() - started < 10
    # 40 MB of code: one line
    code = _nb(tmp_path / "code.ipynb", "def gelu(x):\n    return x\n" + "#" * (40 * 2**20))
    with pytest.raises(SourceError, match=f"over {MAX_SOURCE // 2**20} MiB of code"):
        extract_file(code)


# ------------------------------------------------------------------------- grading


# The buggy example as a plain notebook scores as the folder, check by check, in
# tests/test_isolation.py (beside the folder's own process-isolated grade it reuses).


@pytest.mark.parametrize(
    "bug",
    [next(b for b in BUGS if b.module == m) for m in ("attention", "blocks")],
    ids=lambda b: b.id,
)
def test_a_buggy_notebook_loses_what_the_folder_loses(tmp_path: Path, bug):
    folder = tmp_path / "folder"
    shutil.copytree(REFERENCE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / f"{bug.module}.py"
    path.write_text(path.read_text().replace(bug.find, bug.replace, 1))
    notebook = as_notebook(folder, tmp_path / "work.ipynb")
    kw = dict(isolation="process", quiet=True, select=bug.component)
    from_folder, from_notebook = grade(folder, **kw), grade(notebook, **kw)
    assert _scores(from_notebook) == _scores(from_folder)
    assert from_folder.score < from_folder.max_score


def test_a_crash_in_a_notebook_names_the_cell_and_line(tmp_path: Path):
    notebook = _nb(
        tmp_path / "work.ipynb",
        "import torch\nprint('hello')",
        "def softmax(x, dim=-1):\n    e = torch.exp(x)\n    raise KeyError('oops')",
    )
    result = grade(notebook, isolation="process", quiet=True, select="softmax")
    crashed = [c for comp in result.components for c in comp.checks if c.status == "error"]
    assert crashed
    assert 'File "work.ipynb", cell 3, line 3, in softmax' in crashed[0].traceback


def test_hostile_notebook_cells_are_contained(tmp_path: Path):
    hostile = _nb(
        tmp_path / "hostile.ipynb",
        "import os, torch",
        "torch.allclose = lambda *a, **k: True  # top level: never run",
        "def softmax(x, dim=-1):\n    torch.allclose = lambda *a, **k: True\n"
        "    torch.testing.assert_close = lambda *a, **k: None\n    return x",
        "def gelu(x, approximate='none'):\n    os._exit(0)",
    )
    result = grade(hostile, isolation="process", quiet=True, select="softmax or gelu")
    scores = _scores(result)
    assert scores["softmax"] < 3 and scores["gelu"] == 0


def test_grade_cli_reads_notebooks_and_gives_one_line_for_a_broken_one(tmp_path: Path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{nope")
    run = CliRunner().invoke(main, ["grade", str(broken)])
    assert run.exit_code == 1
    assert run.output.strip() == (
        "Error: broken.ipynb: not a readable Jupyter notebook: it is not valid JSON at line 1"
    )
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(GradingError, match="is not a submission folder, zip, notebook"):
        grade(tmp_path / "notes.txt", quiet=True)


@pytest.mark.slow
def test_batch_grades_plain_notebooks_and_scripts(tmp_path: Path):
    klass = tmp_path / "class"
    klass.mkdir()
    as_notebook(REFERENCE, klass / "ann.ipynb", modules=("attention",))
    (klass / "bob.py").write_text(
        "import torch\n\ndef gelu(x, approximate='none'):\n    return x * 0\n\nprint(gelu(1))\n"
    )
    (klass / "carl.ipynb").write_text("{broken")
    _nb(
        klass / "dave.ipynb",
        "import torch",
        "def gelu(x, approximate='none')\n    return x",  # does not parse: costs only gelu
        "def softmax(x, dim=-1):\n    e = torch.exp(x - x.amax(dim, keepdim=True))\n"
        "    return e / e.sum(dim, keepdim=True)",
    )
    course = tmp_path / "course"
    build_notebooks(course)
    fill(course / notebook_name("feedforward"), REFERENCE).rename(klass / "erin.ipynb")
    out = tmp_path / "out"
    run = batch(klass, out, "-k", "softmax or gelu or FeedForward", "--feedback-notebooks")
    assert "carl: not graded: carl.ipynb: not a readable Jupyter notebook" in run.stderr
    ann = json.loads((out / "students" / "ann" / "results.json").read_text())
    bob = json.loads((out / "students" / "bob" / "results.json").read_text())
    scores = {
        name: {c["name"]: sum(t["points"] for t in c["tests"]) for c in data["components"]}
        for name, data in (("ann", ann), ("bob", bob))
    }
    assert scores["ann"]["softmax"] == 6 and scores["bob"]["gelu"] < 4
    dave = json.loads((out / "students" / "dave" / "results.json").read_text())
    assert {c["name"]: sum(t["points"] for t in c["tests"]) for c in dave["components"]} == {
        "softmax": 6,
        "gelu": 0,
        "FeedForward": 0,
    }
    assert dave["origin"]["problems"][0].startswith("dave.ipynb, cell 3, line 1 does not parse")
    # --feedback-notebooks: every notebook submission gets its feedback notebook (scripts not)
    erin = out / "students" / "erin"
    fb = nbformat.read(str(erin / "feedback.ipynb"), as_version=4)
    feedback = [
        c.source for c in fb.cells if c.metadata.get("llm_grade", {}).get("role") == "feedback"
    ]
    assert len(feedback) == 2 and all("✓" in s for s in feedback)
    assert (erin / "feedback.html").is_file()
    assert json.loads((erin / "results.json").read_text())["origin"]["file"] == "erin.ipynb"
    assert (out / "students" / "ann" / "feedback.ipynb").is_file()
    assert not (out / "students" / "bob" / "feedback.ipynb").exists()
    assert bob["origin"]["not_run"] == ["bob.py, line 6: `print(gelu(1))`"]


def test_batch_refuses_a_single_submission_folder(tmp_path: Path):
    run = CliRunner().invoke(main, ["batch", str(REFERENCE), "--out", str(tmp_path / "out")])
    assert (
        run.exit_code == 1 and "is one submission (it holds the curriculum's modules)" in run.output
    )
    assert not (tmp_path / "out").exists()
