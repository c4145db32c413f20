"""The assignment notebooks (llm_grade/notebook/build.py): one per module, built from the stubs.

Static checks only: nothing here runs a cell, imports torch or grades anything.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from lg_paths import GRADERS, STUBS

from llm_grade.components import COMPONENTS, MODULES
from llm_grade.notebook.build import build_notebooks, notebook_name

NAMES = [
    "00_environment.ipynb",
    "01_embeddings.ipynb",
    "02_attention.ipynb",
    "03_feedforward.ipynb",
    "04_normalization.ipynb",
    "05_blocks.ipynb",
    "06_transformer.ipynb",
]
CHECK = "from llm_grade.notebook import check\ncheck({args})"
CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """module -> its notebook, built once with the bundled rubric and no intro."""
    out = tmp_path_factory.mktemp("notebooks")
    paths = build_notebooks(out)
    pairs = zip(MODULES, paths, strict=True)
    return {module: nbformat.read(path, as_version=4) for module, path in pairs}


def role(cell, name: str | None = None) -> str | None:
    meta = cell.metadata.get("llm_grade", {})
    if name is not None and meta.get("component") != name:
        return None
    return meta.get("role")


def cells_of(nb, wanted: str) -> list:
    return [cell for cell in nb.cells if role(cell) == wanted]


def stub_definitions(module: str) -> dict[str, ast.AST]:
    tree = ast.parse((STUBS / f"{module}.py").read_text(encoding="utf-8"))
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def load_definitions_args(source: str) -> list[str] | None:
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "load_definitions"
    ]
    if not calls:
        return None
    assert len(calls) == 1, source
    return [ast.literal_eval(arg) for arg in calls[0].args]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------- files


def test_notebook_name_numbers_modules_in_curriculum_order():
    assert [notebook_name(module) for module in MODULES] == NAMES
    with pytest.raises(ValueError, match="tokenizer"):
        notebook_name("tokenizer")


def test_builds_one_notebook_per_module_in_curriculum_order(tmp_path: Path):
    out = tmp_path / "does" / "not" / "exist"
    paths = build_notebooks(out)
    assert paths == [out / name for name in NAMES]
    assert sorted(p.name for p in out.iterdir()) == NAMES


def test_every_notebook_validates_with_a_python3_kernel(tmp_path: Path):
    for path in build_notebooks(tmp_path):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert (nb.nbformat, nb.nbformat_minor) >= (4, 5)  # cell ids
        assert nb.metadata["kernelspec"] == {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        }
        assert nb.metadata["language_info"]["name"] == "python"


def test_building_does_not_import_torch():
    code = (
        "import sys, tempfile, pathlib\n"
        "from llm_grade.notebook.build import build_notebooks\n"
        "build_notebooks(pathlib.Path(tempfile.mkdtemp()) / 'nb')\n"
        "assert 'torch' not in sys.modules, 'build_notebooks imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_building_twice_raises_and_leaves_the_notebooks_unchanged(tmp_path: Path):
    build_notebooks(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match=r"00_environment\.ipynb"):
        build_notebooks(tmp_path, intro="something new")
    assert snapshot(tmp_path) == before


def test_one_existing_notebook_stops_the_build_before_anything_is_written(tmp_path: Path):
    learner = tmp_path / "03_feedforward.ipynb"
    learner.write_text("my work", encoding="utf-8")
    with pytest.raises(FileExistsError, match=r"03_feedforward\.ipynb") as raised:
        build_notebooks(tmp_path)
    assert "00_environment" not in str(raised.value)  # names only the files that exist
    assert [p.name for p in tmp_path.iterdir()] == ["03_feedforward.ipynb"]
    assert learner.read_text(encoding="utf-8") == "my work"


# ------------------------------------------------------------------------- cells


def test_cell_ids_are_valid_unique_and_every_cell_has_a_role(built):
    roles = {"title", "intro", "setup", "explain", "stub", "check"}
    for module, nb in built.items():
        ids = [cell.id for cell in nb.cells]
        assert len(ids) == len(set(ids)), module
        for cell in nb.cells:
            assert CELL_ID.fullmatch(cell.id), cell.id
            meta = cell.metadata["llm_grade"]
            assert meta["module"] == module
            assert meta["role"] in roles
            assert ("component" in meta) == (meta["role"] in {"explain", "stub", "check"})
        assert [role(c) for c in nb.cells[:2]] == ["title", "setup"]


def test_every_graded_name_has_one_stub_cell_equal_to_the_stub_definition(built):
    seen = []
    for module, nb in built.items():
        definitions = stub_definitions(module)
        for cell in cells_of(nb, "stub"):
            name = cell.metadata["llm_grade"]["component"]
            seen.append(name)
            assert COMPONENTS[name] == module
            tree = ast.parse(cell.source)
            assert len(tree.body) == 1, name
            assert ast.dump(tree.body[0]) == ast.dump(definitions[name]), name
    assert seen == list(COMPONENTS)  # each exactly once, in curriculum order


def test_stub_cells_keep_decorators_docstrings_and_the_not_implemented_body(built):
    greedy = next(c for c in cells_of(built["transformer"], "stub") if role(c, "greedy_decode"))
    assert greedy.source.startswith("@torch.no_grad()\ndef greedy_decode(")
    softmax = next(c for c in cells_of(built["attention"], "stub") if role(c, "softmax"))
    stub_text = (STUBS / "attention.py").read_text(encoding="utf-8")
    assert softmax.source in stub_text  # verbatim, comments and layout included
    assert "raise NotImplementedError(" in softmax.source
    assert '"""Return ``exp(x) / sum(exp(x))``' in softmax.source


def test_each_component_is_explained_then_stubbed_then_checked(built):
    for module, nb in built.items():
        names = [name for name, home in COMPONENTS.items() if home == module]
        setup = next(i for i, c in enumerate(nb.cells) if role(c) == "setup")
        expected = [(name, r) for name in names for r in ("explain", "stub", "check")]
        got = [(c.metadata["llm_grade"]["component"], role(c)) for c in nb.cells[setup + 1 :]]
        assert got == expected, module
        kinds = [c.cell_type for c in nb.cells[setup + 1 :]]
        assert kinds == ["markdown", "code", "code"] * len(names)


def test_check_cells_call_check_with_the_component_name(built):
    for nb in built.values():
        for cell in cells_of(nb, "check"):
            name = cell.metadata["llm_grade"]["component"]
            assert cell.source == CHECK.format(args=f'"{name}"')


def test_explain_cells_say_what_why_and_how_many_points(built):
    for nb in built.values():
        for cell in cells_of(nb, "explain"):
            name = cell.metadata["llm_grade"]["component"]
            assert cell.source.startswith(f"## `{name}`\n")
            why = re.search(r"\*\*Why it matters\.\*\* (\S.{20,})", cell.source)
            assert why, name
            assert re.search(r"\*\*Points:\*\* \d", cell.source), name
            # reST literals became markdown code spans (fences aside)
            assert "``" not in re.sub(r"^ *```$", "", cell.source, flags=re.MULTILINE), name


def test_explain_cells_turn_literal_blocks_into_fenced_code(built):
    cell = next(c for c in cells_of(built["attention"], "explain") if role(c, "causal_mask"))
    assert "Example for `seq_len=3`:\n\n```\n[[ True, False, False]," in cell.source
    assert "::" not in cell.source


def test_title_cells_name_the_section_and_say_how_to_work(built):
    title = cells_of(built["attention"], "title")[0].source
    assert title.startswith("# 1.2-1.4 — Attention from first principles")
    assert "**1.3** Building a single attention head in PyTorch" in title
    assert "Vaswani et al. 2017, section 3.2" in title  # the module docstring's prose
    assert "check my work" in title
    for nb in built.values():
        source = cells_of(nb, "title")[0].source
        assert "## How to work" in source and "sandbox" in source
        assert "``" not in source


def test_setup_cells_keep_the_stub_imports_and_their_comments(built):
    setup = cells_of(built["attention"], "setup")[0].source
    assert "# math.sqrt is what the 1 / sqrt(d_k) scale needs\nimport math" in setup
    assert "import torch\nfrom torch import nn" in setup
    for nb in built.values():
        source = cells_of(nb, "setup")[0].source
        assert "__future__" not in source
        compile(source, "setup", "exec")


def test_setup_cells_load_exactly_the_notebooks_that_define_the_imported_names(built):
    for module, nb in built.items():
        tree = ast.parse((STUBS / f"{module}.py").read_text(encoding="utf-8"))
        imported = [
            alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level
            for alias in node.names
        ]
        homes = {COMPONENTS[name] for name in imported}
        expected = [f"{i:02d}_{m}.ipynb" for i, m in enumerate(MODULES) if m in homes] or None
        setup = cells_of(nb, "setup")[0].source
        assert load_definitions_args(setup) == expected, module
        if expected:
            assert "from llm_grade.notebook import load_definitions" in setup
    # and what that comes to today, so a change to the stubs is noticed here
    assert load_definitions_args(cells_of(built["blocks"], "setup")[0].source) == [
        "02_attention.ipynb",
        "03_feedforward.ipynb",
        "04_normalization.ipynb",
    ]
    assert load_definitions_args(cells_of(built["transformer"], "setup")[0].source) == [
        "01_embeddings.ipynb",
        "02_attention.ipynb",
        "04_normalization.ipynb",
        "05_blocks.ipynb",
    ]


def test_every_code_cell_compiles_and_none_imports_relatively(built):
    for nb in built.values():
        for cell in nb.cells:
            assert not re.search(r"^\s*from \.", cell.source, flags=re.MULTILINE), cell.id
            if cell.cell_type != "code":
                continue
            tree = compile(cell.source, cell.id, "exec", flags=ast.PyCF_ONLY_AST)
            compile(tree, cell.id, "exec")
            relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
            assert not relative, cell.id


# ------------------------------------------------------------------------- options


def test_intro_is_its_own_cell_after_the_title_only_when_given(tmp_path: Path, built):
    intro = "Welcome to **CS 9999**: due Friday at noon."
    for path in build_notebooks(tmp_path, intro=intro):
        nb = nbformat.read(path, as_version=4)
        assert [role(c) for c in nb.cells[:3]] == ["title", "intro", "setup"]
        assert nb.cells[1].cell_type == "markdown"
        assert nb.cells[1].source == intro
        assert sum(intro in c.source for c in nb.cells) == 1
    for nb in built.values():
        assert not cells_of(nb, "intro")
        assert not any("CS 9999" in c.source for c in nb.cells)


def test_points_come_from_the_bundled_rubric_by_default(built):
    # gelu in graders/rubric.toml: 2 + 1 + 1
    title = cells_of(built["feedforward"], "title")[0].source
    assert "| `gelu` | 4 |" in title
    assert "bundled rubric" in title
    explain = next(c for c in cells_of(built["feedforward"], "explain") if role(c, "gelu"))
    assert "**Points:** 4" in explain.source


def test_a_custom_rubric_changes_the_points_and_reaches_the_check_cells(tmp_path: Path):
    text = (GRADERS / "rubric.toml").read_text(encoding="utf-8")
    assert text.count("checks.matches_exact_formula = 2\n") == 1
    rubric = tmp_path / "my rubric.toml"
    rubric.write_text(
        text.replace("checks.matches_exact_formula = 2\n", "checks.matches_exact_formula = 7\n")
    )
    out = tmp_path / "out"
    paths = build_notebooks(out, rubric=rubric)
    nb = nbformat.read(out / "03_feedforward.ipynb", as_version=4)
    title = cells_of(nb, "title")[0].source
    assert "| `gelu` | 9 |" in title  # 7 + 1 + 1
    assert "| **Total** | **13** |" in title  # gelu 9 + FeedForward 4
    assert str(rubric) in title
    explain = next(c for c in cells_of(nb, "explain") if role(c, "gelu"))
    assert "**Points:** 9" in explain.source
    for path in paths:
        for cell in cells_of(nbformat.read(path, as_version=4), "check"):
            name = cell.metadata["llm_grade"]["component"]
            assert cell.source == CHECK.format(args=f'"{name}", rubric="{rubric}"')
