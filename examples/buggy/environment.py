"""Part 0.2 - the environment: pick a device, count a model's parameters."""

from __future__ import annotations

import torch
from torch import nn

_KNOWN_DEVICES = ("cpu", "cuda", "mps")


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """Return ``torch.device(prefer)`` if that device is available, else raise ``RuntimeError``.

    With ``prefer=None`` pick the fastest available device: cuda, then mps, then cpu.
    An unknown device name raises ``ValueError``.
    """
    if prefer is None:
        for kind in ("cuda", "mps"):
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    if prefer not in _KNOWN_DEVICES:
        raise ValueError(f"prefer must be one of {_KNOWN_DEVICES} or None, got {prefer!r}")
    if not _available(prefer):
        raise RuntimeError(f"device {prefer!r} is not available on this machine")
    return torch.device(prefer)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
