"""A class on a cluster: ``llm-grade batch --executor dask --scheduler ADDRESS``.

Each submission becomes one task on a Dask distributed cluster. It is staged here first
(zips and notebooks unpacked with batch's checks, so a refused archive never leaves this
machine), then shipped as bytes: its module files, at most :data:`MAX_BYTES`, and a
notebook's extraction. The workers need no shared filesystem. Each cluster worker does what a
local batch job does: it keeps one long-lived grading process
(:mod:`llm_grade.classroom.server`), and grades the files from a private temporary folder
with the same per-submission sandbox.

Only plain JSON comes back: the text of ``results.json``, a tail of ``grading.log``, and the
exit status. Everything else stays on the machine that runs ``batch``: what to skip on a
resumed run, the HMAC seals, the feedback notebooks and the class exports. The local pool
stays the default.

Dask moves the payload and the reply with pickle, between the instructor's own processes
(the client and the cluster's worker processes). Those are trusted: learner code runs only in
the sandboxed workers *they* start, never in a Dask process. The reply is JSON text that
this side parses as data, as it does for a local grade.

Cluster workers need llm-grade, torch and bubblewrap installed, the same versions as here
(README: "A class on a cluster").
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

from llm_grade.classroom.server import GradingServer, plain_options
from llm_grade.classroom.staging import StagingError, StudentSubmission, unpack
from llm_grade.engine.options import GradingOptions

MAX_BYTES = 64 * 2**20  # of one submission shipped to a cluster worker
# submissions handed to the scheduler at once (each waits in a thread here; the scheduler
# queues them for its workers)
IN_FLIGHT = 64
LOG_TAIL = 20_000  # characters of grading.log sent back

_local = threading.local()  # in a cluster worker: its grading process, per thread


def payload(name: str, folder: Path, origin: dict | None) -> dict:
    """A staged submission as plain data: its module files (name -> bytes) and, for a
    notebook, its extraction."""
    files = {
        p.name: p.read_bytes()
        for p in sorted(Path(folder).glob("*.py"))
        if p.is_file() and not p.is_symlink()
    }
    size = sum(len(b) for b in files.values())
    if size > MAX_BYTES:
        raise StagingError(f"{size / 2**20:.0f} MiB is too large to send to the cluster")
    return {"name": name, "files": files, "origin": origin}


def grade_remote(data: dict, options: dict, rubric: bytes | None, timeout: float) -> dict:
    """Run on a cluster worker: grade one staged submission in a private folder and return
    its results as JSON text (``{"code", "why", "results", "log"}``)."""
    with tempfile.TemporaryDirectory(prefix="llm-grade-task-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "in" / "submission"
        folder.mkdir(parents=True)
        for name, content in data["files"].items():
            if Path(name).name != name or not name.endswith(".py"):
                return {"code": 1, "why": f"{name!r} is not a module file", "results": None}
            (folder / name).write_bytes(content)
        out = tmp / "out"
        out.mkdir()
        changes = {"out": out, "hide": (), "submission": None}
        if rubric is not None:
            (tmp / "rubric.toml").write_bytes(rubric)
            changes["rubric"] = tmp / "rubric.toml"
        mine = GradingOptions(**options).replace(**changes)
        if not hasattr(_local, "server"):
            _local.server = GradingServer(Path(tempfile.gettempdir()))
        code, why = _local.server.grade(folder, mine, timeout, data.get("origin"))
        results = out / "results.json"
        log = out / "grading.log"
        return {
            "code": code,
            "why": why,
            "results": results.read_text("utf-8") if results.is_file() else None,
            "log": log.read_text("utf-8", errors="replace")[-LOG_TAIL:] if log.is_file() else "",
        }


class DaskGrader:
    """Grades on a Dask cluster: a :class:`~llm_grade.classroom.batch.LocalGrader` whose
    grading happens on the cluster's workers."""

    def __init__(self, scheduler, *, rubric: Path | None = None):
        try:
            from distributed import Client
        except ImportError:
            from llm_grade.classroom.batch import BatchError

            raise BatchError(
                "--executor dask needs Dask distributed: pip install 'llm-grade[dask]'"
            ) from None
        if scheduler is None:
            from llm_grade.classroom.batch import BatchError

            raise BatchError("--executor dask needs --scheduler ADDRESS (tcp://host:8786)")
        self.own = not isinstance(scheduler, Client)
        self.scheduler = scheduler
        self._client = None if self.own else scheduler
        self._lock = threading.Lock()
        self.rubric = Path(rubric).read_bytes() if rubric else None

    @property
    def client(self):
        """The cluster's client, connected on first use (a resumed run with nothing to grade
        never connects)."""
        with self._lock:
            if self._client is None:
                from distributed import Client

                self._client = Client(self.scheduler)
            return self._client

    def grade(
        self, submission: StudentSubmission, staged: Path, options: GradingOptions, timeout: float
    ) -> tuple[int | None, str]:
        """Stage ``submission`` here (zips and notebooks with batch's checks: one that is
        refused never reaches the cluster), grade it on the cluster, and write its
        ``results.json`` and ``grading.log`` into ``options.out`` here."""
        folder, extraction = unpack(submission, staged)
        origin = extraction.to_dict() if extraction is not None else None
        shipped = plain_options(options.replace(out=None, hide=(), rubric=None))
        task = payload(submission.name, folder, origin)
        future = self.client.submit(grade_remote, task, shipped, self.rubric, timeout, pure=False)
        try:
            reply = future.result(timeout=timeout + 600)
        except Exception as exc:  # noqa: BLE001 - a lost worker, a timeout: this one fails
            return 1, f"the cluster could not grade it ({type(exc).__name__}: {exc})"
        if not isinstance(reply, dict):
            return 1, "the cluster sent an unreadable reply"
        out = Path(options.out)
        (out / "grading.log").write_text(str(reply.get("log", "")), encoding="utf-8")
        text = reply.get("results")
        if isinstance(text, str):
            try:
                json.loads(text)  # plain JSON, parsed as data (the batch parses it again)
            except ValueError:
                return 1, "the cluster sent an unreadable results.json"
            (out / "results.json").write_text(text, encoding="utf-8")
        code = reply.get("code")
        return (code if code in (0, 1, None) else 1), str(reply.get("why", ""))

    def close(self) -> None:
        if self.own and self._client is not None:
            self._client.close()
