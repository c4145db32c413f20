"""Part 0.2 - the environment: pick a device, count a model's parameters.

Reference: the PyTorch docs on ``torch.device``, ``torch.cuda.is_available`` and
``torch.backends.mps.is_available``.
"""

from __future__ import annotations

import torch
from torch import nn


def get_device(prefer: str | None = None) -> torch.device:
    """Return the ``torch.device`` to run on.

    - ``prefer`` is ``"cpu"``, ``"cuda"`` or ``"mps"``: return ``torch.device(prefer)`` if that
      device is available on this machine, else raise ``RuntimeError`` (say which device).
    - ``prefer`` is anything else (e.g. ``"tpu"``): raise ``ValueError`` naming ``prefer``.
    - ``prefer=None``: pick the fastest available device, in this order: cuda, then mps,
      then cpu (cpu is always available).

    Availability: ``torch.cuda.is_available()`` for cuda, ``torch.backends.mps.is_available()``
    for mps. Some PyTorch builds have no ``torch.backends.mps`` at all, so look it up with
    ``getattr(torch.backends, "mps", None)`` before calling it.
    """
    raise NotImplementedError(
        "get_device: not implemented yet - see the docstring in environment.py"
    )


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Return the number of scalar parameters in ``model`` as a Python ``int``.

    Sum ``p.numel()`` over ``model.parameters()``. With ``trainable_only=True`` (the default)
    count only parameters with ``p.requires_grad``; with ``False`` count them all (frozen ones
    too). Buffers (``register_buffer``) are not parameters and never count.
    """
    raise NotImplementedError(
        "count_parameters: not implemented yet - see the docstring in environment.py"
    )
