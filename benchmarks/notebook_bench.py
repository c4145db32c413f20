"""What notebooks cost: reading one, grading it against the same code as a folder, and a
"check my work" cell, first and warm.

- **extract**: :func:`llm_grade.notebook.extract.extract_file` on the reference written as a
  learner-style notebook with noise cells (tests/notebooks.py), median of 5, in process.
- **grade**: ``llm-grade grade work.ipynb`` vs ``llm-grade grade reference/`` (both
  ``--isolation process``), wall time of each subprocess, median of ``--runs``.
- **check**: a Python script that defines the reference ``softmax`` and calls
  ``check("softmax")`` twice (no Jupyter: the same code path, text output). The first check
  starts the kernel's grading process (torch, pytest, graders, worker template); the second
  reuses it.

A script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CHECK_SCRIPT = """{source}

import time

from llm_grade.notebook import check
for n in range(2):
    started = time.perf_counter()
    result = check("softmax", display=False)
    print(f"CHECK {{n}} {{time.perf_counter() - started:.2f}} {{result.score}}")
"""


def wall(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from notebooks import as_notebook

    from llm_grade.notebook.extract import extract_file

    with tempfile.TemporaryDirectory() as tmp:
        notebook = as_notebook(REPO / "reference", Path(tmp) / "work.ipynb")
        cells = len(__import__("nbformat").read(str(notebook), as_version=4).cells)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            extract_file(notebook)
            times.append(time.perf_counter() - started)
        print(f"extract: {statistics.median(times) * 1000:.0f} ms for {cells} cells")
        grade = [sys.executable, "-m", "llm_grade", "grade", "-q", "--isolation", "process"]
        folder = wall([*grade, str(REPO / "reference")], args.runs)
        from_nb = wall([*grade, str(notebook)], args.runs)
        print(
            f"grade: notebook {from_nb:.1f} s, folder {folder:.1f} s "
            f"({from_nb / folder:.2f}x; median of {args.runs})"
        )
        source = (REPO / "reference" / "attention.py").read_text()
        script = Path(tmp) / "check.py"
        script.write_text(CHECK_SCRIPT.format(source=source))
        run = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=True, cwd=tmp
        )
        for line in run.stdout.splitlines():
            if line.startswith("CHECK"):
                _, n, seconds, score = line.split()
                which = "first (starts the grading process)" if n == "0" else "warm"
                print(f"check('softmax') {which}: {float(seconds):.2f} s, {score} points")


if __name__ == "__main__":
    main()
