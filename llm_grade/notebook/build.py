"""The assignment notebooks, one per curriculum module, built from the bundled stubs.

``build_notebooks(out)`` writes ``00_environment.ipynb`` ... ``06_transformer.ipynb``. Each
opens with the module's title, references and points, then a setup cell (the stub's imports;
for ``blocks`` and ``transformer`` also a :func:`llm_grade.notebook.load_definitions` call
that brings in the learner's earlier notebooks), then for every graded name three cells:
what to write (markdown), the stub's definition verbatim (code) and a "check my work" cell
that calls :func:`llm_grade.notebook.check`.

The stub cell is the stub's source, byte for byte: the grader tells an untouched stub from
started work by comparing its AST with the bundled stub's. Every cell carries
``metadata["llm_grade"] = {"module", "role", "component"}`` (``component`` only on the three
cells of a graded name) so tools find cells by role, not by position.

An existing notebook is never overwritten: learners' work lives in these files.

Static: the stubs are read with :mod:`ast`, nothing is imported or run (no torch).
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path

import nbformat

from llm_grade.components import COMPONENTS, MODULES
from llm_grade.engine.rubric import load_rubric
from llm_grade.paths import bundled

# The curriculum's sections each module covers (../shared/curriculum.md, which does not ship).
_CURRICULUM: dict[str, tuple[tuple[str, str], ...]] = {
    "environment": (
        (
            "0.2",
            "Hardware & software environment setup (PyTorch, CUDA/Mac, mixed precision, "
            "profiling tools)",
        ),
    ),
    "embeddings": (("1.1", "Positional embeddings (absolute learned vs. sinusoidal)"),),
    "attention": (
        ("1.2", "Self-attention from first principles (manual computation with a tiny example)"),
        ("1.3", "Building a single attention head in PyTorch"),
        ("1.4", "Multi-head attention (splitting, concatenation, projections)"),
    ),
    "feedforward": (
        ("1.5", "Feed-forward networks (MLP layers) — GELU, dimensionality expansion"),
    ),
    "normalization": (("1.5", "Residual connections & LayerNorm"),),
    "blocks": (("1.6", "Stacking into a full Transformer block"),),
    "transformer": (
        (
            "Main Block",
            "2. Encoder (stacked N times), 3. Decoder (stacked N times), 4. Output Projection",
        ),
        ("Flow summary", "4. Prediction -> token-by-token autoregressive decoding"),
    ),
}

# Why each graded name is worth writing: one or two plain sentences for the learner.
_WHY: dict[str, str] = {
    "get_device": (
        "Tensors and modules must sit on the same device before they can be combined. Choosing "
        "the device in one place keeps the rest of your code device-agnostic, so the same "
        "notebook runs on a laptop CPU, an Apple GPU or an NVIDIA GPU."
    ),
    "count_parameters": (
        "Model sizes are compared by parameter count (GPT-2 small has 124M), and a count that "
        "differs from the expected one usually means a layer is missing or built twice."
    ),
    "TokenEmbedding": (
        "Token ids are arbitrary integers; the embedding is the model's first layer and turns "
        "each id into a learned vector that the later layers can compute with."
    ),
    "sinusoidal_positional_encoding": (
        "Attention ignores word order, so each position gets a code added to its token vector. "
        "This table needs no training, and for any fixed offset `k` the code of position "
        "`p + k` is a linear function of the code of `p`, so relative positions are easy to read."
    ),
    "SinusoidalPositionalEncoding": (
        "The module computes the table once, moves it with the model to any device and adds it "
        "to every batch: this is how the original Transformer gives its inputs positions."
    ),
    "LearnedPositionalEmbedding": (
        "GPT-2 learns one vector per position instead of using a formula. It is simple and works "
        "well, but the model cannot take sequences longer than `max_len`."
    ),
    "softmax": (
        "Softmax turns attention scores into weights that are non-negative and sum to 1. "
        "Without subtracting the maximum, large scores overflow to `inf` and the model's output "
        "becomes NaN."
    ),
    "causal_mask": (
        "A language model learns to predict each token from the tokens before it. The causal "
        "mask stops position `i` from seeing later positions, which would let it copy the answer."
    ),
    "padding_mask": (
        "The sequences of a batch are padded to one length. The padding mask keeps real tokens "
        "from attending to the padding, so a sentence's output does not depend on its batch."
    ),
    "scaled_dot_product_attention": (
        "This is the core operation of every Transformer: each query takes an average of the "
        "values, weighted by how well it matches each key. The `1 / sqrt(d_k)` scale keeps the "
        "softmax from saturating as `d_k` grows."
    ),
    "AttentionHead": (
        "A head learns its own query, key and value projections, so it learns what to look for "
        "and what to pass on. It is the smallest complete unit of attention."
    ),
    "MultiHeadAttention": (
        "Several heads attend in parallel, each to its own kind of relation between tokens, for "
        "about the cost of one full-width head. Every encoder, decoder and GPT layer uses it."
    ),
    "gelu": (
        "GELU is the non-linearity of BERT's and GPT's feed-forward layers: a smooth ReLU that "
        "scales `x` by `Phi(x)`, the probability that a standard normal variable is below `x`."
    ),
    "FeedForward": (
        "Attention mixes information across positions; the feed-forward network then transforms "
        "each position on its own. It holds about two thirds of a layer's parameters."
    ),
    "LayerNorm": (
        "Normalising every token vector keeps the activations in a steady range as layers stack "
        "up, which is what makes deep Transformers trainable with ordinary learning rates."
    ),
    "AddNorm": (
        "The residual connection lets a sub-layer learn a correction to its input and gives the "
        "gradients a direct path through the stack; the norm after the sum is the original "
        "paper's post-norm arrangement."
    ),
    "EncoderLayer": (
        "The encoder's repeating unit: self-attention lets every source token gather context "
        "from the whole sequence, and the feed-forward network processes what it gathered."
    ),
    "DecoderLayer": (
        "The decoder's repeating unit adds cross-attention: this is where the output being "
        "generated reads the encoded source, e.g. the sentence being translated."
    ),
    "TransformerBlock": (
        "The repeating unit of GPT-2 and most later language models. Normalising before each "
        "sub-layer leaves the residual stream untouched, which trains more stably in deep stacks."
    ),
    "Encoder": (
        "Stacking layers lets the representations build up in stages. The encoder's output, the "
        '"memory", is what every decoder layer attends to.'
    ),
    "Decoder": (
        "The decoder stack turns the target tokens so far, together with the encoder's memory, "
        "into the states from which the next token is predicted."
    ),
    "Transformer": (
        'The full model of "Attention Is All You Need", built only from your parts: when it '
        "matches the reference, every piece underneath fits together."
    ),
    "GPT": (
        "A decoder-only model trained to predict the next token: the architecture of GPT-2 and "
        "of most large language models today."
    ),
    "greedy_decode": (
        "A model only scores the next token; decoding turns those scores into a sequence, one "
        "token at a time. Greedy decoding is the simplest strategy and the baseline that beam "
        "search and sampling are compared with."
    ),
}

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SECTION = re.compile(
    r"(?P<section>(?:Part )?\d+(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?) - (?P<title>.+)"
)
_KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def notebook_name(module: str) -> str:
    """The file name of ``module``'s notebook: ``02_attention.ipynb`` for ``attention``."""
    if module not in MODULES:
        raise ValueError(f"{module!r} is not a curriculum module; expected one of {MODULES}")
    return f"{MODULES.index(module):02d}_{module}.ipynb"


def build_notebooks(
    out: Path, *, rubric: Path | None = None, intro: str | None = None
) -> list[Path]:
    """Write one assignment notebook per curriculum module into ``out`` (created if missing),
    in curriculum order, and return their paths.

    ``rubric`` is the rubric whose points the notebooks show and whose path the "check my
    work" cells pass on (the bundled rubric when None); ``intro`` is the instructor's own
    markdown, a cell of its own after each notebook's title. Raises ``FileExistsError``, before
    writing anything, when any of the notebooks already exists in ``out``.
    """
    out = Path(out)
    targets = [out / notebook_name(module) for module in MODULES]
    existing = [path for path in targets if path.exists()]
    if existing:
        names = ", ".join(path.name for path in existing)
        raise FileExistsError(
            f"{names} already exist{'s' if len(existing) == 1 else ''} in {out}; a notebook may "
            "hold a learner's work, so nothing was written: move the existing notebooks away or "
            "build into another folder"
        )
    loaded = load_rubric(Path(rubric) if rubric is not None else _bundled_rubric())
    points = {
        name: sum(s.points for s in loaded.checks.get(name, {}).values()) for name in COMPONENTS
    }
    notebooks = [_notebook(module, points, rubric, intro) for module in MODULES]
    out.mkdir(parents=True, exist_ok=True)
    for path, nb in zip(targets, notebooks, strict=True):
        with path.open("x", encoding="utf-8") as f:  # "x": never replace a learner's file
            nbformat.write(nb, f)
    return targets


# ------------------------------------------------------------------------- one notebook


def _bundled_rubric() -> Path:
    return bundled("graders") / "rubric.toml"


def _notebook(
    module: str, points: dict[str, float], rubric: Path | None, intro: str | None
) -> nbformat.NotebookNode:
    source = (bundled("stubs") / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    names = [name for name, home in COMPONENTS.items() if home == module]
    nodes = {node.name: node for node in tree.body if isinstance(node, _DEFS)}
    missing = [name for name in names if name not in nodes]
    if missing:
        raise ValueError(f"stubs/{module}.py does not define {', '.join(missing)}")
    imports, sources = _setup(source, tree)

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": dict(_KERNELSPEC),
        "language_info": {"name": "python"},
        "llm_grade": {"module": module},
    }
    cells = [
        _cell("markdown", module, "title", _title(module, tree, names, points, rubric, sources))
    ]
    if intro is not None:
        cells.append(_cell("markdown", module, "intro", intro))
    cells.append(_cell("code", module, "setup", _setup_source(imports, sources, tree)))
    for name in names:
        node = nodes[name]
        cells.append(_cell("markdown", module, "explain", _explain(name, node, points), name))
        cells.append(_cell("code", module, "stub", _segment(source, node), name))
        call = (
            f'check("{name}")'
            if rubric is None
            else (f'check("{name}", rubric={json.dumps(str(rubric), ensure_ascii=False)})')
        )
        cells.append(
            _cell("code", module, "check", f"from llm_grade.notebook import check\n{call}", name)
        )
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def _cell(kind: str, module: str, role: str, source: str, component: str | None = None):
    cell_id = f"{module}-{component}-{role}" if component else f"{module}-{role}"
    meta: dict[str, str] = {"module": module, "role": role}
    if component:
        meta["component"] = component
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    return make(source, id=cell_id, metadata={"llm_grade": meta})


def _title(
    module: str,
    tree: ast.Module,
    names: list[str],
    points: dict[str, float],
    rubric: Path | None,
    sources: list[str],
) -> str:
    doc = ast.get_docstring(tree) or module
    first, _, prose = doc.partition("\n\n")
    first = " ".join(first.split()).rstrip(".")
    if m := _SECTION.fullmatch(first):
        heading = f"# {m['section']} — {m['title'][:1].upper()}{m['title'][1:]}"
    else:
        heading = f"# {first}"
    parts = [heading]
    parts.append(
        "From the curriculum:\n\n"
        + "\n".join(f"- **{section}** {title}" for section, title in _CURRICULUM[module])
    )
    if prose.strip():
        parts.append(_markdown(prose.strip()))
    work = (
        "## How to work\n\n"
        "Run the setup cell first (again after every kernel restart). Then, for each component: "
        "fill in its code cell, run it, then run the **check my work** cell below it. The check "
        "grades the code in this notebook in a sandbox, compares it with a reference "
        "implementation and shows the feedback here. Keep every name, signature and attribute "
        "name the docstrings give: the checks load the reference's weights into your modules."
    )
    if sources:
        work += (
            "\n\nThis notebook builds on your earlier ones: the setup cell loads your definitions "
            f"from {_and([f'`{s}`' for s in sources])}, so save those notebooks first."
        )
    parts.append(work)
    where = "the bundled rubric" if rubric is None else f"the rubric `{rubric}`"
    rows = [f"| `{name}` | {_points(points[name])} |" for name in names]
    total = sum(points[name] for name in names)
    parts.append(
        f"## Points\n\nFrom {where}.\n\n| Component | Points |\n|:--|--:|\n"
        + "\n".join(rows)
        + f"\n| **Total** | **{_points(total)}** |"
    )
    return "\n\n".join(parts)


def _explain(name: str, node: ast.AST, points: dict[str, float]) -> str:
    doc = ast.get_docstring(node) or ""
    what, _, rest = doc.partition("\n\n")
    parts = [f"## `{name}`", f"**What to compute.** {_markdown(what.strip())}"]
    if rest.strip():
        parts.append(f"**Shapes and conventions.**\n\n{_markdown(rest.strip())}")
    if isinstance(node, ast.ClassDef):
        methods = [
            f"- `{item.name}`: {_markdown(_first_line(item))}"
            for item in node.body
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        if methods:
            parts.append(
                "**Methods** (each docstring in the code cell below says exactly what to do):\n\n"
                + "\n".join(methods)
            )
    parts.append(f"**Why it matters.** {_WHY[name]}")
    parts.append(f"**Points:** {_points(points[name])}")
    return "\n\n".join(parts)


def _first_line(node: ast.AST) -> str:
    """A docstring's first paragraph on one line; "..., then create:" ends in "..." instead
    (the list it introduces is in the code cell)."""
    doc = ast.get_docstring(node) or ""
    line = " ".join(doc.partition("\n\n")[0].split())
    return line[:-1].rstrip() + " …" if line.endswith(":") else line


def _segment(source: str, node: ast.AST) -> str:
    """The stub's text of a top-level definition, from its first decorator to its last line."""
    start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    lines = source.splitlines()
    return "\n".join(lines[start - 1 : node.end_lineno])


# ------------------------------------------------------------------------- the setup cell


def _setup(source: str, tree: ast.Module) -> tuple[list[tuple[bool, str]], list[str]]:
    """The stub's absolute imports, each with the comment lines right above it, as
    (blank line before, text); and the notebooks defining what its relative imports name."""
    lines = source.splitlines()
    imports: list[tuple[bool, str]] = []
    wanted: set[str] = set()
    previous_end = 0
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            start = node.lineno
            while start - 1 > previous_end and lines[start - 2].lstrip().startswith("#"):
                start -= 1
            blank = start >= 2 and not lines[start - 2].strip()
            if isinstance(node, ast.ImportFrom) and node.level:
                for alias in node.names:
                    wanted.add(_home(alias.name, node.module))
            elif not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                imports.append((blank, "\n".join(lines[start - 1 : node.end_lineno])))
        previous_end = node.end_lineno or node.lineno
    return imports, [notebook_name(module) for module in MODULES if module in wanted]


def _home(name: str, module: str | None) -> str:
    """The curriculum module whose notebook defines ``name`` (a relative import's name)."""
    if name in COMPONENTS:
        return COMPONENTS[name]
    if module in MODULES:
        return module
    raise ValueError(f"a stub imports {name!r} from {module!r}: no notebook defines it")


def _setup_source(imports: list[tuple[bool, str]], sources: list[str], tree: ast.Module) -> str:
    text = ""
    for i, (blank, chunk) in enumerate(imports):
        text += ("\n\n" if blank else "\n") * (i > 0) + chunk
    if not sources:
        return text
    names = [
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level
        for alias in node.names
    ]
    comment = textwrap.wrap(
        f"Your own {_and(names)}: this brings your definitions from {_and(sources)} into this "
        "notebook (save those notebooks first).",
        width=96,
    )
    call = "load_definitions(" + ", ".join(json.dumps(s) for s in sources) + ")"
    if len(call) > 100:
        call = "load_definitions(\n" + "".join(f"    {json.dumps(s)},\n" for s in sources) + ")"
    block = "\n".join(f"# {line}" for line in comment)
    block += f"\nfrom llm_grade.notebook import load_definitions\n\n{call}"
    return f"{text}\n\n{block}" if text else block


# ------------------------------------------------------------------------- text


def _markdown(text: str) -> str:
    """A cleaned docstring as markdown: ````x```` becomes `` `x` `` and a reST literal block
    (a line ending in ``::`` and the more-indented lines after it) a fenced code block."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(_inline(line))
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        head = line.rstrip()[:-2].rstrip()
        if head.strip():
            out.append(_inline(head) + ":")
        j = i + 1
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1  # trailing blank lines stay outside the block
        block = textwrap.dedent("\n".join(lines[i + 1 : j])).strip("\n")
        fence = " " * indent + "```"
        body = "\n".join(" " * indent + b if b else b for b in block.splitlines())
        out += ["", fence, body, fence]
        i = j
    return "\n".join(out)


def _inline(line: str) -> str:
    return re.sub(r"``(.+?)``", r"`\1`", line)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _points(x: float) -> str:
    return f"{x:g}"
