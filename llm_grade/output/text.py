"""Clean learner-controlled text before anyone reads it.

Exception messages, tracebacks, printed output and names in a submission are written by the
learner. Before they reach a terminal, ``results.json``, an HTML page, a CSV, JUnit or
Gradescope file, :func:`clean_text` removes what could rewrite a screen or hide text from a
reader: terminal escape sequences (clear the screen, move the cursor, set the window title),
control characters other than newline and tab (a carriage return rewrites the line), C1
controls and Unicode's bidirectional overrides (which make code read differently than it
runs, CVE-2021-42574).

The HTML report and the exporters use :func:`clean` (the same, plus a length limit),
:func:`trim_traceback`, :func:`code_spans` and :func:`fmt` (a number for reading).

Trusted side: string handling only; nothing here runs learner code.
"""

from __future__ import annotations

import math
import re
from typing import Any

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and two-character escapes (ESC + one)
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[@-Z\\-_]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_DROP = {
    c: None
    for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0), *_BIDI)
}
_DROP.update({0x0D: None, 0x2028: "\n", 0x2029: "\n"})


def clean_text(text: str) -> str:
    """``text`` without terminal escapes, control characters (newline and tab are kept) and
    bidirectional overrides."""
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable():  # the common case: nothing to do
        return text
    return _ESCAPES.sub("", text).translate(_DROP)


def clean_tree(value):
    """``value`` (plain JSON-like data) with every string in it cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_tree(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_tree(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------- report text

TEXT_LIMIT = 4000  # characters of one learner-controlled field shown on the page
TRACEBACK_LINES = 30

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# not printable, or not allowed in XML 1.0 (lone surrogates cannot even be written as UTF-8)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def clean(text: Any, limit: int = TEXT_LIMIT) -> str:
    """Printable text: no ANSI colour codes or control characters, at most ``limit`` chars."""
    text = _CONTROL.sub("", _ANSI.sub("", str(text or "")).replace("\r\n", "\n"))
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters not shown)"
    return text


def trim_traceback(text: str, max_lines: int = TRACEBACK_LINES) -> str:
    """The last ``max_lines`` lines of a traceback (where the learner's code failed)."""
    lines = clean(text).splitlines()
    if len(lines) <= max_lines:
        return "\n".join(lines)
    return "\n".join([f"… {len(lines) - max_lines} earlier lines not shown"] + lines[-max_lines:])


def code_spans(text: str) -> list[tuple[str, bool]]:
    """``text`` split at backticks: (piece, is_code) pairs, so `names` can be set in code."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text alone
        return [(str(text), False)]
    return [(p, i % 2 == 1) for i, p in enumerate(parts) if p]


def fmt(value: float) -> str:
    """A number for reading: 3 decimals, or scientific notation when tiny or huge."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.2e}"
    return f"{value:.3f}"


def percent(value: Any) -> str:
    """A share (0.955) as a whole percentage ("96%"); "-" for anything but a number."""
    return f"{value:.0%}" if isinstance(value, (int, float)) else "-"


__all__ = ["clean", "clean_text", "clean_tree", "code_spans", "fmt", "percent", "trim_traceback"]
