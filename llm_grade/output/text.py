"""Clean learner-controlled text before anyone reads it.

Exception messages, tracebacks, printed output and names in a submission are written by the
learner. Before they reach a terminal, ``results.json``, an HTML page, a CSV, JUnit or
Gradescope file, :func:`clean_text` removes what could rewrite a screen or hide text from a
reader: terminal escape sequences (clear the screen, move the cursor, set the window title),
control characters other than newline and tab (a carriage return rewrites the line), C1
controls and Unicode's bidirectional overrides (which make code read differently than it
runs, CVE-2021-42574).
"""

from __future__ import annotations

import re

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


__all__ = ["clean_text", "clean_tree"]
