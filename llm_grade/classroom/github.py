"""GitHub Classroom: the autograding workflow of a learner repository.

``llm-grade classroom init [DIR]`` writes ``DIR/.github/workflows/classroom.yml``. GitHub
Classroom runs it on every push to a learner's repository. Each run:

- checks the learner's repository out into ``submission/``, apart from everything else, so
  nothing of the learner's is imported as llm-grade, its tests or its rubric;
- installs bubblewrap and a **pinned** llm-grade: a version from PyPI, or a ``pip``
  requirement such as a git URL at a commit, chosen by the instructor;
- grades with the rubric bundled with that version, or one the instructor publishes at a URL
  with its SHA-256 written into the workflow. A download that does not match stops the run,
  and the rubric's hash is printed in the log either way;
- runs ``llm-grade grade submission --isolation process --sandbox bubblewrap``;
- uploads ``results.json`` and the HTML report as an artifact, and writes the points table to
  the job summary;
- hands the result to GitHub's ``autograding-grading-reporter`` in the format it reads (see
  :func:`llm_grade.output.exporters.classroom_results`): one test per check, fractional points
  kept.

The workflow lives in the learner's repository, so a learner who edits it can change what
it runs: GitHub Classroom offers no place the learner cannot write. What it can guarantee is
that nothing the learner wrote is used as llm-grade, its graders or its rubric, and the log
shows the version and the rubric hash that made the score (README: "GitHub Classroom").
"""

from __future__ import annotations

import re
from pathlib import Path

from llm_grade import __version__

WORKFLOW = Path(".github") / "workflows" / "classroom.yml"
RUNNER = "llmgrade"  # the reporter reads LLMGRADE_RESULTS (its runner id, upper-cased)
# the job's name is the check run the reporter writes the points to
JOB_NAME = "Autograding Tests"
TORCH = "torch==2.13.0"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # the CPU build: no CUDA download
_SHA256 = re.compile(r"[0-9a-f]{64}")


def grade_script(*, rubric: bool, select: str | None = None, submission: str = ".") -> str:
    """The shell commands of the workflow's grading step (also run by the tests).
    ``submission`` is the graded folder or notebook, relative to the repository."""
    rubric_arg = ' --rubric "$RUBRIC"' if rubric else ""
    select_arg = f" -k {_quote(select)}" if select else ""
    return "\n".join(
        [
            "set -euo pipefail",
            "status=0",
            f"llm-grade grade {_quote(str(Path('submission') / submission))} "
            "--isolation process --sandbox bubblewrap"
            f"{rubric_arg}{select_arg} --out llm-grade-results -q || status=$?",
            "llm-grade report llm-grade-results --out llm-grade-results/report.html",
            'llm-grade export llm-grade-results --format markdown >> "$GITHUB_STEP_SUMMARY"',
            'echo "result=$(llm-grade export llm-grade-results --format classroom | base64 -w0)"'
            ' >> "$GITHUB_OUTPUT"',
            'exit "$status"',
        ]
    )


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _yaml_block(text: str, indent: int) -> str:
    pad = " " * indent
    return "\n".join(pad + line if line else "" for line in text.split("\n"))


def workflow(
    *,
    package: str | None = None,
    rubric_url: str | None = None,
    rubric_sha256: str | None = None,
    select: str | None = None,
    submission: str = ".",
    python: str = "3.11",
) -> str:
    """The workflow's YAML. ``package`` is what ``pip`` installs as llm-grade (default: this
    version from PyPI); ``rubric_url`` and ``rubric_sha256`` a published rubric and its
    hash (both or neither); ``select`` a ``-k`` expression (the components of this
    assignment); ``submission`` what is graded, relative to the repository (a folder of
    modules, or a notebook such as ``work.ipynb``)."""
    if Path(submission).is_absolute() or ".." in Path(submission).parts:
        raise ValueError("--submission is a path inside the repository, such as work.ipynb")
    if (rubric_url is None) != (rubric_sha256 is None):
        raise ValueError("--rubric-url and --rubric-sha256 go together")
    if rubric_sha256 is not None and not _SHA256.fullmatch(rubric_sha256.lower()):
        raise ValueError("--rubric-sha256 must be 64 hexadecimal digits (sha256sum's output)")
    package = package or f"llm-grade=={__version__}"
    for value, what in ((package, "--package"), (rubric_url or "", "--rubric-url")):
        if any(c in value for c in "\n\r\"'`$\\"):
            raise ValueError(f"{what} may not hold quotes, backslashes, $ or line breaks")
    rubric_steps = ""
    if rubric_url:
        rubric_steps = f"""
      - name: Fetch the instructor's rubric (checked against its SHA-256)
        run: |
          curl --fail --silent --show-error --location --output "$RUNNER_TEMP/rubric.toml" \\
            "{rubric_url}"
          echo "{rubric_sha256.lower()}  $RUNNER_TEMP/rubric.toml" | sha256sum --check
          echo "RUBRIC=$RUNNER_TEMP/rubric.toml" >> "$GITHUB_ENV\""""
    rubric_flag = ' --rubric "$RUBRIC"' if rubric_url else ""
    return f"""# Written by `llm-grade classroom init` (llm-grade {__version__}).
# GitHub Classroom runs this on every push: it grades this repository with a pinned llm-grade
# in a sandbox and reports the points to Classroom. Nothing from this repository is used as
# llm-grade, its graders or its rubric; the log shows the version and the rubric's SHA-256.
name: {JOB_NAME}
"on":
  push:
  workflow_dispatch:
  repository_dispatch:
permissions:
  checks: write
  actions: read
  contents: read
jobs:
  run-autograding-tests:
    name: {JOB_NAME}
    runs-on: ubuntu-latest
    if: github.actor != 'github-classroom[bot]'
    timeout-minutes: 30
    steps:
      - name: Check out the submission (apart from the grader)
        uses: actions/checkout@v4
        with:
          path: submission
      - uses: actions/setup-python@v5
        with:
          python-version: "{python}"
      - name: Install bubblewrap (the sandbox learner code runs in)
        run: |
          sudo apt-get update -qq
          sudo apt-get install -y -qq bubblewrap
          # Ubuntu 24.04 keeps unprivileged user namespaces (which bubblewrap needs) for
          # AppArmor-profiled programs only; this runner is thrown away after the job
          sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 || true
      - name: Install llm-grade (pinned)
        run: |
          python -m pip install --quiet --upgrade pip
          python -m pip install --quiet "{TORCH}" --index-url {TORCH_INDEX}
          python -m pip install --quiet "{package}"
          llm-grade --version{rubric_steps}
      - name: The rubric
        run: llm-grade rubric{rubric_flag}
      - name: Grade
        id: {RUNNER}
        run: |
{_yaml_block(grade_script(rubric=bool(rubric_url), select=select, submission=submission), 10)}
      - name: Upload the report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: llm-grade-report
          path: llm-grade-results/
      - name: Report the points to GitHub Classroom
        if: always()
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
          {RUNNER.upper()}_RESULTS: "${{{{ steps.{RUNNER}.outputs.result }}}}"
        with:
          runners: {RUNNER}
"""


def init(dest: Path, **options) -> Path:
    """Write the workflow into the repository folder ``dest``; an existing one is never
    overwritten (:class:`FileExistsError`)."""
    path = Path(dest) / WORKFLOW
    if path.exists():
        raise FileExistsError(
            f"{path} already exists; remove it first to write a fresh one (init never "
            "overwrites a workflow)"
        )
    text = workflow(**options)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as f:
        f.write(text)
    return path
