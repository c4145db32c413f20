"""Gradescope: the autograder bundle, and what it runs for each submission.

``llm-grade gradescope bundle --out autograder.zip`` writes the zip that Gradescope's
"Configure Autograder" page takes:

- ``setup.sh`` runs once, when Gradescope builds the image. It installs bubblewrap and the
  pinned ``requirements.txt`` (torch, CPU build, and llm-grade).
- ``run_autograder`` runs for every submission: ``llm-grade gradescope run``.
- ``rubric.toml`` is the rubric, bundled or yours. The bundle records its SHA-256 in
  ``llm-grade.json``.

:func:`run` finds the submission under ``ROOT/submission``. That is a folder of modules, as
uploaded or inside one folder (a GitHub upload), or one notebook, script or zip. It grades
it with process isolation (bubblewrap where the container allows it, resource limits
otherwise, and the output says which), and always writes ``ROOT/results/results.json`` in
Gradescope's schema. A submission that cannot be graded gets 0 and a message saying why,
never "the autograder failed to execute". Hidden checks show their name and points only.
``ROOT`` is ``/autograder``; the environment variable ``LLM_GRADE_AUTOGRADER_ROOT``
overrides it (tests). Trusted side.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from llm_grade import __version__
from llm_grade.components import MODULES

ROOT_VARIABLE = "LLM_GRADE_AUTOGRADER_ROOT"
DEFAULT_ROOT = Path("/autograder")
SUBMISSION_FILES = (".ipynb", ".py", ".zip")
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (llm-grade {version}).
set -euo pipefail
cd "$(dirname "${{BASH_SOURCE[0]}}")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap python3 python3-pip python3-venv
python3 -m venv /opt/llm-grade
/opt/llm-grade/bin/pip install --quiet --upgrade pip
/opt/llm-grade/bin/pip install --quiet -r requirements.txt
/opt/llm-grade/bin/llm-grade rubric --rubric rubric.toml
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission (llm-grade {version}): it grades
# $ROOT/submission and always writes $ROOT/results/results.json.
ROOT="${{{root_variable}:-/autograder}}"
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
PYTHON="${{LLM_GRADE_PYTHON:-/opt/llm-grade/bin/python}}"
exec "$PYTHON" -m llm_grade gradescope run --root "$ROOT" --rubric "$HERE/rubric.toml"{select}
"""


def requirements(package: str | None = None) -> str:
    """``requirements.txt``: torch's CPU build and the pinned llm-grade."""
    package = package or f"llm-grade=={__version__}"
    return f"--extra-index-url {TORCH_INDEX}\ntorch==2.13.0\n{package}\n"


def bundle(
    out: Path,
    *,
    rubric: Path | None = None,
    package: str | None = None,
    select: str | None = None,
) -> Path:
    """Write the autograder zip to ``out``."""
    import shlex

    from llm_grade.engine.rubric import load_rubric, rubric_sha256
    from llm_grade.paths import bundled

    rubric_path = Path(rubric) if rubric else bundled("graders") / "rubric.toml"
    load_rubric(rubric_path)  # a broken rubric fails here, not on Gradescope
    if package is not None and any(c in package for c in "\n\r"):
        raise ValueError("--package is one requirement line")
    rubric_bytes = rubric_path.read_bytes()
    select_arg = f" -k {shlex.quote(select)}" if select else ""
    files = {
        "setup.sh": SETUP_SH.format(version=__version__),
        "run_autograder": RUN_AUTOGRADER.format(
            version=__version__, root_variable=ROOT_VARIABLE, select=select_arg
        ),
        "requirements.txt": requirements(package),
        "llm-grade.json": json.dumps(
            {
                "llm_grade": __version__,
                "package": package or f"llm-grade=={__version__}",
                "rubric_sha256": rubric_sha256(rubric_path),
                "select": select,
            },
            indent=2,
        )
        + "\n",
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            zf.writestr(info, text)
        info = zipfile.ZipInfo("rubric.toml", date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        zf.writestr(info, rubric_bytes)
    return out


def find_submission(folder: Path) -> Path:
    """What to grade in Gradescope's ``submission`` folder: the folder itself when it holds
    modules, else the one sub-folder that does (an upload from GitHub), else its one
    notebook, script or zip. :class:`ValueError` says what was found instead."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} does not exist: nothing was submitted")

    def holds(path: Path) -> bool:
        return any((path / f"{m}.py").is_file() for m in MODULES)

    if holds(folder):
        return folder
    inner = [p for p in sorted(folder.iterdir()) if p.is_dir() and holds(p)]
    if len(inner) == 1:
        return inner[0]
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in SUBMISSION_FILES and not p.name.startswith(".")
    ]
    if len(files) == 1:
        return files[0]
    seen = ", ".join(sorted(p.name for p in folder.iterdir())[:12]) or "nothing"
    raise ValueError(
        "the submission should be your modules (environment.py ... transformer.py), or one "
        f"notebook (.ipynb), script (.py) or zip; found: {seen}"
    )


def grade_upload(folder: Path, *, hide=(), **options):
    """Grade what a platform put in ``folder`` (:func:`find_submission`) with process
    isolation; ``hide``: the platform's folders that learner code must not see.
    :class:`ValueError` when there is nothing that can be graded."""
    from llm_grade.engine.run import GradingError, grade

    submission = find_submission(folder)
    hidden = tuple(p for p in hide if Path(p).exists())
    try:
        return grade(submission, isolation="process", quiet=True, hide=hidden, **options)
    except GradingError as exc:
        raise ValueError(str(exc)) from None


def run(root: Path, *, rubric: Path | None = None, select: str | None = None) -> Path:
    """Grade ``root/submission`` and write ``root/results/results.json`` (always)."""
    from llm_grade.output.exporters import write_gradescope

    root = Path(root)
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = grade_upload(
            root / "submission",
            hide=(root / "source",),
            rubric=rubric,
            select=select,
            out=root / "results" / "llm-grade",
        )
    except ValueError as exc:
        failed = {
            "score": 0,
            "output": f"llm-grade could not grade this submission: {exc}",
            "output_format": "text",
            "tests": [],
        }
        results.write_text(json.dumps(failed, indent=2) + "\n", encoding="utf-8")
        return results
    write_gradescope(result, results)
    return results
