"""Learner-style notebooks made from a folder of modules, for the notebook tests.

:func:`as_notebook` writes what a learner who works in Jupyter would hand in: each module's
imports in one cell, then every top-level definition in a cell of its own (relative imports
left out: a notebook has one namespace), with the noise real notebooks hold between them
(``!pip install``, prints, a training loop, a plot, a ``%%time`` cell).
"""

from __future__ import annotations

import ast
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
