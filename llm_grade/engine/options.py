"""Every grading option, defined once.

:class:`GradingOptions` is the one definition of what a grading run can be asked to do: each
field carries its type, default, help and allowed values. Every front-end is generated from
it: the click options of ``llm-grade grade`` and ``llm-grade batch`` (:func:`click_options`),
the pytest plugin's ``--grade-*`` options and ``grade_*`` ini keys (:func:`add_pytest_options`),
the command lines a run hands to another process (:meth:`GradingOptions.pytest_args` for the
second group's helper, :meth:`GradingOptions.cli_args` for batch's per-submission runs), and
the worker's arguments (:data:`WORKER_ARGUMENTS`). A later front-end (a notebook, a
Classroom workflow) builds a ``GradingOptions`` and calls :func:`llm_grade.engine.run.grade`.

Trusted side, but imported by the worker too (for its argument table): nothing here imports
torch, pytest or click at module level.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PYTEST_PREFIX = "grade-"  # pytest: --grade-NAME on the command line, grade_NAME in an ini file
# pre-0.2 spellings of the pytest options (kept for one release; registered by the graders'
# conftest only, so they never collide with another project's options)
DEPRECATED_PYTEST = {
    "submission": "submission",
    "rubric": "rubric",
    "isolation": "isolation",
    "device": "device",
}


class OptionError(ValueError):
    """An option's value is not one it accepts (the message names the option)."""


_UNSET: Any = object()


def option(
    default: Any,
    help: str,
    *,
    kind: type = str,
    choices: tuple[str, ...] = (),
    low: int | None = None,
    high: int | None = None,
    multiple: bool = False,
    cli: tuple[str, ...] | None = (),
    cli_default: Any = _UNSET,
    pytest: bool = True,
    metavar: str | None = None,
    exists: bool = False,
) -> Any:
    """A :class:`GradingOptions` field: ``cli`` are the click flag spellings (``()``: the
    default ``--name``; ``None``: not a command-line option, e.g. the submission argument);
    ``cli_default`` where the command line differs from the engine's default."""
    meta = {
        "help": help,
        "kind": kind,
        "choices": choices,
        "low": low,
        "high": high,
        "multiple": multiple,
        "cli": cli,
        "cli_default": default if cli_default is _UNSET else cli_default,
        "pytest": pytest,
        "metavar": metavar,
        "exists": exists,  # a path option that must name an existing file (command line)
    }
    if multiple:
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _default_jobs() -> int:
    return 2 if (os.cpu_count() or 1) >= 2 else 1


@dataclass(frozen=True)
class GradingOptions:
    """What one grading run is asked to do (validated on construction)."""

    submission: Path | None = option(
        None,
        "folder with the learner's modules (default: the bundled stubs/ folder)",
        kind=Path,
        cli=None,
        metavar="DIR",
    )
    rubric: Path | None = option(
        None,
        "rubric TOML file (default: the bundled graders/rubric.toml)",
        kind=Path,
        metavar="FILE",
        exists=True,
    )
    out: Path | None = option(
        None,
        "write results.json (and the pictures' data) into this folder",
        kind=Path,
        metavar="DIR",
    )
    isolation: str = option(
        "none",
        "where learner code runs: 'process' (a sandboxed worker; the score can be trusted) "
        "or 'none' (inside the grading process; fast, for local iteration, not tamper-proof)",
        choices=("process", "none"),
        cli_default="process",
    )
    sandbox: str = option(
        "auto",
        "with isolation 'process': 'bubblewrap' requires the sandbox, 'none' runs the worker "
        "with resource limits only, 'auto' uses bubblewrap where it works (the results say "
        "which)",
        choices=("auto", "bubblewrap", "none"),
    )
    hide: tuple[Path, ...] = option(
        (),
        "a folder learner code must not see (repeatable; batch hides the class folder and "
        "its output this way)",
        kind=Path,
        multiple=True,
        metavar="DIR",
    )
    view: str = option(
        "learner",
        "'learner' hides hidden checks' details, 'instructor' shows them",
        choices=("learner", "instructor"),
    )
    jobs: int = option(
        1,
        "grading processes (1 or 2): 2 grades the second of the two fixed groups of checks "
        "in a second process with its own worker; the score does not depend on it. "
        "Default of the command line and of pytest graders/ (but under --pdb): 2 on a "
        "machine with two or more cores",
        kind=int,
        low=1,
        high=2,
        cli=("--jobs", "-j"),
        cli_default=None,  # resolved by the command: see _default_jobs
    )
    device: str = option(
        "cpu",
        "where learner code runs its tensors: cpu (the same scores on every machine), cuda, "
        "mps, or auto (cuda, else mps, else cpu); on a GPU, tolerances follow the rubric's "
        "[tolerance.cuda]",
        choices=("cpu", "cuda", "mps", "auto"),
    )
    select: str | None = option(
        None,
        "only grade checks matching this pytest -k expression, e.g. MultiHeadAttention",
        cli=("-k", "select"),
        pytest=False,  # pytest's own -k
        metavar="EXPR",
    )
    train: bool = option(
        False,
        "also train your GPT and Transformer on small synthetic tasks (a few hundred AdamW "
        "steps each, about 20 s) and report how well they learned them next to the "
        "reference: informational, no points",
        kind=bool,
    )
    train_seed: int = option(
        0,
        "with --train: the seed of the models' first weights, the batches and the held-out inputs",
        kind=int,
        low=0,
        high=2**31 - 1,
        metavar="N",
    )
    part: Path | None = option(
        None,
        "internal: run only the second group of checks and save its results in this folder",
        kind=Path,
        cli=None,
        metavar="DIR",
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["multiple"]:
                value = tuple(_convert(f, v) for v in (value or ()))
            else:
                value = _convert(f, value)
            object.__setattr__(self, f.name, value)

    def replace(self, **changes: Any) -> GradingOptions:
        return dataclasses.replace(self, **changes)

    def changed(self) -> dict[str, Any]:
        """The options that differ from the engine's defaults."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != GradingOptions.__dataclass_fields__[f.name].default
            and not (f.metadata["multiple"] and not getattr(self, f.name))
        }

    def pytest_args(self) -> list[str]:
        """These options as pytest arguments (``--grade-NAME=VALUE``; ``-k`` for select)."""
        args: list[str] = []
        for name, value in self.changed().items():
            f = GradingOptions.__dataclass_fields__[name]
            if not f.metadata["pytest"]:
                if name == "select":
                    args += ["-k", value]
                continue
            flag = f"--{PYTEST_PREFIX}{_dashed(name)}"
            if f.metadata["kind"] is bool:  # (changed: so on)
                args.append(flag)
            elif f.metadata["multiple"]:
                args += [f"{flag}={v}" for v in value]
            else:
                args.append(f"{flag}={value}")
        return args

    def cli_args(self) -> list[str]:
        """These options as ``llm-grade grade`` arguments (every command-line option given,
        so the command's own defaults do not apply)."""
        args: list[str] = []
        for f in fields(self):
            flags = f.metadata["cli"]
            value = getattr(self, f.name)
            if flags is None or value is None or (f.metadata["multiple"] and not value):
                continue
            flag = flags[0] if flags else f"--{_dashed(f.name)}"
            if f.metadata["kind"] is bool:
                args += [flag] if value else []
                continue
            values = value if f.metadata["multiple"] else (value,)
            for v in values:
                args += [flag, str(v)]
        return args


def _convert(f: dataclasses.Field, value: Any) -> Any:
    meta = f.metadata
    if value is None or value == "":
        return None if not meta["multiple"] else value
    kind = meta["kind"]
    if kind is bool:
        return _boolean(f.name, value)
    try:
        if kind is Path:
            value = Path(value)
        elif kind is int:
            value = int(value)
        else:
            value = str(value)
    except (TypeError, ValueError):
        raise OptionError(f"{f.name} {value!r}: expected {kind.__name__}") from None
    if meta["choices"] and value not in meta["choices"]:
        if f.name == "sandbox" and value == "bwrap":
            return "bubblewrap"
        raise OptionError(f"{f.name} {value!r}: expected one of {', '.join(meta['choices'])}")
    if kind is int and (
        (meta["low"] is not None and value < meta["low"])
        or (meta["high"] is not None and value > meta["high"])
    ):
        raise OptionError(f"{f.name} {value}: expected {meta['low']} to {meta['high']}")
    return value


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _boolean(name: str, value: Any) -> bool:
    """A switch: a bool, or (from an ini file) true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE + _FALSE:
        return text in _TRUE
    raise OptionError(f"{name} {value!r}: expected true or false")


def resolved_jobs(jobs: int | None) -> int:
    """The command line's ``--jobs``: as given, else 2 on a machine with two or more cores."""
    return jobs if jobs is not None else _default_jobs()


# ---------------------------------------------------------------- click (the llm-grade CLI)


def click_options(*names: str, **overrides: dict[str, Any]):
    """A decorator adding the named options to a click command, in the given order;
    ``overrides`` change a command's spelling of one (``sandbox={"choices": (...)}``)."""
    import click

    def decorate(command):
        for name in reversed(names):
            f = GradingOptions.__dataclass_fields__[name]
            meta = {**f.metadata, **overrides.get(name, {})}
            flags = meta["cli"] or (f"--{_dashed(name)}",)
            if meta["choices"]:
                ptype: Any = click.Choice(list(meta["choices"]))
            elif meta["kind"] is Path:
                ptype = click.Path(path_type=Path, exists=meta["exists"])
            elif meta["kind"] is int:
                ptype = click.IntRange(meta["low"], meta["high"])
            else:
                ptype = str
            default = meta["cli_default"]
            decls = flags
            if meta["kind"] is bool:  # a switch: --train, not --train true
                decls, how = (*flags, name), {"is_flag": True}
            else:
                how: dict[str, Any] = {
                    "type": ptype,
                    "multiple": meta["multiple"],
                    "show_default": default is not None and not meta["multiple"],
                    "metavar": meta["metavar"],
                }
            command = click.option(*decls, default=default, help=_sentence(meta["help"]), **how)(
                command
            )
            command.__click_params__[-1].llm_grade_option = name
        return command

    return decorate


def _dashed(name: str) -> str:
    """An option's flag spelling: ``train_seed`` -> ``train-seed``."""
    return name.replace("_", "-")


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


# ---------------------------------------------------------------- pytest (the plugin)


def add_pytest_options(parser) -> None:
    """The plugin's options (``--grade-NAME``) and ini keys (``grade_NAME``), in one group."""
    group = parser.getgroup("llm-grade", "grading a from-scratch Transformer (llm-grade)")
    for f in fields(GradingOptions):
        meta = f.metadata
        if not meta["pytest"]:
            continue
        default = f.default if not meta["multiple"] else ()
        shown = "none" if default in (None, ()) else default
        help_text = f"{meta['help']} (default: {shown})"
        if meta["multiple"]:
            help_text += f"; in the ini file, separated by {os.pathsep!r}"
        if meta["kind"] is bool:  # a switch: given or not
            how: dict[str, Any] = {"action": "store_true"}
        else:
            how = {
                "action": "append" if meta["multiple"] else "store",
                "choices": list(meta["choices"]) or None,
                "metavar": meta["metavar"],
            }
        group.addoption(
            f"--{PYTEST_PREFIX}{_dashed(f.name)}",
            dest=f"grade_{f.name}",
            default=None,
            help=help_text,
            **how,
        )
        parser.addini(f"grade_{f.name}", help_text, default=None)


def add_deprecated_pytest_options(parser) -> None:
    """The old bare spellings (``--submission``, ``--device``...), for ``pytest graders/``
    only (the graders' conftest adds them); one another plugin already defines is skipped."""
    group = parser.getgroup("llm-grade")
    for old, name in DEPRECATED_PYTEST.items():
        try:
            group.addoption(
                f"--{old}",
                dest=f"grade_deprecated_{name}",
                default=None,
                help=f"deprecated spelling of --{PYTEST_PREFIX}{name}",
            )
        except ValueError:  # another plugin or conftest owns that name: theirs wins
            continue


def from_pytest(config) -> GradingOptions:
    """The options of a pytest run: command line, else ini file, else the default."""
    values: dict[str, Any] = {}
    for f in fields(GradingOptions):
        if not f.metadata["pytest"]:
            continue
        value = config.getoption(f"grade_{f.name}", default=None)
        if value is None and f.name in DEPRECATED_PYTEST.values():
            old = next(k for k, v in DEPRECATED_PYTEST.items() if v == f.name)
            value = config.getoption(f"grade_deprecated_{f.name}", default=None)
            if value is not None:
                import pytest

                config.issue_config_time_warning(
                    pytest.PytestDeprecationWarning(
                        f"--{old} is deprecated: use --{PYTEST_PREFIX}{f.name} (the old "
                        "spelling goes in the next release)"
                    ),
                    stacklevel=2,
                )
        if value is None:
            value = config.getini(f"grade_{f.name}") or None
            if value is not None and f.metadata["multiple"]:
                value = [v for v in str(value).split(os.pathsep) if v]
        if value is not None:
            values[f.name] = value
    values["select"] = config.getoption("keyword", default="") or None  # pytest's own -k
    debugging = config.getoption("usepdb", default=False) or config.getoption("trace", False)
    if "jobs" not in values and not debugging:  # as on the command line; --pdb: one process
        values["jobs"] = _default_jobs()
    return GradingOptions(**values)


# ---------------------------------------------------------------- the worker's arguments

# (flag, type, help): the worker is started by the transport with exactly these
WORKER_ARGUMENTS: tuple[tuple[str, type, str], ...] = (
    ("--submission", str, "the staged submission folder (inside the sandbox)"),
    ("--fd-in", int, "file descriptor the requests arrive on"),
    ("--fd-out", int, "file descriptor the replies go to"),
    ("--threads", int, "torch threads (1: tiny tensors, and a core is left to the grader)"),
)


def worker_parser():
    import argparse

    parser = argparse.ArgumentParser(description="llm-grade's sandboxed worker")
    for flag, kind, help_text in WORKER_ARGUMENTS:
        required = flag != "--threads"
        parser.add_argument(
            flag, type=kind, required=required, default=None if required else 1, help=help_text
        )
    return parser


def worker_argv(submission: str, fd_in: int, fd_out: int, threads: int = 1) -> list[str]:
    values = {"--submission": submission, "--fd-in": fd_in, "--fd-out": fd_out}
    values["--threads"] = threads
    return [x for flag, _, _ in WORKER_ARGUMENTS for x in (flag, str(values[flag]))]
