"""The ``llm-grade`` command line.

Front-ends stay thin: every command calls into the engine. Heavy imports (torch, pytest)
happen inside the commands so that ``llm-grade --help`` answers instantly.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from llm_grade import __version__
from llm_grade.engine.options import GradingOptions, click_options, resolved_jobs
from llm_grade.paths import bundled


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llm-grade")
def main() -> None:
    """Grade from-scratch Transformer implementations against a reference.

    \b
    Learner:     llm-grade init my-llm      (then fill in the stubs)
    Instructor:  see README.md for grading a submission or a whole class.
    """


@main.command()
@click.argument("dest", type=click.Path(path_type=Path))
def init(dest: Path) -> None:
    """Copy the learner stubs into DEST, a new folder that you own.

    DEST must not exist yet: init never overwrites your work.
    """
    if dest.exists():
        raise click.ClickException(
            f"{dest} already exists; init never overwrites a folder. "
            "Pick a new name, or delete the folder yourself if you really want to start over."
        )
    shutil.copytree(bundled("stubs"), dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    files = sorted(p.name for p in dest.glob("*.py") if p.name != "__init__.py")
    click.echo(f"Created {dest} with {len(files)} modules to fill in: {', '.join(files)}.")
    click.echo("Start with environment.py and embeddings.py; each docstring says what to build.")


@main.command()
@click.argument("submission", type=click.Path(path_type=Path), required=False)
@click.option(
    "--example",
    is_flag=True,
    help="Grade the bundled example submission (a reference copy with typical bugs).",
)
@click_options(
    "out",
    "rubric",
    "isolation",
    "view",
    "select",
    "device",
    "jobs",
    "sandbox",
    "hide",
    "train",
    "train_seed",
)
@click.option(
    "--fail-under",
    type=float,
    default=None,
    help="Exit with status 1 when the score is below this (for CI).",
)
@click.option(
    "--feedback-notebook",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="For a notebook: write a copy with a feedback cell after each graded definition "
    "to this .ipynb, and its HTML rendering beside it.",
)
@click.option("-q", "--quiet", "quiet", count=True, help="Print only the points table.")
@click.option("-v", "--verbose", "verbose", count=True, help="Also print every check.")
def grade(
    submission: Path | None,
    example: bool,
    out: Path | None,
    rubric: Path | None,
    isolation: str,
    view: str,
    select: str | None,
    device: str,
    jobs: int | None,
    sandbox: str,
    hide: tuple[Path, ...],
    train: bool,
    train_seed: int,
    fail_under: float | None,
    feedback_notebook: Path | None,
    quiet: int,
    verbose: int,
) -> None:
    """Grade SUBMISSION: a folder with your modules (environment.py ... transformer.py), a
    .zip of them, or a notebook (.ipynb) or .py script that defines them.

    A notebook or script is read, not run: the functions, classes, imports and constants of
    its code cells are graded, each in its module; other code (prints, training loops,
    !pip) is listed as not run, and failures name the cell and line.

    Prints a line per component as its checks finish, the feedback for every failing check,
    and the points per component (-q: only the points; -v: every check). The exit status is
    0 whenever grading completed, whatever the score (see --fail-under).

    After a grading in a terminal, a grading server keeps torch, pytest and the graders
    loaded for 15 minutes, so the next grade starts at once (`llm-grade server --help`;
    LLM_GRADE_SERVER=0 turns it off).
    """
    from llm_grade.engine import warm

    ctx = click.get_current_context()
    if isolation != "none" and warm.enabled():
        code = warm.run_remote("grade", ctx.params)
        if code is not None:
            ctx.exit(code)
    from llm_grade.engine.run import GradingError
    from llm_grade.engine.run import grade as run_grade

    if example == (submission is not None):
        raise click.UsageError("give either a SUBMISSION folder or --example")
    if example:
        submission = bundled("examples") / "buggy"
        click.echo(
            "The bundled example submission: a copy of the reference with a few typical "
            "learner bugs."
        )
    if feedback_notebook is not None and submission.suffix.lower() != ".ipynb":
        raise click.UsageError("--feedback-notebook needs a notebook (.ipynb) as SUBMISSION")
    options = GradingOptions(
        submission=submission,
        out=out,
        rubric=rubric,
        isolation=isolation,
        view=view,
        select=select,
        device=device,
        jobs=resolved_jobs(jobs),
        sandbox=sandbox,
        hide=hide,
        train=train,
        train_seed=train_seed,
    )
    try:
        result = run_grade(options=options, verbosity=max(-1, min(1, verbose - quiet)))
    except GradingError as exc:
        raise click.ClickException(str(exc)) from None
    if out:
        click.echo(f"Results: {out / 'results.json'}")
    if feedback_notebook is not None:
        from llm_grade.notebook.feedback import write_feedback_notebook

        paths = write_feedback_notebook(submission, result, feedback_notebook)
        click.echo(f"Feedback notebook: {' and '.join(str(p) for p in paths)}")
    if isolation != "none" and warm.may_autostart() and not warm.running():
        warm.start_background(folder=submission)
        click.echo(
            "A grading server now keeps llm-grade loaded for 15 minutes: the next grade "
            "starts at once (llm-grade server stop; LLM_GRADE_SERVER=0 turns it off).",
            err=True,
        )
    if fail_under is not None and result.score < fail_under:
        click.echo(f"Score {result.score:g} is below --fail-under {fail_under:g}.", err=True)
        sys.exit(1)


@main.group()
def server() -> None:
    """The warm grading server that makes `llm-grade grade` start at once.

    \b
    A cold grade imports torch twice and collects the graders: seconds before the first
    check. The server keeps all of that loaded; `grade` sends it its options and prints
    what it prints. Scores are the same (learner code still runs in a fresh sandboxed
    worker per grading). It starts by itself after a grade in a terminal, and stops after
    15 minutes without a grading (LLM_GRADE_SERVER_IDLE_S), or when llm-grade changes.
    LLM_GRADE_SERVER=0 turns it off. Linux only.
    """


@server.command("start")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), required=False)
def server_start(folder: Path | None) -> None:
    """Start the server now (in the background) and wait until it is ready; with FOLDER,
    ready to grade that folder at once (its sandbox is made when the server starts)."""
    from llm_grade.engine import warm

    if not warm.supported():
        raise click.ClickException("the grading server needs Linux (abstract Unix sockets)")
    running = warm.request_control("status")
    if running is None:
        if warm.start_background(wait=True, folder=folder) is None:
            raise click.ClickException("the grading server did not start")
        running = warm.request_control("status") or {}
    click.echo(f"Grading server ready (pid {running.get('pid')}).")


@server.command("stop")
def server_stop() -> None:
    """Stop the server (the next grade starts cold)."""
    from llm_grade.engine import warm

    state = warm.request_control("stop") if warm.supported() else None
    click.echo("No grading server is running." if state is None else "Grading server stopped.")


@server.command("status")
def server_status() -> None:
    """Whether a server is running, and how many gradings it served. Exit status 1: none."""
    from llm_grade.engine import warm

    state = warm.request_control("status") if warm.supported() else None
    if state is None:
        click.echo("No grading server is running.")
        sys.exit(1)
    click.echo(
        f"Grading server pid {state['pid']}: up {state['up_s']:.0f} s, "
        f"{state['served']} grading{'s' * (state['served'] != 1)} served."
    )


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click_options("rubric", "isolation", "device", "select", "sandbox")
def watch(
    folder: Path,
    rubric: Path | None,
    isolation: str,
    device: str,
    select: str | None,
    sandbox: str,
) -> None:
    """Grade FOLDER, then again on every save while you edit.

    Each save re-grades only the components whose module changed, or a module that imports
    it (directly or through another one); the table marks what moved since the last run.
    Ctrl-C stops watching.
    """
    from llm_grade.engine.watch import watch as watch_folder

    options = GradingOptions(
        rubric=rubric, isolation=isolation, device=device, select=select, sandbox=sandbox
    )
    watch_folder(folder, options, echo=click.echo)


@main.command()
@click.argument("results_json", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the HTML page (default: report.html next to RESULTS_JSON).",
)
@click_options("view")
def report(results_json: Path, out: Path | None, view: str) -> None:
    """Turn RESULTS_JSON (from `llm-grade grade --out DIR`) into one HTML page.

    The page is a single self-contained file: it opens offline, in any browser, and can be
    mailed or uploaded as it is. RESULTS_JSON may also be the folder that holds results.json.
    """
    from llm_grade.output.exporters import load_results
    from llm_grade.output.report import write_submission

    try:
        result = load_results(results_json)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    folder = results_json if results_json.is_dir() else results_json.parent
    path = write_submission(result, out or folder / "report.html", view=view)
    click.echo(
        f"Wrote {path} ({view} view): {result.score:g} / {result.max_score:g} points. "
        "Open it in a browser."
    )


@main.command()
@click.argument("submissions", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for per-student results, reports and the class exports.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Submissions graded at the same time (one per core is a good choice).",
)
@click_options(
    "rubric",
    "isolation",
    "select",
    "device",
    "sandbox",
    sandbox={
        "choices": ("bubblewrap", "none"),
        "cli_default": "bubblewrap",
        "help": "'bubblewrap': each student's code sees only its own submission (batch "
        "refuses to start without bubblewrap). 'none': grade without it; students could then "
        "read and change each other's files, and every output says so",
    },
)
@click.option("--force", is_flag=True, help="Grade again even submissions that did not change.")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: this machine's cores (--jobs at a time); dask: one task per submission on "
    "the Dask cluster at --scheduler (needs llm-grade[dask]).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="The Dask scheduler, e.g. tcp://10.0.0.5:8786 (with --executor dask).",
)
@click.option(
    "--feedback-notebooks",
    is_flag=True,
    help="For every notebook submission also write OUT/students/<student>/feedback.ipynb "
    "and feedback.html: the notebook with a feedback cell after each graded definition.",
)
def batch(
    submissions: Path,
    out: Path,
    jobs: int,
    rubric: Path | None,
    isolation: str,
    select: str | None,
    device: str,
    sandbox: str,
    force: bool,
    executor: str,
    scheduler: str | None,
    feedback_notebooks: bool,
) -> None:
    """Grade every submission in SUBMISSIONS: one sub-folder, .zip, .ipynb or .py per
    student.

    \b
    A folder holds the modules (environment.py ... transformer.py).
    A .zip holds them at its top or inside one top-level folder.
    A .ipynb or .py script defines them in its code cells (read, not run; cells
    that start with `# %% attention.py` or `%%writefile attention.py` go to
    that module as they are). The student's name is the folder name or file stem.

    Each student's code runs in bubblewrap and sees only its own submission: not the
    class folder, not OUT. Archives and notebooks are unpacked, with safety checks, into
    OUT/.staged/<student>/. Writes OUT/students/<student>/results.json (+ grading.log,
    gradescope.json, junit.xml, results.hmac), OUT/submissions/<student>.html, OUT/index.html
    and OUT/grades.csv. Re-running skips a submission only when its content and grading
    options did not change and its results.json still matches the HMAC that batch wrote
    (key: OUT/.llm-grade-key); anything else is graded again.
    """
    from llm_grade.classroom.batch import (
        BatchError,
        check_sandbox,
        find_submissions,
        grade_class,
        holds_modules,
        unsandboxed_note,
        write_class_exports,
    )

    try:  # before anything is written: a class graded unsandboxed by accident is worse
        check_sandbox(sandbox, isolation)
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    if holds_modules(submissions):
        raise click.ClickException(
            f"{submissions} is one submission (it holds the curriculum's modules); batch grades "
            "a folder of submissions, one per student. Grade this one with `llm-grade grade "
            f"{submissions}`"
        )
    found = find_submissions(submissions)
    if not found:
        raise click.ClickException(
            f"no submissions (folders with environment.py ... transformer.py, .zip, .ipynb or .py "
            f"files) found in {submissions}"
        )
    warning = unsandboxed_note(sandbox, isolation)
    if warning:
        click.echo(f"Warning: {warning}.", err=True)
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    try:
        with click.progressbar(
            length=len(found),
            label=f"Grading {len(found)} submissions",
            show_eta=True,
            show_pos=True,
            item_show_func=lambda o: o and o.name,
        ) as bar:

            def done(outcome) -> None:
                if outcome.error:
                    failures.append(outcome)
                bar.update(1, outcome)

            outcomes = grade_class(
                submissions,
                out,
                jobs=jobs,
                isolation=isolation,
                sandbox=sandbox,
                rubric=rubric,
                select=select,
                device=device,
                force=force,
                on_done=done,
                feedback_notebooks=feedback_notebooks,
                executor=executor,
                scheduler=scheduler,
            )
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    paths = write_class_exports(outcomes, out)
    graded = [o for o in outcomes if o.result is not None]
    skipped = sum(o.skipped for o in outcomes)
    click.echo(
        f"Graded {len(graded)} of {len(outcomes)} submissions"
        + (f" ({skipped} unchanged, not graded again)" if skipped else "")
        + "."
    )
    if warning:
        click.echo(f"Graded WITHOUT a sandbox: {warning}.")
    for outcome in outcomes:
        if outcome.note:
            click.echo(f"  {outcome.name}: {outcome.note}", err=True)
    for outcome in sorted(failures, key=lambda o: o.name):
        click.echo(f"  {outcome.name}: not graded: {outcome.error}", err=True)
    click.echo(f"Class index: {paths['index']}\nGrades: {paths['grades']}")
    if failures:
        sys.exit(1)


@main.command()
@click.argument("results_json", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["classroom", "gradescope", "prairielearn", "junit", "markdown"]),
    required=True,
    help="classroom: what GitHub Classroom's autograding reporter reads; gradescope: "
    "Gradescope's results.json; prairielearn: PrairieLearn's external-grader results.json; "
    "junit: JUnit XML; markdown: the points table (a CI job summary).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file (default: standard output).",
)
def export(results_json: Path, fmt: str, out: Path | None) -> None:
    """Write RESULTS_JSON (or the folder holding it) in another tool's format.

    Nothing is graded again: the export is made from the recorded results. Hidden checks
    show their name and points only.
    """
    from llm_grade.output import exporters

    try:
        result = exporters.load_results(results_json)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "junit":
        text = exporters.junit_xml(result).tostring().decode("utf-8")
    elif fmt == "markdown":
        text = exporters.markdown_summary(result)
    else:
        import json

        from llm_grade.classroom.prairielearn import results as prairielearn_results

        make = {
            "classroom": exporters.classroom_results,
            "gradescope": exporters.gradescope_results,
            "prairielearn": prairielearn_results,
        }[fmt]
        data = make(result)
        text = json.dumps(data, indent=None if fmt == "classroom" else 2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


@main.command()
@click.argument("results_json", type=click.Path(path_type=Path, exists=True))
def regrade(results_json: Path) -> None:
    """Grade the submission RESULTS_JSON records again, the way it records (rubric,
    Hypothesis profile and seed, device, -k, isolation), and print what changed.

    The exit status is 1 when a score moved, 0 when the grade is reproduced.
    """
    from llm_grade.engine.regrade import RegradeError
    from llm_grade.engine.regrade import regrade as run_regrade
    from llm_grade.engine.run import GradingError

    try:
        report = run_regrade(results_json)
    except (RegradeError, GradingError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)
    if report.moved:
        sys.exit(1)


@main.command()
@click_options("rubric")
def rubric(rubric: Path | None) -> None:
    """Print the rubric a grading would use: its file, SHA-256, points and checks.

    Compare the SHA-256 with the rubric you published: a CI log that shows it proves which
    rubric made a score.
    """
    from llm_grade.engine.rubric import RubricError, load_rubric, rubric_sha256
    from llm_grade.paths import bundled

    path = Path(rubric) if rubric else bundled("graders") / "rubric.toml"
    try:
        loaded = load_rubric(path)
    except RubricError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    digest = rubric_sha256(path)
    checks = sum(len(c) for c in loaded.checks.values())
    hidden = sum(spec.hidden for c in loaded.checks.values() for spec in c.values())
    click.echo(f"rubric: {path}{'' if rubric else ' (bundled with llm-grade ' + __version__ + ')'}")
    click.echo(f"sha256: {digest}")
    click.echo(
        f"points: {loaded.total:g} in {checks} checks ({hidden} hidden) over "
        f"{len(loaded.checks)} components"
    )


@main.group()
def classroom() -> None:
    """GitHub Classroom: the autograding workflow of a learner repository."""


@classroom.command("init")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option(
    "--package",
    default=None,
    help="What pip installs as llm-grade (default: this version from PyPI), e.g. "
    "'llm-grade @ git+https://github.com/you/llm-grade@<commit>'.",
)
@click.option("--rubric-url", default=None, help="Your published rubric.toml (an https URL).")
@click.option(
    "--rubric-sha256", default=None, help="Its SHA-256 (`llm-grade rubric --rubric FILE`)."
)
@click.option(
    "-k", "select", default=None, help="Grade only these components, e.g. 'softmax or gelu'."
)
@click.option(
    "--submission",
    default=".",
    show_default=True,
    help="What is graded, relative to the learner's repository: its folder of modules, or a "
    "notebook or script such as work.ipynb.",
)
def classroom_init(
    dest: Path,
    package: str | None,
    rubric_url: str | None,
    rubric_sha256: str | None,
    select: str | None,
    submission: str,
) -> None:
    """Write DEST/.github/workflows/classroom.yml (DEST: the assignment's template
    repository, default "."): GitHub Classroom then grades every push with a pinned
    llm-grade in a sandbox and records the points.
    """
    from llm_grade.classroom.github import init as write_workflow

    try:
        path = write_workflow(
            dest,
            package=package,
            rubric_url=rubric_url,
            rubric_sha256=rubric_sha256,
            select=select,
            submission=submission,
        )
    except (FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path}.")
    click.echo(
        "Commit it to the assignment's template repository; each learner push is then "
        "graded, with the report as the run's artifact and the points in Classroom."
    )


@main.group()
def gradescope() -> None:
    """Gradescope: the autograder bundle, and what it runs for each submission."""


@gradescope.command("bundle")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("autograder.zip"),
    show_default=True,
    help="The zip to upload on Gradescope's Configure Autograder page.",
)
@click_options("rubric")
@click.option(
    "--package",
    default=None,
    help="What pip installs as llm-grade (default: this version from PyPI).",
)
@click.option("-k", "select", default=None, help="Grade only these components.")
def gradescope_bundle(
    out: Path, rubric: Path | None, package: str | None, select: str | None
) -> None:
    """Build the autograder zip: setup.sh, run_autograder, the rubric and pinned
    requirements. Each submission is graded in the sandbox and gets Gradescope's
    results.json; hidden checks show their name and points only."""
    from llm_grade.classroom.gradescope import bundle
    from llm_grade.engine.rubric import RubricError

    try:
        path = bundle(out, rubric=rubric, package=package, select=select)
    except (RubricError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path}: upload it on the assignment's Configure Autograder page.")


@gradescope.command("run", hidden=True)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), required=True)
@click_options("rubric")
@click.option("-k", "select", default=None)
def gradescope_run(root: Path, rubric: Path | None, select: str | None) -> None:
    """Grade ROOT/submission into ROOT/results/results.json (what run_autograder runs)."""
    import json

    from llm_grade.classroom.gradescope import run

    path = run(root, rubric=rubric, select=select)
    data = json.loads(path.read_text(encoding="utf-8"))
    click.echo(f"{path}: {data.get('score', 0):g} points")


@main.group()
def prairielearn() -> None:
    """PrairieLearn: llm-grade as an external grader."""


@prairielearn.command("run")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/grade"),
    show_default=True,
    help="PrairieLearn's grading folder: student/ in, results/results.json out.",
)
@click_options("rubric")
@click.option("-k", "select", default=None, help="Grade only these components.")
def prairielearn_run(root: Path, rubric: Path | None, select: str | None) -> None:
    """Grade ROOT/student in the sandbox and write ROOT/results/results.json in
    PrairieLearn's format (the entrypoint of a question's external grader)."""
    import json

    from llm_grade.classroom.prairielearn import run

    path = run(root, rubric=rubric, select=select)
    data = json.loads(path.read_text(encoding="utf-8"))
    shown = f"score {data['score']:g}" if data.get("gradable") else "not gradable"
    click.echo(f"{path}: {shown}")


@main.group()
def notebook() -> None:
    """Jupyter notebooks: the assignment notebooks, graded inline.

    \b
    Learner:     run a notebook's "check my work" cells (they grade the cells you ran).
    Instructor:  llm-grade notebook build --out course/   (one notebook per module)
    Any notebook is graded with `llm-grade grade work.ipynb`.
    """


@notebook.command("build")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the notebooks (created if missing; existing notebooks are never "
    "overwritten).",
)
@click_options("rubric")
@click.option(
    "--intro",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="A Markdown file with your own introduction, put at the top of every notebook.",
)
def notebook_build(out: Path, rubric: Path | None, intro: Path | None) -> None:
    """Write the assignment notebooks into OUT: one per curriculum module, from the stubs.

    Each has the module's concepts in Markdown, a code cell per component holding its stub,
    and a "check my work" cell under each that grades the learner's code in the sandbox and
    shows the feedback in the notebook. With --rubric, the notebooks show its points and
    their check cells grade with it.
    """
    from llm_grade.engine.rubric import RubricError, load_rubric
    from llm_grade.notebook.build import build_notebooks

    if rubric is not None:
        try:
            load_rubric(rubric)
        except RubricError as exc:
            raise click.ClickException(f"{rubric}: {exc}") from None
    text = intro.read_text(encoding="utf-8") if intro else None
    try:
        paths = build_notebooks(out, rubric=rubric, intro=text)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {len(paths)} notebooks to {out}:")
    for path in paths:
        click.echo(f"  {path.name}")
    click.echo(
        "Learners open them in Jupyter (with llm-grade installed in the kernel) and work "
        "top to bottom; each check cell grades what they wrote."
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
