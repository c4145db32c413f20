"""Where a run happens: the device it grades on, the versions it records, and how trusted
folders of modules (the reference) are imported. Trusted side.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path
from typing import Any


def load_package(path: Path, name: str):
    """Import a folder of modules with relative imports as the package ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


def environment(device: str = "cpu") -> dict[str, Any]:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "platform": platform.platform(terse=True),
    }
    if device == "cuda":
        env["device_name"] = torch.cuda.get_device_name()
    return env


def resolve_device(name: str) -> str:
    """``auto`` becomes ``cuda``, else ``mps``, else ``cpu``; an unavailable device is a
    usage error (pytest's, so a bare ``pytest graders/`` reports it as one)."""
    import pytest
    import torch

    name = (name or "cpu").lower()
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if name == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if name not in available:
        raise pytest.UsageError(f"--device {name!r}: expected cpu, cuda, mps or auto")
    if not available[name]:
        raise pytest.UsageError(
            f"--device {name}: this machine (torch {torch.__version__}) has no {name} device"
        )
    return name
