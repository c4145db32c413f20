"""Submissions that are not folders: zip archives and Jupyter notebooks, staged into folders.

``llm-grade batch`` grades folders. A ``.zip`` or ``.ipynb`` in the class folder is first
turned into a folder of modules under ``OUT/.staged/<student>/`` by this module, then graded
like any other submission.

**Zip archives.** The curriculum's modules (``environment.py`` ... ``transformer.py``) either
sit at the top of the archive or inside one top-level folder (what "compress this folder"
produces); ``__MACOSX/`` and ``__pycache__/`` are ignored and only ``.py`` files are
extracted. An archive is rejected as a whole, with a message naming the member, when a member
has an absolute path, a drive letter or a ``..`` part, is a symbolic link or encrypted, or
when the archive holds more than :data:`MAX_MEMBERS` members or more than
:data:`MAX_UNCOMPRESSED` bytes once uncompressed (a zip bomb). Nothing is ever written outside
the staging folder.

**Notebooks.** Only code cells whose first line is a module marker become code:

- ``# %% attention.py`` (a Jupytext / VS Code cell title): the cell is appended to
  ``attention.py``; lines that start with ``%`` or ``!`` (IPython magics, shell commands) are
  commented out, since a module cannot run them.
- ``%%writefile attention.py``: the cell *replaces* ``attention.py``, and
  ``%%writefile -a attention.py`` appends to it, exactly what running the notebook would write.

Cells without a marker (experiments, plots, tests) are ignored, as are markers that do not
name a plain module file (``name.py``, no folders). Each piece starts with a comment naming
its cell, so a traceback line can be traced back to the notebook.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llm_grade.components import MODULES
from llm_grade.output.text import clean_text

MAX_MEMBERS = 2000
MAX_UNCOMPRESSED = 50 * 2**20  # bytes, all members together
MAX_NOTEBOOK = 50 * 2**20  # bytes of the .ipynb file (outputs with images can be large)
MAX_SOURCE = 10 * 2**20  # bytes of module code taken from one notebook
ARCHIVE_SUFFIXES = {".zip": "zip", ".ipynb": "ipynb"}
# which entry keeps the bare student name when a folder, a zip and a notebook share a stem
PRECEDENCE = ("folder", "zip", "ipynb")
IGNORED_DIRS = {"__MACOSX", "__pycache__", ".ipynb_checkpoints"}

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py")
_PERCENT_MARKER = re.compile(r"#\s*%%\s*(?P<name>\S+)\s*")
_WRITEFILE = re.compile(
    r"%%writefile(?P<append>\s+(?:-a|--append))?\s+(?P<q>[\"']?)(?P<name>[^\s\"']+)(?P=q)\s*"
)


class StagingError(ValueError):
    """A zip or notebook that cannot be turned into a submission folder (says why)."""


@dataclass(frozen=True)
class StudentSubmission:
    """One student's submission in the class folder."""

    name: str  # the student: the folder name or file stem (see :func:`find_submissions`)
    path: Path  # the folder, .zip or .ipynb
    kind: str  # "folder", "zip" or "ipynb"
    note: str = ""  # e.g. why the name differs from the file stem

    @property
    def needs_staging(self) -> bool:
        return self.kind != "folder"


def find_submissions(root: Path) -> list[StudentSubmission]:
    """Every submission in ``root``: sub-folders holding at least one curriculum module, and
    ``*.zip`` and ``*.ipynb`` files. Hidden entries (``.name``) are skipped.

    The student is the folder name or the file stem. When several entries share a stem
    (``alice/``, ``alice.zip``, ``alice.ipynb``), the first in :data:`PRECEDENCE` keeps
    ``alice`` and each other is graded under its full file name (``alice.zip``), with a
    note saying so: nothing is dropped, and the outcome does not depend on listing order.
    """
    found: list[tuple[str, Path, str]] = []
    for path in sorted(Path(root).iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if any((path / f"{m}.py").is_file() for m in MODULES):
                found.append((path.name, path, "folder"))
        elif path.is_file() and path.suffix.lower() in ARCHIVE_SUFFIXES:
            found.append((path.stem, path, ARCHIVE_SUFFIXES[path.suffix.lower()]))
    # a file name is learner-controlled text: no escapes or control characters in a name
    found = [(clean_text(stem) or "student", path, kind) for stem, path, kind in found]
    found.sort(key=lambda f: (f[0], PRECEDENCE.index(f[2]), f[1].name))
    names = {clean_text(path.name) for _, path, _ in found}
    owner: dict[str, Path] = {}  # student name -> the entry graded under it
    submissions = []
    for stem, path, kind in found:
        name, note = stem, ""
        full = clean_text(path.name)
        if stem in owner:
            name, n = full, 2
            while name in owner or (name != full and name in names):
                name, n = f"{full}-{n}", n + 1
            note = (
                f"name clash: {clean_text(owner[stem].name)}"
                f"{'/' if owner[stem].is_dir() else ''} is graded "
                f"as {stem!r}, so {full} is graded as {name!r}"
            )
        if full != path.name:
            note += "; " if note else ""
            note += "the file name held control characters; they were left out of the name"
        owner[name] = path
        submissions.append(StudentSubmission(name, path, kind, note))
    return sorted(submissions, key=lambda s: s.name)


def content_hash(path: Path) -> str:
    """SHA-256 of a submission: the names and bytes of a folder's Python files, or the bytes
    of a zip or notebook (so an unchanged archive is not staged or graded again)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.suffix.lower().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for file in sorted(path.rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def stage(submission: StudentSubmission, dest: Path) -> Path:
    """A folder to grade for ``submission``: the folder itself, or ``dest`` filled from the
    zip or notebook (emptied first). Raises :class:`StagingError` with a learner-readable
    reason."""
    if not submission.needs_staging:
        return submission.path
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if submission.kind == "zip":
        stage_zip(submission.path, dest)
    else:
        stage_notebook(submission.path, dest)
    return dest


# ------------------------------------------------------------------------- zip archives


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The member's relative path; :class:`StagingError` when it could leave the folder."""
    raw = info.filename
    path = PurePosixPath(raw.replace("\\", "/"))
    if (
        path.is_absolute()
        or raw.startswith(("/", "\\"))
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
        or "\0" in raw
    ):
        raise StagingError(f"member {raw!r} points outside the archive; nothing was extracted")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise StagingError(f"member {raw!r} is a symbolic link; nothing was extracted")
    if info.flag_bits & 0x1:
        raise StagingError(f"member {raw!r} is encrypted; submit an archive without a password")
    return path


def _wanted(path: PurePosixPath) -> bool:
    return path.suffix == ".py" and not IGNORED_DIRS.intersection(path.parts)


def stage_zip(archive: Path, dest: Path) -> list[Path]:
    """Extract the submission's ``.py`` files from ``archive`` into ``dest``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise StagingError(
                    f"the archive has {len(infos)} members; at most {MAX_MEMBERS} are accepted"
                )
            total = sum(i.file_size for i in infos)
            if total > MAX_UNCOMPRESSED:
                raise StagingError(
                    f"the archive would unpack to {total / 2**20:.0f} MiB; at most "
                    f"{MAX_UNCOMPRESSED / 2**20:.0f} MiB are accepted"
                )
            files = [(i, p) for i in infos if _wanted(p := _member_path(i)) and not i.is_dir()]
            root = _archive_root([p for _, p in files])
            written = []
            budget = MAX_UNCOMPRESSED
            base = dest.resolve()
            for info, path in files:
                if path.parts[: len(root.parts)] != root.parts:
                    continue
                target = (base / PurePosixPath(*path.parts[len(root.parts) :])).resolve()
                if not target.is_relative_to(base):  # belt and braces: _member_path checked
                    raise StagingError(f"member {info.filename!r} points outside the archive")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src:
                    data = src.read(min(info.file_size, budget) + 1)
                if len(data) > info.file_size or len(data) > budget:
                    raise StagingError(f"member {info.filename!r} is larger than it claims")
                budget -= len(data)
                with target.open("xb") as out:
                    out.write(data)
                written.append(target)
            return written
    except zipfile.BadZipFile as exc:
        raise StagingError(f"not a valid zip archive ({exc})") from None
    except (OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise StagingError(f"the archive could not be read ({type(exc).__name__}: {exc})") from None


def _archive_root(paths: list[PurePosixPath]) -> PurePosixPath:
    """Where the modules are: the top of the archive, or its one top-level folder."""
    top = {p.name for p in paths if len(p.parts) == 1}
    if top.intersection(f"{m}.py" for m in MODULES):
        return PurePosixPath()
    folders = {p.parts[0] for p in paths if len(p.parts) == 2 and p.name in _MODULE_FILES}
    if len(folders) == 1:
        return PurePosixPath(folders.pop())
    where = f" (found them in {len(folders)} folders: {', '.join(sorted(folders))})"
    raise StagingError(
        "no curriculum module (environment.py ... transformer.py) at the top of the archive "
        "or in one top-level folder" + (where if folders else "")
    )


_MODULE_FILES = frozenset(f"{m}.py" for m in MODULES)


# ------------------------------------------------------------------------- notebooks


def notebook_modules(notebook: Path) -> dict[str, str]:
    """Module file name -> source, from the notebook's marked code cells (see the module
    docstring for the convention)."""
    import nbformat

    size = notebook.stat().st_size
    if size > MAX_NOTEBOOK:
        raise StagingError(
            f"the notebook is {size / 2**20:.0f} MiB; at most {MAX_NOTEBOOK / 2**20:.0f} MiB "
            "are accepted (clear its outputs)"
        )
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for unreadable notebooks
        raise StagingError(f"not a readable Jupyter notebook ({type(exc).__name__})") from None
    modules: dict[str, str] = {}
    for number, cell in enumerate(nb.get("cells", []), 1):
        if cell.get("cell_type") != "code":
            continue
        source = str(cell.get("source", ""))
        first, _, body = source.lstrip("\n").partition("\n")
        first = first.strip()
        stamp = f"# --- {notebook.name}, cell {number} ---\n"
        if m := _WRITEFILE.fullmatch(first):
            name = m.group("name")
            if not _MODULE_NAME.fullmatch(name):
                continue
            previous = modules.get(name, "") if m.group("append") else ""
            modules[name] = previous + stamp + body.rstrip() + "\n\n"
        elif (m := _PERCENT_MARKER.fullmatch(first)) and _MODULE_NAME.fullmatch(m.group("name")):
            lines = [
                "# " + line if line.startswith(("%", "!")) else line for line in body.split("\n")
            ]
            name = m.group("name")
            modules[name] = modules.get(name, "") + stamp + "\n".join(lines).rstrip() + "\n\n"
        if sum(len(s) for s in modules.values()) > MAX_SOURCE:
            raise StagingError(f"the notebook's module cells exceed {MAX_SOURCE // 2**20} MiB")
    if not modules:
        raise StagingError(
            "no code cell starts with a module marker such as `# %% attention.py` or "
            "`%%writefile attention.py`, so the notebook defines no module"
        )
    return modules


def stage_notebook(notebook: Path, dest: Path) -> list[Path]:
    """Write the notebook's modules into ``dest``."""
    written = []
    for name, source in sorted(notebook_modules(notebook).items()):
        path = dest / name
        path.write_text(source, encoding="utf-8")
        written.append(path)
    return written


# ------------------------------------------------------------------------- folders


@dataclass
class StagedFolder:
    """A submission as the worker sees it: the curriculum modules, copied as plain files."""

    root: Path  # the fresh folder that is graded
    sources: dict[str, str]  # module file name -> SHA-256 of the bytes graded
    texts: dict[str, str]  # module -> the source staged (what the policy then checks)
    skipped: list[str]  # module files present but not graded (a link, too large)
    notes: list[str]  # what staging left out, and why (for the report)


def stage_folder(src: Path, dest: Path) -> StagedFolder:
    """Copy the curriculum modules of the folder ``src`` into the new folder ``dest``.

    Only regular ``<module>.py`` files at the top of ``src`` are copied: no ``__pycache__``
    (compiled bytecode would run instead of the source that was checked), no symbolic links
    (a link could point at trusted code), no hidden files, and not the submission's
    ``__init__.py`` (the engine makes the package itself).
    """
    src, dest = Path(src), Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    sources: dict[str, str] = {}
    texts: dict[str, str] = {}
    skipped: list[str] = []
    notes: list[str] = []
    if (src / "__init__.py").is_file():
        notes.append("__init__.py is not run by the grader (the engine makes the package).")
    for module in MODULES:
        path = src / f"{module}.py"
        if path.is_symlink():
            notes.append(f"{path.name} is a symbolic link and was not graded: submit the file.")
            skipped.append(path.name)
            continue
        if not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) > MAX_SOURCE:
            notes.append(f"{path.name} is over {MAX_SOURCE // 2**20} MiB and was not graded.")
            skipped.append(path.name)
            continue
        texts[module] = data.decode("utf-8", errors="replace")
        (dest / path.name).write_text(texts[module], encoding="utf-8")
        sources[path.name] = hashlib.sha256(data).hexdigest()
    return StagedFolder(dest, sources, texts, skipped, notes)
