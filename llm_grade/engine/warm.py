"""A warm grading server for ``llm-grade grade``: torch, pytest, Hypothesis and the graders
stay loaded between gradings, so grading one component takes under a second, not seconds.

A learner runs ``llm-grade grade my-llm -k softmax`` a hundred times a day; a cold run spends
most of its time importing torch twice (here and in the worker) and collecting the graders.
After a cold grading in a terminal, ``llm-grade grade`` starts this server in the background
(``llm-grade server start`` does it explicitly); later ``grade`` commands send it their
options and print what it streams back. Nothing else changes:

- **Same code path, same scores.** The server runs the very ``grade`` command (its click
  callback) with the client's options, working folder and environment, on the same engine
  (:func:`llm_grade.engine.run.grade`) as a cold run; its output is the client's, with the
  client's terminal width and colours.
- **No state crosses from one grading to the next.** Learner code never runs in the server
  (``--isolation none`` is never sent to it: that runs cold): each grading gets its own
  :class:`~llm_grade.engine.session.GradingSession`, staged copy and sandboxed workers,
  forked from a template that never ran learner code (:mod:`llm_grade.sandbox.template`),
  as in batch grading's long-lived processes (:mod:`llm_grade.classroom.server`).
- **Reachable only by its user.** The socket is an abstract Unix socket (Linux): it has no
  file, and a process in another network namespace (every bubblewrap worker) cannot reach
  it; the server answers only peers with its own uid (``SO_PEERCRED``).
- **Never stale.** The address names the interpreter; each request carries a fingerprint of
  llm-grade's installed files (engine, graders, reference, rubric) and of torch, pytest and
  Hypothesis. A server with another fingerprint stops, and the client grades cold.
- **Never in the way.** A busy server (another grading) or one that does not answer within
  :data:`HELLO_TIMEOUT_S` means a cold run. Ctrl-C interrupts the grading in the server. The
  server exits after :data:`IDLE_S` without a request (``LLM_GRADE_SERVER_IDLE_S``) and after
  :data:`RECYCLE_AFTER` gradings; ``llm-grade server stop`` stops it.
  ``LLM_GRADE_SERVER=0`` turns it off; it is never started under ``CI`` or without a terminal
  (``llm-grade server start`` still works there).

Wire format: the client sends one JSON line; the server answers with frames, one byte of kind
and four of length, then the payload: ``H`` (accepted: ``{"pid": ...}``), ``X`` (refused:
``{"why": ...}``), ``O`` / ``E`` (stdout / stderr text), ``R`` (``{"code": N}``, the last).
Trusted side.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HELLO_TIMEOUT_S = 0.5  # a server that has not accepted by then is busy: grade cold
IDLE_S = 15 * 60.0
RECYCLE_AFTER = 200  # gradings per server process (bounds what a long day may accumulate)
READY_TIMEOUT_S = 120.0  # ``server start``: importing torch, pytest and Hypothesis, warm-up
_HEADER = struct.Struct(">cI")

# set in the server process: its ``grade`` commands run here, never through another server
IN_SERVER = False


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def address() -> str:
    """The server's abstract socket name: one per user and interpreter (``LLM_GRADE_SERVER_NAME``
    names another, for tests)."""
    name = (
        os.environ.get("LLM_GRADE_SERVER_NAME")
        or hashlib.sha256(sys.executable.encode()).hexdigest()[:16]
    )
    return f"\0llm-grade-{_uid()}-{name}"


def supported() -> bool:
    """Abstract sockets and ``SO_PEERCRED``: Linux only."""
    return sys.platform == "linux" and hasattr(socket, "SO_PEERCRED")


def fingerprint() -> str:
    """What a server's gradings depend on besides the request: the files of llm-grade's
    engine, graders, reference and rubric (sizes and modification times), and the versions
    of torch, pytest and Hypothesis (their package files). Computed without importing any."""
    import importlib.util

    from llm_grade.paths import bundled

    digest = hashlib.sha256(sys.executable.encode())
    package = Path(__file__).resolve().parents[1]
    roots = [package] + [
        p for p in (bundled("graders"), bundled("reference")) if not p.is_relative_to(package)
    ]  # (an installed llm-grade bundles both inside the package)
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".toml", ".ini") and "__pycache__" not in path.parts:
                stat = path.stat()
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for package in ("torch", "pytest", "_pytest", "hypothesis", "rich", "click"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            # a package's own metadata folder changes with every install or upgrade
            folder = Path(spec.origin).parent
            digest.update(f"{package}:{folder.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


# ------------------------------------------------------------------------------- framing


def _send(conn: socket.socket, kind: bytes, payload: bytes) -> None:
    conn.sendall(_HEADER.pack(kind, len(payload)) + payload)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _recv(conn: socket.socket) -> tuple[bytes, bytes] | None:
    header = _recv_exact(conn, _HEADER.size)
    if header is None:
        return None
    kind, size = _HEADER.unpack(header)
    payload = _recv_exact(conn, size)
    return None if payload is None else (kind, payload)


# -------------------------------------------------------------------------------- client


def enabled() -> bool:
    """Whether ``grade`` may use (and start) the server: not turned off, not inside it, and
    an interpreter whose imports a server started with ``-I`` sees the same way (no
    ``PYTHONPATH``, llm-grade not in the user's site-packages, which ``-I`` leaves out)."""
    return (
        supported()
        and not IN_SERVER
        and os.environ.get("LLM_GRADE_SERVER", "1") != "0"
        and not os.environ.get("PYTHONPATH")
        and not os.environ.get("PYTHONHOME")
        and not _in_user_site()
    )


def _in_user_site() -> bool:
    import site

    try:
        user = Path(site.getusersitepackages()).resolve()
    except (AttributeError, OSError):
        return False
    return Path(__file__).resolve().is_relative_to(user)


def may_autostart() -> bool:
    """Start a server after a cold grading only for a person at a terminal (never in CI)."""
    return enabled() and not os.environ.get("CI") and sys.stdout.isatty()


def jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        out[name] = value
    return out


def _terminal_env() -> dict[str, str]:
    env = dict(os.environ)
    if sys.stdout.isatty():  # the server's stdout is no terminal: it gets this one's size
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(sys.stdout.fileno())
            env.setdefault("COLUMNS", str(size.columns))
            env.setdefault("LINES", str(size.lines))
    return env


def connect(timeout: float = HELLO_TIMEOUT_S) -> socket.socket | None:
    if not supported():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(address())
    except OSError:
        conn.close()
        return None
    return conn


def running() -> bool:
    """Whether a server holds the address and listens (busy or not)."""
    conn = connect(timeout=0.1)
    if conn is None:
        return False
    conn.close()
    return True


def run_remote(command: str, params: dict[str, Any]) -> int | None:
    """Run ``command`` (``"grade"``) with ``params`` in the warm server, printing what it
    prints; its exit status, or None when no server took it (then run it here)."""
    conn = connect()
    if conn is None:
        return None
    request = {
        "command": command,
        "params": jsonable(params),
        "cwd": os.getcwd(),
        "env": _terminal_env(),
        "tty": [sys.stdout.isatty(), sys.stderr.isatty()],
        "fingerprint": fingerprint(),
        "sent_at": time.time(),
    }
    try:
        conn.sendall((json.dumps(request) + "\n").encode())
        first = _recv(conn)
    except OSError:  # (a timeout among them: the server is busy)
        conn.close()
        return None
    if first is None or first[0] != b"H":
        conn.close()
        return None
    pid = json.loads(first[1]).get("pid")
    conn.settimeout(None)
    interrupted = False
    code = 1
    while True:
        try:
            frame = _recv(conn)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True  # the server's grading stops (pytest's own Ctrl-C handling)
            with contextlib.suppress(OSError, TypeError):
                os.kill(pid, signal.SIGINT)
            continue
        if frame is None:
            print("llm-grade: the grading server ended before the grading did", file=sys.stderr)
            break
        kind, payload = frame
        if kind == b"R":
            code = int(json.loads(payload).get("code", 1))
            break
        stream = sys.stdout if kind == b"O" else sys.stderr
        stream.write(payload.decode("utf-8", errors="replace"))
        stream.flush()
    conn.close()
    return 130 if interrupted else code


def request_control(op: str) -> dict | None:
    """``stop`` or ``status`` of the running server; None when none answers."""
    conn = connect(timeout=2.0)
    if conn is None:
        return None
    try:
        conn.sendall((json.dumps({"control": op, "sent_at": time.time()}) + "\n").encode())
        frame = _recv(conn)
    except OSError:
        return None
    finally:
        conn.close()
    if frame is None or frame[0] not in (b"H", b"R"):
        return None
    return json.loads(frame[1])


def start_background(wait: bool = False, folder: Path | None = None) -> subprocess.Popen | None:
    """Start a server for this interpreter (a detached process: it outlives this one), its
    sandbox ready for gradings of ``folder`` (a learner's folder: the sandbox masks it). With
    ``wait``, return once it answers (None if it did not within :data:`READY_TIMEOUT_S`)."""
    extra = ["--for", str(Path(folder).resolve())] if folder and Path(folder).is_dir() else []
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "llm_grade.engine.warm", *extra],
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
    )
    if not wait:
        return proc
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if request_control("status") is not None:
            return proc
        if proc.poll() is not None and request_control("status") is None:
            return None  # it ended (another server took the address first, or it failed)
        time.sleep(0.1)
    return None


# -------------------------------------------------------------------------------- server


class _Stream(io.TextIOBase):
    """The client's stdout or stderr, in the server: text goes out as frames as it is
    written (rich's progress bar writes from its own thread, hence the lock). Once the client
    is gone, writes are dropped: the grading ends as it would have."""

    def __init__(self, conn: socket.socket, kind: bytes, tty: bool, lock: threading.Lock):
        self.conn, self.kind, self.tty, self.lock = conn, kind, tty, lock
        self.gone = False

    def isatty(self) -> bool:
        return self.tty

    @property
    def buffer(self) -> _Stream:  # click writes bytes to a text stream's buffer
        return self

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"

    def write(self, text: str | bytes) -> int:
        if text and not self.gone:
            data = text if isinstance(text, bytes) else text.encode("utf-8", errors="replace")
            with self.lock:
                try:
                    _send(self.conn, self.kind, data)
                except OSError:
                    self.gone = True
        return len(text)

    def flush(self) -> None:
        pass


def _params(command, given: dict[str, Any]) -> dict[str, Any]:
    """The client's parameter values as click would have made them (paths as ``Path``)."""
    import click

    out = {}
    for param in command.params:
        if param.name not in given:
            continue
        value = given[param.name]
        if isinstance(param.type, click.Path) and value is not None:
            value = tuple(Path(v) for v in value) if param.multiple else Path(value)
        elif param.multiple and value is not None:
            value = tuple(value)
        out[param.name] = value
    return out


def _run(command_name: str, given: dict[str, Any]) -> int:
    """The command's callback, as click's standalone mode would run it: its exit status."""
    import click

    from llm_grade import cli

    command = {"grade": cli.grade}[command_name]
    try:
        with click.Context(command, info_name=command_name) as ctx:
            ctx.invoke(command.callback, **_params(command, given))
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        print("Aborted!", file=sys.stderr)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - a bug of ours: the client sees it, the server goes on
        import traceback

        traceback.print_exc()
        return 1


class Server:
    def __init__(self, sock: socket.socket, fingerprint: str):
        self.sock = sock
        self.fingerprint = fingerprint
        self.served = 0
        self.started = time.time()

    def _peer_ok(self, conn: socket.socket) -> bool:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        return uid == _uid()

    def loop(self) -> None:
        idle = float(os.environ.get("LLM_GRADE_SERVER_IDLE_S", IDLE_S))
        self.sock.settimeout(idle)
        while self.served < RECYCLE_AFTER:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                return  # idle for too long
            except KeyboardInterrupt:  # a client's Ctrl-C that came after its grading
                continue
            try:
                if self._peer_ok(conn) and not self.handle(conn):
                    return
            except KeyboardInterrupt:
                continue
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    conn.close()

    def handle(self, conn: socket.socket) -> bool:
        """Serve one connection; False when the server must stop."""
        conn.settimeout(5.0)
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(1 << 20)
            if not chunk:
                return True
            line += chunk
        request = json.loads(line)
        control = request.get("control")
        if control == "status":
            _send(conn, b"R", json.dumps(self.status()).encode())
            return True
        if control == "stop":
            _send(conn, b"R", json.dumps(self.status()).encode())
            return False
        if time.time() - float(request.get("sent_at", 0)) > HELLO_TIMEOUT_S:
            return True  # the client waited no longer and grades cold
        if request.get("fingerprint") != self.fingerprint:
            _send(conn, b"X", json.dumps({"why": "llm-grade or its packages changed"}).encode())
            return False
        if request.get("command") != "grade":
            _send(conn, b"X", json.dumps({"why": "unknown command"}).encode())
            return True
        _send(conn, b"H", json.dumps({"pid": os.getpid()}).encode())
        conn.settimeout(None)
        code = self.grade(conn, request)
        self.served += 1
        with contextlib.suppress(OSError):
            _send(conn, b"R", json.dumps({"code": code}).encode())
        return True

    def grade(self, conn: socket.socket, request: dict) -> int:
        lock = threading.Lock()
        tty_out, tty_err = request.get("tty", [False, False])
        out = _Stream(conn, b"O", bool(tty_out), lock)
        err = _Stream(conn, b"E", bool(tty_err), lock)
        from llm_grade.engine.groups import as_caller

        with as_caller(request.get("env", {}), request["cwd"]):
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return _run(request["command"], request.get("params", {}))

    def status(self) -> dict:
        return {
            "pid": os.getpid(),
            "served": self.served,
            "up_s": round(time.time() - self.started, 1),
            "fingerprint": self.fingerprint,
        }


def warm_up(folder: str | None = None) -> None:
    """Import and collect everything a grading needs, and start the worker template, before
    the first request: grade the bundled reference's ``get_device`` (quietly, no learner
    code) after importing every grader module. The template is the one gradings of
    ``folder`` use (a sandbox masks the folder it grades: here, hidden the same way)."""
    import pytest
    import torch  # noqa: F401

    from llm_grade.engine.run import GradingError, grade, pytest_args
    from llm_grade.paths import bundled

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        with contextlib.redirect_stderr(sink):
            # the graders, imported once (later runs' collection finds them in sys.modules)
            pytest.main([*pytest_args(), "--collect-only", "-qq"])
            with contextlib.suppress(GradingError):
                hide = (folder,) if folder else ()
                grade(
                    bundled("reference"),
                    isolation="process",
                    select="get_device",
                    quiet=True,
                    hide=hide,
                )


def main() -> None:
    global IN_SERVER
    IN_SERVER = True
    from llm_grade.engine.groups import WarmHelper, serve_helper
    from llm_grade.grading.context import share_references_between_runs
    from llm_grade.sandbox.template import close_all

    share_references_between_runs()

    args = sys.argv[1:]
    folder = args[args.index("--for") + 1] if "--for" in args[:-1] else None
    if "--helper" in args:
        warm_up(folder)
        try:
            serve_helper()  # until the server closes its end
        finally:
            close_all()
            os._exit(0)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # the address is the lock: a second server stops here, before warming up for
        # nothing; clients are refused (and grade cold) until it listens, warm
        sock.bind(address())
    except OSError:
        return
    own = fingerprint()
    helper = WarmHelper.enable(folder)  # (it warms up on the other core meanwhile)
    warm_up(folder)
    sock.listen(8)
    try:
        Server(sock, own).loop()
    finally:
        sock.close()
        helper.kill()
        close_all()
        os._exit(0)  # no interpreter teardown (torch's takes a second)


if __name__ == "__main__":
    main()
