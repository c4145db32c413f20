"""The HTML reports in a real browser: headless Chromium loads them offline, logs no console
errors and paints a screenshot.

Skips only when no Chromium binary is installed (CI installs the `chromium` package).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from llm_grade.engine.results import GradeResult
from llm_grade.output.report import write_class, write_submission

FIXTURE = Path(__file__).parent / "fixtures" / "report_results.json"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason=f"no Chromium binary found (looked for {', '.join(NAMES)} on PATH and "
    "/usr/bin/chromium); install the `chromium` package to run the browser check",
)


def screenshot(page: Path, png: Path, profile: Path) -> str:
    """Load ``page`` in headless Chromium, save a 1200x2000 screenshot, return its log."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1200,2000",
        "--enable-logging=stderr",
        "--v=0",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def console_problems(log: str, page: Path) -> list[str]:
    """Console lines about ``page``: uncaught errors, console.error, or any console output."""
    return [
        line
        for line in log.splitlines()
        if "Uncaught" in line
        or "ERROR:CONSOLE" in line
        or (":CONSOLE" in line and page.name in line)
    ]


def assert_png(png: Path, width: int = 1200, height: int = 2000) -> None:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (width, height)
    assert len(data) > 20_000, f"{png} is only {len(data)} bytes: a blank page?"


@pytest.fixture
def result() -> GradeResult:
    return GradeResult.from_dict(json.loads(FIXTURE.read_text(encoding="utf-8")))


@pytest.mark.parametrize("view", ["learner", "instructor"])
def test_submission_report_renders_offline_without_console_errors(
    result: GradeResult, tmp_path: Path, view: str
):
    page = write_submission(result, tmp_path / f"{view}.html", view=view)
    png = tmp_path / f"{view}.png"
    log = screenshot(page, png, tmp_path / "profile")
    assert console_problems(log, page) == []
    assert_png(png)


def test_class_index_renders_and_its_sorting_script_runs_cleanly(
    result: GradeResult, tmp_path: Path
):
    index = write_class({"alice": result, "bob": result}, tmp_path / "class")
    png = tmp_path / "class.png"
    log = screenshot(index, png, tmp_path / "profile")
    assert console_problems(log, index) == []
    assert_png(png)


def test_console_check_sees_a_broken_script(tmp_path: Path):
    """The negative control: a page with a script error must be caught by the check."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>notDefinedAnywhere();</script>")
    log = screenshot(page, tmp_path / "broken.png", tmp_path / "profile")
    assert any("notDefinedAnywhere" in line for line in console_problems(log, page))
