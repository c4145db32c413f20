"""The trusted side of ``--isolation process``: start a sandboxed worker, talk to it, bound it.

Learner code runs only in the worker (:mod:`llm_grade.sandbox.worker`). On Linux with bubblewrap the
worker gets a read-only view of the machine, a private ``/tmp``, its own PID, network, IPC and
UTS namespaces, and the reference, the graders and the output folder masked by empty tmpfs
mounts; it dies with the grader. Without bubblewrap it runs with resource limits in its own
process group, and the results say so.

Every request has a wall-clock timeout; a watchdog also bounds the worker tree's resident
memory and process count. A hang, an OOM, a crash or an exit costs the request in flight (an
error record), and the next request gets a fresh worker.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from llm_grade import MKL_CBWR
from llm_grade.sandbox.worker import write_frame

_PACKAGE = Path(__file__).resolve().parent.parent  # the llm_grade package


@dataclass
class Limits:
    """Bounds on learner code; the rubric's ``[limits]`` table overrides them."""

    call_timeout_s: float = 20.0  # one request (one build or call); generous for Python loops
    startup_timeout_s: float = 120.0  # starting Python and importing torch in the worker
    memory_mb: int = 2048  # resident memory of the worker and its children
    max_processes: int = 16  # processes in the worker's tree (bounds fork bombs)
    cpu_s: int = 1800  # CPU seconds for one worker (RLIMIT_CPU)
    output_kb: int = 64  # learner output kept (the rest is dropped)
    tmp_mb: int = 64  # size of the worker's private /tmp
    reply_mb: int = 256  # largest reply accepted from the worker
    budget_s: float = 600.0  # the whole submission (both check groups at once with --jobs 2)
    check_budget_s: float = 60.0  # calls into learner code during one check ("too slow")

    @classmethod
    def from_mapping(cls, values: dict[str, float]) -> Limits:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in values.items()})


@functools.lru_cache(maxsize=1)
def bubblewrap() -> str | None:
    """Path of a working ``bwrap`` (it can fail where user namespaces are off), else None."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        probe = subprocess.run(
            [
                path,
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--unshare-pid",
                "--unshare-net",
                "--die-with-parent",
                "true",
            ],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if probe.returncode == 0 else None


def _runtime_paths_under(top: str) -> list[str]:
    """Folders under ``top`` that the worker's Python needs: its prefixes and import path."""
    candidates = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        str(_PACKAGE.parent),
    }
    candidates.update(p for p in sys.path if p)
    found = sorted(os.path.realpath(p) for p in candidates if os.path.isdir(p))
    kept: list[str] = []
    for path in found:
        inside = path == top or path.startswith(top.rstrip("/") + "/")
        if inside and path != top and not any(path.startswith(k + "/") for k in kept):
            kept.append(path)
    return kept


def trusted_paths() -> list[Path]:
    """Every folder a worker must not read, wherever llm-grade is installed: the oracles, the
    bundled reference, graders and example of each ``llm_grade`` package on the import path
    (an editable install leaves a second copy in site-packages), and beside the package that
    runs (a source checkout) the reference, the graders, the example, the tests and the
    benchmarks."""
    secret = ("reference", "graders", "examples")
    packages = {_PACKAGE}
    for entry in sys.path:
        candidate = Path(entry or ".") / "llm_grade"
        if candidate.is_dir():
            packages.add(candidate.resolve())
    found: set[Path] = set()
    for package in packages:
        found.add(package / "oracles")
        found.update(package / "_bundled" / name for name in secret)
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file():  # a source checkout, not site-packages
        found.update(checkout / name for name in (*secret, "tests", "benchmarks"))
    return sorted(p for p in found if p.is_dir())


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def _gpu_nodes() -> list[str]:
    """Device files a CUDA (or ROCm) worker needs."""
    import glob

    patterns = ("/dev/nvidia*", "/dev/nvidia-caps/*", "/dev/kfd", "/dev/dri/*")
    return sorted({p for pattern in patterns for p in glob.glob(pattern)})


class WorkerDied(Exception):
    """The worker ended or misbehaved; ``record`` is the error record for the request."""

    def __init__(self, record: dict):
        super().__init__(record["message"])
        self.record = record


class WorkerTransport:
    """A transport for :class:`~llm_grade.sandbox.handle.Submission` backed by a worker process."""

    def __init__(
        self,
        root: Path,
        forbidden: dict[str, list[str]],
        limits: Limits,
        masks: list[Path] = (),
        sandbox: str = "auto",
        gpu: bool = False,
    ):
        self.root = Path(root).resolve()
        self.gpu = gpu
        self.forbidden = forbidden
        self.limits = limits
        self.masks = [Path(m).resolve() for m in masks if Path(m).exists()]
        self.sandbox = sandbox
        self.bwrap = bubblewrap() if sandbox in ("auto", "bwrap") else None
        if sandbox == "bwrap" and self.bwrap is None:
            raise RuntimeError("bubblewrap was requested but is not available on this machine")
        self.proc: subprocess.Popen | None = None
        self.output = bytearray()
        self.output_dropped = 0
        self.broken_modules: dict[str, dict] = {}
        self._workdir: str | None = None
        self._seq = 0
        self._starts = 0
        self._handshake_pending = False
        self.deadline: float | None = None  # time.monotonic() when the submission's time is up
        self._baseline: tuple[int, int] | None = None  # (processes, threads) when idle

    # -------------------------------------------------------------- description

    def describe(self) -> dict:
        if self.bwrap:
            sandbox = (
                "bubblewrap: read-only root, private /tmp, PID/network/IPC namespaces, "
                "reference/ and graders/ masked"
            )
        else:
            why = "--sandbox none" if self.sandbox == "none" else "bubblewrap unavailable"
            sandbox = (
                f"none ({why}): resource limits and process-group kill only; learner code "
                "could read and write files on this machine that the submission policy "
                "does not stop"
            )
        return {
            "mode": "process",
            "trusted": True,
            "sandbox": sandbox,
            "limits": asdict(self.limits),
            "worker_starts": self._starts,
        }

    # -------------------------------------------------------------- lifecycle

    def _command(self) -> tuple[list[str], str]:
        python = [sys.executable, "-I", "-B", "-m", "llm_grade.sandbox.worker"]
        if self.bwrap is None:
            self._workdir = tempfile.mkdtemp(prefix="llm-grade-worker-")
            return python + ["--submission", str(self.root)], self._workdir
        cmd = [
            self.bwrap,
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--size",
            str(self.limits.tmp_mb * 2**20),
            "--tmpfs",
            "/tmp",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
        ]
        # the private /tmp hides everything under the real /tmp: bind back (read-only) what the
        # worker needs to run when it lives there (a virtual environment, an editable install)
        for path in _runtime_paths_under("/tmp"):
            cmd += ["--ro-bind", path, path]
        if self.gpu:  # the GPU's device nodes (--dev gives a minimal /dev without them)
            for node in _gpu_nodes():
                cmd += ["--dev-bind", node, node]
        for mask in self.masks:  # after the binds, so a bound-back folder is masked too
            cmd += ["--tmpfs", str(mask)]
        cmd += ["--ro-bind", str(self.root), "/tmp/submission", "--chdir", "/tmp"]
        return cmd + python + ["--submission", "/tmp/submission"], "/"

    def _preexec(self) -> None:  # runs in the child before exec: limits that bwrap inherits
        import resource

        mb = 2**20
        if not self.gpu:  # CUDA reserves tens of GB of address space: the watchdog bounds RSS
            address_space = (self.limits.memory_mb + 1536) * mb  # torch maps ~0.6 GB at import
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CPU, (self.limits.cpu_s, self.limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limits.tmp_mb * mb,) * 2)

    def start(self) -> None:
        self._spawn()
        self._handshake()

    def _spawn(self) -> None:
        self._starts += 1
        cmd, cwd = self._command()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MKL_CBWR": MKL_CBWR,  # results must not depend on memory alignment
            "PYTHONHASHSEED": "0",
        }
        cmd = cmd + [
            "--fd-in",
            str(req_r),
            "--fd-out",
            str(rep_w),
            "--forbidden",
            json.dumps(self.forbidden),
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(req_r, rep_w),
            env=env,
            cwd=cwd,
            preexec_fn=self._preexec,
            start_new_session=True,
        )
        os.close(req_r)
        os.close(rep_w)
        self._req, self._rep = req_w, rep_r
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()

    def _handshake(self) -> None:
        self._handshake_pending = False
        try:
            hello = self._receive(self.limits.startup_timeout_s, "starting the worker")
        except WorkerDied as exc:
            tail = self.output[-2000:].decode(errors="replace")
            raise RuntimeError(f"the grading worker could not start: {exc}\n{tail}") from None
        if not isinstance(hello, dict) or not hello.get("ready"):
            raise RuntimeError("the grading worker sent an unexpected greeting")
        self._baseline = self._census()
        self._preload()

    def start_soon(self) -> None:
        """Spawn the worker now (Python and torch load while pytest collects the graders);
        the first request waits for its greeting. Spawned from this thread on purpose:
        bubblewrap's --die-with-parent fires when the *thread* that spawned it ends."""
        self._spawn()
        self._handshake_pending = True

    def _preload(self) -> None:
        """Import every module once, so one that kills the worker at import is found early."""
        from llm_grade.components import MODULES

        for module in MODULES:
            if module in self.broken_modules:
                continue
            try:
                self._roundtrip(
                    {
                        "op": "preload",
                        "component": module,
                        "call": f"import {module}",
                        "args": {"module": module},
                    },
                    f"importing {module}.py",
                    self.limits.call_timeout_s,
                )
            except WorkerDied as exc:
                tail = self.output[-1500:].decode("utf-8", errors="replace").strip()
                what = exc.record["message"]
                message = f"Importing your {module}.py ended the grading process: {what}."
                if tail:
                    message += f"\nThe last output of your code:\n{tail}"
                self.broken_modules[module] = {
                    "kind": "import_crash",
                    "exc_type": exc.record.get("exc_type", "WorkerCrash"),
                    "message": message,
                }
                self.kill()
                self.start()
                return

    def _drain(self, stream) -> None:
        cap = self.limits.output_kb * 1024
        for chunk in iter(lambda: stream.read1(65536), b""):
            room = cap - len(self.output)
            if room > 0:
                self.output += chunk[:room]
            self.output_dropped += max(0, len(chunk) - max(room, 0))

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for fd in (self._req, self._rep):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        self._baseline = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def close(self) -> None:
        self.kill()

    def renew(self) -> None:
        """A fresh worker for what follows (see the grading plugin's check groups): nothing a
        submission did before (module state, files in /tmp) carries over."""
        self.kill()
        self.start_soon()

    # -------------------------------------------------------------- requests

    def _death(self, doing: str) -> dict:
        """The error record for a worker that stopped answering while ``doing``."""
        code = self.proc.poll() if self.proc else None
        if code is None and self.proc is not None:
            try:
                code = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        if code is not None and self.bwrap and code > 128:
            code = -(code - 128)  # bwrap exits with 128 + the signal that killed the worker
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            what = f"the worker crashed with {name} while {doing}"
            if name == "SIGXCPU":
                what = f"the worker used up its {self.limits.cpu_s} s of CPU time while {doing}"
        elif code is not None:
            what = f"the worker exited with status {code} while {doing} (sys.exit / os._exit?)"
        else:
            what = f"the worker stopped answering while {doing}"
        return {"kind": "worker", "exc_type": "WorkerCrash", "message": what}

    def _receive(self, timeout: float, doing: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerDied(
                    {
                        "kind": "timeout",
                        "exc_type": "Timeout",
                        "message": f"timed out after {timeout:g} s while {doing}",
                    }
                )
            ready, _, _ = select.select([self._rep], [], [], min(left, 0.05))
            if ready:
                break
            self._check_tree(doing)
        frame = self._read_frame(deadline, doing)
        try:
            from llm_grade.sandbox import wire  # imports torch: not before the worker is spawned

            return wire.decode(frame, max_bytes=self.limits.reply_mb * 2**20)
        except ValueError as exc:  # wire.WireError
            self.kill()
            raise WorkerDied(
                {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": f"the worker sent an unreadable reply while {doing} ({exc})",
                }
            ) from None

    def _check_tree(self, doing: str) -> list[int]:
        """Kill the worker when its process tree has too many processes or too much memory;
        else return the tree's pids."""
        pids = _tree(self.proc.pid)
        if len(pids) > self.limits.max_processes + 2:  # + bwrap and the namespace's init
            self.kill()
            raise WorkerDied(
                {
                    "kind": "limit",
                    "exc_type": "TooManyProcesses",
                    "message": f"killed: more than {self.limits.max_processes} "
                    f"processes while {doing}",
                }
            )
        if _rss_mb(pids) > self.limits.memory_mb:
            self.kill()
            raise WorkerDied(
                {
                    "kind": "limit",
                    "exc_type": "MemoryLimit",
                    "message": f"killed: exceeded {self.limits.memory_mb} MiB of "
                    f"memory while {doing}",
                }
            )
        return pids

    def _read_frame(self, deadline: float, doing: str) -> bytes:
        """Read one length-prefixed frame, never past ``deadline`` nor over the size cap."""
        header = self._read_exact(8, deadline, doing)
        size = int.from_bytes(header, "little")
        if size > self.limits.reply_mb * 2**20:
            self.kill()
            raise WorkerDied(
                {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": f"the worker sent a reply of {size} bytes (over "
                    f"{self.limits.reply_mb} MiB) while {doing}",
                }
            )
        return self._read_exact(size, deadline, doing)

    def _read_exact(self, n: int, deadline: float, doing: str) -> bytes:
        chunks, remaining = [], n
        while remaining:
            left = deadline - time.monotonic()
            ready = select.select([self._rep], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self.kill()
                raise WorkerDied(
                    {
                        "kind": "timeout",
                        "exc_type": "Timeout",
                        "message": f"timed out while {doing} (incomplete reply)",
                    }
                )
            try:
                chunk = os.read(self._rep, min(remaining, 1 << 20))
            except OSError:
                chunk = b""
            if not chunk:
                record = self._death(doing)
                self.kill()
                raise WorkerDied(record)
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _roundtrip(self, request: dict, doing: str, timeout: float) -> dict:
        self._send(request, doing)
        return self._answer(doing, time.monotonic() + timeout)

    def _send(self, request: dict, doing: str) -> None:
        from llm_grade.sandbox import wire  # imports torch: not before the worker is spawned

        self._seq += 1
        try:
            write_frame(self._req, wire.encode({**request, "id": self._seq}))
        except OSError:
            record = self._death(doing)
            self.kill()
            raise WorkerDied(record) from None

    def _census(self, pids: list[int] | None = None) -> tuple[int, int]:
        """(processes, threads) in the worker's tree (``pids``, else read again), from /proc:
        never asked of the worker."""
        if pids is None:
            pids = _tree(self.proc.pid)
        threads = 0
        for pid in pids:
            try:
                threads += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                continue
        return len(pids), threads

    def _check_leftovers(self, doing: str, pids: list[int]) -> None:
        """A call into learner code must leave nothing running: a thread or process still
        alive after the reply ends this worker, and the call is charged for it."""
        if self._baseline is None:
            return
        processes, threads = self._census(pids)
        if processes > self._baseline[0] or threads > self._baseline[1]:
            time.sleep(0.05)  # a thread joined just before the reply may still be exiting
            processes, threads = self._census()
        if processes > self._baseline[0] or threads > self._baseline[1]:
            what = "a process" if processes > self._baseline[0] else "a thread"
            self.kill()
            raise WorkerDied(
                {
                    "kind": "leftover",
                    "exc_type": "LeftRunning",
                    "message": f"killed: your code left {what} running after {doing} "
                    "returned (it would go on using CPU and memory while other "
                    "components are graded)",
                }
            )

    def _answer(self, doing: str, deadline: float) -> dict:
        """The reply to the request sent last, waiting until ``deadline`` at most."""
        reply = self._receive(max(deadline - time.monotonic(), 0.01), doing)
        pids = self._check_tree(doing)  # processes left running after a reply count too
        self._check_leftovers(doing, pids)
        if not isinstance(reply, dict) or reply.get("id") != self._seq or "ok" not in reply:
            # out of step: something else wrote to the reply pipe
            self.kill()
            raise WorkerDied(
                {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": f"the worker's reply was out of step while {doing}",
                }
            )
        return reply

    def __call__(self, request: dict) -> dict:
        """Send ``request`` and wait for the reply (an error record if the worker failed)."""
        from llm_grade.components import COMPONENTS

        if self._handshake_pending:
            self._handshake()
        parts = request["args"]["requests"] if request["op"] == "batch" else [request]
        for part in parts:
            module = COMPONENTS.get(part.get("component", ""))
            if module in self.broken_modules:
                return {"ok": False, "error": self.broken_modules[module]}
        if self.proc is None:
            self.start()
        doing = f"running {request.get('call') or request['op']}"
        # a batch (see Submission._batch) may hold several calls into learner code
        timeout = self.limits.call_timeout_s * len(parts)
        budget_left = None if self.deadline is None else self.deadline - time.monotonic()
        clipped = budget_left is not None and budget_left < timeout  # the budget ends first
        if clipped:
            timeout = max(budget_left, 0.01)
        try:
            reply = self._roundtrip(request, doing, timeout)
        except WorkerDied as exc:
            record = exc.record
            if record["kind"] == "timeout" and clipped:
                record = {
                    "kind": "budget",
                    "exc_type": "Budget",
                    "message": "Time budget exhausted while "
                    f"{doing}: grading this submission took longer than the rubric allows.",
                }
            return {"ok": False, "error": record}
        if not isinstance(reply, dict) or "ok" not in reply:
            self.kill()
            return {
                "ok": False,
                "error": {
                    "kind": "protocol",
                    "exc_type": "GarbageOutput",
                    "message": "the worker sent a malformed reply",
                },
            }
        return reply


def start_worker(
    root: str | Path,
    *,
    forbidden: dict[str, list[str]] | None = None,
    limits: dict[str, float] | None = None,
    masks: list[Path] = (),
    sandbox: str = "auto",
    gpu: bool = False,
) -> WorkerTransport:
    """Spawn the sandboxed worker for ``root`` now and return its transport; the first request
    waits for it to be ready. Importing this module does not import torch, so a grader can
    start its worker first and import torch meanwhile, on the other core."""
    transport = WorkerTransport(
        Path(root).resolve(),
        forbidden or {},
        Limits.from_mapping(limits or {}),
        masks=list(masks),
        sandbox=sandbox,
        gpu=gpu,
    )
    transport.start_soon()
    return transport
