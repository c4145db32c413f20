"""The worker process: the only place where learner code runs under ``--isolation process``.

Started by :mod:`llm_grade.sandbox.transport` (inside bubblewrap where available), it imports the
engine modules it needs, closes the doors to the trusted code (an import hook refuses
``reference``, ``graders``, the tests and the rest of ``llm_grade``; the sandbox masks their
files), then answers framed requests on one pipe with framed replies on another (see
:mod:`llm_grade.sandbox.framing`). The first frame it reads is its configuration (the
forbidden-API table), sent by the transport right after the spawn. Everything it sends is
encoded by :func:`llm_grade.sandbox.wire.encode`: plain data only. Learner side.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import os
import sys

from llm_grade.sandbox.framing import read_frame, write_frame

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The worker's command line (the forbidden-API table comes as the first frame instead):
    the arguments are defined once, in :data:`llm_grade.engine.options.WORKER_ARGUMENTS`."""
    from llm_grade.engine.options import worker_parser

    return worker_parser().parse_args(argv)


def read_config(fd: int) -> dict:
    """The first frame the transport sends after spawning the worker: JSON plain data,
    ``{"forbidden": {component: [forbidden APIs]}}``."""
    frame = read_frame(fd)
    if frame is None:
        sys.exit("the grader closed the pipe before sending the worker's configuration")
    config = json.loads(frame)
    return {"forbidden": config.get("forbidden") or {}}


def prepare() -> None:
    """Import torch and every engine module the worker needs, then close the doors. Done
    once per process: by the worker itself, or by the template that forks workers
    (:mod:`llm_grade.sandbox.template`) before any learner code or oracle is loaded."""
    import torch  # noqa: F401

    # import every engine module the worker needs *before* closing the doors; the import path
    # stays whole (torch imports sympy, numpy... lazily), only trusted code is refused, and
    # under bubblewrap its files are masked wherever they are installed
    # (framing is imported above; executor imports forbidden, learner_errors and module_ops)
    from llm_grade.sandbox import (  # noqa: F401
        executor,
        forbidden,
        learner_errors,
        module_ops,
        specimens,
        wire,
    )

    if not any(isinstance(f, _BlockTrustedImports) for f in sys.meta_path):
        sys.meta_path.insert(0, _BlockTrustedImports())


def serve(fd_in: int, fd_out: int, submission: str, config: dict, threads: int = 1) -> None:
    """Answer requests on ``fd_in`` with replies on ``fd_out`` until the grader closes the
    pipe, then end the process."""
    import torch

    from llm_grade.sandbox import executor, wire

    torch.set_num_threads(threads)
    executor.start_profiler_thread()  # part of the idle census the grader takes next
    ex = executor.Executor(submission, config["forbidden"])
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = read_config(args.fd_in)
    prepare()
    serve(args.fd_in, args.fd_out, args.submission, config, args.threads)


if __name__ == "__main__":
    main()
