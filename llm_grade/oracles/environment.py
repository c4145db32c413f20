"""Part 0.2 - torch.nn "oracle" implementation (used to isolate credit and as the torch.nn
variant in tests): pick a device, count a model's parameters."""

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
    """``torch.device(prefer)`` if available (else ``RuntimeError``); None: cuda, mps, cpu."""
    if prefer is None:
        return torch.device(next(k for k in ("cuda", "mps", "cpu") if _available(k)))
    if prefer not in _KNOWN_DEVICES:
        raise ValueError(f"prefer must be one of {_KNOWN_DEVICES} or None, got {prefer!r}")
    if not _available(prefer):
        raise RuntimeError(f"device {prefer!r} is not available on this machine")
    return torch.device(prefer)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` by default)."""
    params = model.parameters()
    return sum(p.numel() for p in params if p.requires_grad or not trainable_only)
