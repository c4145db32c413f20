"""Any notebook or script is a submission: its graded definitions, placed into their modules.

Learners write notebooks the way notebooks are written: imports, exploratory prints, a
training loop and ``!pip`` lines between the definitions. :func:`extract` reads the code cells
of a ``.ipynb`` (or the cells of a ``.py`` script, split at ``# %%`` lines) **without running
them** and builds the submission's modules (``attention.py`` ...) from them:

- Each cell is parsed with :mod:`ast`. IPython syntax is neutralised first where the cell does
  not parse as it is: line magics (``%time``), shell lines (``!pip install``, ``x = !ls``) and
  help (``torch.nn?``) become ``pass``; a cell magic that runs Python (``%%time``,
  ``%%capture``) loses its first line; any other cell magic (``%%bash``, ``%%html``) is not
  Python and is not read.
- Kept at the top level: imports, function and class definitions, and simple constant
  assignments (literals, names, arithmetic, ``float("-inf")``, ``math.sqrt(2)``,
  ``torch.finfo(...)``, lambdas). Everything else (training loops, prints, plots, model
  instantiation, ``torch.manual_seed``) is dropped and listed as *not run by the grader*.
- **Later definitions win**, as in a kernel that ran the cells top to bottom.
- Each graded name of ../shared/API.md goes into its module (:data:`COMPONENTS`). It takes
  along what it uses: helper functions and classes, constants and imports, transitively, copied
  into every module that needs them. A graded name of another module is imported from it
  (``from .attention import softmax``), as the stubs do; earlier modules at the top, later ones
  at the bottom, so that no import cycle can arise.
- **Module markers keep working**: a cell whose first line is ``# %% attention.py`` is
  appended to ``attention.py`` verbatim, and ``%%writefile attention.py`` replaces it
  (``-a``: appends), as running the notebook would. A module made from marked cells is taken
  as it is; unmarked cells fill only the modules no marker made.

What cannot be read costs only itself: a cell that does not parse is reported by number
(with the line and the parser's message) and the rest is still graded; a notebook that is not
JSON, holds too much code, or defines none of the graded names raises :class:`SourceError`
with one line saying so.

Every piece of a module starts at a known cell line, so :meth:`Extraction.locate` maps a
module line back to ``work.ipynb, cell 4, line 2`` (tracebacks and messages are rewritten with
it on the trusted side). Trusted side, static: nothing here runs the learner's code.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from llm_grade.components import COMPONENTS, MODULES

MAX_NOTEBOOK = 50 * 2**20  # bytes of an .ipynb (outputs with images can be large)
MAX_SOURCE = 10 * 2**20  # bytes of code read from one notebook or script
NOT_RUN_SHOWN = 12  # dropped statements listed by name; the rest are counted

# cell magics whose body is Python (the magic only times, captures or profiles it)
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit", "mprun"})
# calls a constant may be made of: pure, cheap, no side effects
STATIC_CALLS = frozenset(
    {
        "float",
        "int",
        "str",
        "bool",
        "complex",
        "tuple",
        "frozenset",
        "torch.finfo",
        "torch.iinfo",
        "torch.device",
        "torch.tensor",
    }
)
STATIC_MODULES = ("math.",)  # every function of these modules counts as static

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py")
_PERCENT_MARKER = re.compile(r"#\s*%%\s*(?P<name>\S+)\s*")
_WRITEFILE = re.compile(
    r"%%writefile(?P<append>\s+(?:-a|--append))?\s+(?P<q>[\"']?)(?P<name>[^\s\"']+)(?P=q)\s*"
)
_CELL_MAGIC = re.compile(r"%%(?P<name>\w+)")
_SCRIPT_CELL = re.compile(r"^#\s*%%(?P<rest>.*)$")
# IPython-only lines: magics, shell escapes, help, and assignments from either
_IPYTHON_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?:[!%]|\?|[\w.]+\?\??[ \t]*$|[A-Za-z_][\w, \t]*=[ \t]*[!%])"
)
# a module line in a traceback (File "attention.py", line 37) or a message (attention.py, line 37)
_FILE_LINE = re.compile(
    r'(?P<tb>File ")?\b(?P<file>[A-Za-z_][A-Za-z0-9_]*\.py)(?(tb)"), line (?P<line>\d+)'
)

_DEFINES_NO = re.compile(r"\b[a-z]+\.py defines no `(?P<name>\w+)`")


class SourceError(ValueError):
    """A notebook or script that cannot be read as a submission (one line says why)."""


# ------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One code cell as read: its place in the notebook and its text."""

    index: int  # position among all cells of the notebook (0-based), or the n-th script cell
    source: str
    label: str  # "cell 4" (a notebook), "In [5]" (a kernel's history), "" (a one-cell script)
    first_line: int = 1  # line of the file where the cell starts (scripts)
    file: str = ""  # the notebook it comes from, when not the one being read

    def where(self, line: int, file: str) -> str:
        """``work.ipynb, cell 4, line 2``, or ``work.py, line 19`` for a script."""
        file = self.file or file
        if self.label:
            return f"{file}, {self.label}, line {line}"
        return f"{file}, line {self.first_line + line - 1}"

    def name(self, file: str) -> str:
        """``cell 4`` of a notebook, ``lines 3-20`` of a script."""
        if self.label:
            return f"{self.file}, {self.label}" if self.file else self.label
        file = self.file or file
        last = self.first_line + self.source.count("\n")
        return f"lines {self.first_line}-{last} of {file}"


def read_cells(path: Path) -> list[Cell]:
    """The code cells of a notebook, or of a ``.py`` script split at its ``# %%`` lines."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix.lower() == ".ipynb":
        if size > MAX_NOTEBOOK:
            raise SourceError(
                f"the notebook is {size / 2**20:.0f} MiB; at most {MAX_NOTEBOOK / 2**20:.0f} MiB "
                "are accepted (clear its outputs: Kernel > Restart & Clear Output)"
            )
        return notebook_cells(path.read_bytes())
    if size > MAX_SOURCE:
        raise SourceError(
            f"the script is {size / 2**20:.0f} MiB; at most {MAX_SOURCE // 2**20} MiB of code "
            "are accepted"
        )
    text = path.read_bytes().decode("utf-8", errors="replace")
    return script_cells(text)


def notebook_cells(data: bytes) -> list[Cell]:
    """The code cells of an ``.ipynb`` file's bytes; outputs are never looked at."""
    try:
        nb = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise SourceError(f"not a readable Jupyter notebook: it is not valid JSON{where}") from None
    if isinstance(nb, dict) and nb.get("nbformat", 4) < 4 and "worksheets" in nb:
        import nbformat  # an old (v3) notebook: let nbformat bring it up to date

        try:
            nb = json.loads(nbformat.writes(nbformat.reads(data.decode(), as_version=4)))
        except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds
            raise SourceError(f"not a readable Jupyter notebook ({type(exc).__name__})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise SourceError("not a Jupyter notebook: the file has no list of cells")
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            continue
        cells.append(Cell(index, source, f"cell {index + 1}"))
    return cells


def script_cells(text: str) -> list[Cell]:
    """A ``.py`` script's cells: one cell, or one per ``# %%`` line (Jupytext's percent format
    and VS Code's cells; ``# %% [markdown]`` cells are prose). The ``# %% attention.py`` line
    stays the first line of its cell, so the marker works as in a notebook."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if _SCRIPT_CELL.match(line)]
    if not starts:
        return [Cell(0, text, "", 1)]
    if starts[0] != 0:
        starts.insert(0, 0)
    cells = []
    for n, (a, b) in enumerate(zip(starts, [*starts[1:], len(lines)], strict=True)):
        chunk = lines[a:b]
        marker = _SCRIPT_CELL.match(chunk[0]) if chunk else None
        if marker and "[markdown]" in marker.group("rest").replace(" ", ""):
            continue
        cells.append(Cell(n, "\n".join(chunk), "", a + 1))
    return cells


# ------------------------------------------------------------------------- statements


@dataclass
class Statement:
    """One top-level statement of a cell that the grader keeps."""

    cell: Cell
    kind: str  # "future", "import", "def", "const"
    binds: tuple[str, ...]  # the names it binds ("*" for a star import)
    text: str  # its source, as written
    line: int  # its first line in the cell
    uses: frozenset[str]  # every name it refers to
    order: int  # place in the notebook (later definitions win)


def _static(node: ast.AST) -> bool:
    """A value that computes nothing worth running: literals, names, arithmetic, pure calls."""
    if isinstance(node, ast.Lambda):
        return all(_static(d) for d in [*node.args.defaults, *node.args.kw_defaults] if d)
    if isinstance(node, ast.Call):
        name = _dotted(node.func)
        if name is None or not (name in STATIC_CALLS or name.startswith(STATIC_MODULES)):
            return False
        return all(_static(a) for a in [*node.args, *(k.value for k in node.keywords)])
    allowed = (
        ast.Constant,
        ast.Name,
        ast.Attribute,
        ast.Tuple,
        ast.List,
        ast.Set,
        ast.Dict,
        ast.UnaryOp,
        ast.BinOp,
        ast.BoolOp,
        ast.Compare,
        ast.IfExp,
        ast.Subscript,
        ast.Slice,
        ast.Starred,
        ast.expr_context,
        ast.operator,
        ast.unaryop,
        ast.boolop,
        ast.cmpop,
    )
    if not isinstance(node, allowed):
        return False
    return all(_static(child) for child in ast.iter_child_nodes(node))


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _names_used(text: str, node: ast.AST) -> frozenset[str]:
    """The global names the statement ``text`` refers to: what it needs from the rest of the
    notebook (:mod:`symtable` knows Python's scoping: a function's locals and parameters do
    not count, a closure's free names do not either)."""
    import symtable

    def walk(table: symtable.SymbolTable, top: bool) -> set[str]:
        names = set()
        for symbol in table.get_symbols():
            if symbol.is_referenced() and (symbol.is_global() if not top else True):
                names.add(symbol.get_name())
        for child in table.get_children():
            names |= walk(child, False)
        return names

    try:
        return frozenset(walk(symtable.symtable(text, "<cell>", "exec"), True))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # cut out of a shared line
        return frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))


def _stored(node: ast.AST) -> set[str]:
    """Names a dropped top-level statement binds (``x = train()``, ``for epoch in ...``)."""
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
    return names


def _named(node: ast.AST) -> bool:
    return isinstance(node, ast.Name)


def _names_only(target: ast.AST) -> bool:
    """An assignment target made of plain names only (``X``, ``A, B``)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_names_only(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _local_module(module: str | None, level: int) -> bool:
    """``from .attention import x`` or ``import attention``: the submission's own modules,
    which the extraction links itself."""
    return level > 0 or (module or "").split(".")[0] in MODULES


def _classify(node: ast.stmt) -> tuple[str, tuple[str, ...]]:
    """(kind, names bound) of a top-level statement; kind "drop" for code that is not run,
    "quiet" for what needs no mention (a docstring, ``pass``)."""
    if isinstance(node, ast.ImportFrom):
        if node.module == "__future__":
            return "future", ()
        if _local_module(node.module, node.level):
            return "local", tuple(a.asname or a.name for a in node.names)
        return "import", tuple(a.asname or a.name for a in node.names)
    if isinstance(node, ast.Import):
        if any(_local_module(a.name, 0) for a in node.names):
            return "local", ()
        return "import", tuple(a.asname or a.name.split(".")[0] for a in node.names)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return "def", (node.name,)
    if isinstance(node, ast.Assign) and all(map(_names_only, node.targets)):
        if _static(node.value):  # X = 1, A = B = 2, (LOW, HIGH) = (0, 1)
            return "const", tuple(n.id for t in node.targets for n in ast.walk(t) if _named(n))
    if (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.value is not None
        and _static(node.value)
    ):
        return "const", (node.target.id,)
    if isinstance(node, ast.Pass) or (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    ):
        return "quiet", ()
    if _tool_call(node):  # check("softmax"), load_definitions(...): llm-grade's own cells
        return "quiet", ()
    return "drop", ()


TOOL_CALLS = frozenset({"check", "load_definitions"})


def _tool_call(node: ast.stmt) -> bool:
    value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
    if not isinstance(value, ast.Call):
        return False
    name = _dotted(value.func) or ""
    return name.removeprefix("llm_grade.notebook.") in TOOL_CALLS


def _segment(lines: list[str], node: ast.stmt, shared: bool, source: str) -> tuple[str, int]:
    """The statement's text and first line: whole lines (with its decorators) unless it
    shares a line with another statement (``import torch; x = 1``)."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    if shared:
        return ast.get_source_segment(source, node) or "", node.lineno
    return "\n".join(lines[first - 1 : node.end_lineno]), first


def _neutralised(source: str) -> tuple[str, list[tuple[int, str]]]:
    """``source`` with IPython-only lines replaced by ``pass`` (same line numbers), and the
    (line, text) of each line replaced."""
    out, replaced = [], []
    for number, line in enumerate(source.split("\n"), 1):
        m = _IPYTHON_LINE.match(line)
        if m:
            out.append(m.group("indent") + "pass")
            replaced.append((number, line.strip()))
        else:
            out.append(line)
    return "\n".join(out), replaced


def parse_cell(source: str) -> tuple[ast.Module, str, list[tuple[int, str]]]:
    """A cell's AST, the source it was parsed from, and the IPython-only lines replaced
    (none when the cell parses as it is). Raises the *original* :class:`SyntaxError` when it
    parses neither way (its line and message are the learner's), :class:`ValueError` for a
    null byte."""
    try:
        return ast.parse(source), source, []
    except SyntaxError as original:
        neutral, replaced = _neutralised(source)
        try:
            return ast.parse(neutral), neutral, replaced
        except SyntaxError:
            raise original from None


def _first_line(text: str, limit: int = 60) -> str:
    line = next((x.strip() for x in text.split("\n") if x.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ------------------------------------------------------------------------- extraction


@dataclass
class Extraction:
    """What a notebook or script became: modules, where each graded name was read, and what
    was left out."""

    file: str  # the notebook or script's file name, as the learner knows it
    modules: dict[str, str] = field(default_factory=dict)  # "attention.py" -> source
    defined: dict[str, int] = field(default_factory=dict)  # graded name -> cell index
    cells: dict[str, str] = field(default_factory=dict)  # graded name -> "cell 4"
    not_run: list[str] = field(default_factory=list)  # what the grader did not run
    problems: list[str] = field(default_factory=list)  # what could not be read, and why
    # module file -> [module line, number of lines, cell label, cell's first file line, cell line]
    lines: dict[str, list[list]] = field(default_factory=dict)

    def locate(self, module_file: str, line: int) -> str | None:
        """Where line ``line`` of the module ``module_file`` came from in the notebook."""
        for start, count, label, first_line, cell_line, *rest in self.lines.get(module_file, []):
            if start <= line < start + count:
                cell = Cell(0, "", label, first_line, rest[0] if rest else "")
                return cell.where(cell_line + line - start, self.file)
        return None

    def rewrite(self, text: str) -> str:
        """``File "attention.py", line 37`` in a traceback (``attention.py, line 37`` in a
        message) as the notebook place it came from (``File "work.ipynb", cell 4, line 5``),
        and "attention.py defines no `softmax`" as "work.ipynb defines no `softmax`"."""
        if not text:
            return text

        def place(m: re.Match) -> str:
            where = self.locate(m.group("file"), int(m.group("line")))
            if where is None:
                return m.group(0)
            if not m.group("tb"):
                return where
            file, _, rest = where.partition(", ")
            return f'File "{file}", {rest}'

        text = _FILE_LINE.sub(place, text)
        # a graded name the notebook does not define: say where the grader looked
        return _DEFINES_NO.sub(
            lambda m: (
                f"{self.file} defines no `{m.group('name')}` (a def or class at the top "
                "level of a code cell)"
            ),
            text,
        )

    def notes(self) -> list[str]:
        """One line per problem, then what was not run (for the report's notes)."""
        notes = list(self.problems)
        if self.not_run:
            shown = "; ".join(self.not_run[:NOT_RUN_SHOWN])
            more = len(self.not_run) - NOT_RUN_SHOWN
            notes.append(
                f"Not run by the grader (it reads definitions only): {shown}"
                + (f"; and {more} more" if more > 0 else "")
                + "."
            )
        return notes

    def origin(self) -> dict:
        """What a report says about where the graded code came from (JSON-ready):
        ``cells`` names the cell of each graded name, ``defined`` its index in the notebook
        (where a feedback notebook puts its feedback)."""
        return {
            "file": self.file,
            "cells": dict(self.cells),
            "defined": dict(self.defined),
            "not_run": list(self.not_run),
            "problems": list(self.problems),
        }

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "modules": self.modules,
            "defined": self.defined,
            "cells": self.cells,
            "not_run": self.not_run,
            "problems": self.problems,
            "lines": self.lines,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Extraction:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def extract_file(path: Path, *, follow_loads: bool = True) -> Extraction:
    """The submission in the notebook or script ``path`` (see the module docstring).

    With ``follow_loads``, the notebooks it passes to ``load_definitions(...)`` (the
    assignment notebooks do, for the parts built earlier) come first, as they do in the
    kernel; batch grading reads each student's file alone (another file beside it may be a
    classmate's), and says what was not loaded."""
    path = Path(path)
    cells = read_cells(path)
    loaded: list[Cell] = []
    problems: list[str] = []
    wanted = [(c, name) for c in cells for name in loads(c.source)]
    if wanted and follow_loads:
        order: list[Path] = []
        for cell, name in wanted:
            try:
                loaded_by(path.parent / name, order, [path.resolve()])
            except (FileNotFoundError, SourceError, OSError) as exc:
                problems.append(f"{cell.name(path.name)} loads {name}, which was not read ({exc})")
        for other in order:
            loaded += [
                Cell(c.index, c.source, c.label, c.first_line, other.name)
                for c in read_cells(other)
            ]
    elif wanted:
        names = ", ".join(dict.fromkeys(name for _, name in wanted))
        problems.append(
            f"{path.name} loads {names} with load_definitions; each submission is graded on "
            "its own, so those definitions were not graded with it"
        )
    result = extract([*loaded, *cells], path.name)
    result.problems[:0] = problems
    return result


def loads(source: str) -> list[str]:
    """The notebooks a cell passes to ``load_definitions(...)`` (string literals only)."""
    if "load_definitions" not in source:
        return []
    try:
        tree = parse_cell(source)[0]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) in (
            "load_definitions",
            "llm_grade.notebook.load_definitions",
        ):
            found += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return [f for f in found if isinstance(f, str)]


def loaded_by(path: Path, order: list[Path], stack: list[Path] | None = None) -> None:
    """Append ``path`` to ``order`` after the notebooks it loads (depth first, each once;
    a cycle is cut). :class:`FileNotFoundError` when a notebook is not there."""
    stack = stack or []
    path = Path(path).resolve()
    if path in order or path in stack:
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is not in {path.parent}")
    for cell in read_cells(path):
        for name in loads(cell.source):
            loaded_by(path.parent / name, order, [*stack, path])
    order.append(path)


def extract(cells: list[Cell], file: str, *, require: bool = True) -> Extraction:
    """The modules made from ``cells``; raises :class:`SourceError` when none of the graded
    names is defined (unless not ``require``)."""
    result = Extraction(file)
    marked: dict[str, str] = {}  # module file -> text, from marker cells
    marked_lines: dict[str, list[list]] = {}
    statements: list[Statement] = []
    bound_by_dropped: dict[str, str] = {}  # name -> where a dropped statement set it
    total = 0
    for cell in cells:
        total += len(cell.source)
        if total > MAX_SOURCE:
            raise SourceError(
                f"the code cells hold over {MAX_SOURCE // 2**20} MiB of code; at most "
                f"{MAX_SOURCE // 2**20} MiB are accepted"
            )
        if _marked(cell, file, marked, marked_lines, result):
            continue
        statements += _read_cell(cell, file, result, bound_by_dropped, len(statements))
    # the graded names the marked modules define (each module parsed once)
    in_marked = {
        name
        for module, text in marked.items()
        for name in _defined_names(text)
        if f"{COMPONENTS.get(name)}.py" == module
    }
    _assemble(statements, marked, in_marked, result, bound_by_dropped)
    for name, text in marked.items():
        result.modules[name] = text
        result.lines[name] = marked_lines[name]
    for name in COMPONENTS:
        if name in in_marked and name not in result.cells:
            result.cells[name] = f"{COMPONENTS[name]}.py cells"
    if require and not result.cells and not marked:
        raise SourceError(
            f"defines none of the graded names (get_device, softmax, MultiHeadAttention, ... "
            f"GPT: see API.md) at the top level of its {len(cells)} code cell"
            f"{'s' * (len(cells) != 1)}" + (f" ({result.problems[0]})" if result.problems else "")
        )
    return result


def _defined_names(source: str) -> set[str]:
    """The names a marked module's top level binds (its ``def`` and ``class`` lines when it
    does not parse: it is graded as written, and its import error says why)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set(re.findall(r"^(?:class|def)\s+(\w+)", source, re.M))
    return {name for node in tree.body for name in _classify(node)[1]}


def _marked(
    cell: Cell,
    file: str,
    marked: dict[str, str],
    marked_lines: dict[str, list[list]],
    result: Extraction,
) -> bool:
    """Take ``cell`` into ``marked`` if its first line is a module marker."""
    source = cell.source
    lead = len(source) - len(source.lstrip("\n"))
    first, _, body = source.lstrip("\n").partition("\n")
    first = first.strip()
    m_write = _WRITEFILE.fullmatch(first)
    m_percent = _PERCENT_MARKER.fullmatch(first)
    name = (m_write or m_percent).group("name") if (m_write or m_percent) else None
    if name is None or not _MODULE_NAME.fullmatch(name):
        return False
    if m_percent:
        body = "\n".join(
            "# " + line if line.startswith(("%", "!")) else line for line in body.split("\n")
        )
    stamp = f"# --- {file}, {cell.name(file)} ---"
    previous = marked.get(name, "") if (m_percent or m_write.group("append")) else ""
    spans = marked_lines.get(name, []) if previous else []
    body = body.rstrip()
    start = previous.count("\n") + 2  # the stamp is one line, the body starts after it
    marked[name] = previous + stamp + "\n" + body + "\n\n"
    spans.append([start, body.count("\n") + 1, cell.label, cell.first_line, lead + 2, cell.file])
    marked_lines[name] = spans
    return True


def _read_cell(
    cell: Cell, file: str, result: Extraction, bound_by_dropped: dict[str, str], order: int
) -> list[Statement]:
    """The statements of one unmarked cell that the grader keeps; a cell nested too deeply
    for Python's own parser (``1+1+...`` a hundred thousand times) costs only itself."""
    try:
        return _read_cell_unguarded(cell, file, result, bound_by_dropped, order)
    except (RecursionError, MemoryError):
        result.problems.append(
            f"{cell.name(file)} is nested too deeply to be read, so no definition in "
            f"{cell.name(file)} was graded"
        )
        return []


def _read_cell_unguarded(
    cell: Cell, file: str, result: Extraction, bound_by_dropped: dict[str, str], order: int
) -> list[Statement]:
    source = cell.source
    first = source.lstrip().split("\n", 1)[0].strip()
    magic = _CELL_MAGIC.match(first)
    if magic:
        if magic.group("name") not in PYTHON_CELL_MAGICS:
            result.not_run.append(f"{cell.name(file)} (a %%{magic.group('name')} cell)")
            return []
        lines = source.split("\n")
        at = next(i for i, line in enumerate(lines) if line.strip())
        lines[at] = ""
        source = "\n".join(lines)
    try:
        tree, source, replaced = parse_cell(source)
    except SyntaxError as original:
        line = original.lineno or 0
        result.problems.append(
            f"{cell.where(line, file) if line else cell.name(file)} does not parse "
            f"({original.msg}), so no definition in {cell.name(file)} was graded"
        )
        return []
    except ValueError as exc:  # a null byte
        result.problems.append(f"{cell.name(file)} cannot be read ({exc})")
        return []
    dropped = [(line, f"`{_first_line(text)}`") for line, text in replaced]
    lines = source.split("\n")
    line_count: dict[int, int] = {}
    for node in tree.body:
        for n in {node.lineno, node.end_lineno}:
            line_count[n] = line_count.get(n, 0) + 1
    kept = []
    for node in tree.body:
        kind, binds = _classify(node)
        shared = line_count[node.lineno] > 1 or line_count[node.end_lineno] > 1
        text, line = _segment(lines, node, shared, source)
        if kind == "quiet":
            continue
        if kind in ("drop", "local"):
            why = " (the grader links the modules itself)" if kind == "local" else ""
            dropped.append((line, f"`{_first_line(text)}`{why}"))
            if kind == "drop":
                for name in _stored(node):
                    bound_by_dropped[name] = cell.where(line, file)
            continue
        kept.append(
            Statement(cell, kind, binds, text, line, _names_used(text, node), order + len(kept))
        )
    if not cell.file:  # a loaded notebook's experiments are not this submission's
        result.not_run += _dropped_notes(cell, file, sorted(dropped))
    return kept


def _dropped_notes(cell: Cell, file: str, dropped: list[tuple[int, str]]) -> list[str]:
    """What a cell holds that is not run: one entry per notebook cell (its first few
    statements), one per statement of a script (by line)."""
    if not dropped:
        return []
    if not cell.label:
        return [f"{cell.where(line, file)}: {text}" for line, text in dropped]
    shown = ", ".join(text for _, text in dropped[:3])
    more = f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""
    return [f"{cell.name(file)}: {shown}{more}"]


def _assemble(
    statements: list[Statement],
    marked: dict[str, str],
    in_marked: set[str],
    result: Extraction,
    bound_by_dropped: dict[str, str],
) -> None:
    """Place each graded name and what it uses into its module."""
    latest: dict[str, Statement] = {}  # name -> the statement that binds it last
    stars = [s for s in statements if s.kind == "import" and "*" in s.binds]
    for s in statements:
        for name in s.binds:
            latest[name] = s
            bound_by_dropped.pop(name, None)
    future = next((s for s in statements if s.kind == "future"), None)
    graded = {n: s for n, s in latest.items() if n in COMPONENTS}
    for name, s in graded.items():
        module = f"{COMPONENTS[name]}.py"
        if module in marked:
            result.problems.append(
                f"{s.cell.name(result.file)} defines {name}, but {module} is made from the cells "
                f"marked `# %% {module}`: those are graded"
            )
    available = {n for n, s in graded.items() if f"{COMPONENTS[n]}.py" not in marked}
    available |= in_marked
    missing_warned: set[str] = set()
    for module in MODULES:
        file = f"{module}.py"
        if file in marked:
            continue
        own = [n for n, s in graded.items() if COMPONENTS[n] == module]
        if not own:
            continue
        chosen: dict[int, Statement] = {}
        imports_from: dict[str, set[str]] = {}
        todo = [graded[n] for n in own]
        while todo:
            s = todo.pop()
            if id(s) in chosen:
                continue
            chosen[id(s)] = s
            for name in sorted(s.uses):
                if name in s.binds and s.kind != "import":
                    continue
                if name in COMPONENTS and COMPONENTS[name] != module:
                    if name in available:
                        imports_from.setdefault(COMPONENTS[name], set()).add(name)
                    continue
                target = latest.get(name)
                if target is not None:
                    todo.append(target)
                elif name in bound_by_dropped and name not in missing_warned:
                    missing_warned.add(name)
                    users = ", ".join(sorted(set(own)))
                    result.problems.append(
                        f"{name} is set by code the grader does not run "
                        f"({bound_by_dropped[name]}), so it is undefined when {file} "
                        f"({users}) is graded: make it a constant, or compute it inside "
                        "the function that uses it"
                    )
        for s in stars:
            chosen[id(s)] = s
        for name in own:
            result.defined[name] = graded[name].cell.index
            result.cells[name] = graded[name].cell.name(result.file)
        _write_module(
            file,
            module,
            sorted(chosen.values(), key=lambda s: s.order),
            imports_from,
            future,
            result,
        )


def _write_module(
    file: str,
    module: str,
    chosen: list[Statement],
    imports_from: dict[str, set[str]],
    future: Statement | None,
    result: Extraction,
) -> None:
    """The module's text: imports, links to earlier modules, definitions, links to later
    ones; each piece after a comment naming its cell."""
    here = MODULES.index(module)
    parts: list[tuple[str, Statement | None]] = [
        (f"# {file}: extracted by llm-grade from {result.file} (definitions only)", None)
    ]
    if future is not None:
        parts.append(("from __future__ import annotations", None))
    seen_imports: set[str] = set()
    for s in chosen:
        if s.kind == "import" and s.text not in seen_imports:
            seen_imports.add(s.text)
            parts.append((s.text, s))
    early = {m: n for m, n in imports_from.items() if MODULES.index(m) < here}
    late = {m: n for m, n in imports_from.items() if MODULES.index(m) > here}
    for other in sorted(early, key=MODULES.index):
        parts.append((f"from .{other} import {', '.join(sorted(early[other]))}", None))
    for s in chosen:
        if s.kind in ("def", "const"):
            parts.append((s.text, s))
    for other in sorted(late, key=MODULES.index):
        names = ", ".join(sorted(late[other]))
        parts.append((f"from .{other} import {names}  # noqa: E402 (after the definitions)", None))
    text_lines: list[str] = []
    spans: list[list] = []
    previous_cell = None
    for text, s in parts:
        if s is not None and s.cell is not previous_cell:
            place = s.cell.name(result.file)
            text_lines.append(f"# --- {place if s.cell.file else f'{result.file}, {place}'} ---")
            previous_cell = s.cell
        if s is not None:
            spans.append(
                [
                    len(text_lines) + 1,
                    text.count("\n") + 1,
                    s.cell.label,
                    s.cell.first_line,
                    s.line,
                    s.cell.file,
                ]
            )
        text_lines += text.split("\n")
        if s is not None and s.kind in ("def", "const"):
            text_lines.append("")
    result.modules[file] = "\n".join(text_lines).rstrip() + "\n"
    result.lines[file] = spans
