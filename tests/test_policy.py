"""The submission policy (llm_grade/policy/): what a submission may use, checked from its AST.

Pure source checks: no learner code runs here (the one ``exec`` below runs a cleaned source
that this file wrote).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from lg_paths import REFERENCE, REPO, STUBS

from llm_grade.components import COMPONENTS
from llm_grade.policy import (
    DEFAULT_MODULES,
    FRAME_ATTRS,
    ModuleCheck,
    Policy,
    PolicyViolation,
    check_module,
    check_submission,
)

ATTENTION = {name for name, module in COMPONENTS.items() if module == "attention"}
SHIPPED = sorted(
    [*REFERENCE.glob("*.py"), *(REPO / "examples" / "buggy").glob("*.py"), *STUBS.glob("*.py")]
)


def check(source: str, module: str = "attention", policy: Policy | None = None) -> ModuleCheck:
    return check_module(textwrap.dedent(source), module, policy or Policy())


# --------------------------------------------------------------------------- what passes


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_code_passes(path: Path):
    source = path.read_text(encoding="utf-8")
    result = check_module(source, path.stem, Policy())
    assert result.violations == [], [v.message() for v in result.violations]
    assert result.refused_components == set()
    assert result.cleaned_source == source


CORRECT = '''\
"""A learner's attention module, written from scratch."""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import product
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .normalization import LayerNorm
from . import embeddings
import feedforward

__all__ = ["softmax", "MultiHeadAttention"]
EPS = 1e-5
SQRT2 = math.sqrt(2)
relu = F.relu


@dataclass
class Config:
    d_model: int = 8
    n_heads: int = 2
    extra: list = field(default_factory=list)


def _np_scale(d: int) -> float:
    return float(1.0 / np.sqrt(d))


@functools.lru_cache(maxsize=None)
def _cached(n: int) -> int:
    return n * 2


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    assert x.dim() >= 1, f"need a tensor, got {type(x).__name__}"
    x_max = x.amax(dim=dim, keepdim=True)
    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))
    exp = torch.exp(x - x_max)
    return exp / exp.sum(dim=dim, keepdim=True)


def scaled_dot_product_attention(q, k, v, mask: Optional[torch.Tensor] = None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    return weights @ v, weights


class AttentionHead(nn.Module):
    def __init__(self, d_model: int, d_head: int):
        super().__init__()
        self.q_proj = nn.Linear(d_model, d_head, bias=False)
        self.k_proj = copy.deepcopy(self.q_proj)
        self.v_proj = nn.Linear(d_model, d_head, bias=False)

    def forward(self, input, context=None, mask=None):
        context = input if context is None else context
        out, _ = scaled_dot_product_attention(
            self.q_proj(input), self.k_proj(context), self.v_proj(context), mask
        )
        return out


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model must be a multiple of n_heads, got {d_model}")
        self.heads = nn.ModuleList(AttentionHead(d_model, d_model // n_heads) for _ in range(2))
        self.scale = functools.partial(torch.mul, other=_np_scale(d_model))
        self.cache = OrderedDict()
        self._seen = 0

    def forward(self, query, key, value, mask=None):
        weight = getattr(self, "weight", None)
        if hasattr(query, "weight") or weight is not None:
            warnings.warn("unexpected weight")
        outs = []
        for h, head in enumerate(self.heads):
            outs.append(head(query, key, mask))
        pairs = [(i, j) for i, j in product(range(2), repeat=2) if i <= j]
        squares = sum(i * i for i, _ in pairs)
        try:
            total = torch.cat(outs, dim=-1)
        except RuntimeError as exc:
            print("could not concatenate:", exc)
            raise
        with torch.no_grad():
            self._seen += 1
        key_fn = lambda t: t * 1  # noqa: E731
        isinstance(total, torch.Tensor) and squares >= 0
        dev = getattr(torch.backends, "mps", None)
        if dev is not None and dev.is_available():
            pass
        return key_fn(relu(total))


if __name__ == "__main__":
    import os
    import sys

    with open(os.path.join(os.getcwd(), "demo.txt"), "w") as handle:
        handle.write(str(softmax(torch.randn(2, 3))))
    sys.exit(0)
'''


def test_a_correct_submission_passes_and_its_demo_is_blanked():
    result = check(CORRECT)
    assert result.violations == [], [v.message() for v in result.violations]
    assert result.refused_components == set()
    cleaned = result.cleaned_source.splitlines()
    original = CORRECT.splitlines()
    start = original.index('if __name__ == "__main__":')
    assert cleaned[:start] == original[:start]
    assert cleaned[start:] == [""] * (len(original) - start)
    compile(result.cleaned_source, "attention.py", "exec")


@pytest.mark.parametrize(
    "source",
    [
        "def softmax(x, input=None):\n    return input",  # a parameter named like a builtin
        "def softmax(x):\n    open = x\n    return open",  # a local variable
        "def f(x):\n    return [exec for exec in x]",  # a comprehension variable
        "import numpy as np\ndef f(np):\n    return g(np)",  # a parameter named like an alias
        "class T(tuple):\n    def f(self):\n        return self._replace(a=1)._asdict()",
        "def f(x):\n    return self._cache, super()._apply, cls._registry",
        "def f(x):\n    return type(x).__name__, x.__class__.__qualname__, f.__doc__",
        '"""Doc."""\nimport torch\nnn = torch.nn\nM = nn.Module\nX = torch.backends.mps',
        'if "__main__" == __name__:\n    import sys\n    exec(open(__file__).read())',
        "import torch\nif torch.cuda.is_available() and torch.backends:\n    pass",
        'def f(x):\n    return "{0.shape} {0.__class__.__name__}".format(x)',
    ],
)
def test_ordinary_python_passes(source: str):
    result = check(source)
    assert result.violations == [], [v.message() for v in result.violations]


# --------------------------------------------------------------------------- what is refused

HEADER = """\
import copy
import dataclasses
import math
import typing
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

"""
H = HEADER.count("\n")


@dataclass(frozen=True)
class Case:
    code: str
    key: str
    where: str = "softmax"  # softmax | helper | top | class
    offset: int = 0  # line of the violation within `code`


def _place(case: Case) -> tuple[str, int, str | None]:
    """The module source, the violation's line and the component it costs."""
    code = case.code

    def indented(text: str, by: str) -> str:
        return textwrap.indent(text, by)

    if case.where == "top":
        return HEADER + code + "\n", H + 1 + case.offset, None
    if case.where == "class":
        src = "class MultiHeadAttention(nn.Module):\n" + indented(code, "    ") + "\n"
        return HEADER + src, H + 2 + case.offset, "MultiHeadAttention"
    name = "softmax" if case.where == "softmax" else "_h"
    src = f"def {name}(x, dim=-1):\n    y = x\n" + indented(code, "    ") + "\n    return y\n"
    return HEADER + src, H + 3 + case.offset, "softmax" if name == "softmax" else None


CASES = {
    # 1. imports
    "import-sys": Case("import sys", "sys", "top"),
    "import-os": Case("import os", "os"),
    "import-gc": Case("import gc", "gc", "top"),
    "import-inspect": Case("import inspect", "inspect", "helper"),
    "import-importlib": Case("import importlib", "importlib", "top"),
    "import-subprocess": Case("import subprocess", "subprocess"),
    "import-ctypes": Case("import ctypes", "ctypes", "top"),
    "import-threading": Case("import threading", "threading", "top"),
    "import-signal": Case("import signal", "signal"),
    "import-socket": Case("import socket", "socket"),
    "from-pathlib": Case("from pathlib import Path", "pathlib", "top"),
    "import-builtins": Case("import builtins", "builtins", "top"),
    "import-operator": Case("import operator", "operator", "helper"),
    "import-llm-grade": Case("import llm_grade.components", "llm_grade", "top"),
    "import-reference": Case("from reference.attention import softmax as answer", "reference"),
    "import-graders": Case("import graders", "graders", "top"),
    "import-tests": Case("from tests import lg_paths", "tests", "top"),
    "import-stubs": Case("from stubs import attention", "stubs", "top"),
    "import-os-path": Case("import os.path as osp", "os", "top"),
    "star-import": Case("from torch import *", "star-import", "top"),
    "relative-up": Case("from .. import reference", "relative-import", "top"),
    "relative-other": Case("from .utils import helper", "utils", "top"),
    # 2. builtins and dunder names
    "exec": Case("exec('y = x')", "exec"),
    "eval": Case("y = eval('x')", "eval"),
    "compile": Case("c = compile('1', 'f', 'eval')", "compile"),
    "__import__": Case("m = __import__('os')", "__import__"),
    "open": Case("open('/tmp/x', 'w')", "open"),
    "globals": Case("g = globals()", "globals", "helper"),
    "locals": Case("names = locals()", "locals"),
    "vars": Case("v = vars(x)", "vars"),
    "breakpoint": Case("breakpoint()", "breakpoint"),
    "input": Case("input()", "input"),
    "help": Case("help(len)", "help", "top"),
    "exit": Case("exit(0)", "exit"),
    "quit": Case("quit()", "quit"),
    "memoryview": Case("mv = memoryview(b'x')", "memoryview"),
    "exec-referenced": Case("run = exec", "exec"),
    "exec-after-comprehension": Case("ys = [0 for exec in x]\nexec('1')", "exec", offset=1),
    "__builtins__": Case("b = __builtins__", "__builtins__"),
    "__file__": Case("HERE = __file__", "__file__", "top"),
    "__loader__": Case("ld = __loader__", "__loader__"),
    "__spec__": Case("SPEC = __spec__", "__spec__", "top"),
    # 3. getattr and friends
    "getattr-computed": Case("name = 'weight'\ny = getattr(x, name)", "getattr", offset=1),
    "getattr-dunder": Case("y = getattr(x, '__globals__')", "getattr"),
    "getattr-alias": Case("f = getattr", "getattr", "top"),
    "getattr-map": Case("ys = list(map(getattr, [x], ['shape']))", "getattr"),
    "setattr-computed": Case("setattr(x, str(dim), 1)", "setattr"),
    "delattr-computed": Case("delattr(x, 'a' + 'b')", "delattr", "helper"),
    "hasattr-computed": Case("ok = hasattr(x, dim)", "hasattr"),
    # 4. attributes
    "__globals__": Case("g = softmax.__globals__", "__globals__"),
    "__dict__": Case("d = x.__dict__", "__dict__"),
    "__subclasses__": Case("SUBS = object.__subclasses__()", "__subclasses__", "top"),
    "__code__": Case("c = softmax.__code__", "__code__"),
    "__closure__": Case("c = softmax.__closure__", "__closure__", "helper"),
    "__traceback__": Case(
        "try:\n    raise ValueError\nexcept ValueError as e:\n    t = e.__traceback__",
        "__traceback__",
        offset=3,
    ),
    "__builtins__-attr": Case("b = softmax.__builtins__", "__builtins__"),
    "__setattr__": Case("object.__setattr__(x, 'a', 1)", "__setattr__"),
    "__mro__": Case("m = type(x).__mro__", "__mro__"),
    "__bases__": Case("b = type(x).__bases__", "__bases__", "top"),
    "__self__": Case("s = print.__self__", "__self__"),
    "__wrapped__": Case("w = softmax.__wrapped__", "__wrapped__"),
    "__module__": Case("m = softmax.__module__", "__module__"),
    "gi_frame": Case("gen = (i for i in x)\nfr = gen.gi_frame", "gi_frame", offset=1),
    "tofile": Case("x.numpy().tofile('/tmp/x')", "tofile"),
    # 5. names reached from imported modules
    "torch._C": Case("y = torch._C._nn.gelu(x)", "torch._C"),
    "F-private": Case("m = F._canonical_mask", "torch.nn.functional._canonical_mask"),
    "torch.os": Case("OS = torch.os", "os", "top"),
    "typing.sys": Case("s = typing.sys", "sys"),
    "dataclasses.sys": Case("s = dataclasses.sys", "sys", "helper"),
    "warnings.sys": Case("s = warnings.sys", "sys"),
    "enum.sys": Case("import enum\ns = enum.sys", "sys", offset=1),
    "copy.dispatch_table": Case("t = copy.dispatch_table", "copy.dispatch_table"),
    "monkeypatch-item": Case("torch.nn.functional.__all__[0] = 'x'", "monkeypatch", "top"),
    "torch.ops": Case("add = torch.ops.aten.add", "torch.ops"),
    "import-torch.ops": Case("import torch.ops", "torch.ops", "top"),
    "from-private": Case(
        "from torch.utils import _python_dispatch", "torch.utils._python_dispatch", "top"
    ),
    "from-overrides": Case(
        "from torch.overrides import TorchFunctionMode", "torch.overrides", "top"
    ),
    "torch.save": Case("torch.save(x, 'w.pt')", "torch.save"),
    "torch.load": Case("w = torch.load('w.pt')", "torch.load"),
    "torch.library": Case("torch.library.Library('aten', 'IMPL')", "torch.library"),
    "torch.compile": Case("f = torch.compile(softmax)", "torch.compile"),
    "torch.hub": Case("h = torch.hub.load('a', 'b')", "torch.hub"),
    "torch.from_file": Case("t = torch.from_file('x')", "torch.from_file"),
    "torch.multiprocessing": Case(
        "import torch.multiprocessing as mp", "torch.multiprocessing", "top"
    ),
    "numpy.save": Case("np.save('x.npy', x.numpy())", "numpy.save"),
    "numpy.load": Case("a = np.load('x.npy')", "numpy.load"),
    "numpy.fromfile": Case("a = np.fromfile('x')", "numpy.fromfile"),
    "numpy.lib": Case("from numpy.lib import stride_tricks", "numpy.lib", "top"),
    "alias-of-alias": Case(
        "G = F\nM = G._canonical_mask", "torch.nn.functional._canonical_mask", "top", 1
    ),
    "alias-of-function": Case("sm = F.softmax\nz = sm.__wrapped__", "__wrapped__", "top", 1),
    "getattr-private": Case("c = getattr(torch, '_C')", "torch._C"),
    "from-as-alias": Case(
        "from torch.nn import functional as FF\nz = FF._canonical_mask",
        "torch.nn.functional._canonical_mask",
        "top",
        1,
    ),
    "typing.get_type_hints": Case("typing.get_type_hints(softmax)", "typing.get_type_hints", "top"),
    # 6. classes
    "__torch_function__": Case(
        "@classmethod\ndef __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "    return func(*args)",
        "__torch_function__",
        "class",
        1,
    ),
    "__torch_dispatch__": Case(
        "def __torch_dispatch__(cls, *a):\n    pass", "__torch_dispatch__", "class"
    ),
    "__del__": Case("def __del__(self):\n    pass", "__del__", "class"),
    "__getattribute__": Case(
        "def __getattribute__(self, n):\n    return 1", "__getattribute__", "class"
    ),
    "__init_subclass__": Case(
        "def __init_subclass__(cls):\n    pass", "__init_subclass__", "class"
    ),
    "__class_getitem__": Case(
        "def __class_getitem__(cls, i):\n    return cls", "__class_getitem__", "class"
    ),
    "__set_name__": Case(
        "class D:\n    def __set_name__(self, o, n):\n        pass", "__set_name__", "helper", 1
    ),
    "__reduce__": Case("def __reduce__(self):\n    return (int, ())", "__reduce__", "class"),
    "__reduce_ex__": Case(
        "def __reduce_ex__(self, p):\n    return (int, ())", "__reduce_ex__", "class"
    ),
    "__instancecheck__": Case(
        "def __instancecheck__(cls, x):\n    return True", "__instancecheck__", "class"
    ),
    "__subclasscheck__": Case(
        "def __subclasscheck__(cls, x):\n    return True", "__subclasscheck__", "class"
    ),
    "__new__": Case("def __new__(cls, *a):\n    return super().__new__(cls)", "__new__", "class"),
    "__torch_function__-assigned": Case("__torch_function__ = None", "__torch_function__", "class"),
    "metaclass": Case(
        "class Meta(type):\n    pass\n\n\nclass S(metaclass=Meta):\n    pass", "metaclass", "top", 4
    ),
    # beyond the list: patching libraries, modules as values, other objects' internals
    "monkeypatch": Case("torch.allclose = lambda *a, **k: True", "monkeypatch"),
    "monkeypatch-setattr": Case("setattr(torch, 'equal', lambda a, b: True)", "monkeypatch"),
    "module-value": Case("mods = [torch]", "module-value"),
    "private-attribute": Case("w = warnings.catch_warnings()\nm = w._module", "_module", offset=1),
    "format-field": Case("s = '{0.__globals__}'.format(softmax)", "__globals__"),
    "type-3-args": Case("T = type('T', (torch.Tensor,), {})", "type"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_refused(case: Case):
    source, line, component = _place(case)
    result = check_module(source, "attention", Policy())
    found = [v for v in result.violations if v.key == case.key]
    assert found, [v.message() for v in result.violations]
    assert (found[0].line, found[0].component) == (line, component), found[0]
    assert found[0].file == "attention.py" and found[0].why and found[0].construct
    assert result.refused_components == ({component} if component else ATTENTION)
    compile(result.cleaned_source, "attention.py", "exec")
    assert result.cleaned_source.count("\n") == source.count("\n")


@pytest.mark.parametrize("attr", sorted(FRAME_ATTRS))
def test_frame_attributes_are_refused(attr: str):
    result = check(f"def softmax(x):\n    return x.{attr}\n")
    assert [(v.key, v.line, v.component) for v in result.violations] == [(attr, 2, "softmax")]
    assert result.violations[0].construct == f"attribute .{attr}"


def test_a_refused_import_is_reported_once():
    result = check("import os\nos._exit(0)\nos.environ.__dict__\n")
    assert [v.key for v in result.violations] == ["os"]


def test_every_imported_name_of_a_refused_module_stays_quiet():
    result = check("from os import path, sep\n\ndef f():\n    return path._x, sep\n")
    assert [v.construct for v in result.violations] == ["from os import path, sep"]


# --------------------------------------------------------------------------- cleaned source

CLEANING = '''\
"""Doc."""
import torch
EPS = 1e-5; import sys


def _helper(x):
    return eval("x")


@torch.no_grad()
def softmax(x, dim=-1):
    return exec("1")


def causal_mask(seq_len, device=None):
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


class Sneaky:
    def __del__(self):
        pass


print(open("x"))

if __name__ == "__main__":
    print("demo")
else:
    print("imported")
'''


def test_cleaned_source_keeps_lines_and_removes_what_is_refused():
    result = check(CLEANING)
    original = CLEANING.splitlines()
    cleaned = result.cleaned_source.splitlines()
    assert len(cleaned) == len(original) and result.cleaned_source.endswith("\n")
    stub = "  # refused by the submission policy"
    expected = {
        3: "EPS = 1e-5; ",
        6: "def _helper(*args, **kwargs): pass" + stub,
        7: "",
        10: "def softmax(*args, **kwargs): pass" + stub,
        11: "",
        12: "",
        15: "def causal_mask(*args, **kwargs): pass" + stub,
        16: "",
        19: "class Sneaky: pass" + stub,
        20: "",
        21: "",
        24: "",
        **{n: "" for n in range(26, 30)},
    }
    for n, line in enumerate(original, start=1):
        assert cleaned[n - 1] == expected.get(n, line), n
    assert {v.key for v in result.violations} == {"sys", "eval", "exec", "__del__", "open"}
    assert result.refused_components == ATTENTION
    compile(result.cleaned_source, "attention.py", "exec")


def test_cleaned_source_runs_and_only_the_refused_component_is_a_stub():
    source = (
        "import math\n\n"
        "def softmax(x):\n    return eval('x')\n\n"
        "def causal_mask(n):\n    return [[j <= i for j in range(n)] for i in range(n)]\n\n"
        "K = causal_mask(2)  ; L = math.sqrt(4)\n"
    )
    result = check(source)
    assert result.refused_components == {"softmax"}
    namespace: dict = {}
    exec(compile(result.cleaned_source, "attention.py", "exec"), namespace)  # our own code
    assert namespace["softmax"](1) is None
    assert namespace["K"] == [[True, False], [True, True]] and namespace["L"] == 2.0


def test_a_removed_multiline_statement_keeps_its_neighbours():
    source = "A = 1; B = open(\n    'x'\n); C = 3\nD = A + C\n"
    result = check(source)
    assert result.cleaned_source == "A = 1; \n\npass; C = 3\nD = A + C\n"
    namespace: dict = {}
    exec(result.cleaned_source, namespace)
    assert namespace["D"] == 4


def test_line_endings_are_kept():
    source = "import sys\r\nX = 1\r\n"
    assert check(source).cleaned_source == "\r\nX = 1\r\n"


def test_a_syntax_error_is_left_to_the_import():
    source = "def softmax(x)\n    import sys\n"
    result = check(source)
    assert (result.violations, result.cleaned_source, result.refused_components) == (
        [],
        source,
        set(),
    )


# --------------------------------------------------------------------------- the [policy] table


def test_an_allowed_key_is_not_reported():
    policy = Policy.from_mapping({"allow": ["sys", "torch.ops"]})
    result = check("import sys\nimport torch\nA = torch.ops.aten.add\nexec('1')\n", policy=policy)
    assert [v.key for v in result.violations] == ["exec"]
    assert check("import sys\n", policy=policy).cleaned_source == "import sys\n"


def test_modules_and_extra_modules():
    assert Policy.from_mapping({}).modules == DEFAULT_MODULES
    extra = Policy.from_mapping({"extra_modules": ["os"]})
    assert extra.modules == DEFAULT_MODULES | {"os"}
    assert check("import os\nP = os.path.join('a', 'b')\n", policy=extra).violations == []
    only = Policy.from_mapping({"modules": ["torch"]})
    assert [v.key for v in check("import math\nimport torch\n", policy=only).violations] == ["math"]
    assert check("from .attention import softmax\n", policy=only).violations == []


@pytest.mark.parametrize(
    "table, match",
    [
        ({"alow": ["sys"], "enable": True}, "alow, enable"),
        ({"enabled": "yes"}, "enabled"),
        ({"allow": "sys"}, "allow"),
        ({"modules": [1]}, "modules"),
    ],
)
def test_from_mapping_rejects_bad_tables(table: dict, match: str):
    with pytest.raises(ValueError, match=match):
        Policy.from_mapping(table)


def test_a_disabled_policy_reports_nothing_but_still_blanks_demos():
    source = 'import sys\nexec("1")\nif __name__ == "__main__":\n    print(1)\n'
    result = check(source, policy=Policy.from_mapping({"enabled": False}))
    assert result.violations == [] and result.refused_components == set()
    assert result.cleaned_source == 'import sys\nexec("1")\n\n\n'


# --------------------------------------------------------------------------- messages


def test_message_names_file_line_and_construct():
    result = check_module("import torch\n\nimport sys\n", "attention", Policy(), "/x/attention.py")
    (violation,) = result.violations
    message = violation.message()
    assert message.startswith("attention.py, line 3: `import sys` is not allowed in a submission. ")
    assert message.endswith('(An instructor can allow it: [policy] allow = ["sys"].)')
    assert violation.why in message


def test_messages_teach():
    violation = PolicyViolation("blocks.py", 7, "exec(...)", "exec", "Write the code.", None)
    assert violation.message() == (
        "blocks.py, line 7: `exec(...)` is not allowed in a submission. Write the code. "
        '(An instructor can allow it: [policy] allow = ["exec"].)'
    )


def test_check_submission_checks_every_module():
    results = check_submission(
        {"attention": "import sys\n", "blocks": "from .attention import softmax\n"}, Policy()
    )
    assert set(results) == {"attention", "blocks"}
    assert results["attention"].refused_components == ATTENTION
    assert results["blocks"].violations == [] and results["blocks"].module == "blocks"


def test_names_one_module_takes_from_another_are_resolved():
    sources = {
        "attention": "import typing\nimport torch.nn.functional as F\nG = F\n",
        "blocks": "from .attention import typing, G\nimport attention\n"
        "A = typing.sys\nB = G._canonical_mask\nC = attention.F.torch.os\n",
        "transformer": "from .blocks import G\nH = G\nD = H.torch.load\n",
    }
    results = check_submission(sources, Policy())
    assert results["attention"].violations == []
    assert [(v.key, v.line) for v in results["blocks"].violations] == [
        ("sys", 3),
        ("torch.nn.functional._canonical_mask", 4),
        ("os", 5),
    ]
    assert [(v.key, v.construct) for v in results["transformer"].violations] == [
        ("torch.load", "H.torch.load")
    ]
