"""Learner-style notebooks made from a folder of modules, for the notebook tests.

:func:`as_notebook` writes what a learner who works in Jupyter would hand in: each module's
imports in one cell, then every top-level definition in a cell of its own (relative imports
left out: a notebook has one namespace), with the noise real notebooks hold between them
(``!pip install``, prints, a training loop, a plot, a ``%%time`` cell).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat

from llm_grade.components import MODULES

NOISE = [
    "!pip install -q einops",
    "%matplotlib inline\nimport torch\nprint(torch.__version__)",
    "x = torch.randn(2, 3, 8)\nprint(x.shape)",
    "for epoch in range(3):\n    loss = (x ** 2).mean()\n    print(epoch, loss.item())",
    "%%time\ny = torch.ones(3)\ny.sum()",
]


def module_cells(source: str) -> list[str]:
    """One module as cells: its (non-relative) imports, then one cell per definition."""
    tree = ast.parse(source)
    lines = source.split("\n")
    imports, defs = [], []
    for node in tree.body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        text = "\n".join(lines[first - 1 : node.end_lineno])
        if isinstance(node, ast.ImportFrom) and (node.level or node.module == "__future__"):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(text)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        else:
            defs.append(text)
    return ["\n".join(imports), *defs] if imports else defs


def as_notebook(folder: Path, path: Path, *, noise: bool = True, modules=MODULES) -> Path:
    """Write the modules of ``folder`` as a plain learner notebook (no markers) at ``path``."""
    cells = [nbformat.v4.new_markdown_cell("# My Transformer")]
    n = 0
    for module in modules:
        file = Path(folder) / f"{module}.py"
        if not file.is_file():
            continue
        cells.append(nbformat.v4.new_markdown_cell(f"## {module}"))
        for source in module_cells(file.read_text(encoding="utf-8")):
            cells.append(nbformat.v4.new_code_cell(source))
            if noise:
                cells.append(nbformat.v4.new_code_cell(NOISE[n % len(NOISE)]))
                n += 1
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


def definitions(module: str, folder: Path) -> dict[str, str]:
    """Name -> source of each top-level function and class of ``folder/module.py``."""
    source = (Path(folder) / f"{module}.py").read_text(encoding="utf-8")
    lines = source.split("\n")
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
    return found


# noise that a kernel can run here too (no network: pip fails at once)
RUNNABLE_NOISE = [
    "!pip install --no-index -q a-package-that-is-not-there || echo 'no pip today'",
    "import torch\nprint(torch.ones(2))",
    "x = torch.randn(2, 3, 8)\nfor epoch in range(3):\n    loss = (x ** 2).mean()\n"
    "    print(epoch, loss.item())",
    "%%time\ny = torch.ones(3)\ny.sum()",
]


def fill(notebook: Path, folder: Path, *, noise=NOISE, extra=()) -> Path:
    """Fill a built assignment notebook's stub cells with ``folder``'s code (its helpers go in
    a cell after the setup cell), add noise cells, and ``extra`` code cells at the end."""
    nb = nbformat.read(str(notebook), as_version=4)
    module = nb.metadata["llm_grade"]["module"]
    code = definitions(module, folder)
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("llm_grade", {})
        if meta.get("role") == "stub":
            cell.source = code.pop(meta["component"])
        cells.append(cell)
        if meta.get("role") == "setup":
            helpers = [src for name, src in code.items() if name.startswith("_")]
            for name in [n for n in code if n.startswith("_")]:
                code.pop(name)
            if helpers:
                cells.append(nbformat.v4.new_code_cell("\n\n\n".join(helpers)))
        if noise and meta.get("role") == "check":
            cells.append(nbformat.v4.new_code_cell(noise[len(cells) % len(noise)]))
    cells += [nbformat.v4.new_code_cell(src) for src in extra]
    nb.cells = cells
    nbformat.write(nb, str(notebook))
    return notebook


def batch(klass: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """``llm-grade batch KLASS --out OUT ARGS`` in a fresh process, as a TA runs it."""
    return subprocess.run(
        [sys.executable, "-m", "llm_grade", "batch", str(klass), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
