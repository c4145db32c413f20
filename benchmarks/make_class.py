"""Generate a class of learner submissions with known expected grades.

The class mixes correct submissions (copies of ``reference/``), single-bug variants (from
``tests/bugs/``) and the bundled ``examples/buggy``, untouched stubs, partial submissions
(the reference for the first modules, stubs for the rest), hostile submissions (from
``tests/hostile/corpus.py``), and zipped and notebook submissions. It is used by
``tests/test_class_batch.py`` and to time ``llm-grade batch --jobs 1`` against ``--jobs 2``
on the same class::

    python benchmarks/make_class.py /tmp/class            # 30 submissions
    llm-grade batch /tmp/class --out /tmp/class-out-1 --jobs 1
    llm-grade batch /tmp/class --out /tmp/class-out-2 --jobs 2

``make_class`` returns what each submission must score as an :class:`Expected`;
:func:`problems` compares a graded result with it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import textwrap
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "reference"
STUBS = REPO / "stubs"
BUGGY = REPO / "examples" / "buggy"
BUGS_DIR = REPO / "tests" / "bugs"
HOSTILE_DIR = REPO / "tests" / "hostile"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from llm_grade.components import COMPONENTS, MODULES  # noqa: E402

# A quick grading of the class (tests/test_class_batch.py): these components cover every
# planted bug and attack below (about 45 of the 100 points). fast_rubric() keeps the rubric's
# points and example counts (fewer examples would miss bugs: with 5, `gelu` passes as ReLU)
# and only tightens the worker's limits.
SELECTED = (
    "get_device",
    "count_parameters",
    "TokenEmbedding",
    "sinusoidal_positional_encoding",
    "softmax",
    "causal_mask",
    "padding_mask",
    "MultiHeadAttention",
    "gelu",
    "LayerNorm",
)
SELECT = " or ".join(SELECTED)  # for `llm-grade batch -k`
FAST_LIMITS = """
[limits]
call_timeout_s = 5
memory_mb = 1024
max_processes = 8
"""


def fast_rubric(dest: Path, rubric: Path = REPO / "graders" / "rubric.toml") -> Path:
    """Write ``rubric`` with tight worker limits (a hung call costs 5 s, not 20) to ``dest``."""
    text = rubric.read_text(encoding="utf-8")
    if re.search(r"^\[limits\]", text, re.MULTILINE):
        raise ValueError(f"{rubric} already has a [limits] table")
    dest.write_text(text + FAST_LIMITS, encoding="utf-8")
    return dest


# single-bug variants from tests/bugs (id -> how many students make it): common bugs are
# common, so the class index's "most common failing properties" has something to rank
BUGS = {
    "mha-mask-after-softmax": 2,  # + examples/buggy: 3 students
    "softmax-no-max-subtraction": 2,  # one of them zipped
    "layernorm-unbiased-variance": 1,  # + examples/buggy
    "pe-sin-cos-swapped": 1,  # + examples/buggy
    "causal-mask-strict": 1,
    "padding-mask-inverted": 1,
    "gelu-is-relu": 1,
    "token-embedding-missing-sqrt-scale": 1,
    "count-parameters-counts-buffers": 1,
}
# attacks from tests/hostile/corpus.py whose cost is exact and quick
ATTACKS = ("os-exit-at-import", "sys-exit-in-forward", "segfault-via-ctypes")


@dataclass
class Expected:
    """What a submission must score. Components not named keep full points."""

    kind: str  # correct, buggy, stubs, partial, hostile
    form: str = "folder"  # folder, zip or ipynb
    zero: list[str] = field(default_factory=list)  # components that must score 0
    lose: list[str] = field(default_factory=list)  # must lose some points (a planted bug)
    hints: dict[str, str] = field(default_factory=dict)  # component -> text its hint contains
    bug: str = ""  # the bug or attack id

    @property
    def exact(self) -> bool:
        """Whether the score is known exactly (no component merely "loses some")."""
        return not self.lose


def problems(result, expected: Expected) -> list[str]:
    """What is wrong with a graded :class:`~llm_grade.engine.results.GradeResult`, given
    ``expected`` (an empty list: as expected). Components the result was not graded on are
    ignored."""
    found = []
    for c in result.components:
        if c.name in expected.zero:
            if c.score != 0:
                found.append(f"{c.name}: {c.score:g} points, expected 0")
        elif c.name in expected.lose:
            if not c.score < c.max_score:
                found.append(f"{c.name}: kept all {c.max_score:g} points despite {expected.bug}")
            shown = " ".join(f"{k.message} {k.hint}" for k in c.checks if k.status != "passed")
            hint = expected.hints.get(c.name, "")
            if hint.lower() not in shown.lower():
                found.append(f"{c.name}: no hint containing {hint!r}")
        elif c.score != c.max_score:
            found.append(f"{c.name}: {c.score:g} / {c.max_score:g}, expected full points")
    return found


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _catalogue() -> dict:
    sys.path.insert(0, str(BUGS_DIR))  # the catalogue files import `bug`
    try:
        bugs = {}
        for path in sorted(BUGS_DIR.glob("*.py")):
            if path.stem != "bug":
                bugs.update({b.id: b for b in _load(path, f"_class_bugs_{path.stem}").BUGS})
        return bugs
    finally:
        sys.path.remove(str(BUGS_DIR))


def _modules(source: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(source.glob("*.py"))}


def _importers(module: str) -> set[str]:
    """``module`` and every reference module that imports it, directly or not."""
    found, grew = {module}, True
    while grew:
        grew = False
        for m in MODULES:
            text = (REFERENCE / f"{m}.py").read_text()
            if m not in found and any(f"from .{d} import" in text for d in found):
                found.add(m)
                grew = True
    return found


def _components(*modules: str) -> list[str]:
    return [name for name, module in COMPONENTS.items() if module in modules]


def _write_folder(dest: Path, files: dict[str, str]) -> None:
    dest.mkdir(parents=True)
    for name, text in files.items():
        (dest / name).write_text(text, encoding="utf-8")


def _write_zip(dest: Path, files: dict[str, str], folder: str = "") -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(f"{folder}/{name}" if folder else name, text)
        if folder:  # what macOS' "Compress" adds: ignored when staging
            zf.writestr(f"__MACOSX/{folder}/._attention.py", b"\0\5\26\7")


def _write_notebook(dest: Path, files: dict[str, str]) -> None:
    """A learner's notebook: a markdown intro, scratch cells, and one module per marked cell
    (``%%writefile`` for the first half of the modules, ``# %%`` cells for the rest, the
    last module split over two cells)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [
        new_markdown_cell("# My Transformer\nEach marked cell below is one module."),
        new_code_cell("%pip install torch\nimport torch\ntorch.__version__"),
    ]
    names = [f"{m}.py" for m in MODULES if f"{m}.py" in files]
    for i, name in enumerate(names):
        text = files[name]
        if i < len(names) // 2:
            cells.append(new_code_cell(f"%%writefile {name}\n{text}"))
        elif i == len(names) - 1:
            head, _, tail = text.partition("\nclass ")
            cells.append(new_code_cell(f"# %% {name}\n{head}"))
            cells.append(new_code_cell("print('scratch work, not part of any module')"))
            cells.append(new_code_cell(f"# %% {name}\n%matplotlib inline\nclass {tail}"))
        else:
            cells.append(new_code_cell(f"# %% {name}\n{text}"))
    nbformat.write(new_notebook(cells=cells), str(dest))


def _insert(source: str, anchor: str, code: str) -> str:
    assert source.count(anchor) == 1, anchor
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    return source.replace(anchor, textwrap.indent(code, indent) + "\n" + anchor)


def _recipes(dest: Path) -> list[tuple[str, str, dict[str, str], Expected]]:
    """(name, form, files, expected) for the whole class, in a mixed order."""
    reference, stubs = _modules(REFERENCE), _modules(STUBS)
    everything = list(COMPONENTS)
    bugs = _catalogue()
    sys.path.insert(0, str(HOSTILE_DIR))
    try:
        corpus = _load(HOSTILE_DIR / "corpus.py", "_class_hostile_corpus")
    finally:
        sys.path.remove(str(HOSTILE_DIR))
    attacks = {a.id: a for a in corpus.ATTACKS}

    correct = [(f"correct-{i:02d}", "folder", reference, Expected("correct")) for i in range(1, 6)]
    correct.append(("correct-zip", "zip-folder", reference, Expected("correct", "zip")))
    correct.append(("correct-notebook", "ipynb", reference, Expected("correct", "ipynb")))

    buggy = [
        (
            "buggy-example",
            "folder",
            _modules(BUGGY),
            Expected(
                "buggy",
                lose=["MultiHeadAttention", "LayerNorm", "sinusoidal_positional_encoding"],
                hints={
                    "MultiHeadAttention": "before",
                    "LayerNorm": "divide by N, not N-1",
                    "sinusoidal_positional_encoding": "sin goes in the even features",
                },
                bug="examples/buggy",
            ),
        )
    ]
    for bug_id, copies in BUGS.items():
        bug = bugs[bug_id]
        files = dict(reference)
        source = files[f"{bug.module}.py"]
        assert source.count(bug.find) == 1, bug_id
        files[f"{bug.module}.py"] = source.replace(bug.find, bug.replace)
        for copy in range(1, copies + 1):
            form = "zip" if (bug_id, copy) == ("softmax-no-max-subtraction", 2) else "folder"
            expected = Expected(
                "buggy",
                form.split("-")[0],
                lose=[bug.component],
                hints={bug.component: bug.hint},
                bug=bug_id,
            )
            name = f"bug-{bug_id}" + (f"-{copy}" if copies > 1 else "")
            buggy.append((name, form, files, expected))

    not_started = [
        (f"stubs-{i}", "folder", stubs, Expected("stubs", zero=everything)) for i in (1, 2, 3)
    ]
    partial = []
    for done in (1, 2, 3, 4):  # the reference for the first `done` modules, stubs after
        files = {**stubs, **{f"{m}.py": reference[f"{m}.py"] for m in MODULES[:done]}}
        partial.append(
            (
                f"partial-{done}",
                "folder",
                files,
                Expected("partial", zero=_components(*MODULES[done:])),
            )
        )
    files = {**stubs, **{f"{m}.py": reference[f"{m}.py"] for m in MODULES[:3]}}
    partial.append(
        (
            "partial-notebook",
            "ipynb",
            files,
            Expected("partial", "ipynb", zero=_components(*MODULES[3:])),
        )
    )

    hostile = []
    for attack_id in ATTACKS:
        attack = attacks[attack_id]
        module, anchor = corpus.ANCHORS[attack.target]
        code = attack.code.replace("{OUT}", str(dest)).replace("{REPO}", str(REPO))
        code = code.replace("{MARKER}", "0")
        files = dict(reference)
        source = files[f"{module}.py"]
        files[f"{module}.py"] = (
            source + "\n" + code + "\n" if attack.at_import else _insert(source, anchor, code)
        )
        # an attack at import time costs every component of its module and of the modules
        # that import it (they cannot be imported either)
        zero = _components(*_importers(module)) if attack.at_import else [attack.target]
        hostile.append(
            (f"hostile-{attack_id}", "folder", files, Expected("hostile", zero=zero, bug=attack_id))
        )

    groups = [correct, buggy, not_started, partial, hostile]
    mixed = []
    while any(groups):  # round robin, so that any prefix of the class is a mix
        for group in groups:
            if group:
                mixed.append(group.pop(0))
    return mixed


def make_class(dest: Path, n: int = 30) -> dict[str, Expected]:
    """Write ``n`` submissions into ``dest`` (created; must not exist or be empty) and return
    student name -> :class:`Expected`. With ``n`` above the recipes' count (30) they repeat
    with a numbered suffix."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    recipes = _recipes(dest)
    expected: dict[str, Expected] = {}
    for i in range(n):
        name, form, files, want = recipes[i % len(recipes)]
        if i >= len(recipes):
            name = f"{name}-r{i // len(recipes)}"
        if form == "folder":
            _write_folder(dest / name, files)
        elif form == "zip":
            _write_zip(dest / f"{name}.zip", files)
        elif form == "zip-folder":
            _write_zip(dest / f"{name}.zip", files, folder="my-llm")
        else:
            _write_notebook(dest / f"{name}.ipynb", files)
        expected[name] = want
    return expected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="folder to create the submissions in")
    parser.add_argument("-n", type=int, default=30, help="number of submissions (default 30)")
    parser.add_argument("--expected", type=Path, help="also write the expectations as JSON")
    args = parser.parse_args(argv)
    expected = make_class(args.dest, args.n)
    if args.expected:
        data = {name: asdict(e) for name, e in expected.items()}
        args.expected.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    kinds: dict[str, int] = {}
    for e in expected.values():
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(
        f"Wrote {len(expected)} submissions to {args.dest} "
        f"({', '.join(f'{k} {v}' for k, v in kinds.items())}). Grade them with\n"
        f"  llm-grade batch {args.dest} --out OUT --jobs 2"
    )


if __name__ == "__main__":
    main()
