"""A normal install works: the wheel, installed (not editable) into a fresh virtual
environment outside the checkout, grades from a neutral folder the bundled reference 100,
the stubs 0 and the example 89 with bubblewrap, and the reference 100 without it.

Every other test runs against the editable install of the checkout, which is how a false
failure once slipped through: in a normal install the engine's root is site-packages itself.
This one builds a wheel and a virtual environment (a minute), so it runs in CI
(``.ci/run`` sets ``CI=true``) or with ``LLM_GRADE_INSTALL_TEST=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from lg_paths import REPO

from llm_grade.sandbox.confine import bubblewrap

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.environ.get("CI") or os.environ.get("LLM_GRADE_INSTALL_TEST")),
        reason="builds a wheel and a virtual environment: runs in CI or with "
        "LLM_GRADE_INSTALL_TEST=1",
    ),
]

EXPECTED = {"reference": 100.0, "stubs": 0.0, "example": 89.0}  # the example: three bugs


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` folder of a fresh virtual environment with the wheel installed."""
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        cwd=root,
    )
    (wheel,) = wheels.glob("llm_grade-*.whl")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    # llm-grade itself is installed the normal way; its dependencies (torch is most of the
    # minute a fresh install takes) are this environment's, seen through a .pth file: a plain
    # path line, so this environment's own .pth files (the editable install's finder) never
    # run there; SATISFIED checks that they meet what the wheel declares
    site = next((root / "venv" / "lib").glob("python*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "llm_grade_test_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "--no-deps", str(wheel)], check=True, cwd=root
    )
    subprocess.run([str(bin_dir / "python"), "-c", SATISFIED], check=True, cwd=root)
    return bin_dir


# in the fresh environment: every requirement the installed wheel declares is met
SATISFIED = """
from importlib.metadata import PackageNotFoundError, requires, version
from packaging.requirements import Requirement
unmet = []
for line in requires("llm-grade") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue  # an extra's requirement (test, ...)
    try:
        found = version(req.name)
    except PackageNotFoundError:
        unmet.append(f"{req.name}: missing")
        continue
    if not req.specifier.contains(found, prereleases=True):
        unmet.append(f"{req.name} {found} does not satisfy {req.specifier}")
assert not unmet, unmet
"""


@pytest.mark.parametrize("sandbox", ["bubblewrap", "none"])
def test_a_normal_install_grades_reference_stubs_and_example_right(installed, tmp_path, sandbox):
    if sandbox == "bubblewrap" and bubblewrap() is None:
        pytest.skip("bubblewrap is not available on this machine")
    neutral = tmp_path / "neutral"
    neutral.mkdir()
    python = str(installed / "python")
    where = subprocess.run(
        [python, "-I", "-c", "from llm_grade.paths import bundled; print(bundled('reference'))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=neutral,
    ).stdout.strip()
    assert "site-packages" in where, where  # the installed copy, not the checkout
    bundle = Path(where).parent
    targets = {
        "reference": [str(bundle / "reference")],
        "stubs": [str(bundle / "stubs")],
        "example": ["--example"],
    }
    if sandbox == "none":  # the other path of the same install: a part of the reference
        targets = {"reference": [*targets["reference"], "-k", "softmax or LayerNorm or GPT"]}
    scores = {}
    for name, target in targets.items():
        out = tmp_path / name
        proc = subprocess.run(
            [str(installed / "llm-grade"), "grade", *target, "--out", str(out)]
            + ["--sandbox", sandbox],
            capture_output=True,
            text=True,
            cwd=neutral,
            env={**os.environ, "PATH": f"{installed}:{os.environ.get('PATH', '')}"},
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        data = json.loads((out / "results.json").read_text())
        scores[name] = data["score"]
        expected_sandbox = "bubblewrap" if sandbox == "bubblewrap" else "none"
        assert data["isolation"]["sandbox"].startswith(expected_sandbox)
    if sandbox == "none":
        assert scores["reference"] == data["max_score"] < EXPECTED["reference"]
    else:
        assert scores == {name: EXPECTED[name] for name in targets}
