"""The frames of the wire protocol: how messages travel on the pipes between grader and worker.

Part of the wire protocol (:mod:`llm_grade.sandbox.wire` encodes what a frame carries): every
message is one frame, an 8-byte little-endian length followed by that many bytes. Both sides of
the trust boundary use these functions: the worker reads requests and writes replies with them,
the transport writes requests with them (it reads replies with its own deadline-bound reader).
Kept apart from :mod:`~llm_grade.sandbox.wire` because that module imports torch, and the
transport must not import torch before the worker is spawned.
"""

from __future__ import annotations

import os


def read_frame(fd: int) -> bytes | None:
    """The next frame's payload, or None when the pipe was closed."""
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
    """Write ``payload`` as one frame (all of it, however many writes that takes)."""
    data = len(payload).to_bytes(8, "little") + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
