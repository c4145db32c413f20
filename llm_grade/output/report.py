"""HTML reports: one self-contained page per submission, and an index for a whole class.

Data flows one way: a :class:`GradeResult` -> view models built here (numbers, colours,
coordinates) -> the jinja2 templates in ``reports/`` (autoescape on) -> one HTML file with
inline CSS and SVG, no external assets, readable offline and without JavaScript.

Learner-controlled text (messages, tracebacks, counterexamples, the submission path,
artifact errors) reaches the page only as autoescaped template variables; no markup is built
from strings here. In the learner view a hidden check's details are never handed to the
template at all, so no template change can leak them.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from llm_grade.engine.feedback import component_label, points
from llm_grade.engine.results import CheckResult, ComponentResult, GradeResult
from llm_grade.paths import bundled

VIEWS = ("learner", "instructor")
TEXT_LIMIT = 4000  # characters of one learner-controlled field shown on the page
TRACEBACK_LINES = 30

# colour ramps, evenly spaced stops (viridis; RdBu reversed: blue < 0 < red; Reds)
SEQUENTIAL = tuple(
    "#" + c for c in "440154 472d7b 3b528b 2c728e 21918c 28ae80 5ec962 addc30 fde725".split()
)
DIVERGING = tuple(
    "#" + c for c in "2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b".split()
)
ERROR = tuple("#" + c for c in "fff5f0 fee0d2 fcbba1 fc9272 fb6a4a ef3b2c cb181d 99000d".split())
NAN_FILL = "#e6007e"
MASKED_FILL = "#eef0f3"

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# not printable, or not allowed in XML 1.0 (lone surrogates cannot even be written as UTF-8)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_EXPECTED_GOT = re.compile(r"^\s*(expected|got)\b([^:]*):\s*(.*)$", re.IGNORECASE)


# ------------------------------------------------------------------------- text helpers


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


# ------------------------------------------------------------------------- colours


def ramp(stops: tuple[str, ...], t: float) -> str:
    """The colour at ``t`` in [0, 1] along evenly spaced ``stops``."""
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    a, b = stops[i], stops[i + 1]
    mix = [
        round(int(a[k : k + 2], 16) * (1 - t + i) + int(b[k : k + 2], 16) * (t - i))
        for k in (1, 3, 5)
    ]
    return "#" + "".join(f"{c:02x}" for c in mix)


def ink(fill: str) -> str:
    """Text colour that reads on ``fill``."""
    r, g, b = (int(fill[k : k + 2], 16) for k in (1, 3, 5))
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"


# ------------------------------------------------------------------------- pictures


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan  # null (a NaN written by a strict JSON encoder) or junk
    return float(v)


def matrix(value: Any, max_rows: int = 64, max_cols: int = 128) -> list[list[float]] | None:
    """A rectangular, non-empty list of rows of numbers, or None for anything else."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        return None
    cols = len(value[0])
    if cols == 0 or any(len(r) != cols for r in value):
        return None
    return [[_number(v) for v in r[:max_cols]] for r in value[:max_rows]]


def vector(value: Any, limit: int = 128) -> list[float] | None:
    if not isinstance(value, list) or not value:
        return None
    return [_number(v) for v in value[:limit]]


@dataclass
class Cell:
    x: float
    y: float
    fill: str
    tip: str
    label: str = ""
    label_fill: str = "#111111"
    masked: bool = False  # drawn hatched
    flagged: bool = False  # drawn with a red outline (masked but not zero, or nan)


@dataclass
class Heatmap:
    title: str
    rows: int
    cols: int
    size: float  # side of one cell, px
    cells: list[Cell]
    row_axis: str = ""
    col_axis: str = ""
    side: list[tuple[str, bool]] = field(default_factory=list)  # per-row note, flagged
    side_title: str = ""
    left: float = 30  # room for row numbers
    top: float = 18  # room for column numbers

    @property
    def width(self) -> float:
        return self.left + self.cols * self.size + (56 if self.side else 4)

    @property
    def height(self) -> float:
        return self.top + self.rows * self.size + 4

    @property
    def tick_every(self) -> int:
        return 1 if self.size >= 14 else max(1, math.ceil(14 / self.size))


@dataclass
class Legend:
    stops: tuple[str, ...]
    low: str
    high: str
    notes: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def swatches(self) -> list[str]:
        """The ramp as 32 colours: a gradient bar without SVG ids."""
        return [ramp(self.stops, k / 31) for k in range(32)]


@dataclass
class Panel:
    """One side of a figure: a heatmap, or a sentence saying why there is none."""

    title: str
    heatmap: Heatmap | None = None
    plot: Any = None
    message: str = ""


@dataclass
class Figure:
    key: str
    title: str
    description: str
    panels: list[Panel]
    legends: list[Legend] = field(default_factory=list)


def heatmap(
    title: str,
    m: list[list[float]],
    color,
    *,
    mask=None,
    labels: bool | None = None,
    width: float = 300,
    tip=None,
) -> Heatmap:
    """Cells of ``m`` coloured by ``color(value)``; ``mask[i][j]`` False draws the cell hatched."""
    rows, cols = len(m), len(m[0])
    size = max(4.0, min(40.0, width / cols, 320 / rows))
    labels = size >= 30 if labels is None else labels
    cells = []
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            masked = mask is not None and not mask[i][j]
            if not math.isfinite(v):  # nan or inf: loud, whatever the colour map
                fill, text, label, hatched, flagged = (
                    NAN_FILL,
                    f"[{i}, {j}] {v}",
                    "nan",
                    False,
                    True,
                )
            else:
                flagged = masked and abs(v) > 1e-6  # weight on a position it must not see
                hatched = masked and not flagged
                fill = MASKED_FILL if hatched else color(v)
                text = tip(i, j, v) if tip else f"[{i}, {j}] = {fmt(v)}"
                text += " (masked)" if hatched else ""
                text += (
                    " (masked, but not 0: attends to a position it must not see)" if flagged else ""
                )
                label = "" if hatched else f"{v:.2f}"
            cells.append(
                Cell(
                    j * size,
                    i * size,
                    fill,
                    text,
                    label if labels else "",
                    ink(fill),
                    masked=hatched,
                    flagged=flagged,
                )
            )
    return Heatmap(title, rows, cols, size, cells)


def _missing(error: Any, what: str) -> str:
    """Why the learner's side of a picture is empty."""
    if error and "not implemented" in str(error).lower():
        return f"Not implemented yet: {what} from your code will appear here."
    if error:
        return f"Your code could not produce {what}: {clean(error, 600)}"
    return f"No {what} from your code (the component is not implemented yet or was not run)."


def attention_figure(data: Any) -> Figure | None:
    if not isinstance(data, dict):
        return None
    ref = matrix(data.get("reference"))
    if ref is None:
        return None
    mask = data.get("mask")
    bools = None
    if (
        isinstance(mask, list)
        and len(mask) == len(ref)
        and all(isinstance(r, list) and len(r) == len(ref[0]) for r in mask)
    ):
        bools = [[v is True or v == 1 for v in r] for r in mask]

    def color(v: float) -> str:
        return ramp(SEQUENTIAL, v)

    def panel(title: str, m: list[list[float]] | None) -> Panel:
        if m is None:
            return Panel(title, message=_missing(data.get("error"), "attention weights"))
        same = len(m) == len(ref) and len(m[0]) == len(ref[0])
        h = heatmap(title, m, color, mask=bools if same else None, width=210)
        h.row_axis, h.col_axis = "query position", "key position"
        h.side_title = "row sum"
        h.side = [(f"{sum(r):.2f}", not abs(sum(r) - 1) < 1e-3) for r in m]
        note = "" if same else f"shape {len(m)}×{len(m[0])}, expected {len(ref)}×{len(ref[0])}"
        return Panel(title, heatmap=h, message=note)

    notes = ["each row is a distribution over keys: its sum must be 1"]
    if bools:
        notes.append("hatched: masked (weight must be 0); red outline: masked but not 0")
    learner = matrix(data.get("learner"))
    figure = Figure(
        "attention",
        "Attention weights",
        clean(data.get("description"), 600),
        [panel("Reference", ref), panel("Your code", learner)],
        [Legend(SEQUENTIAL, "0", "1", notes, "weight")],
    )
    return _with_difference(figure, ref, learner, labels=None)


def _with_difference(
    figure: Figure, ref: list[list[float]], learner: list[list[float]] | None, labels: bool | None
) -> Figure:
    """Add a third panel, |yours - reference|, when both have the same shape."""
    if learner is None or (len(learner), len(learner[0])) != (len(ref), len(ref[0])):
        return figure
    error = [
        [abs(a - b) for a, b in zip(ra, rb, strict=True)]
        for ra, rb in zip(learner, ref, strict=True)
    ]
    worst = max([v for r in error for v in r if math.isfinite(v)] + [0.0])
    top = max(worst, 1e-12)
    h = heatmap(
        "|yours − reference|",
        error,
        lambda v: ramp(ERROR, v / top),
        labels=labels,
        width=figure.panels[0].heatmap.cols * figure.panels[0].heatmap.size,
    )
    h.row_axis, h.col_axis = figure.panels[0].heatmap.row_axis, figure.panels[0].heatmap.col_axis
    figure.panels.append(Panel(h.title, heatmap=h))
    note = "identical to the reference" if worst == 0 else f"largest difference {fmt(worst)}"
    figure.legends.append(
        Legend(ERROR, "0", fmt(top) if worst else "0", [note], "|yours − reference|")
    )
    return figure


def positional_figure(data: Any) -> Figure | None:
    if not isinstance(data, dict):
        return None
    ref = matrix(data.get("reference"))
    if ref is None:
        return None

    def color(v: float) -> str:
        return ramp(DIVERGING, (v + 1) / 2)

    def panel(title: str, m: list[list[float]] | None) -> Panel:
        if m is None:
            return Panel(title, message=_missing(data.get("error"), "a positional encoding"))
        h = heatmap(title, m, color, labels=False, width=260)
        h.row_axis, h.col_axis = "position", "feature"
        return Panel(title, heatmap=h)

    learner = matrix(data.get("learner"))
    figure = Figure(
        "positional_encoding",
        "Positional encoding",
        clean(data.get("description"), 600),
        [panel("Reference", ref), panel("Your code", learner)],
        [Legend(DIVERGING, "−1", "+1", ["row p is the encoding added at position p"], "value")],
    )
    return _with_difference(figure, ref, learner, labels=False)


@dataclass
class Dot:
    x: float
    y: float
    tip: str
    off: bool = False  # differs from the reference
    nan: bool = False


@dataclass
class StatsPlot:
    """Per-row values as dots, with a dashed guide line at the expected value."""

    title: str
    guide: float
    guide_y: float
    ticks: list[tuple[float, str]]
    reference: list[Dot]
    learner: list[Dot]
    width: float = 300
    height: float = 150
    left: float = 52


def stats_plot(title: str, guide: float, ref: list[float], got: list[float] | None) -> StatsPlot:
    finite = [v for v in ref + (got or []) if math.isfinite(v)] + [guide]
    lo, hi = min(finite), max(finite)
    pad = max(hi - lo, 0.2) * 0.15
    lo, hi = lo - pad, hi + pad
    plot = StatsPlot(title, guide, 0, [], [], [])
    inner_w, inner_h, top = plot.width - plot.left - 10, plot.height - 34, 8
    n = max(len(ref), len(got or []), 1)

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * inner_h

    def x(i: int) -> float:
        return plot.left + (i + 0.5) * inner_w / n

    plot.guide_y = y(guide)
    plot.ticks = [
        (y(v), fmt(v))
        for v in (lo + pad, guide, hi - pad)
        if v == guide or abs(v - guide) > (hi - lo) * 0.12
    ]
    plot.reference = [
        Dot(x(i), y(v), f"row {i}: reference {fmt(v)}")
        for i, v in enumerate(ref)
        if math.isfinite(v)
    ]
    for i, v in enumerate(got or []):
        expected = ref[i] if i < len(ref) else math.nan
        if not math.isfinite(v):
            plot.learner.append(Dot(x(i), top + 4, f"row {i}: yours {v}", off=True, nan=True))
            continue
        off = not (math.isfinite(expected) and abs(v - expected) <= 1e-3 * max(1, abs(expected)))
        plot.learner.append(
            Dot(x(i), y(v), f"row {i}: yours {fmt(v)}, reference {fmt(expected)}", off=off)
        )
    return plot


def layernorm_figure(data: Any) -> Figure | None:
    if not isinstance(data, dict) or not isinstance(data.get("reference"), dict):
        return None
    ref_mean, ref_var = (vector(data["reference"].get(k)) for k in ("mean", "var"))
    if ref_mean is None or ref_var is None:
        return None
    learner = data.get("learner") if isinstance(data.get("learner"), dict) else {}
    got_mean, got_var = (vector(learner.get(k)) for k in ("mean", "var"))
    panels = [
        Panel("Mean of each output row", plot=stats_plot("mean", 0.0, ref_mean, got_mean)),
        Panel("Variance of each output row", plot=stats_plot("var", 1.0, ref_var, got_var)),
    ]
    if got_mean is None or got_var is None:
        panels[0].message = _missing(data.get("error"), "LayerNorm outputs")
    return Figure("layernorm", "LayerNorm statistics", clean(data.get("description"), 600), panels)


def diff_figure(diff: Any) -> Figure | None:
    """Expected, got and |got - expected| of one failed check (a slice of at most 16x16)."""
    if not isinstance(diff, dict):
        return None
    expected, got = matrix(diff.get("expected"), 16, 16), matrix(diff.get("got"), 16, 16)
    if (
        expected is None
        or got is None
        or (len(expected), len(expected[0])) != (len(got), len(got[0]))
    ):
        return None
    error = [
        [abs(g - e) for e, g in zip(er, gr, strict=True)]
        for er, gr in zip(expected, got, strict=True)
    ]
    finite = [abs(v) for r in expected + got for v in r if math.isfinite(v)]
    scale = max(finite + [1e-12])
    worst = max([v for r in error for v in r if math.isfinite(v)] + [0.0])

    def values(v: float) -> str:
        return ramp(DIVERGING, (v / scale + 1) / 2)

    def errors(v: float) -> str:
        return ramp(ERROR, v / worst if worst > 0 else 0.0)

    def tip(i: int, j: int, v: float) -> str:
        return (
            f"[{i}, {j}] expected {fmt(expected[i][j])}, got {fmt(got[i][j])}, "
            f"|diff| {fmt(error[i][j])}"
        )

    maps = [
        heatmap("Expected", expected, values, labels=False, width=160, tip=tip),
        heatmap("Got", got, values, labels=False, width=160, tip=tip),
        heatmap("|got − expected|", error, errors, labels=False, width=160, tip=tip),
    ]
    return Figure(
        "diff",
        "Where your output differs",
        clean(diff.get("where"), 300),
        [Panel(h.title, heatmap=h) for h in maps],
        [
            Legend(DIVERGING, f"−{fmt(scale)}", f"+{fmt(scale)}", [], "expected and got"),
            Legend(
                ERROR, "0", fmt(worst), [f"largest difference {fmt(worst)}"], "|got − expected|"
            ),
        ],
    )


def artifact_figures(artifacts: Any) -> list[Figure]:
    """The pictures in ``results.json["artifacts"]``; missing or partial ones are skipped."""
    if not isinstance(artifacts, dict):
        return []
    builders = (
        ("attention", attention_figure),
        ("positional_encoding", positional_figure),
        ("layernorm", layernorm_figure),
    )
    return [f for key, build in builders if (f := build(artifacts.get(key))) is not None]


# ------------------------------------------------------------------------- checks and components


@dataclass
class CheckView:
    name: str
    title: str
    status: str
    points: float
    max_points: float
    redacted: bool = False  # a hidden check in the learner view: name and points only
    message: str = ""
    case: str = ""
    case_label: str = ""
    expected_got: list[tuple[str, str, str]] = field(default_factory=list)
    hint: str = ""
    traceback: str = ""
    diff: Figure | None = None
    nodeid: str = ""
    duration: str = ""
    hidden: bool = False


def check_view(check: CheckResult, *, learner_view: bool) -> CheckView:
    view = CheckView(
        clean(check.name, 200),
        clean(check.title, 600),
        check.status,
        check.points,
        check.max_points,
        hidden=check.hidden,
        duration=f"{check.duration_s:.2f} s",
    )
    if check.hidden and learner_view:
        view.title, view.redacted, view.duration = "", True, ""
        return view
    view.message = clean(check.message)
    view.hint = clean(check.hint)
    view.traceback = trim_traceback(check.traceback)
    view.nodeid = "" if learner_view else clean(check.nodeid, 300)
    if check.counterexample:
        first, *rest = clean(check.counterexample).splitlines()
        kept = []
        for line in rest:
            m = _EXPECTED_GOT.match(line)
            if m:
                kind = m.group(1).lower()
                view.expected_got.append(
                    (kind, (kind.capitalize() + m.group(2)).strip(), m.group(3))
                )
            else:
                kept.append(line)
        if {k for k, _, _ in view.expected_got} != {"expected", "got"}:
            kept, view.expected_got = rest, []  # not a plain pair: show the lines as they are
        view.case = "\n".join([first] + kept)
        view.case_label = "Called with" if check.status == "error" else "Smallest case found"
    if check.status not in ("passed", "skipped"):
        view.diff = diff_figure(check.diff)
    return view


@dataclass
class ComponentView:
    name: str
    module: str
    status: str
    label: str
    score: float
    max_score: float
    failed: list[CheckView]
    passed: list[CheckView]
    forbidden_message: str = ""

    @property
    def percent(self) -> float:
        return 100 * self.score / self.max_score if self.max_score else 0.0


def component_view(component: ComponentResult, *, learner_view: bool) -> ComponentView:
    checks = [check_view(c, learner_view=learner_view) for c in component.checks]
    view = ComponentView(
        component.name,
        component.module or "",
        component.status,
        component_label(component),
        component.score,
        component.max_score,
        failed=[c for c in checks if c.status not in ("passed", "skipped")],
        passed=[c for c in checks if c.status in ("passed", "skipped")],
    )
    if component.status == "forbidden":
        shown = [c for c in view.failed if c.status == "forbidden" and not c.redacted]
        view.forbidden_message = (
            shown[0].message if shown else "This component calls an API that the exercise forbids."
        )
    return view


def isolation_note(isolation: Any) -> dict[str, str]:
    """How far the score can be trusted, from ``results.json["isolation"]``."""
    iso = isolation if isinstance(isolation, dict) else {}
    sandbox = clean(iso.get("sandbox", ""), 600)
    note = clean(iso.get("note", ""), 600)
    if not iso:
        return {
            "level": "warn",
            "headline": "Isolation unknown",
            "text": "These results do not say how the learner's code was run; "
            "treat the score as untrusted.",
        }
    if iso.get("mode") == "none" or iso.get("trusted") is False:
        return {
            "level": "danger",
            "headline": "Not tamper-proof",
            "text": note
            or "The learner's code ran inside the grading process "
            "(--isolation none): fine for practice, not for grades.",
        }
    if sandbox.startswith("none"):
        return {
            "level": "warn",
            "headline": "Sandbox unavailable",
            "text": f"Learner code ran in a separate worker process without a sandbox: {sandbox}",
        }
    return {
        "level": "ok",
        "headline": f"Isolated ({clean(iso.get('mode', ''), 40)})",
        "text": sandbox or note,
    }


# ------------------------------------------------------------------------- rendering


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(bundled("reports"))),
        autoescape=True,  # every template is HTML; learner text is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["points"] = points
    env.filters["fmt"] = fmt
    env.filters["clean"] = clean
    env.filters["code_spans"] = code_spans
    return env


def _check_view(view: str) -> bool:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    return view == "learner"


def render_submission(result: GradeResult, *, view: str = "learner") -> str:
    """One submission's report as a single self-contained HTML page."""
    learner_view = _check_view(view)
    components = [component_view(c, learner_view=learner_view) for c in result.components]
    modules: dict[str, list[ComponentView]] = {}
    for c in components:
        modules.setdefault(c.module, []).append(c)
    return (
        _environment()
        .get_template("submission.html.j2")
        .render(
            view=view,
            submission=clean(result.submission, 500),
            name=clean(Path(str(result.submission)).name or result.submission, 200),
            score=result.score,
            max_score=result.max_score,
            percent=100 * result.score / result.max_score if result.max_score else 0.0,
            components=components,
            modules=modules,
            figures=artifact_figures(result.artifacts),
            isolation=isolation_note(result.isolation),
            isolation_details={k: clean(v, 600) for k, v in (result.isolation or {}).items()},
            environment={
                clean(k, 100): clean(v, 600) for k, v in (result.environment or {}).items()
            },
            duration=result.duration_s,
            rubric=clean(result.rubric, 500),
            failed_count=sum(len(c.failed) for c in components),
            check_count=sum(len(c.failed) + len(c.passed) for c in components),
        )
    )


def write_submission(result: GradeResult, path: Path, *, view: str = "learner") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_submission(result, view=view), encoding="utf-8")
    return path


def slug(name: str) -> str:
    """A file name for a student's page: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "submission"


FAILING = ("failed", "error")  # check statuses that count as a failing property


@dataclass
class CommonFailure:
    """One check that fails for several students, for the class index."""

    component: str
    name: str  # the check id
    title: str  # the property in plain words ("" when redacted)
    hint: str  # the hint most of these students got ("" when redacted)
    other_hints: int  # how many different hints the others got
    count: int  # students failing it
    graded: int  # students graded on it
    students: list[str]
    hidden: bool = False
    redacted: bool = False  # a hidden check in a learner-facing view: name only
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100 * self.count / self.graded if self.graded else 0.0


def common_failures(
    results: Mapping[str, GradeResult], *, view: str = "instructor", top: int | None = 10
) -> list[CommonFailure]:
    """The checks failed (or crashed) by the most students, most first, at most ``top``.

    Not-implemented and forbidden checks are left out: they say a component was not started
    or broke a rule, not which property is wrong. A hidden check shows only its component and
    name in the learner view.
    """
    learner_view = _check_view(view)
    order: dict[tuple[str, str], int] = {}  # curriculum order, for ties
    graded: Counter[tuple[str, str]] = Counter()
    failing: dict[tuple[str, str], list[tuple[str, CheckResult]]] = {}
    for student, result in sorted(results.items()):
        for component in result.components:
            for check in component.checks:
                key = (component.name, check.name)
                order.setdefault(key, len(order))
                graded[key] += 1
                if check.status in FAILING:
                    failing.setdefault(key, []).append((student, check))
    rows: list[tuple[int, CommonFailure]] = []
    for key, hits in failing.items():
        checks = [c for _, c in hits]
        hints = Counter(clean(c.hint) for c in checks if c.hint)
        hint, _ = hints.most_common(1)[0] if hints else ("", 0)
        titles = Counter(clean(c.title, 600) for c in checks)
        hidden = any(c.hidden for c in checks)
        redacted = hidden and learner_view
        row = CommonFailure(
            component=clean(key[0], 200),
            name=clean(key[1], 200),
            title="" if redacted else titles.most_common(1)[0][0],
            hint="" if redacted else hint,
            other_hints=0 if redacted else max(len(hints) - 1, 0),
            count=len(hits),
            graded=graded[key],
            students=[clean(s, 200) for s, _ in hits],
            hidden=hidden,
            redacted=redacted,
            statuses=dict(Counter(c.status for c in checks)),
        )
        rows.append((order[key], row))
    rows.sort(key=lambda r: (-r[1].count, r[0]))
    ranked = [row for _, row in rows]
    return ranked if top is None else ranked[:top]


def render_class(
    results: Mapping[str, GradeResult],
    links: Mapping[str, str] | None = None,
    *,
    view: str = "instructor",
    errors: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
    top: int = 10,
) -> str:
    """The class index: one sortable row per student, and where the class loses points.

    ``links`` maps a student to the relative file name of their page (see :func:`write_class`).
    ``errors`` (student -> why) are submissions that could not be graded, ``notes`` (student ->
    text) things worth knowing about one (e.g. a name clash); both are listed at the top.
    ``top`` common failing properties are shown, with hidden checks redacted in the learner
    view.
    """
    links = links or {}
    _check_view(view)
    names: dict[str, None] = {}
    for result in results.values():
        names.update(dict.fromkeys(c.name for c in result.components))
    rows = []
    for student, result in sorted(results.items()):
        comps = {c.name: c for c in result.components}
        rows.append(
            {
                "student": clean(student, 200),
                "link": links.get(student, ""),
                "score": result.score,
                "max_score": result.max_score,
                "percent": 100 * result.score / result.max_score if result.max_score else 0.0,
                "cells": [
                    (comps[n].score, comps[n].max_score, comps[n].status) if n in comps else None
                    for n in names
                ],
                "isolation": isolation_note(result.isolation),
                "duration": result.duration_s,
            }
        )
    percents = [r["percent"] for r in rows]
    averages = []
    for i, n in enumerate(names):
        cells = [r["cells"][i] for r in rows if r["cells"][i] is not None]
        got, total = sum(c[0] for c in cells), sum(c[1] for c in cells)
        averages.append((n, 100 * got / total if total else 0.0))
    histogram = [0] * 10
    for p in percents:
        histogram[min(int(p // 10), 9)] += 1
    return (
        _environment()
        .get_template("class.html.j2")
        .render(
            rows=rows,
            components=list(names),
            averages=averages,
            histogram=histogram,
            stats={
                "count": len(rows),
                "mean": statistics.fmean(percents) if percents else 0.0,
                "median": statistics.median(percents) if percents else 0.0,
                "low": min(percents, default=0.0),
                "high": max(percents, default=0.0),
            },
            untrusted=sum(r["isolation"]["level"] != "ok" for r in rows),
            failures=common_failures(results, view=view, top=top),
            links={clean(k, 200): v for k, v in links.items()},
            errors=sorted((clean(k, 200), clean(v, 1000)) for k, v in (errors or {}).items()),
            notes=sorted((clean(k, 200), clean(v, 1000)) for k, v in (notes or {}).items()),
            view=view,
        )
    )


def write_class(
    results: Mapping[str, GradeResult],
    out: Path,
    *,
    view: str = "instructor",
    errors: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
) -> Path:
    """``out/index.html`` and one page per student under ``out/submissions/``."""
    out = Path(out)
    links: dict[str, str] = {}
    taken: set[str] = set()
    for student, result in sorted(results.items()):
        base = name = slug(student)
        n = 2
        while name.lower() in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name.lower())
        write_submission(result, out / "submissions" / f"{name}.html", view=view)
        links[student] = f"submissions/{name}.html"
    index = out / "index.html"
    index.write_text(
        render_class(results, links, view=view, errors=errors, notes=notes), encoding="utf-8"
    )
    return index
