"""Feedback notebooks: the learner's own notebook, with the grader's feedback in it.

:func:`write_feedback_notebook` copies a graded notebook and inserts a Markdown cell after each
cell whose definition was graded: the component's points, then each failing check as the
terminal shows it (property, smallest case, expected vs got, hint). A summary cell at the top
has the total, the points per component and what the grader could not read or did not run. The
copy is rendered to HTML with nbconvert, so it can be read without Jupyter.

Trusted side: made from a :class:`~llm_grade.engine.results.GradeResult` and the notebook's
JSON; nothing in the notebook is run. The page is read by others (an instructor, a teaching
assistant), so no markup of the learner's reaches it: learner-controlled text of the grader's
(messages, tracebacks, cell snippets) goes only into fenced code blocks; the learner's own
Markdown keeps its formatting but not its HTML (``<`` is shown as text) or script links; raw
cells become code blocks; outputs are left out (the grader never ran them, and they could hold
script).
"""

from __future__ import annotations

import re
from pathlib import Path

from llm_grade.components import COMPONENTS
from llm_grade.engine.feedback import format_check, points
from llm_grade.engine.results import GradeResult

ROLE = "feedback"  # cell.metadata["llm_grade"]["role"] of the cells inserted here


def _fenced(text: str, info: str = "text") -> str:
    """``text`` as a fenced code block whose fence no line of it can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _plain(label: str) -> str:
    """A cell label ("cell 4") for a table: only what such a label is made of."""
    return re.sub(r"[^A-Za-z0-9 ,\[\]-]", "", str(label))[:40]


def _component_cell(component) -> str:
    failing = [c for c in component.checks if c.status not in ("passed", "skipped")]
    head = (
        f"#### llm-grade · `{component.name}`: {points(component.score)} / "
        f"{points(component.max_score)} points"
    )
    if not failing:
        return f"{head} ✓\n\nAll {len(component.checks)} checks pass."
    if component.status == "not_implemented":
        return f"{head}\n\nNot implemented yet: the cell above still raises NotImplementedError."
    blocks = [format_check(c, learner_view=True) for c in failing]
    body = "\n\n".join(b for b in blocks if b)
    return (
        f"{head}\n\n{len(failing)} of {len(component.checks)} checks did not pass:\n\n"
        + _fenced(body)
    )


def _summary_cell(result: GradeResult, where: dict[str, int]) -> str:
    origin = result.origin or {}
    cells = origin.get("cells") or {}
    rows = [
        f"| `{c.name}` | {points(c.score)} / {points(c.max_score)} | "
        f"{_plain(cells.get(c.name, '')) if c.name in where else 'not defined'} |"
        for c in result.components
    ]
    parts = [
        f"## llm-grade feedback: {points(result.score)} / {points(result.max_score)} points",
        "The grader read the definitions in this notebook's code cells without running them. "
        "A feedback cell follows each cell it graded.",
        "| Component | Points | Read from |\n|---|---|---|\n" + "\n".join(rows),
    ]
    if origin.get("problems"):
        parts.append("**Could not be read:**\n\n" + _fenced("\n".join(origin["problems"])))
    if origin.get("not_run"):
        parts.append(
            "**Not run by the grader** (it reads definitions only):\n\n"
            + _fenced("\n".join(origin["not_run"]))
        )
    return "\n\n".join(parts)


def feedback_notebook(notebook: Path, result: GradeResult):
    """The feedback copy of ``notebook`` (an ``nbformat`` notebook object)."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    where = {
        name: int(index)
        for name, index in ((result.origin or {}).get("defined") or {}).items()
        if name in COMPONENTS and isinstance(index, int) and 0 <= index < len(nb.cells)
    }
    after: dict[int, list] = {}
    for component in result.components:
        if component.name in where:
            after.setdefault(where[component.name], []).append(component)
    cells = [_cell(_summary_cell(result, where), "summary")]
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        elif cell.get("cell_type") == "raw":  # rendered as raw HTML by nbconvert: as text
            cell = _cell(_fenced(str(cell.get("source", ""))), "raw")
        elif cell.get("cell_type") == "markdown":
            cell["source"] = _defanged(str(cell.get("source", "")))
        cells.append(cell)
        for component in after.get(index, []):
            cells.append(_cell(_component_cell(component), ROLE, component.name))
    nb.cells = cells
    nb.metadata.setdefault("llm_grade", {})["feedback"] = {
        "score": result.score,
        "max_score": result.max_score,
    }
    return nb


def _defanged(markdown: str) -> str:
    """A learner's Markdown with no HTML in it (``<`` shown as text) and no script links: the
    rendered page is read by others (an instructor, a TA) and must not run the learner's
    markup."""
    markdown = markdown.replace("<", "&lt;")
    return re.sub(r"(?i)(java|vb)script\s*:", r"\1script-", markdown)


def _cell(source: str, role: str, component: str | None = None):
    import nbformat

    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["llm_grade"] = {"role": role, **({"component": component} if component else {})}
    return cell


def write_feedback_notebook(
    notebook: Path, result: GradeResult, out: Path, *, html: bool = True
) -> list[Path]:
    """Write the feedback copy of ``notebook`` to ``out`` (an ``.ipynb``) and, with ``html``,
    its nbconvert rendering next to it (``out`` with ``.html``). Returns the paths written."""
    import nbformat

    out = Path(out)
    if out.suffix != ".ipynb":
        out = out.with_suffix(".ipynb")
    nb = feedback_notebook(Path(notebook), result)
    nbformat.validate(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    written = [out]
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nb)
        page = out.with_suffix(".html")
        page.write_text(body, encoding="utf-8")
        written.append(page)
    return written
