"""The watchdog's view of the worker: its process tree, read from /proc, never asked of it.

Trusted side (the grading process; torch-free). The transport calls these between and after
requests: :func:`tree` lists the worker's processes, :func:`over_limits` and :func:`leftovers`
say when that tree holds too many processes, too much memory, or a process or thread that a
call into learner code left running, :func:`death_record` says how a worker that stopped
answering ended, and :func:`kill_group` ends the whole tree. Each finding is an error record
(plain data) for the request in flight; the transport kills the worker and reports it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from llm_grade.sandbox.limits import Limits


def tree(pid: int) -> list[int]:
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


def rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def census(pids: list[int]) -> tuple[int, int]:
    """(processes, threads) among ``pids``."""
    threads = 0
    for pid in pids:
        try:
            threads += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return len(pids), threads


def over_limits(pids: list[int], limits: Limits, doing: str) -> dict | None:
    """The error record when the tree ``pids`` has too many processes or too much memory."""
    if len(pids) > limits.max_processes + 2:  # + bwrap and the namespace's init
        return {
            "kind": "limit",
            "exc_type": "TooManyProcesses",
            "message": f"killed: more than {limits.max_processes} processes while {doing}",
        }
    if rss_mb(pids) > limits.memory_mb:
        return {
            "kind": "limit",
            "exc_type": "MemoryLimit",
            "message": f"killed: exceeded {limits.memory_mb} MiB of memory while {doing}",
        }
    return None


def leftovers(
    again: Callable[[], list[int]], pids: list[int], baseline: tuple[int, int], doing: str
) -> dict | None:
    """A call into learner code must leave nothing running: the error record when the
    worker's tree (``pids`` just after the reply; ``again()`` lists it anew) holds more
    processes or threads than ``baseline`` (the idle worker's census)."""
    processes, threads = census(pids)
    if processes > baseline[0] or threads > baseline[1]:
        time.sleep(0.05)  # a thread joined just before the reply may still be exiting
        processes, threads = census(again())
    if processes > baseline[0] or threads > baseline[1]:
        what = "a process" if processes > baseline[0] else "a thread"
        return {
            "kind": "leftover",
            "exc_type": "LeftRunning",
            "message": f"killed: your code left {what} running after {doing} "
            "returned (it would go on using CPU and memory while other "
            "components are graded)",
        }
    return None


def death_record(code: int | None, bwrap: bool, cpu_s: int, doing: str) -> dict:
    """The error record for a worker that stopped answering while ``doing`` and exited with
    status ``code`` (None: still running, or unknown)."""
    if code is not None and bwrap and code > 128:
        code = -(code - 128)  # bwrap exits with 128 + the signal that killed the worker
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        what = f"the worker crashed with {name} while {doing}"
        if name == "SIGXCPU":
            what = f"the worker used up its {cpu_s} s of CPU time while {doing}"
    elif code is not None:
        what = f"the worker exited with status {code} while {doing} (sys.exit / os._exit?)"
    else:
        what = f"the worker stopped answering while {doing}"
    return {"kind": "worker", "exc_type": "WorkerCrash", "message": what}


def kill_group(pid: int) -> None:
    """SIGKILL the process group of ``pid`` (the worker's session: bwrap or the worker, and
    everything they started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
