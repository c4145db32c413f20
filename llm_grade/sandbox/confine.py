"""How the worker is confined: bubblewrap's command line, its environment, its rlimits.

Trusted side (the grading process; torch-free, imported by the transport before any worker
starts). On Linux with bubblewrap the worker gets a read-only view of the machine, a private
``/tmp`` (with the folders its Python needs bound back), its own PID, network, IPC and UTS
namespaces, the GPU's device nodes when it grades on one, and every trusted folder masked by an
empty tmpfs (:func:`trusted_paths` lists them wherever llm-grade is installed). With or
without bubblewrap, :func:`set_resource_limits` bounds its address space, CPU time, core dumps
and file sizes before it starts, and :func:`worker_env` is all the environment it gets.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from llm_grade import MKL_CBWR
from llm_grade.sandbox.limits import Limits

_PACKAGE = Path(__file__).resolve().parent.parent  # the llm_grade package

# the worker's entry module, run in isolated mode (no user site, no PYTHON* variables)
WORKER_PYTHON = [sys.executable, "-I", "-B", "-m", "llm_grade.sandbox.worker"]
SUBMISSION_MOUNT = "/tmp/submission"  # where the submission appears inside bubblewrap


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


def _gpu_nodes() -> list[str]:
    """Device files a CUDA (or ROCm) worker needs."""
    import glob

    patterns = ("/dev/nvidia*", "/dev/nvidia-caps/*", "/dev/kfd", "/dev/dri/*")
    return sorted({p for pattern in patterns for p in glob.glob(pattern)})


def bwrap_command(
    bwrap: str, root: Path | None, limits: Limits, masks: list[Path], gpu: bool
) -> list[str]:
    """bubblewrap's command line up to the program it runs: ``root`` read-only at
    :data:`SUBMISSION_MOUNT` (None: the caller binds what it needs), ``masks`` hidden, the
    GPU's nodes bound when ``gpu``."""
    cmd = [
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--size",
        str(limits.tmp_mb * 2**20),
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
    if gpu:  # the GPU's device nodes (--dev gives a minimal /dev without them)
        for node in _gpu_nodes():
            cmd += ["--dev-bind", node, node]
    for mask in masks:  # after the binds, so a bound-back folder is masked too
        cmd += ["--tmpfs", str(mask)]
    if root is None:
        return cmd
    return cmd + ["--ro-bind", str(root), SUBMISSION_MOUNT, "--chdir", "/tmp"]


def worker_env() -> dict[str, str]:
    """The worker's whole environment."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MKL_CBWR": MKL_CBWR,  # results must not depend on memory alignment
        "PYTHONHASHSEED": "0",
    }


def set_resource_limits(limits: Limits, gpu: bool) -> None:
    """Runs in the child before exec (``preexec_fn``): limits that bwrap and the worker inherit."""
    import resource

    mb = 2**20
    if not gpu:  # CUDA reserves tens of GB of address space: the watchdog bounds RSS
        address_space = (limits.memory_mb + 1536) * mb  # torch maps ~0.6 GB at import
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.tmp_mb * mb,) * 2)
