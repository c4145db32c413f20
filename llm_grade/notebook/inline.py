"""Check my work, inline: grade the definitions of the running kernel from their source.

``check("MultiHeadAttention")`` in a notebook cell reads the source of the cells this kernel
has run (IPython's input history, in the order they ran, so later definitions win as they do
in the kernel), extracts the graded definitions from it exactly as ``llm-grade grade
work.ipynb`` does (:mod:`llm_grade.notebook.extract`), and grades them in a separate grading
process through the same sandboxed worker as the command line. The objects living in the
kernel are never called: a cell that patched ``torch.allclose`` in the kernel changes nothing.
The feedback shows as HTML in the notebook (the report's sections, for the components
checked) and as plain text anywhere else.

The grading process (``python -I -m llm_grade.classroom.server``) is started on the first
check and kept for the kernel's lifetime, so a second check costs only its grading.

``load_definitions("02_attention.ipynb")`` brings the definitions of earlier assignment
notebooks into this one (running them in this kernel, definitions only: no check cells, no
experiments), following the notebooks those load in turn.
"""

from __future__ import annotations

import atexit
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from llm_grade.components import COMPONENTS, exactly
from llm_grade.notebook.extract import (
    Cell,
    Extraction,
    SourceError,
    extract,
    loaded_by,
    read_cells,
)

CHECK_TIMEOUT_S = 900.0  # one check, whatever it selects (the worker's own limits apply too)

_lock = threading.Lock()
_server = None  # the kernel's grading process (started on the first check)
_workdir: tempfile.TemporaryDirectory | None = None
_loaded: list[Cell] = []  # cells that load_definitions ran in this kernel


@dataclass
class Checked:
    """What one ``check()`` found: the result (None when nothing could be graded), the text
    and HTML shown, and what was read."""

    names: list[str]
    result: object | None = None  # a GradeResult
    text: str = ""
    html: str = ""
    read: str = ""
    problems: list[str] = field(default_factory=list)

    shown: bool = False  # displayed under the cell already (check() does it)

    def _ipython_display_(self) -> None:
        """As a cell's last value: shown once (check() has shown it already)."""
        if not self.shown:
            _display(self)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text

    @property
    def score(self) -> float:
        result = self.result
        return (
            0.0
            if result is None
            else sum(c.score for c in result.components if c.name in self.names)
        )


# ------------------------------------------------------------------------- reading the kernel


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def kernel_cells() -> tuple[list[Cell], str]:
    """The cells this kernel ran, oldest first, without the one running now (``In [5]``),
    and a phrase naming them; outside IPython, the cells of the running script."""
    ip = _ipython()
    if ip is not None:
        history = list(getattr(ip.history_manager, "input_hist_raw", []) or [])
        current = getattr(ip, "execution_count", len(history))
        cells = [
            Cell(number, source, f"In [{number}]")
            for number, source in enumerate(history)
            if number and source.strip() and number != current
        ]
        numbers = [c.index for c in cells]
        read = f"read {len(cells)} cell{'s' * (len(cells) != 1)} this kernel ran" + (
            f" (In [{numbers[0]}] to In [{numbers[-1]}])" if numbers else ""
        )
        return [*_loaded, *cells], read + _loaded_phrase()
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not Path(path).is_file():
        raise SourceError(
            "check() reads the code of the notebook or script it runs in, and this "
            "interpreter has neither (run it in Jupyter, or in a .py script)"
        )
    cells = read_cells(Path(path))
    return [*_loaded, *cells], f"read {Path(path).name}" + _loaded_phrase()


def _loaded_phrase() -> str:
    files = list(dict.fromkeys(c.file for c in _loaded))
    return f", and the definitions loaded from {', '.join(files)}" if files else ""


# ------------------------------------------------------------------------- load_definitions


def load_definitions(*notebooks: str | Path, namespace: dict | None = None) -> list[str]:
    """Run the definitions (imports, functions, classes, constants) of ``notebooks`` in this
    kernel, as if their cells had been run here, and return the graded names they define.

    Notebooks named by a relative path are looked up in the working directory (Jupyter's is
    the notebook's folder). A notebook that itself calls ``load_definitions`` gets what it
    loads first. Check cells, prints and experiments are not run. ``check()`` grades these
    definitions too, unless a cell of this notebook defines the same name again."""
    if namespace is None:
        ip = _ipython()
        namespace = ip.user_ns if ip is not None else sys.modules["__main__"].__dict__
    order: list[Path] = []
    for notebook in notebooks:
        path = Path(notebook)
        if not path.is_file():
            raise FileNotFoundError(f"load_definitions: {path} does not exist")
        loaded_by(path, order)
    defined: list[str] = []
    for path in order:
        cells = [
            Cell(c.index, c.source, c.label, c.first_line, path.name) for c in read_cells(path)
        ]
        extraction = extract(cells, path.name, require=False)
        code = _definitions_only(cells)
        exec(compile(code, str(path), "exec"), namespace)  # the learner's own code, their kernel
        _loaded[:] = [c for c in _loaded if c.file != path.name] + cells
        defined += [n for n in extraction.cells if n not in defined]
    return defined


def _definitions_only(cells: list[Cell]) -> str:
    """The top-level imports, definitions and constants of ``cells``, in order (what
    :func:`llm_grade.notebook.extract.extract` keeps), as one piece of code."""
    from llm_grade.notebook.extract import _classify, _segment, parse_cell

    pieces = []
    for cell in cells:
        try:
            tree, source, _ = parse_cell(cell.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        lines = source.split("\n")
        for node in tree.body:
            if _classify(node)[0] in ("import", "def", "const"):
                shared = any(
                    other is not node and {other.lineno, other.end_lineno} & {node.lineno}
                    for other in tree.body
                )
                pieces.append(_segment(lines, node, shared, source)[0])
    return "\n\n".join(pieces) + "\n"


# ------------------------------------------------------------------------- check


def check(
    *names: str,
    rubric: str | Path | None = None,
    device: str = "cpu",
    view: str = "learner",
    display: bool = True,
) -> Checked:
    """Grade the graded names ``names`` (all that this kernel defines, when none are given)
    from the source of the cells this kernel ran, in a sandboxed worker, and show the
    feedback under the cell. Returns a :class:`Checked` (its ``result`` is the
    :class:`~llm_grade.engine.results.GradeResult`)."""
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise ValueError(
            f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not a "
            f"graded name; the graded names are {', '.join(COMPONENTS)}"
        )
    checked = Checked(list(names))
    try:
        cells, checked.read = kernel_cells()
        extraction = extract(cells, "this notebook", require=False)
    except SourceError as exc:
        checked.problems = [str(exc)]
        return _show(checked, display)
    extraction.not_run = []  # the kernel ran them: nothing to report
    wanted = list(names) or list(extraction.cells)
    missing = [n for n in wanted if n not in extraction.cells]
    checked.names = [n for n in wanted if n in extraction.cells]
    checked.problems = list(extraction.problems) + [_not_defined(n) for n in missing]
    if checked.names:
        checked.result = _grade(extraction, checked.names, rubric, device)
    return _show(checked, display, view=view)


def _not_defined(name: str) -> str:
    ip = _ipython()
    if ip is not None and name in ip.user_ns:
        return (
            f"{name} exists in this kernel, but no cell it ran defines it with `def` or "
            "`class` (check() grades the source of your cells, not the live object)"
        )
    return f"{name} is not defined yet: run the cell that defines it, then this check again"


def _grade(extraction: Extraction, names: list[str], rubric, device: str):
    """Grade ``extraction``'s modules in the kernel's grading process."""
    from llm_grade.classroom.server import GradingServer
    from llm_grade.engine.options import GradingOptions
    from llm_grade.output.exporters import load_results

    global _server, _workdir
    with _lock:
        if _server is None:
            _workdir = tempfile.TemporaryDirectory(prefix="llm-grade-check-")
            _server = GradingServer(Path(_workdir.name))
            atexit.register(_stop)
        run = Path(tempfile.mkdtemp(prefix="run-", dir=_workdir.name))
        folder, out = run / "submission", run / "out"
        folder.mkdir()
        out.mkdir()
        for file, source in extraction.modules.items():
            (folder / file).write_text(source, encoding="utf-8")
        options = GradingOptions(
            isolation="process",
            jobs=1,
            select=exactly(names),
            rubric=Path(rubric).resolve() if rubric else None,
            device=device,
            out=out,
        )
        code, why = _server.grade(folder, options, CHECK_TIMEOUT_S, extraction.to_dict())
        results = out / "results.json"
        if not results.is_file():
            why = "timed out" if code is None else (why or "could not run")
            raise RuntimeError(f"llm-grade: grading {why}")
        return load_results(results)


def _stop() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None
    if _workdir is not None:
        _workdir.cleanup()


def _show(checked: Checked, display: bool, view: str = "learner") -> Checked:
    """Make the text and HTML of ``checked`` and display it (HTML in Jupyter)."""
    from llm_grade.output.report import render_inline

    checked.text = _text(checked)
    if checked.result is not None:
        checked.html = render_inline(checked.result, checked.names, view=view, read=checked.read)
        if checked.problems:
            checked.html = _problems_html(checked.problems) + checked.html
    else:
        checked.html = _problems_html(checked.problems or ["nothing to check"])
    if display:
        _display(checked)
    return checked


def _display(checked: Checked) -> None:
    """HTML under the cell in Jupyter, the text anywhere else."""
    checked.shown = True
    ip = _ipython()
    if ip is not None and getattr(ip, "display_pub", None) is not None:
        from IPython.display import display as show

        # HTML for notebooks, the text for consoles (jupyter console, a plain terminal)
        bundle = {"text/html": checked.html, "text/plain": checked.text}
        show(bundle, raw=True, metadata={"llm_grade": {"names": checked.names}})
    else:
        print(checked.text)


def _problems_html(problems: list[str]) -> str:
    from html import escape

    items = "".join(f"<li>{escape(p)}</li>" for p in problems)
    return (
        '<div class="llm-grade-problems" style="border-left:4px solid #9a6700;'
        'background:#fff8c5;padding:8px 12px;margin:6px 0;border-radius:4px">'
        f"<strong>llm-grade:</strong><ul style='margin:4px 0'>{items}</ul></div>"
    )


def _text(checked: Checked) -> str:
    """The plain-text feedback (outside Jupyter): as ``llm-grade grade`` prints it."""
    lines = [f"llm-grade: {p}" for p in checked.problems]
    result = checked.result
    if result is not None:
        from llm_grade.engine.feedback import failure_blocks, points

        for block in failure_blocks(result, learner_view=True):
            if any(block.startswith(n) for n in checked.names):
                lines += ["", block]
        lines.append("")
        for comp in result.components:
            if comp.name in checked.names:
                lines.append(f"{comp.name}: {points(comp.score)} / {points(comp.max_score)} points")
        lines.append(f"({checked.read}; {result.duration_s:.1f} s)")
    return "\n".join(lines).strip("\n")
