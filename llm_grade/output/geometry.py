"""Geometry of the HTML report's pictures: learner numbers checked into rectangular
matrices and vectors (:func:`matrix`, :func:`vector`), and the view models the templates draw
as inline SVG, with every coordinate worked out here: :class:`Cell` and :class:`Heatmap`
(:func:`heatmap`), :class:`Dot` and :class:`StatsPlot` (:func:`stats_plot`), :class:`Legend`,
:class:`Panel` and :class:`Figure`. The figures themselves are built in
:mod:`llm_grade.output.figures`.

Trusted side: only reads plain JSON values from ``results.json``; nothing here runs learner
code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llm_grade.output.colours import MASKED_FILL, NAN_FILL, ink, ramp
from llm_grade.output.text import fmt


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
