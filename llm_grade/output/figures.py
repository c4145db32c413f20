"""The pictures of the HTML report: attention weights, positional encodings and LayerNorm
statistics from ``results.json["artifacts"]`` (:func:`artifact_figures`), and expected, got
and their difference for one failed check (:func:`diff_figure`), each a :class:`Figure` of
panels laid out by :mod:`llm_grade.output.geometry`.

Trusted side: only reads plain JSON values from ``results.json``; nothing here runs learner
code. Learner text (error messages, descriptions) is cleaned and reaches the page only as
autoescaped template variables.
"""

from __future__ import annotations

import math
from typing import Any

from llm_grade.output.colours import DIVERGING, ERROR, SEQUENTIAL, ramp
from llm_grade.output.geometry import (
    Figure,
    Legend,
    Panel,
    heatmap,
    matrix,
    stats_plot,
    vector,
)
from llm_grade.output.text import clean, fmt, percent


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


def rows_differ(expected: list[list[float]], got: list[list[float]]) -> list[bool]:
    """For the worked example's tables (report and terminal): which rows of ``got`` differ
    from ``expected`` by more than the tables' 3 decimals show."""
    return [
        any(abs(a - b) > 1e-3 for a, b in zip(e, g, strict=False))
        for e, g in zip(expected, got, strict=False)
    ]


def worked_example_view(data: Any) -> dict | None:
    """The tiny worked example (curriculum 1.2) as small tables for the report: the inputs and
    the scores to check by hand, then weights and output, expected next to the learner's, with
    the rows that differ marked. None when it is missing or malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("reference"), dict):
        return None
    cells = {name: matrix(data.get(name), 8, 8) for name in ("q", "k", "v", "scores")}
    expected = {name: matrix(data["reference"].get(name), 8, 8) for name in ("weights", "out")}
    if any(m is None for m in (*cells.values(), *expected.values())):
        return None
    mine = data.get("learner") if isinstance(data.get("learner"), dict) else {}

    def shown(m: list[list[float]], exact: bool = False) -> list[list[str]]:
        """Inputs and scores as written by hand (0.5, 2); weights and outputs to 3 places."""
        if exact:
            return [[f"{v:.3f}".rstrip("0").rstrip(".") for v in r] for r in m]
        return [[f"{v:.3f}" for v in r] for r in m]

    tables = []
    for name, title in (
        ("weights", "weights = softmax(scores), row by row"),
        ("out", "out = weights @ v"),
    ):
        got = matrix(mine.get(name), 8, 8)
        same = got is not None and [len(r) for r in got] == [len(r) for r in expected[name]]
        differs = rows_differ(expected[name], got) if same else [False] * len(expected[name])
        tables.append(
            {
                "title": title,
                "expected": shown(expected[name]),
                "got": shown(got) if same else None,
                "differs": differs,
            }
        )
    return {
        "description": clean(data.get("description", ""), 400),
        "inputs": [(name, shown(cells[name], exact=True)) for name in ("q", "k", "v")],
        "scores": shown(cells["scores"], exact=True),
        "tables": tables,
        "missing": None if mine else _missing(data.get("error"), "weights and output"),
    }


def efficiency_view(data: Any) -> list[dict] | None:
    """The efficiency timings (``artifacts["efficiency"]``) as table rows for the report."""
    if not isinstance(data, dict) or not data:
        return None
    rows = []
    for component, entry in data.items():
        if not isinstance(entry, dict):
            continue
        ratio = entry.get("ratio")
        numbers = all(
            isinstance(entry.get(k), (int, float)) for k in ("learner_ms", "reference_ms", "ratio")
        )
        rows.append(
            {
                "component": clean(component, 60),
                "shape": clean(entry.get("shape", ""), 200),
                "learner": f"{entry['learner_ms']:.3g} ms" if numbers else "",
                "reference": f"{entry['reference_ms']:.3g} ms" if numbers else "",
                "ratio": f"{ratio:.1f}x" if numbers else "",
                "warning": clean(entry.get("warning") or "", 600),
                "error": clean(entry.get("error") or "", 300),
            }
        )
    return rows or None


def profile_view(data: Any) -> dict | None:
    """GPT's profile (``artifacts["efficiency"]["GPT"]["profile"]``): the top operators by
    self time, the learner's next to the reference's, as table rows for the report."""
    entry = data.get("GPT") if isinstance(data, dict) else None
    found = entry.get("profile") if isinstance(entry, dict) else None
    if not isinstance(found, dict):
        return None

    def rows(side: Any) -> list[tuple[str, str, str]]:
        out = []
        for row in side if isinstance(side, list) else []:
            if isinstance(row, list) and len(row) == 3 and isinstance(row[1], (int, float)):
                name, calls = clean(str(row[0]), 80), clean(str(row[2]), 10)
                out.append((name, f"{row[1] / 1000:.3g} ms", calls))
        return out

    mine, ref = rows(found.get("learner")), rows(found.get("reference"))
    if not ref:
        return None
    blank = ("", "", "")
    n = max(len(mine), len(ref))
    return {
        "shape": clean(entry.get("shape", ""), 200),
        "rows": [
            (*(mine[i] if i < len(mine) else blank), *(ref[i] if i < len(ref) else blank))
            for i in range(n)
        ],
        "error": clean(found.get("learner_error") or "", 200),
    }


def _curve(values: Any) -> list[float] | None:
    if not isinstance(values, list) or not 1 < len(values) <= 2000:
        return None
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


def _chart(ref: list[float], mine: list[float] | None, width: int, height: int) -> dict:
    """Two loss curves as SVG polyline points on one scale (0 at the bottom, the y axis at
    x = 28)."""
    top = max(ref + (mine or [])) * 1.05 or 1.0

    def points(values: list[float]) -> str:
        step = (width - 34) / max(1, len(values) - 1)
        return " ".join(
            f"{28 + i * step:.1f},{6 + (height - 26) * (1 - v / top):.1f}"
            for i, v in enumerate(values)
        )

    return {
        "width": width,
        "height": height,
        "top": f"{top:.2g}",
        "reference": points(ref),
        "learner": points(mine) if mine else "",
    }


def training_view(components: Any, width: int = 360, height: int = 150) -> list[dict] | None:
    """The training checks' loss curves (``CheckResult.curves``: the learner's model and the
    reference, trained the same way) as SVG polylines for the report, one chart a model."""
    charts = []
    for component in components or ():
        for check in getattr(component, "checks", ()):
            data = check.curves if isinstance(check.curves, dict) else None
            if not data:
                continue
            ref, mine = _curve(data.get("reference")), _curve(data.get("learner"))
            if ref is None:
                continue
            charts.append(
                {
                    "component": clean(component.name, 60),
                    "title": clean(check.title, 300),
                    "status": check.status,
                    "steps": len(ref) - 1,
                    **_chart(ref, mine, width, height),
                    "summary": (
                        f"yours {mine[0]:.2f} -> {mine[-1]:.2f}, reference {ref[0]:.2f} -> "
                        f"{ref[-1]:.2f}"
                        if mine
                        else f"reference {ref[0]:.2f} -> {ref[-1]:.2f}"
                    ),
                }
            )
    return charts or None


def _smoothed(values: list[float] | None, points: int = 100) -> list[float] | None:
    """A long, noisy curve (a fresh batch each step) as the means of ``points`` windows."""
    if values is None or len(values) <= points:
        return values
    size = len(values) / points
    return [
        sum(part) / len(part)
        for i in range(points)
        if (part := values[round(i * size) : round((i + 1) * size)])
    ]


def tasks_view(data: Any, width: int = 360, height: int = 150) -> list[dict] | None:
    """``--train``'s results (``artifacts["tasks"]``): per model its task, the accuracies,
    the loss curves (smoothed) and a few held-out examples, for the report."""
    if not isinstance(data, dict):
        return None
    views = []
    for component, entry in data.items():
        if not isinstance(entry, dict):
            continue
        mine = entry.get("learner") if isinstance(entry.get("learner"), dict) else {}
        ref = entry.get("reference") if isinstance(entry.get("reference"), dict) else {}
        ref_curve = _smoothed(_curve(ref.get("losses")))
        my_curve = _smoothed(_curve(mine.get("losses")))

        examples = [
            {k: clean(e.get(k, ""), 100) for k in ("input", "expected", "got")}
            for e in entry.get("examples") or []
            if isinstance(e, dict)
        ][:6]
        views.append(
            {
                "component": clean(component, 60),
                "task": clean(entry.get("task", ""), 200),
                "schedule": clean(entry.get("schedule", ""), 200),
                "model": clean(entry.get("model", ""), 200),
                "passed": entry.get("passed") if entry.get("passed") in (True, False) else None,
                "yours": percent(mine.get("accuracy")),
                "reference": percent(ref.get("accuracy")),
                "bound": percent(entry.get("bound")),
                "held_out": clean(str(entry.get("held_out", "")), 10),
                "unseen": entry.get("unseen") is True,
                "seed": clean(str(entry.get("seed", "")), 12),
                "chart": _chart(ref_curve, my_curve, width, height) if ref_curve else None,
                "steps": len(ref.get("losses") or []),
                "examples": examples,
                "message": clean(entry.get("message") or entry.get("error") or "", 600),
                "hint": clean(entry.get("hint") or "", 600),
                "note": clean(entry.get("note") or "", 300),
            }
        )
    return views or None


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
