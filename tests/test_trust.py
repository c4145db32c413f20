"""The trust boundary's own rules, tested without grading a whole submission: what a worker
is sent, what staging copies, what the forbidden-API scan knows, what text survives."""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lg_paths import REFERENCE, STUBS

from llm_grade.classroom.staging import stage_folder
from llm_grade.components import COMPONENTS, parts_of
from llm_grade.engine.groups import absolute_args as _absolute_args
from llm_grade.engine.rubric import DEFAULT_FORBIDDEN
from llm_grade.oracles import source_of
from llm_grade.output.text import clean_text
from llm_grade.policy.forbidden import scan_sources
from llm_grade.sandbox.executor import Executor
from llm_grade.sandbox.forbidden import (
    FAMILY_OPS,
    TWINS,
    expand,
)
from llm_grade.sandbox.handle import Submission

ORDER = list(COMPONENTS)


def _graded_names_in(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)} & set(COMPONENTS)


@pytest.mark.parametrize("component", COMPONENTS)
def test_parts_come_before_their_wholes_and_cover_what_reference_and_oracles_use(component):
    parts = parts_of(component)
    assert component not in parts
    assert all(ORDER.index(p) < ORDER.index(component) for p in parts)
    oracle_uses = _graded_names_in(source_of(component)) - {component}
    assert oracle_uses <= set(parts), f"the oracle {component} uses {oracle_uses - set(parts)}"
    module = __import__(f"reference.{COMPONENTS[component]}", fromlist=[component])
    reference_uses = _graded_names_in(inspect.getsource(getattr(module, component)))
    assert reference_uses - {component} <= set(parts)


def test_a_worker_is_sent_only_the_parts_of_what_it_grades():
    executor = Executor(REFERENCE)
    sub = Submission(REFERENCE, executor.handle, "none")
    sub.use_oracles(list(parts_of("MultiHeadAttention")))
    sub.flush()
    assert set(executor.oracles) == {"softmax", "scaled_dot_product_attention"}
    sub.use_oracles(list(parts_of("EncoderLayer")))
    sub.flush()
    assert "MultiHeadAttention" in executor.oracles and "EncoderLayer" not in executor.oracles
    # the oracles run from source, not from an importable module of the engine
    assert all(type(obj).__module__ != "llm_grade.oracles" for obj in executor.oracles.values())
    assert executor.oracles["softmax"].__module__ == "llm_grade_oracles"


def test_staging_copies_only_the_regular_module_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for path in REFERENCE.glob("*.py"):
        (src / path.name).write_text(path.read_text())
    (src / "__init__.py").write_text("raise SystemExit('never run')\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "attention.cpython-311.pyc").write_bytes(b"\x00" * 32)
    (src / ".hidden.py").write_text("x = 1\n")
    (src / "attention.py").unlink()
    os.symlink(REFERENCE / "attention.py", src / "attention.py")
    staged = stage_folder(src, tmp_path / "staged")
    names = sorted(p.name for p in staged.root.iterdir())
    assert "attention.py" not in names and "__init__.py" not in names
    assert names == sorted(f"{m}.py" for m in set(COMPONENTS.values()) if m != "attention")
    assert not any(p.is_symlink() for p in staged.root.iterdir())
    assert set(staged.sources) == set(names) and all(len(h) == 64 for h in staged.sources.values())
    assert any("symbolic link" in n for n in staged.notes) and staged.skipped == ["attention.py"]
    assert any("__init__.py" in n for n in staged.notes)


def test_arguments_for_a_process_started_elsewhere_become_absolute(tmp_path):
    (tmp_path / "my-llm").mkdir()
    (tmp_path / "graders").mkdir()
    args = ["graders", "--submission=my-llm", "-k", "my-llm", "--submission", "my-llm", "-q"]
    out = _absolute_args(args, tmp_path)
    assert out[0] == str(tmp_path / "graders")
    assert out[1] == f"--submission={tmp_path / 'my-llm'}"
    assert out[2:4] == ["-k", "my-llm"]  # a -k expression is never a path
    assert out[5] == str(tmp_path / "my-llm") and out[-1] == "-q"


@pytest.mark.parametrize(
    "body, api",
    [
        ("return x.log_softmax(dim).exp()", "torch.Tensor.log_softmax"),
        ("return F.softmin(-x, dim)", "torch.nn.functional.softmin"),
        ("return nn.Softmax(dim)(x)", "torch.nn.Softmax"),
        ("return getattr(F, 'softmax')(x, dim)", "torch.nn.functional.softmax"),
        ("return _SM(x, dim)", "torch.nn.functional.softmax"),
        ("return _helper(x, dim)", "torch.nn.functional.softmax"),
        ("return torch.special.log_softmax(x, dim).exp()", "torch.special.log_softmax"),
    ],
)
def test_a_forbidden_api_is_found_under_any_of_its_names(body, api):
    source = (
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
        "_SM = F.softmax\n\n"
        "def _helper(x, dim):\n    return _SM(x, dim)\n\n"
        f"def softmax(x, dim=-1):\n    {body}\n"
    )
    found = scan_sources({"attention": source}, DEFAULT_FORBIDDEN)
    assert [(v.component, v.api) for v in found if v.api == api] == [("softmax", api)]


def test_a_graded_name_is_not_followed_as_a_helper():
    # MultiHeadAttention may call the learner's softmax; softmax's own calls are softmax's
    source = (
        "import torch.nn.functional as F\n"
        "def softmax(x, dim=-1):\n    return F.softmax(x, dim)\n"
        "def scaled_dot_product_attention(q, k, v, mask=None):\n"
        "    w = softmax(q @ k.transpose(-2, -1))\n    return w @ v, w\n"
    )
    found = scan_sources({"attention": source}, DEFAULT_FORBIDDEN)
    assert {v.component for v in found} == {"softmax"}


@pytest.mark.parametrize("family", list(FAMILY_OPS))
def test_every_forbidden_family_runs_an_op_the_runtime_layer_knows(family):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    x = torch.randn(2, 3, 8)
    calls = {
        "torch.softmax": [
            lambda: F.softmax(x, -1),
            lambda: x.log_softmax(-1),
            lambda: F.softmin(x, -1),
        ],
        "torch.nn.functional.layer_norm": [
            lambda: F.layer_norm(x, (8,)),
            lambda: F.group_norm(x.reshape(6, 8), 1),
            lambda: F.instance_norm(x.reshape(6, 1, 8)),
        ],
        "torch.nn.functional.gelu": [lambda: F.gelu(x), lambda: F.gelu(x, approximate="tanh")],
        "torch.nn.functional.scaled_dot_product_attention": [
            lambda: F.scaled_dot_product_attention(x, x, x),
            lambda: F.scaled_dot_product_attention(x.double(), x.double(), x.double()),
        ],
    }[family]
    for call in calls:
        record = Record()
        with record:
            call()
        assert record.seen & FAMILY_OPS[family], (family, record.seen)
    assert family in TWINS


def test_expanding_a_rubric_pattern_adds_its_twins_and_nothing_unrelated():
    assert "torch.nn.functional.log_softmax" in expand(["torch.softmax"])
    assert "torch.nn.functional.group_norm" in expand(["torch.nn.LayerNorm"])
    assert expand(["torch.nn.Transformer*"]) == ["torch.nn.Transformer*"]


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("plain text", "plain text"),
        ("\x1b[2J\x1b[Hcleared", "cleared"),
        ("\x1b]0;window title\x07after", "after"),
        ("line\rrewritten", "linerewritten"),
        ("keeps\nnewlines\tand tabs", "keeps\nnewlines\tand tabs"),
        ("evil\u202etxt.py", "eviltxt.py"),
        ("\u2066isolate\u2069", "isolate"),
        ("\x9b2Jc1", "c1"),
        ("nul\x00bell\x07del\x7f", "nulbelldel"),
        ("ünïcode ✓ stays", "ünïcode ✓ stays"),
    ],
)
def test_learner_text_loses_escapes_and_control_characters(raw, shown):
    assert clean_text(raw) == shown


def test_a_check_result_is_clean_whatever_it_was_built_from():
    from llm_grade.engine.results import CheckResult

    result = CheckResult(
        "x", "softmax", "t", "error", 0, 1, message="\x1b[31mred\x1b[0m", traceback="a\u202eb"
    )
    assert result.message == "red" and result.traceback == "ab"


def test_stubs_and_reference_stage_whole(tmp_path):
    for src in (REFERENCE, STUBS):
        staged = stage_folder(src, tmp_path / src.name)
        assert len(staged.sources) == len(set(COMPONENTS.values()))
        assert staged.notes == [] or all("__init__.py" in n for n in staged.notes)


def test_the_worker_masks_every_installed_copy_of_trusted_code():
    from llm_grade.sandbox.confine import trusted_paths

    paths = {p.as_posix() for p in trusted_paths()}
    package = Path(__import__("llm_grade").__file__).resolve().parent
    assert (package / "oracles").as_posix() in paths
    for p in paths:
        assert Path(p).is_dir()


def test_a_student_name_with_control_characters_is_cleaned_and_says_so(tmp_path):
    from llm_grade.classroom.staging import find_submissions

    for name in ("alice", "bob\x1b[2J\u202e"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "attention.py").write_text("x = 1\n")
    found = {s.name: s for s in find_submissions(tmp_path)}
    assert set(found) == {"alice", "bob"}
    assert "control characters" in found["bob"].note
