"""HTML reports: one self-contained page per submission, and an index for a whole class.

Data flows one way: a :class:`GradeResult` -> view models (numbers, colours, coordinates)
-> the jinja2 templates in ``reports/`` (autoescape on) -> one HTML file with inline CSS and
SVG, no external assets, readable offline and without JavaScript.

Learner-controlled text (messages, tracebacks, counterexamples, the submission path,
artifact errors) reaches the page only as autoescaped template variables; no markup is built
from strings here. In the learner view a hidden check's details are never handed to the
template at all, so no template change can leak them.

This module keeps the entry points (:func:`render_submission`, :func:`write_submission`,
:func:`render_class`, :func:`write_class`) and the jinja2 environment. The rest lives beside
it in ``llm_grade/output/``: ``text`` (:func:`clean` and other text helpers), ``colours``
(ramps), ``geometry`` (heatmaps and plots), ``figures`` (the pictures), ``views`` (checks and
components) and ``classes`` (class statistics). :func:`clean` and :func:`common_failures`
stay importable from here.

Trusted side: renders results already graded; nothing here runs learner code.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from markupsafe import Markup

from llm_grade.engine.feedback import points
from llm_grade.engine.results import GradeResult
from llm_grade.output.classes import common_failures, slug
from llm_grade.output.figures import (
    artifact_figures,
    efficiency_view,
    profile_view,
    tasks_view,
    training_view,
    worked_example_view,
)
from llm_grade.output.text import clean, code_spans, fmt
from llm_grade.output.views import (
    ComponentView,
    _check_view,
    component_view,
    isolation_note,
    readable,
)
from llm_grade.paths import bundled


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
            worked=worked_example_view((result.artifacts or {}).get("worked_example")),
            efficiency=efficiency_view((result.artifacts or {}).get("efficiency")),
            training=training_view(result.components),
            tasks=tasks_view((result.artifacts or {}).get("tasks")),
            profile=profile_view((result.artifacts or {}).get("efficiency")),
            isolation=isolation_note(result.isolation),
            isolation_details={
                clean(k, 60): readable(v) for k, v in (result.isolation or {}).items()
            },
            environment={
                clean(k, 100): clean(v, 600) for k, v in (result.environment or {}).items()
            },
            duration=result.duration_s,
            rubric=clean(result.rubric, 500),
            origin=_origin_view(result.origin),
            notes=[clean(n, 2000) for n in result.notes if not _origin_note(n, result.origin)],
            failed_count=sum(len(c.failed) for c in components),
            check_count=sum(len(c.failed) + len(c.passed) for c in components),
        )
    )


# which components each picture of the report shows
FIGURE_KEYS = {
    "attention": ("scaled_dot_product_attention", "AttentionHead", "MultiHeadAttention"),
    "positional_encoding": ("sinusoidal_positional_encoding", "SinusoidalPositionalEncoding"),
    "layernorm": ("LayerNorm",),
}


def render_inline(result: GradeResult, names, *, view: str = "learner", read: str = "") -> str:
    """The feedback of a notebook's "check my work" cell: the submission page's sections for
    the components ``names`` only (and their pictures), in one ``<div>`` whose styles apply
    to it alone. ``read`` says which cells were graded."""
    learner_view = _check_view(view)
    chosen = [c for c in result.components if c.name in set(names)]
    components = [component_view(c, learner_view=learner_view) for c in chosen]
    artifacts = {
        key: value
        for key, value in (result.artifacts or {}).items()
        if set(FIGURE_KEYS.get(key, ())) & set(names)
    }
    score = round(sum(c.score for c in chosen), 4)
    top = round(sum(c.max_score for c in chosen), 4)
    return (
        _environment()
        .get_template("inline.html.j2")
        .render(
            css=Markup(_scoped_css()),  # our own stylesheet, not learner text
            view=view,
            title=", ".join(c.name for c in chosen) or "nothing graded",
            read=clean(read, 500),
            score=score,
            max_score=top,
            percent=100 * score / top if top else 0.0,
            components=components,
            origin=_origin_view(result.origin),
            problems=[clean(p, 1000) for p in (result.origin or {}).get("problems") or []],
            figures=artifact_figures(artifacts),
            isolation=isolation_note(result.isolation),
            duration=result.duration_s,
            failed_count=sum(len(c.failed) for c in components),
            check_count=sum(len(c.failed) + len(c.passed) for c in components),
        )
    )


@lru_cache(maxsize=1)
def _scoped_css() -> str:
    """The report's stylesheet with every rule limited to ``.llm-grade`` (``:root``, ``html``
    and ``body`` become the feedback's own box), so a notebook's styles are left alone."""
    css = (bundled("reports") / "_style.css").read_text(encoding="utf-8")
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)

    def scope(selectors: str) -> str:
        out = []
        for sel in selectors.split(","):
            sel = sel.strip()
            if sel in (":root", "html", "body"):
                out.append(".llm-grade")
            elif sel == "*":
                out.append(".llm-grade, .llm-grade *")
            else:
                out.append(f".llm-grade {sel}")
        return ", ".join(out)

    def rules(text: str) -> str:
        result, i = [], 0
        while i < len(text):
            brace = text.find("{", i)
            if brace < 0:
                break
            head = text[i:brace].strip()
            depth, j = 1, brace + 1
            while depth and j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            body = text[brace + 1 : j - 1]
            if head.startswith("@"):
                result.append(f"{head} {{\n{rules(body)}}}")
            else:
                result.append(f"{scope(head)} {{{body}}}")
            i = j
        return "\n".join(result) + "\n"

    return rules(css) + ".llm-grade { padding: 4px 12px 12px; border-radius: 8px; }\n"


def _origin_view(origin: Mapping | None) -> dict:
    """A notebook or script submission, for the page: its file, where each graded name was
    read, what could not be read and what was not run (all learner-controlled text)."""
    if not origin:
        return {}
    return {
        "file": clean(origin.get("file", ""), 300),
        "cells": {clean(k, 100): clean(v, 100) for k, v in (origin.get("cells") or {}).items()},
        "problems": [clean(p, 1000) for p in origin.get("problems") or []],
        "not_run": [clean(p, 400) for p in (origin.get("not_run") or [])[:500]],
        "not_run_total": len(origin.get("not_run") or []),
    }


def _origin_note(note: str, origin: Mapping | None) -> bool:
    """Whether a note of the result only repeats what the origin section shows."""
    if not origin:
        return False
    return note in (origin.get("problems") or []) or note.startswith("Not run by the grader")


def write_submission(result: GradeResult, path: Path, *, view: str = "learner") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_submission(result, view=view), encoding="utf-8")
    return path


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
