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

**Notebooks and scripts.** A ``.ipynb`` or ``.py`` script is read by
:func:`llm_grade.notebook.extract.extract_file`, without running it: the graded names its code
cells define (and the helpers, constants and imports they use) are placed into their modules,
and what is not a definition (prints, training loops, ``!pip``) is listed as not run. Cells
that start with a module marker (``# %% attention.py``, ``%%writefile attention.py``) are taken
verbatim into that module, as before. Each piece starts with a comment naming its cell, and
tracebacks name the notebook's cell and line.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llm_grade.components import MODULES
from llm_grade.notebook.extract import Extraction, SourceError, extract_file
from llm_grade.output.text import clean_text

MAX_MEMBERS = 2000
MAX_UNCOMPRESSED = 50 * 2**20  # bytes, all members together
MAX_SOURCE = 10 * 2**20  # bytes of one module file
ARCHIVE_SUFFIXES = {".zip": "zip", ".ipynb": "ipynb", ".py": "script"}
# which entry keeps the bare student name when a folder, a zip, a notebook and a script share
# a stem
PRECEDENCE = ("folder", "zip", "ipynb", "script")
# .py files in a class folder that are not a student's script
NOT_SCRIPTS = ("__init__", "setup", "conftest", "noxfile")
IGNORED_DIRS = {"__MACOSX", "__pycache__", ".ipynb_checkpoints"}


class StagingError(ValueError):
    """A zip or notebook that cannot be turned into a submission folder (says why)."""


@dataclass(frozen=True)
class StudentSubmission:
    """One student's submission in the class folder."""

    name: str  # the student: the folder name or file stem (see :func:`find_submissions`)
    path: Path  # the folder, .zip or .ipynb
    kind: str  # "folder", "zip", "ipynb" or "script"
    note: str = ""  # e.g. why the name differs from the file stem

    @property
    def needs_staging(self) -> bool:
        return self.kind != "folder"


def find_submissions(root: Path) -> list[StudentSubmission]:
    """Every submission in ``root``: sub-folders holding at least one curriculum module, and
    ``*.zip``, ``*.ipynb`` and ``*.py`` files (not a curriculum module's name, ``test_*`` or
    ``__init__``-like files). Hidden entries (``.name``) are skipped.

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
            if path.suffix.lower() == ".py" and not _a_script(path):
                continue
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


def _a_script(path: Path) -> bool:
    stem = path.stem
    return not (stem in MODULES or stem in NOT_SCRIPTS or stem.startswith(("test_", "_")))


def holds_modules(folder: Path) -> bool:
    """Whether ``folder`` is itself one submission (it holds curriculum modules)."""
    return any((Path(folder) / f"{m}.py").is_file() for m in MODULES)


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
    zip, notebook or script (emptied first). Raises :class:`StagingError` with a
    learner-readable reason."""
    return unpack(submission, dest)[0]


def unpack(
    submission: StudentSubmission, dest: Path, *, follow_loads: bool = False
) -> tuple[Path, Extraction | None]:
    """:func:`stage`, and for a notebook or script what its extraction found (where each
    graded name was read, what was not run; see :mod:`llm_grade.notebook.extract`).
    ``follow_loads``: also read the notebooks it loads with ``load_definitions`` (a learner
    grading their own notebook; never in batch, where the file beside it is a classmate's)."""
    if not submission.needs_staging:
        return submission.path, None
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if submission.kind == "zip":
        stage_zip(submission.path, dest)
        return dest, None
    extraction = extract_notebook(submission.path, follow_loads=follow_loads)
    for name, source in sorted(extraction.modules.items()):
        (dest / name).write_text(source, encoding="utf-8")
    return dest, extraction


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


def extract_notebook(path: Path, *, follow_loads: bool = False) -> Extraction:
    """The submission in the notebook or script ``path``; :class:`StagingError` (one line)
    when it cannot be read or defines none of the graded names."""
    try:
        return extract_file(path, follow_loads=follow_loads)
    except SourceError as exc:
        raise StagingError(str(exc)) from None
    except OSError as exc:
        raise StagingError(f"cannot be read ({exc.strerror or exc})") from None


def notebook_modules(notebook: Path) -> dict[str, str]:
    """Module file name -> source, as :func:`extract_notebook` makes them."""
    return extract_notebook(notebook).modules


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
