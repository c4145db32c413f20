"""``llm-grade watch FOLDER``: re-grade on every save, only what the save can have changed.

A learner keeps this running next to the editor. After the first full grading, each batch of
saved files re-grades the components of the changed modules and of every module that imports
one of them, directly or transitively (:mod:`llm_grade.policy.imports`, read from the source:
nothing of the learner's runs outside the grader). The other components keep their last
result, so a save costs seconds, and the table says what moved since the last run.

Everything the loop touches is a parameter (``echo``, ``changes``, ``stop_event``) so that it
runs in a test without a terminal or a file watcher; the grading itself is the real engine
(:func:`llm_grade.engine.run.grade`), with the same options as ``llm-grade grade``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from llm_grade.components import COMPONENTS, MODULES, exactly
from llm_grade.engine.feedback import component_label, failure_blocks, points
from llm_grade.engine.options import GradingOptions
from llm_grade.engine.results import ComponentResult, GradeResult
from llm_grade.engine.run import GradingError, grade
from llm_grade.policy.imports import dependents, module_imports

UP, DOWN, OTHER = "▲", "▼", "•"  # score up, score down, same score but another status


def _module_of(path: Path, folder: Path) -> str | None:
    """The curriculum module ``path`` is, if it is one of ``folder``'s (the grader stages
    only those: a helper file or a file in a sub-folder is never graded)."""
    path = Path(path).resolve()
    if path.suffix == ".py" and path.stem in MODULES and path.parent == folder.resolve():
        return path.stem
    return None


def _sources(folder: Path) -> dict[str, str]:
    sources = {}
    for module in MODULES:
        try:
            sources[module] = (folder / f"{module}.py").read_text("utf-8", errors="replace")
        except OSError:  # not written yet, or deleted: it imports nothing
            continue
    return sources


def affected_components(folder: Path, changed_files: set[Path]) -> list[str]:
    """The components (curriculum order) whose module changed or imports, directly or
    transitively, a module that changed."""
    changed = {m for m in (_module_of(p, folder) for p in changed_files) if m}
    if not changed:
        return []
    modules = dependents(module_imports(_sources(folder)), changed)
    return [name for name, module in COMPONENTS.items() if module in modules]


@contextlib.contextmanager
def _interrupts_kept() -> Iterator[None]:
    """pytest.main turns Ctrl-C into an exit status, which :func:`grade` reports as a
    :class:`GradingError`; remember it, so that Ctrl-C while grading still stops watching.
    (Signal handlers belong to the main thread; elsewhere there is no Ctrl-C to keep.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handler(signum, frame):
        seen.append(signum)
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if seen:
            raise KeyboardInterrupt


def regrade(
    options: GradingOptions, previous: GradeResult | None, components: list[str]
) -> GradeResult:
    """Grade ``components`` again and keep ``previous``'s results for the others (everything,
    when there is no previous result).

    The plugin gives each check its component's name as a keyword, so ``-k "A or B"``
    selects them; ``-k`` matches substrings (``Encoder`` also selects ``EncoderLayer``), so
    only the asked-for components are taken from the new run. A selection of the user's own
    still applies: both must match."""
    from llm_grade.engine.explain import settle

    if previous is None:
        with _interrupts_kept():
            return grade(options=options, quiet=True)
    if not components:
        return previous
    ours = exactly(components)
    select = f"({options.select}) and ({ours})" if options.select else ours
    with _interrupts_kept():
        fresh = grade(options=options.replace(select=select), quiet=True)
    wanted = set(components)
    by_name = {c.name: c for c in previous.components if c.name not in wanted}
    by_name.update({c.name: c for c in fresh.components if c.name in wanted})
    merged = [by_name[name] for name in COMPONENTS if name in by_name]
    # end-to-end checks count only when the parts they cover pass: decided again on the
    # whole picture, since those parts may not have been in this run
    settle(merged)
    return GradeResult(
        submission=fresh.submission,
        components=merged,
        duration_s=fresh.duration_s,
        environment=fresh.environment,
        isolation=fresh.isolation,
        rubric=fresh.rubric,
        artifacts={**previous.artifacts, **fresh.artifacts},
        sources=fresh.sources,
        notes=fresh.notes,
    )


def format_failures(
    result: GradeResult, components: Iterable[str], *, learner_view: bool = True
) -> str:
    """The failures of ``components`` as ``llm-grade grade`` shows them
    (:func:`~llm_grade.engine.feedback.failure_blocks`: a module that does not import once,
    one line for a component not started, a block per failing check otherwise)."""
    wanted = set(components)
    shown = GradeResult(
        result.submission,
        [c for c in result.components if c.name in wanted],
        result.duration_s,
        result.environment,
    )
    return "\n\n".join(failure_blocks(shown, learner_view=learner_view, not_started=True))


def _change(before: float | None, now: float) -> tuple[str, str]:
    """The score cell (``2.5 → 6`` when it moved) and its marker."""
    if before is None or before == now:
        return points(now), ""
    return f"{points(before)} → {points(now)}", UP if now > before else DOWN


def format_changes(previous: GradeResult | None, current: GradeResult, regraded: set[str]) -> str:
    """The points table, each row marked where its score (``▲``/``▼``) or only its status
    (``•``) changed since ``previous``; then the total and its change. Plain text."""
    before = {c.name: c for c in previous.components} if previous else {}
    rows: list[tuple[str, str, str, str]] = []
    for component in current.components:
        label = component_label(component)
        old: ComponentResult | None = before.get(component.name)
        score, marker = _change(old.score if old else None, component.score)
        if not marker and old is not None and component_label(old) != label:
            marker = OTHER
        rows.append(
            (f"  {component.name} ({label})", score, f"/ {points(component.max_score)}", marker)
        )
    total, marker = _change(previous.score if previous else None, current.score)
    if marker:
        marker += f" ({'+' if current.score > previous.score else '-'}"
        marker += f"{points(abs(round(current.score - previous.score, 4)))})"
    rows.append(("Total", total, f"/ {points(current.max_score)}", marker))
    name_w = max(len("Component"), *(len(r[0]) for r in rows))
    score_w = max(len(r[1]) for r in rows)
    max_w = max(len(r[2]) for r in rows)
    lines = [f"{'Component':<{name_w}}  {'points':>{score_w + 1 + max_w}}"]
    lines += [
        f"{name:<{name_w}}  {score:>{score_w}} {top:<{max_w}}  {mark}".rstrip()
        for name, score, top, mark in rows
    ]
    shown = regraded & {c.name for c in current.components}
    if previous is not None and len(shown) < len(current.components):
        lines.append(
            f"Re-graded {len(shown)} of {len(current.components)} components; the others "
            "keep their last result."
        )
    return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def change_header(folder: Path, changed_files: set[Path], components: list[str]) -> str:
    """``— attention.py changed: re-grading 6 components (and 2 that import it) —``."""
    modules = [m for m in MODULES if any(_module_of(p, folder) == m for p in changed_files)]
    own = [c for c in components if COMPONENTS[c] in modules]
    text = f"{', '.join(f'{m}.py' for m in modules)} changed: re-grading "
    text += _plural(len(own), "component")
    others = len(components) - len(own)
    if others:
        verb = "imports" if others == 1 else "import"
        text += f" (and {others} that {verb} {'it' if len(modules) == 1 else 'them'})"
    return f"— {text} —"


def _python_changes(folder: Path, debounce_ms: int, stop_event) -> Iterator[set[Path]]:
    """Batches of saved Python files under ``folder``, from the operating system's file
    events (inotify, FSEvents), with editors' swap and backup files left out."""
    import watchfiles

    for batch in watchfiles.watch(
        folder,
        debounce=debounce_ms,
        watch_filter=watchfiles.PythonFilter(),
        stop_event=stop_event,
    ):
        yield {Path(path) for _, path in batch}


def watch(
    folder: Path,
    options: GradingOptions,
    *,
    echo: Callable[[str], object] = print,
    changes: Iterable[set[Path]] | None = None,
    debounce_ms: int = 300,
    stop_event: threading.Event | None = None,
) -> None:
    """Grade ``folder`` once, then again after each batch of ``changes`` (default: the saved
    Python files under ``folder``), printing the failures and the points table each time.

    A grading error (a missing folder, a rubric that does not load) is printed and the loop
    goes on, since the next save may fix it. Ctrl-C (or ``stop_event``) ends it with one
    line, never a traceback."""
    folder = Path(folder).resolve()
    options = options.replace(submission=folder)
    learner_view = options.view == "learner"
    result: GradeResult | None = None

    def run(components: list[str]) -> None:
        nonlocal result
        previous = result
        try:
            result = regrade(options, previous, components)
        except GradingError as exc:
            echo(f"Could not grade {folder.name}: {exc}")
            return
        regraded = set(components) if previous is not None else set(COMPONENTS)
        failures = format_failures(result, regraded, learner_view=learner_view)
        if failures:
            echo(failures + "\n")
        echo(format_changes(previous, result, regraded))
        echo(f"\nWatching {folder} for changes (Ctrl-C stops).")

    try:
        run(list(COMPONENTS))
        batches = _python_changes(folder, debounce_ms, stop_event) if changes is None else changes
        for changed in batches:
            components = affected_components(folder, set(changed))
            if not components:
                continue  # a file the grader does not read
            echo("\n" + change_header(folder, set(changed), components) + "\n")
            run(components)
    except KeyboardInterrupt:
        pass
    echo("Stopped watching.")
