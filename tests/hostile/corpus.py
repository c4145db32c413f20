"""Adversarial submissions: the reference with one attack inserted.

Each :class:`Attack` inserts ``code`` before an anchor line of a reference module (``at``), or
at the end of the module (``at=None``: runs at import time). ``{OUT}``, ``{REPO}`` and
``{MARKER}`` are replaced by the grading output folder, the repository root and a unique
number. ``target`` is the component under attack: with ``earns_nothing`` it must score 0;
otherwise (the attack does not touch the maths) it must keep full points. ``honest`` are
components of the same submission that must keep their points.

``policy``: the attack is graded with the submission policy on (the default rubric), so it
must be refused from its source. The others are graded with the policy off, as an instructor
who switched it off would: they test the walls behind it (the sandbox, the limits, the
runtime guard), which must hold on their own.
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
    policy: bool = False  # graded with the submission policy on (see the module docstring)
    limits: str = ""  # extra [limits] lines for this attack's rubric


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
        message="process",
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
    # ------------------------------------------------------------------ round two
    # 1. trusted code reachable from learner code (with the policy off: the walls alone)
    Attack(
        "imports-an-oracle",
        "softmax",
        "from llm_grade.oracles.attention import softmax as trusted\nreturn trusted(x, dim)",
        message="not available",
    ),
    Attack(
        "oracle-from-sys-modules",
        "softmax",
        "import sys\nfound = [getattr(m, 'softmax') for k, m in list(sys.modules.items())\n"
        "         if 'oracle' in k and hasattr(m, 'softmax')]\nreturn found[0](x, dim)",
        message="IndexError",
    ),
    Attack(
        "oracle-through-gc",
        "softmax",
        "import gc\nfound = [o for o in gc.get_objects() if callable(o)\n"
        "         and 'oracle' in str(getattr(o, '__module__', ''))]\n"
        "return found[0](x, dim)",
        message="IndexError",
    ),
    Attack(
        "oracle-through-frames",
        "gelu",
        "import sys\nf = sys._getframe()\nwhile f is not None:\n"
        "    ex = f.f_locals.get('self')\n"
        "    if hasattr(ex, 'oracles') and 'gelu' in ex.oracles:\n"
        "        return ex.oracles['gelu'](x, approximate)\n"
        "    f = f.f_back\nraise RuntimeError('no trusted gelu in this worker')",
        message="no trusted gelu",
    ),
    Attack(
        "execs-the-installed-oracle-source",
        "gelu",
        "import importlib.util, os\n"
        "pkg = os.path.dirname(importlib.util.find_spec('llm_grade').origin)\n"
        "ns = {}\nexec(open(os.path.join(pkg, 'oracles', 'feedforward.py')).read()"
        ".replace('from . import recorded', 'recorded = lambda c: c'), ns)\n"
        "return ns['gelu'](x, approximate)",
        message="FileNotFoundError",
    ),
    Attack(
        "reads-the-site-packages-reference",
        "LayerNorm",
        "import glob, sys\n"
        "for p in sys.path:\n"
        "    for f in glob.glob(p + '/llm_grade/_bundled/reference/normalization.py'):\n"
        "        ns = {}\n"
        "        exec(open(f).read().replace('from __future__ import annotations', ''), ns)\n"
        "        return ns['LayerNorm'].forward(self, x)\n"
        "raise RuntimeError('no reference found')",
        message="no reference found",
        honest=("softmax", "gelu"),
    ),
    Attack(  # switching the in-worker guard off works only where the policy is off
        "switches-the-guard-off",
        "gelu",
        "import gc\nfor o in gc.get_objects():\n"
        "    if type(o).__name__ == 'RuntimeGuard':\n"
        "        o.forbidden.clear(); o.ops.clear()\n"
        "return getattr(torch.nn.functional, 'ge' + 'lu')(x, approximate=approximate)",
        message="not allowed",
        policy=True,
    ),
    # 2. forbidden functionality under another name (the runtime layer, policy off)
    Attack(
        "softmax-via-torch-ops",
        "softmax",
        "return torch.ops.aten._softmax(x, dim, False)",
        message="aten._softmax",
    ),
    Attack(
        "softmax-via-log-softmax-exp",
        "softmax",
        "return x.log_softmax(dim).exp()",
        message="log_softmax",
    ),
    Attack(
        "layer-norm-via-torch-layer-norm",
        "LayerNorm",
        "return torch.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)",
        message="layer_norm",
        honest=("softmax", "gelu"),
    ),
    Attack(
        "gelu-via-torch-c-nn",
        "gelu",
        "return torch._C._nn.gelu(x, approximate=approximate)",
        message="gelu",
    ),
    Attack(
        "forbidden-call-in-a-thread",
        "gelu",
        "import threading\nbox = []\nt = threading.Thread(target=lambda: box.append("
        "getattr(torch.nn.functional, 'ge' + 'lu')(x, approximate=approximate)))\n"
        "t.start()\nt.join()\nreturn box[0]",  # the guard raised in the thread: box is empty
    ),
    Attack(
        "forbidden-call-caught-by-the-learner",
        "softmax",
        "try:\n    return torch.ops.aten._softmax(x, dim, False)\nexcept BaseException:\n    pass",
        message="aten._softmax",
    ),
    Attack(
        "compiled-under-an-oracle-name",
        "softmax",
        "ns = {'torch': torch}\nexec(compile('def f(x, d):\\n    return torch.softmax(x, d)',"
        " '<llm-grade oracle softmax>', 'exec'), ns)\nreturn ns['f'](x, dim)",
        message="forbid",
    ),
    # 6. time: every call slow, but under the per-call limit
    Attack(
        "every-call-sleeps",
        "padding_mask",
        "import time\ntime.sleep(1.0)",
        message="too slow",
        honest=("softmax",),
        limits="check_budget_s = 3\nbudget_s = 60\n",
    ),
    # 7. a thread left running after the call
    Attack(
        "thread-left-allocating",
        "softmax",
        "import threading, time\nhog = []\n"
        "def _grow():\n    while True:\n        hog.append(bytearray(2**22)); time.sleep(0.01)\n"
        "threading.Thread(target=_grow, daemon=True).start()",
        message="left a thread running",
        honest=("gelu", "LayerNorm"),
    ),
    Attack(
        "thread-left-sleeping",
        "TokenEmbedding",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True)"
        ".start()",
        message="left a thread running",
    ),
    # 8. text that would rewrite the instructor's terminal
    Attack(
        "escapes-in-an-error",
        "gelu",
        "raise ValueError('\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07all good\\u202e\\r100/100')",
        message="all good",
    ),
    Attack(
        "exits-during-import",
        "LayerNorm",
        "print('\\x1b[2Jbye from normalization', flush=True)\nimport os\nos._exit(3)",
        at_import=True,
        message="Importing your normalization.py",
        honest=("softmax", "gelu"),
    ),
    # the policy: refused from the source, before anything runs
    Attack(
        "policy-import-sys",
        "softmax",
        "import sys\nreturn sys.modules['torch'].softmax(x, dim)",
        message="`import sys` is not allowed",
        policy=True,
    ),
    Attack(
        "policy-gc",
        "gelu",
        "import gc\nreturn [o for o in gc.get_objects() if callable(o)][0](x)",
        message="not allowed",
        policy=True,
    ),
    Attack(
        "policy-dunder-globals",
        "gelu",
        "return gelu.__globals__['torch'].nn.functional.gelu(x)",
        message="__globals__",
        policy=True,
    ),
    Attack(
        "policy-subclasses-walk",
        "softmax",
        "for c in ().__class__.__base__.__subclasses__():\n    pass\nreturn x",
        message="not allowed",
        policy=True,
    ),
    Attack(
        "policy-generator-frame",
        "softmax",
        "frame = (lambda: (yield))().gi_frame\nreturn frame.f_back.f_globals['softmax'](x, dim)",
        message="not allowed",
        policy=True,
    ),
    Attack(
        "policy-exec-string",
        "LayerNorm",
        "exec('import torch')\nreturn x",
        message="`exec",
        policy=True,
        honest=("softmax", "gelu"),
    ),
    Attack(
        "policy-computed-getattr",
        "softmax",
        "return getattr(torch, 'soft' + 'max')(x, dim)",
        message="getattr",
        policy=True,
    ),
    Attack(
        "policy-torch-c",
        "gelu",
        "return torch._C._nn.gelu(x)",
        message="torch._C",
        policy=True,
    ),
    Attack(
        "policy-torch-ops",
        "softmax",
        "return torch.ops.aten._softmax(x, dim, False)",
        message="torch.ops",
        policy=True,
    ),
    Attack(
        "policy-torch-function-mode",
        "LayerNorm",
        "from torch.overrides import TorchFunctionMode\nreturn x",
        message="not allowed",
        policy=True,
        honest=("softmax", "gelu"),
    ),
    Attack(
        "policy-open-a-file",
        "LayerNorm",
        "open('/etc/passwd').read()\nreturn x",
        message="`open",
        policy=True,
        honest=("softmax", "gelu"),
    ),
    Attack(
        "policy-os-through-torch",
        "gelu",
        "torch.os.system('true')\nreturn x",
        message="not allowed",
        policy=True,
    ),
    Attack(
        "policy-patch-allclose",
        "softmax",
        "torch.allclose = lambda *a, **k: True\nreturn x",
        message="not allowed",
        policy=True,
    ),
    Attack(
        "policy-import-llm-grade",
        "softmax",
        "from llm_grade.oracles.attention import softmax as trusted\nreturn trusted(x, dim)",
        message="llm_grade",
        policy=True,
    ),
    Attack(
        "policy-module-level-import-os",
        "LayerNorm",
        "import os\n",
        at_import=True,
        message="every component of normalization.py",
        policy=True,
        honest=("softmax", "gelu"),
    ),
]
