"""``llm-grade watch``: the static import graph, which components a save re-grades, the
table of what changed, and the loop itself on real gradings of a copy of the stubs."""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from llm_grade.components import COMPONENTS
from llm_grade.engine.options import GradingOptions
from llm_grade.engine.results import CheckResult, ComponentResult, GradeResult
from llm_grade.engine.watch import affected_components, format_changes, watch
from llm_grade.paths import bundled
from llm_grade.policy.imports import dependents, module_imports

OPTIONS = GradingOptions(isolation="process", select=None)
NORMALIZATION = [n for n, m in COMPONENTS.items() if m == "normalization"]
# the modules that import normalization in the stubs: blocks and transformer
IMPORTERS = [n for n, m in COMPONENTS.items() if m in ("blocks", "transformer")]


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    dest = tmp_path / "my-llm"
    shutil.copytree(bundled("stubs"), dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


# ---------------------------------------------------------------- the import graph


def test_module_imports_reads_every_spelling_of_a_sibling_import():
    graph = module_imports(
        {
            "blocks": "from .attention import MultiHeadAttention\nfrom . import feedforward\n",
            "transformer": "from .blocks import *\nimport torch\n",
            "normalization": "import attention\nfrom embeddings import TokenEmbedding\n",
            "feedforward": "def f():\n    from .environment import get_device\n",
            "embeddings": "import torch.nn\nfrom .embeddings import x\nfrom .helpers import y\n",
            "environment": "from ..attention import softmax\nimport math\n",
        }
    )
    assert graph == {
        "blocks": {"attention", "feedforward"},
        "transformer": {"blocks"},
        "normalization": {"attention", "embeddings"},
        "feedforward": {"environment"},  # inside a function still counts
        "embeddings": set(),  # itself, torch and a non-curriculum helper do not
        "environment": set(),  # outside the submission's package
    }


def test_a_file_that_does_not_parse_imports_nothing():
    graph = module_imports({"attention": "def broken(:\n", "blocks": "from .attention import x"})
    assert graph == {"attention": set(), "blocks": {"attention"}}
    assert module_imports({"attention": "x = 1\0"}) == {"attention": set()}


def test_dependents_are_transitive_and_survive_a_cycle():
    graph = {
        "attention": set(),
        "blocks": {"attention"},
        "transformer": {"blocks"},
        "embeddings": {"normalization"},
        "normalization": {"embeddings"},  # a cycle
    }
    assert dependents(graph, {"attention"}) == {"attention", "blocks", "transformer"}
    assert dependents(graph, {"embeddings"}) == {"embeddings", "normalization"}
    assert dependents(graph, {"transformer"}) == {"transformer"}
    assert dependents(graph, set()) == set()


# ---------------------------------------------------------------- what a save re-grades


def _drop_attention_imports(folder: Path) -> None:
    for name in ("blocks.py", "transformer.py"):
        path = folder / name
        text = re.sub(r"^from \.attention import .*\n", "", path.read_text(), flags=re.M)
        path.write_text(text)


def test_editing_attention_regrades_what_imports_it(stubs: Path):
    attention = [n for n, m in COMPONENTS.items() if m == "attention"]
    _drop_attention_imports(stubs)
    assert affected_components(stubs, {stubs / "attention.py"}) == attention

    blocks = stubs / "blocks.py"
    blocks.write_text("from .attention import MultiHeadAttention\n" + blocks.read_text())
    # transformer.py imports blocks, so it depends on attention through it
    assert affected_components(stubs, {stubs / "attention.py"}) == attention + IMPORTERS


def test_files_the_grader_does_not_read_affect_nothing(stubs: Path):
    (stubs / "helpers.py").write_text("x = 1\n")
    (stubs / "sub").mkdir()
    (stubs / "sub" / "attention.py").write_text("x = 1\n")
    assert affected_components(stubs, {stubs / "helpers.py", stubs / "sub" / "attention.py"}) == []
    assert affected_components(stubs, {stubs / "notes.txt"}) == []
    assert affected_components(stubs, {stubs / "environment.py", stubs / "helpers.py"}) == [
        "get_device",
        "count_parameters",
    ]


# ---------------------------------------------------------------- the table


def _result(scores: dict[str, tuple[float, float, str]]) -> GradeResult:
    components = [
        ComponentResult(
            name,
            COMPONENTS[name],
            [CheckResult("c", name, "t", status, got, top)],
        )
        for name, (got, top, status) in scores.items()
    ]
    return GradeResult("sub", components, 0.0, {})


def test_the_table_marks_what_moved_and_nothing_else():
    before = _result(
        {
            "softmax": (2.5, 6, "failed"),
            "gelu": (4, 4, "passed"),
            "LayerNorm": (6, 6, "passed"),
            "AddNorm": (0, 4, "not_implemented"),
        }
    )
    after = _result(
        {
            "softmax": (6, 6, "passed"),
            "gelu": (4, 4, "passed"),
            "LayerNorm": (3, 6, "failed"),
            "AddNorm": (0, 4, "failed"),
        }
    )
    table = format_changes(before, after, {"softmax", "LayerNorm", "AddNorm"})
    rows = {line.split()[0]: line for line in table.splitlines()}
    assert re.search(r"softmax \(all checks pass\) +2\.5 → 6 / 6 +▲$", rows["softmax"])
    assert re.search(r"LayerNorm \(1 of 1 checks fail\) +6 → 3 / 6 +▼$", rows["LayerNorm"])
    assert rows["AddNorm"].endswith("•")  # same points, no longer "not implemented yet"
    assert re.search(r"gelu \(all checks pass\) +4 / 4$", rows["gelu"])
    assert re.search(r"^Total +12\.5 → 13 / 20 +▲ \(\+0\.5\)$", rows["Total"])
    assert "Re-graded 3 of 4 components" in table
    assert all(len(line) <= 100 for line in table.splitlines())
    assert "\x1b" not in table

    first = format_changes(None, after, {c.name for c in after.components})
    assert "→" not in first and "▲" not in first and "Re-graded" not in first


# ---------------------------------------------------------------- the loop, really grading


def _write_reference_layernorm(folder: Path) -> None:
    """Replace the stub's LayerNorm class by the reference's (same imports, same place)."""

    def segment(text: str) -> str:
        tree = ast.parse(text)
        node = next(n for n in tree.body if getattr(n, "name", None) == "LayerNorm")
        return ast.get_source_segment(text, node)

    reference = (bundled("reference") / "normalization.py").read_text()
    path = folder / "normalization.py"
    text = path.read_text()
    path.write_text(text.replace(segment(text), segment(reference)))


def _tables(output: str) -> list[str]:
    return re.findall(r"^Component .*?^Total .*?$", output, flags=re.M | re.S)


@pytest.mark.slow
def test_a_save_regrades_the_changed_module_and_its_importers(stubs: Path):
    printed: list[str] = []

    def changes():
        _write_reference_layernorm(stubs)  # after the first grading, before the batch
        yield {stubs / "normalization.py"}

    watch(stubs, OPTIONS, echo=printed.append, changes=changes())
    output = "\n".join(printed)
    first, second = _tables(output)
    assert re.search(r"LayerNorm \(not implemented yet\) +0 / (\d+)$", first, flags=re.M)
    top = re.search(r"LayerNorm .* / (\d+)", first).group(1)
    assert re.search(rf"LayerNorm \(all checks pass\) +0 → {top} / {top} +▲$", second, re.M)
    assert re.search(r"^Total +0 → [\d.]+ / 100 +▲ \(\+[\d.]+\)$", second, flags=re.M)

    header = next(line for line in printed if "changed" in line)
    assert header.strip() == (
        f"— normalization.py changed: re-grading {len(NORMALIZATION)} components "
        f"(and {len(IMPORTERS)} that import it) —"
    )
    # what was re-graded is what the learner is told about again: the failures printed
    # between the header and the second table
    after = output.split(header, 1)[1].split("\nComponent ", 1)[0]
    told = set(re.findall(r"^(\w+) — ", after, flags=re.M))
    assert told == set(NORMALIZATION + IMPORTERS) - {"LayerNorm"}
    assert f"Re-graded {len(NORMALIZATION + IMPORTERS)} of {len(COMPONENTS)}" in output
    assert printed[-1] == "Stopped watching."


def test_grading_errors_and_ctrl_c_end_nothing_badly(tmp_path: Path):
    printed: list[str] = []
    missing = tmp_path / "missing"

    def changes():
        missing.mkdir()
        (missing / "environment.py").write_text("x = 1\n")
        yield {missing / "environment.py"}
        raise KeyboardInterrupt

    # the folder does not exist yet: the first grading fails and watching goes on
    watch(
        missing,
        OPTIONS.replace(rubric=tmp_path / "no-rubric.toml"),
        echo=printed.append,
        changes=changes(),
    )
    errors = [line for line in printed if line.startswith("Could not grade missing:")]
    assert len(errors) == 2  # the missing folder, then the missing rubric
    assert printed[-1] == "Stopped watching."


def test_ctrl_c_while_grading_stops_watching(stubs: Path, monkeypatch):
    """pytest.main swallows Ctrl-C (an exit status, a GradingError): watching must stop
    anyway, not print the error and wait for the next save."""
    from llm_grade.engine.session import GradingSession

    printed: list[str] = []
    before = signal.getsignal(signal.SIGINT)  # (pytest-xdist's workers ignore SIGINT)
    opened = GradingSession.submission

    def ctrl_c_mid_grading(self):  # the first check's fixture: grading has started
        os.kill(os.getpid(), signal.SIGINT)
        return opened(self)

    monkeypatch.setattr(GradingSession, "submission", ctrl_c_mid_grading)
    watch(stubs, OPTIONS, echo=printed.append, changes=[{stubs / "attention.py"}])
    assert printed == ["Stopped watching."]
    assert signal.getsignal(signal.SIGINT) is before


def test_the_file_watcher_sees_a_save(stubs: Path):
    """The real watchfiles path, in a thread, stopped by its stop event."""
    printed: list[str] = []
    tables = threading.Semaphore(0)

    def echo(text: str) -> None:
        printed.append(text)
        if text.startswith("Component "):
            tables.release()

    stop = threading.Event()
    options = OPTIONS.replace(select="get_device or count_parameters")  # a quick grading
    thread = threading.Thread(
        target=watch,
        args=(stubs, options),
        kwargs={"echo": echo, "debounce_ms": 50, "stop_event": stop},
    )
    thread.start()
    try:
        assert tables.acquire(timeout=120), printed
        # the watcher starts right after the first table: save until it sees one
        deadline = time.monotonic() + 60
        while not any("changed" in line for line in printed):
            assert time.monotonic() < deadline, printed
            with open(stubs / "environment.py", "a") as file:
                file.write("\n# saved\n")
            (stubs / "notes.txt").write_text("not python")
            time.sleep(0.5)
        assert tables.acquire(timeout=120), printed
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    header = next(line for line in printed if "changed" in line)
    assert "environment.py changed: re-grading 2 components —" in header
    assert printed[-1] == "Stopped watching."
