"""How long Otter-Grader takes to grade a correct notebook with 6 one-example checks, here.

Why: llm-grade's benchmark (``bench.py``) times a full grade of ``reference/``; this is the
number to set beside it for the most common notebook autograder. It is a script, not a test:
timings depend on the machine and its load. Wall times are of subprocesses, medians of
``--runs``, after one untimed warm-up run (``--warmup``).

- **set-up** (not timed): an interpreter with ``otter-grader==7.0.0``, ``torch==2.13.0`` and
  ``ipykernel`` (``--python PATH``, else a virtual environment at ``--venv DIR``, created and
  installed with pip if it has no otter yet, reused if it has); in a temporary folder, a
  Jupyter kernel spec for that interpreter (found through ``JUPYTER_PATH``, so nothing is
  registered in the user's home), a learner's notebook (nbformat v4 JSON) whose cells define
  ``softmax``, ``causal_mask``, ``gelu``, ``LayerNorm``, ``scaled_dot_product_attention`` and
  ``count_parameters`` with the code of ``reference/`` (read from its files), each followed by
  ``grader.check("qN")``; 6 OK-format tests ``tests/q1.py`` .. ``tests/q6.py`` with one example
  each, against torch's own ``softmax``, ``tril``, ``gelu``, ``layer_norm``,
  ``scaled_dot_product_attention`` and a sum of ``numel``; and ``otter generate``'s zip.
- **timed**: ``otter run -a autograder.zip -o DIR notebook.ipynb``, Otter's local grading (no
  Docker): it starts a kernel, executes the whole notebook with nbconvert, runs the tests in it
  and writes ``results.json``, whose score must be 6/6.

Prints one JSON object on stdout: ``{"otter_run_s", "samples_s", "score", "max_score",
"otter_version"}``; progress goes to stderr. Run from the repository root::

    python benchmarks/otter_compare.py --runs 3
    python benchmarks/otter_compare.py --python /path/to/python --runs 5
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import pprint
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference"
OTTER_VERSION = "7.0.0"
PACKAGES = [f"otter-grader=={OTTER_VERSION}", "torch==2.13.0", "ipykernel"]
KERNEL = "llm-grade-otter"
MAX_SCORE = 6
CELL_IDS = itertools.count()
PROBE = (
    "import importlib.metadata as m, ipykernel, nbconvert, otter, torch; "
    "print(m.version('otter-grader'))"
)

# (reference module, the names a learner defines, in notebook order)
ANSWERS = [
    ("attention.py", ["softmax"]),
    ("attention.py", ["causal_mask"]),
    ("feedforward.py", ["gelu"]),
    ("normalization.py", ["LayerNorm"]),
    ("attention.py", ["scaled_dot_product_attention"]),
    ("environment.py", ["count_parameters"]),
]

# one example per question, compared with torch's own implementation (doctest syntax)
CHECKS = [
    (
        "softmax",
        """
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(4, 7)
        >>> torch.allclose(softmax(x, dim=-1), torch.softmax(x, dim=-1), atol=1e-6)
        True
        """,
    ),
    (
        "causal_mask",
        """
        >>> torch.equal(causal_mask(5), torch.tril(torch.ones(5, 5, dtype=torch.bool)))
        True
        """,
    ),
    (
        "gelu",
        """
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(3, 8)
        >>> torch.allclose(gelu(x), torch.nn.functional.gelu(x), atol=1e-6)
        True
        """,
    ),
    (
        "LayerNorm",
        """
        >>> _ = torch.manual_seed(0)
        >>> ln, x = LayerNorm(8), torch.randn(2, 3, 8)
        >>> expected = torch.nn.functional.layer_norm(x, (8,), ln.weight, ln.bias, 1e-5)
        >>> torch.allclose(ln(x), expected, atol=1e-5)
        True
        """,
    ),
    (
        "scaled_dot_product_attention",
        """
        >>> _ = torch.manual_seed(0)
        >>> q, k, v = torch.randn(3, 2, 5, 4).unbind(0)
        >>> out, weights = scaled_dot_product_attention(q, k, v, causal_mask(5))
        >>> expected = torch.nn.functional.scaled_dot_product_attention(
        ...     q, k, v, attn_mask=causal_mask(5))
        >>> torch.allclose(out, expected, atol=1e-5)
        True
        """,
    ),
    (
        "count_parameters",
        """
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
        >>> count_parameters(model) == sum(p.numel() for p in model.parameters())
        True
        """,
    ),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    sys.exit(f"otter_compare: {message}")


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> str:
    """Run ``cmd``; return its stdout + stderr, or exit with them if it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-5000:]
        fail(f"{' '.join(cmd)} failed with status {proc.returncode}:\n{output}")
    return proc.stdout + proc.stderr


def otter_version(python: str) -> str | None:
    """The otter-grader version ``python`` imports with torch, ipykernel and nbconvert."""
    proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_venv(venv: Path) -> str:
    """The python of ``venv``, created and installed with ``PACKAGES`` unless it has otter."""
    python = venv / "bin" / "python"
    if python.exists() and otter_version(str(python)):
        log(f"reusing the virtual environment {venv}")
        return str(python)
    if not python.exists():
        log(f"creating a virtual environment at {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"installing {' '.join(PACKAGES)} into {venv} (a few minutes)")
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", *PACKAGES], stdout=sys.stderr, stderr=sys.stderr
    )
    if proc.returncode != 0:
        fail(f"pip install into {venv} failed with status {proc.returncode}")
    return str(python)


def reference_source(module: str, name: str) -> str:
    """The source of the top-level function or class ``name`` in ``reference/<module>``."""
    text = (REFERENCE / module).read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return ast.get_source_segment(text, node)
    fail(f"no {name} in {REFERENCE / module}")


def cell(source: str, kind: str = "code") -> dict:
    """One nbformat v4 cell (``id`` is required from nbformat 4.5)."""
    lines = source.strip("\n").splitlines(keepends=True)
    new = {"cell_type": kind, "id": f"cell-{next(CELL_IDS)}", "metadata": {}, "source": lines}
    if kind == "code":
        new.update(execution_count=None, outputs=[])
    return new


def notebook() -> dict:
    """A learner's notebook: the reference's answers, each followed by its Otter check."""
    cells = [
        cell(
            "# Transformer building blocks\nFill in each function, then run its check.", "markdown"
        ),
        cell(
            "import math\n\nimport torch\nfrom torch import nn\n\nimport otter\n\n"
            'grader = otter.Notebook(tests_dir="tests")'
        ),
    ]
    for number, (module, names) in enumerate(ANSWERS, 1):
        cells.append(cell(f"## Question {number}: `{', '.join(names)}`", "markdown"))
        cells.append(cell("\n\n\n".join(reference_source(module, n) for n in names)))
        cells.append(cell(f'grader.check("q{number}")'))
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {
                "display_name": "Python 3 (otter)",
                "language": "python",
                "name": KERNEL,
            },
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_file(number: int, name: str, doctest: str) -> str:
    """An OK-format test file with one case (one example)."""
    code = textwrap.dedent(doctest).strip("\n") + "\n"
    test = {
        "name": f"q{number}",
        "points": 1,
        "suites": [
            {
                "cases": [{"code": code, "hidden": False, "locked": False}],
                "scored": True,
                "setup": "",
                "teardown": "",
                "type": "doctest",
            }
        ],
    }
    # Otter 7 reads a test file as OK format only if it sets OK_FORMAT = True
    body = pprint.pformat(test, sort_dicts=False, width=100)
    return f"# q{number}: {name}\nOK_FORMAT = True\n\ntest = {body}\n"


def kernel_spec(python: str, jupyter: Path) -> None:
    """A kernel spec for ``python`` under ``jupyter``/kernels (use with ``JUPYTER_PATH``)."""
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (otter)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))


def otter(python: str) -> list[str]:
    script = Path(python).with_name("otter")
    return [str(script)] if script.exists() else [python, "-m", "otter"]


def grade_once(cmd: list[str], work: Path, env: dict, out: Path) -> tuple[float, float, float]:
    """One timed ``otter run``; return its wall time, score and possible score."""
    out.mkdir()
    start = time.perf_counter()
    proc = subprocess.run(cmd + ["-o", str(out)], cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-5000:]
        fail(f"otter run failed with status {proc.returncode}:\n{output}")
    try:
        results = json.loads((out / "results.json").read_text())
        # Gradescope's format: one entry per question, plus a summary entry without a score
        tests = [t for t in results["tests"] if "score" in t]
        score = sum(t["score"] for t in tests)
        possible = sum(t["max_score"] for t in tests)
    except (OSError, ValueError, KeyError, TypeError) as err:
        fail(f"could not read otter's results.json in {out}: {err!r}\n{proc.stdout[-3000:]}")
    if (score, possible) != (MAX_SCORE, MAX_SCORE):
        failed = "\n".join(t.get("output", "") for t in tests if t["score"] < t["max_score"])
        fail(f"otter scored {score}/{possible}, not {MAX_SCORE}/{MAX_SCORE}:\n{failed[-5000:]}")
    return elapsed, score, possible


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed otter runs (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--python", help="an interpreter with otter-grader, torch and ipykernel")
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path("/tmp/llm-grade-otter-venv"),
        help="virtual environment to create or reuse without --python (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")

    python = args.python or ensure_venv(args.venv)
    version = otter_version(python)
    if version is None:
        fail(f"{python} cannot import otter, torch, ipykernel and nbconvert: {PROBE!r} failed")

    work = Path(tempfile.mkdtemp(prefix="otter-compare-"))
    try:
        log(f"otter-grader {version} with {python}; writing the notebook and tests in {work}")
        kernel_spec(python, work / "jupyter")
        env = {**os.environ, "JUPYTER_PATH": str(work / "jupyter"), "JUPYTER_PLATFORM_DIRS": "1"}
        env["IPYTHONDIR"] = str(work / "ipython")  # the kernel's profile, not the user's
        env.pop("PYTHONPATH", None)
        (work / "notebook.ipynb").write_text(json.dumps(notebook(), indent=1))
        (work / "tests").mkdir()
        for number, (name, doctest) in enumerate(CHECKS, 1):
            (work / "tests" / f"q{number}.py").write_text(test_file(number, name, doctest))
        generate = otter(python) + ["generate", "-t", "tests", "-o", "autograder.zip"]
        generate += ["--no-config", "--no-requirements", "--no-environment"]
        log("otter generate (set-up, not timed)")
        run(generate, cwd=work, env=env)
        if not (work / "autograder.zip").is_file():
            fail("otter generate wrote no autograder.zip")

        grade = otter(python) + ["run", "-a", "autograder.zip", "--no-logo", "notebook.ipynb"]
        samples, score, possible = [], 0.0, 0.0
        for i in range(args.warmup + args.runs):
            timed = i >= args.warmup
            log(f"otter run {'#' + str(i - args.warmup + 1) if timed else '(warm-up)'} ...")
            elapsed, score, possible = grade_once(grade, work, env, work / f"out{i}")
            log(f"  {elapsed:.2f} s, {score:g}/{possible:g}")
            if timed:
                samples.append(elapsed)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(
        json.dumps(
            {
                "otter_run_s": round(statistics.median(samples), 3),
                "samples_s": [round(s, 3) for s in samples],
                "score": score,
                "max_score": MAX_SCORE,
                "otter_version": version,
            }
        )
    )


if __name__ == "__main__":
    main()
