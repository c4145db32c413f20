"""The worker template: a process inside the sandbox that forks fresh workers.

Started by :class:`llm_grade.sandbox.template.WorkerTemplate` inside bubblewrap (its own PID,
network and IPC namespaces, the trusted folders masked), it imports torch and the worker's
engine modules once (:func:`llm_grade.sandbox.worker.prepare`), and never any learner code or
oracle. Each ``fork`` request (over a Unix socket, with the new worker's three pipes attached
as file descriptors) first ends everything a previous worker left in the namespace: every
other process is killed (``kill(-1)`` reaches only this PID namespace) and reaped, the private
``/tmp`` and ``/dev/shm`` are emptied and System V IPC objects removed. Then it forks; the
child is a worker exactly as if it had been started afresh (:func:`llm_grade.sandbox.worker.
serve`), without paying for Python and torch again. No state crosses from one worker to the
next: a worker has only its own copy of this never-touched process, and the template is not
dumpable, so a worker cannot read or write its memory (``/proc/PID/mem``, ``ptrace``).

Learner side (inside the sandbox), but no learner code ever runs in this process itself.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
MAX_FDS = 3  # a worker's request, reply and output pipes
SCRATCH = ("/tmp", "/dev/shm")  # emptied before each fork (mount points are left alone)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _reap(statuses: dict[int, int]) -> bool:
    """Collect every ended child (orphans come here too: this process is their subreaper);
    True while some still run."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        statuses[pid] = os.waitstatus_to_exitcode(status)
        if len(statuses) > 256:  # only the latest workers' statuses are ever asked for
            statuses.pop(next(iter(statuses)))


def end_others(statuses: dict[int, int], timeout: float = 5.0) -> None:
    """Kill every other process in this PID namespace (all a worker left) and reap them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # every process we may signal but init and ourselves
        except ProcessLookupError:
            pass  # nobody else is left
        if not _reap(statuses) or time.monotonic() > deadline:
            return
        time.sleep(0.002)


def _wipe(path: str, device: int) -> None:
    """Remove what is under ``path`` on the file system ``device`` (mounts are skipped)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_dev != device:
                continue  # a mount point (the submissions, a bound-back virtual environment)
            if entry.is_dir(follow_symlinks=False):
                _wipe(entry.path, device)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue  # a folder that holds a mount point stays


def wipe_scratch() -> None:
    for top in SCRATCH:
        try:
            device = os.stat(top).st_dev
        except OSError:
            continue
        _wipe(top, device)


def remove_ipc() -> None:
    """Remove the System V shared memory segments, message queues and semaphores that a
    worker made (this IPC namespace is the template's own)."""
    libc = _libc()
    for kind, remove in (("shm", libc.shmctl), ("msg", libc.msgctl), ("sem", libc.semctl)):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 1 and fields[1].isdigit():
                if kind == "sem":
                    remove(int(fields[1]), 0, 0)  # IPC_RMID
                else:
                    remove(int(fields[1]), 0, None)


def _child(control: socket.socket, fds: list[int], request: dict) -> None:
    """In the new worker: take its pipes and serve (never returns)."""
    from llm_grade.sandbox import worker

    try:
        control.close()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        req_r, rep_w, out_w = fds
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.close(out_w)
        os.chdir("/tmp")
        worker.serve(
            req_r,
            rep_w,
            request["submission"],
            {"forbidden": request.get("forbidden") or {}},
            int(request.get("threads", 1)),
        )
    except BaseException as exc:  # noqa: BLE001 - the grader sees the pipe close
        try:
            os.write(2, f"the worker could not start: {exc!r}\n".encode())
        finally:
            os._exit(70)
    os._exit(0)


def _wait_for(pid: int, timeout: float, statuses: dict[int, int]) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        _reap(statuses)
        if pid in statuses:
            return statuses[pid]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def serve(control: socket.socket) -> None:
    statuses: dict[int, int] = {}
    forks = 0
    control.sendall(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    while True:
        ready, _, _ = select.select([control], [], [], 0.2)
        _reap(statuses)
        if not ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(control, 65536, MAX_FDS)
        except OSError:
            return
        if not message:
            return  # the grader closed the socket: the sandbox ends with us
        try:
            request = json.loads(message)
        except ValueError:
            for fd in fds:
                os.close(fd)
            continue
        op = request.get("op")
        if op == "fork" and len(fds) == MAX_FDS:
            end_others(statuses)
            wipe_scratch()
            remove_ipc()
            forks += 1
            if forks == 2:  # a template that forks again will fork many: warm it up once
                warm_up()
            pid = os.fork()
            if pid == 0:
                _child(control, fds, request)
            for fd in fds:
                os.close(fd)
            reply = {"pid": pid}
        elif op == "wait":
            for fd in fds:
                os.close(fd)
            reply = {"status": _wait_for(int(request["pid"]), float(request["timeout"]), statuses)}
        elif op == "clean":
            end_others(statuses)
            wipe_scratch()
            reply = {"clean": True}
        else:
            for fd in fds:
                os.close(fd)
            reply = {"error": f"unknown request {op!r}"}
        control.sendall(json.dumps(reply).encode())


def warm_up() -> None:
    """Pay torch's first-use costs once, here, instead of in every later worker: the first
    operation on the meta device loads torch's compiler stack (about a second). Done before
    the second fork, not at start: a template that forks once (a single grading) would only
    delay its first worker. No learner code or oracle is involved; one thread (a thread
    pool must not exist when we fork), and no backward pass (autograd's threads would not
    survive a fork either)."""
    import torch

    torch.set_num_threads(1)
    state = torch.default_generator.get_state()  # a worker starts from a cold one's state
    with torch.no_grad():
        layer = torch.nn.Linear(4, 4, device="meta")
        layer(torch.zeros(2, 4, device="meta")).softmax(-1)
        torch.nn.Linear(4, 4)(torch.zeros(2, 4)).softmax(-1)
    torch.default_generator.set_state(state)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="llm-grade's worker template")
    parser.add_argument("--control", type=int, required=True, help="the grader's socket")
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control)
    # a worker must not reach into this process (its memory is every later worker's start)
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # what a worker leaves behind is ours to end
    from llm_grade.sandbox import worker

    worker.prepare()
    serve(control)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
