"""Adversarial submissions: the reference with one attack inserted.

Each :class:`Attack` inserts ``code`` before an anchor line of a reference module (``at``), or
at the end of the module (``at=None``: runs at import time). ``{OUT}``, ``{REPO}`` and
``{MARKER}`` are replaced by the grading output folder, the repository root and a unique
number. ``target`` is the component under attack: with ``earns_nothing`` it must score 0;
otherwise (the attack does not touch the maths) it must keep full points. ``honest`` are
components of the same submission that must keep their points.
"""

from __future__ import annotations

from dataclasses import dataclass

ANCHORS = {
    "softmax": ("attention", "    x_max = x.amax(dim=dim, keepdim=True)\n"),
    "causal_mask": ("attention", "    return torch.ones(seq_len, seq_len, dtype=torch.bool"),
    "padding_mask": ("attention", "    return (tokens != pad_id).unsqueeze(1)"),
    "MultiHeadAttention": ("attention", "        B, T_q, _ = query.shape\n"),
    "gelu": ("feedforward", '    if approximate == "none":\n'),
    "FeedForward": ("feedforward", "        return self.fc2(self.dropout(gelu(self.fc1(x))))"),
    "LayerNorm": ("normalization", "        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)"),
    "TokenEmbedding": ("embeddings", "        return self.embedding(tokens) * math.sqrt"),
}


@dataclass(frozen=True)
class Attack:
    id: str
    target: str  # the component whose code carries the attack
    code: str  # inserted before the target's anchor (or at module end when at_import)
    earns_nothing: bool = True  # the target must score 0 (else: keep full points)
    at_import: bool = False
    message: str = ""  # substring expected in the target's failure messages
    honest: tuple[str, ...] = ("causal_mask", "LayerNorm")


ATTACKS = [
    Attack("infinite-loop", "padding_mask", "while True:\n    pass", message="timed out"),
    Attack(
        "memory-bomb",
        "padding_mask",
        "hog = []\nwhile True:\n    hog.append(torch.ones(2**25))",
        honest=("softmax",),
    ),
    Attack(
        "fork-bomb",
        "gelu",
        "import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n        time.sleep(60)",
        message="killed",
    ),
    Attack("segfault-via-ctypes", "gelu", "import ctypes\nctypes.string_at(0)", message="SIGSEGV"),
    Attack(
        "os-exit-at-import",
        "LayerNorm",
        "import os\nos._exit(0)",
        at_import=True,
        message="exited",
        honest=("softmax", "gelu"),
    ),
    Attack("sys-exit-in-forward", "softmax", "import sys\nsys.exit(3)", message="SystemExit"),
    Attack(
        "print-100-mb",
        "softmax",
        "import sys\nsys.stdout.write('x' * 100_000_000)\nsys.stdout.flush()",
        at_import=True,
        earns_nothing=False,
        honest=("MultiHeadAttention", "gelu"),
    ),
    Attack(
        "patch-allclose",
        "softmax",
        "torch.allclose = lambda *a, **k: True\ntorch.isclose = lambda a, b, **k: "
        "torch.ones_like(a, dtype=torch.bool)\n"
        "return torch.exp(x.float()) / torch.exp(x.float()).sum()",
    ),
    Attack(
        "patch-assert-close",
        "LayerNorm",
        "import torch.testing\ntorch.testing.assert_close = lambda *a, **k: None\nreturn x * 2",
        honest=("softmax", "gelu"),
    ),
    Attack(
        "patch-tensor-eq",
        "causal_mask",
        "torch.Tensor.__eq__ = lambda a, b: True\ntorch.equal = lambda a, b: True\n"
        "return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu()",
        honest=("softmax", "LayerNorm"),
    ),
    Attack(
        "tensor-subclass-always-equal",
        "gelu",
        "class Sneaky(torch.Tensor):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __sub__(self, other):\n        return torch.zeros_like(other)\n"
        "return torch.zeros_like(x).as_subclass(Sneaky)",
        message="subclass",
    ),
    Attack("returns-numpy", "softmax", "return (x * 0).numpy()", message="numpy.ndarray"),
    Attack(
        "returns-list",
        "causal_mask",
        "return [[True] * seq_len] * seq_len",
        message="list",
        honest=("softmax", "LayerNorm"),
    ),
    Attack("returns-nan", "gelu", "return x * float('nan')", message="nan"),
    Attack("wrong-device", "LayerNorm", "return x.to('meta')", honest=("softmax", "gelu")),
    Attack(
        "imports-reference",
        "softmax",
        "from reference.attention import softmax as answer\nreturn answer(x, dim)",
        message="not available",
    ),
    Attack(
        "reads-the-graders",
        "gelu",
        "exec(open('{REPO}/graders/test_feedforward.py').read())\n"
        "exec(open('{REPO}/reference/feedforward.py').read())\nreturn gelu(x, approximate)",
        message="FileNotFoundError",
    ),
    Attack(
        "forges-results-json",
        "gelu",
        "import json, os\nfor d in ('{OUT}', os.getcwd()):\n    try:\n"
        "        open(os.path.join(d, 'results.json'), 'w').write(json.dumps("
        "{{'score': 100}}))\n    except OSError:\n        pass\nreturn x",
        honest=("softmax", "LayerNorm"),
    ),
    Attack(
        "deletes-output-folder",
        "LayerNorm",
        "import shutil\nshutil.rmtree('{OUT}', ignore_errors=True)\nreturn x",
        honest=("softmax", "gelu"),
    ),
    Attack("changes-cwd", "TokenEmbedding", "import os\nos.chdir('/')", earns_nothing=False),
    Attack(
        "background-process",
        "padding_mask",
        "import subprocess\nsubprocess.Popen(['sleep', '{MARKER}'], start_new_session=True)",
        message="processes",
    ),
    Attack(
        "slow-but-correct",
        "MultiHeadAttention",
        "import time\ntime.sleep(0.002)",
        earns_nothing=False,
        honest=("softmax",),
    ),
    Attack(
        "garbage-on-the-protocol",
        "softmax",
        "import os\nfor fd in range(3, 1024):\n    try:\n        os.write(fd, b'\\xff' * 64)\n"
        "    except OSError:\n        pass",
        at_import=True,
        honest=("gelu", "LayerNorm"),
    ),
    Attack("reads-stdin", "padding_mask", "input()", message="EOFError"),
    Attack("keyboard-interrupt", "gelu", "raise KeyboardInterrupt", honest=("softmax",)),
]
