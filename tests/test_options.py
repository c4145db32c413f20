"""Every grading option is defined once (llm_grade.engine.options) and every front-end is
generated from that definition; the pytest plugin's options cannot collide with another
project's."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import click
import pytest
from lg_paths import GRADERS, REFERENCE, REPO

from llm_grade.cli import main
from llm_grade.engine.options import (
    DEPRECATED_PYTEST,
    PYTEST_PREFIX,
    WORKER_ARGUMENTS,
    GradingOptions,
    OptionError,
)

NAMES = {f.name for f in fields(GradingOptions)}
# flags that name another option of one command, not the grading option of that spelling:
# batch's --out (the class's output folder) and --jobs/-j (submissions at a time), and
# report's --out (the HTML file)
# classroom init's --submission is a path inside the learner's repository, not the option
SAME_FLAG_OTHER_OPTION = {"llm_grade/cli.py": {"--out", "--jobs", "-j", "--submission"}}
# options of one command that are not grading options (what the command itself does)
COMMAND_ONLY = {
    "grade": {
        "example",
        "fail_under",
        "submission",
        "quiet",
        "verbose",
        "feedback_notebook",
        "help",
    },
    "watch": {"folder", "help"},
    # batch's --jobs is how many submissions are graded at once (each with one process)
    "batch": {
        "submissions",
        "out",
        "jobs",
        "force",
        "feedback_notebooks",
        "executor",
        "scheduler",
        "help",
    },
    "report": {"results_json", "out", "help"},  # --out: the HTML file
}


@pytest.mark.parametrize("command", ["grade", "watch", "batch", "report"])
def test_cli_grading_options_are_generated_from_the_definition(command):
    params = main.commands[command].params
    for param in params:
        generated = getattr(param, "llm_grade_option", None)
        if param.name in COMMAND_ONLY[command]:
            assert generated is None
            continue
        assert generated == param.name in NAMES, f"{command} --{param.name} is hand-written"
        meta = GradingOptions.__dataclass_fields__[param.name].metadata
        if isinstance(param.type, click.Choice) and command == "grade":
            assert tuple(param.type.choices) == meta["choices"]


@pytest.mark.filterwarnings("ignore:A private pytest class")
def test_pytest_options_are_generated_and_namespaced():
    from llm_grade.engine.options import add_deprecated_pytest_options, add_pytest_options

    parser = pytest.Parser()
    add_pytest_options(parser)
    group = parser.getgroup("llm-grade")
    flags = {name for opt in group.options for name in opt.names()}
    expected = {f"--{PYTEST_PREFIX}{f.name.replace('_', '-')}" for f in fields(GradingOptions)}
    expected -= {"--grade-select"}  # pytest's own -k
    assert flags == expected
    assert all(flag.startswith("--grade-") for flag in flags)
    assert all("(default:" in opt.attrs()["help"] for opt in group.options)
    add_deprecated_pytest_options(parser)
    old = {name for opt in group.options for name in opt.names()} - flags
    assert old == {f"--{name}" for name in DEPRECATED_PYTEST}


def _literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is str}


def test_each_option_name_appears_once_in_the_source():
    """No flag of a grading option (``--isolation``, ``--grade-jobs``...) or of the worker
    (``--fd-in``...) is spelled out anywhere in llm_grade/ but the one definition."""
    dashed = {name.replace("_", "-") for name in NAMES}
    spelled = {f"--{name}" for name in dashed} | {f"--{PYTEST_PREFIX}{name}" for name in dashed}
    spelled |= {f"--{n}" for n in DEPRECATED_PYTEST} | {flag for flag, _, _ in WORKER_ARGUMENTS}
    spelled |= {"-j"}
    definition = REPO / "llm_grade" / "engine" / "options.py"
    elsewhere = {}
    for path in (REPO / "llm_grade").rglob("*.py"):
        if path == definition or "_bundled" in path.parts:
            continue
        found = _literals(path) & spelled
        found -= SAME_FLAG_OTHER_OPTION.get(str(path.relative_to(REPO)), set())
        if found:
            elsewhere[str(path.relative_to(REPO))] = sorted(found)
    assert elsewhere == {}


def test_the_worker_parses_exactly_the_worker_arguments():
    from llm_grade.engine.options import worker_argv, worker_parser

    argv = worker_argv("/tmp/submission", 3, 4)
    parsed = worker_parser().parse_args(argv)
    assert (parsed.submission, parsed.fd_in, parsed.fd_out, parsed.threads) == (
        "/tmp/submission",
        3,
        4,
        1,
    )
    source = (REPO / "llm_grade" / "sandbox" / "worker.py").read_text()
    assert "worker_parser()" in source and "add_argument" not in source


def test_values_are_validated_where_they_are_defined():
    with pytest.raises(OptionError, match="device 'tpu'"):
        GradingOptions(device="tpu")
    with pytest.raises(OptionError, match="jobs 3"):
        GradingOptions(jobs=3)
    options = GradingOptions(jobs="2", hide=["a"], out="x")
    assert options.jobs == 2 and options.hide == (Path("a"),) and options.out == Path("x")
    assert GradingOptions(submission=REFERENCE, jobs=2).pytest_args() == [
        f"--grade-submission={REFERENCE}",
        "--grade-jobs=2",
    ]


@pytest.mark.filterwarnings("ignore:A private pytest class")
def test_a_switch_is_a_flag_everywhere():
    assert GradingOptions().train is False
    assert GradingOptions(train="true").train is True  # (an ini file's value)
    assert GradingOptions(train="off").train is False
    with pytest.raises(OptionError, match="train 'maybe': expected true or false"):
        GradingOptions(train="maybe")
    options = GradingOptions(train=True, train_seed=3)
    assert options.pytest_args() == ["--grade-train", "--grade-train-seed=3"]
    assert options.cli_args()[-3:] == ["--train", "--train-seed", "3"]
    assert "--train" not in GradingOptions().cli_args()
    parser = pytest.Parser()
    from llm_grade.engine.options import add_pytest_options

    add_pytest_options(parser)
    parsed = parser.parse(["--grade-train", "--grade-train-seed=3"])
    assert (parsed.grade_train, parsed.grade_train_seed) == (True, "3")
    assert parser.parse([]).grade_train is None  # not given: the ini file, else the default


def test_an_unrelated_project_with_its_own_device_option_runs(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "def pytest_addoption(parser):\n"
        "    parser.addoption('--device', default='cpu')\n"
        "    parser.addoption('--submission', default='none')\n"
    )
    (tmp_path / "test_mine.py").write_text(
        "def test_device(pytestconfig):\n"
        "    assert pytestconfig.getoption('device') == 'tpu'\n"
        "    assert pytestconfig.getoption('submission') == 'mine'\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device", "tpu"]
        + ["--submission", "mine"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert "--grade-submission" in helped.stdout  # the plugin is there, namespaced


def test_the_old_spellings_still_grade_and_say_they_are_deprecated():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(GRADERS), "-p", "no:cacheprovider", "-q"]
        + ["--submission", str(REFERENCE), "-k", "softmax"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^6 checks: 6 passed", run.stdout, re.MULTILINE), run.stdout
    assert "--submission is deprecated: use --grade-submission" in run.stdout


def test_loading_the_plugin_costs_other_projects_no_torch_import():
    """Every pytest run in the environment loads the plugin (pytest11): it must stay light;
    and a run imports torch only after it has started the second group's process."""
    code = (
        "import sys, llm_grade.engine.plugin, llm_grade.engine.run, llm_grade.engine.session; "
        "print('torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
