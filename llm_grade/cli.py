"""The ``llm-grade`` command line.

Front-ends stay thin: every command calls into the engine. Heavy imports (torch, pytest)
happen inside the commands so that ``llm-grade --help`` answers instantly.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from . import __version__
from .paths import bundled


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
