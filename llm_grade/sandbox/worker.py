"""The worker process: the only place where learner code runs under ``--isolation process``.

Started by :mod:`llm_grade.sandbox.transport` (inside bubblewrap where available), it imports the
engine modules it needs, closes the doors to the trusted code (an import hook refuses
``reference``, ``graders``, the tests and the rest of ``llm_grade``; the sandbox masks their
files), then answers framed requests on one pipe with framed replies on another. Everything it sends
is encoded by :func:`llm_grade.sandbox.wire.encode`: plain data only.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import os
import sys

BLOCKED_TOP_LEVEL = (
    "reference",
    "graders",
    "tests",
    "examples",
    "benchmarks",
    "_llm_grade_reference",
    "llm_grade",  # the engine modules the worker needs are imported before this is installed
)


class _BlockTrustedImports(importlib.abc.MetaPathFinder):
    """Refuse imports of the reference, the graders, the tests, the bundled copies and any
    part of llm-grade not already loaded (the oracles are not on this side at all: the grader
    sends the parts a check needs as source, see ``Executor.op_load_oracles``)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED_TOP_LEVEL:
            raise ImportError(f"{fullname} is not available to submissions")
        return None


def read_frame(fd: int) -> bytes | None:
    header = _read_exact(fd, 8)
    if header is None:
        return None
    return _read_exact(fd, int.from_bytes(header, "little"))


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, remaining = [], n
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, payload: bytes) -> None:
    data = len(payload).to_bytes(8, "little") + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--submission", required=True)
    parser.add_argument("--fd-in", type=int, required=True)
    parser.add_argument("--fd-out", type=int, required=True)
    parser.add_argument("--forbidden", default="{}", help="JSON: component -> forbidden APIs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    # import every engine module the worker needs *before* closing the doors; the import path
    # stays whole (torch imports sympy, numpy... lazily), only trusted code is refused, and
    # under bubblewrap its files are masked wherever they are installed
    from llm_grade.sandbox import executor, specimens, wire  # noqa: F401

    sys.meta_path.insert(0, _BlockTrustedImports())

    fd_in, fd_out = args.fd_in, args.fd_out
    ex = executor.Executor(args.submission, json.loads(args.forbidden))
    write_frame(fd_out, wire.encode({"ready": True, "pid": os.getpid()}))
    while True:
        frame = read_frame(fd_in)
        if frame is None:
            break  # the grader closed the pipe: we are done
        request: dict = {}
        try:
            request = wire.decode(frame)
            reply = ex.handle(request)
            reply["id"] = request.get("id")
            if reply["ok"]:
                reply["value"] = wire.sanitize(reply["value"])
            payload = wire.encode(reply)
        except Exception as exc:  # noqa: BLE001 - a reply we cannot encode is an error record
            payload = wire.encode(
                {
                    "ok": False,
                    "error": {
                        "kind": "exception",
                        "component": "",
                        "call": "",
                        "exc_type": type(exc).__name__,
                        "message": f"could not send the result: {exc}",
                        "traceback": "",
                    },
                }
            )
        write_frame(fd_out, payload)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
