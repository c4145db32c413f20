"""1.5 - the position-wise feed-forward network and its GELU non-linearity.

References: Hendrycks & Gimpel 2016, "Gaussian Error Linear Units (GELUs)"; Vaswani et al.
2017, section 3.3 ("Position-wise Feed-Forward Networks"); karpathy/nanoGPT ``MLP``.

Not allowed in ``gelu`` and ``FeedForward``: ``F.gelu`` and ``nn.GELU``. Write GELU yourself
from ``torch.erf`` and ``torch.tanh``.
"""

from __future__ import annotations

# math.sqrt and math.pi are what the GELU formulas need
import math  # noqa: F401

import torch
from torch import nn


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """Return GELU(x) elementwise; same shape and dtype as ``x``.

    - ``approximate="none"`` (exact): ``x * Phi(x)``, where ``Phi`` is the standard normal
      CDF, ``Phi(x) = 0.5 * (1 + erf(x / sqrt(2)))`` (``torch.erf``).
    - ``approximate="tanh"``: ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``,
      the approximation GPT-2 used.
    - anything else: raise ``ValueError`` naming ``approximate``.

    Not allowed: ``F.gelu``, ``nn.GELU``.
    """
    raise NotImplementedError("gelu: not implemented yet - see the docstring in feedforward.py")


class FeedForward(nn.Module):
    """``fc2(dropout(gelu(fc1(x))))``: expand to ``d_ff``, apply GELU, project back.

    Works on each position independently: ``[B, T, d_model] -> [B, T, d_model]``.
    Not allowed: ``F.gelu``, ``nn.GELU`` (call your own ``gelu``).
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        """Create the two layers (already done for you; keep these names).

        - ``self.fc1 = nn.Linear(d_model, d_ff)``: expansion (usually ``d_ff = 4 * d_model``)
        - ``self.fc2 = nn.Linear(d_ff, d_model)``: projection back to the residual stream
        - ``self.dropout = nn.Dropout(dropout)``

        Your part: before creating them, raise ``ValueError`` naming the argument if
        ``d_model <= 0``, if ``d_ff <= 0``, or unless ``0 <= dropout < 1``.
        """
        super().__init__()
        # your argument checks (see the docstring) go here, before the layers are created
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``fc2(dropout(gelu(fc1(x))))``: ``[B, T, d_model] -> [B, T, d_model]``.

        ``gelu`` is your exact (``approximate="none"``) GELU; the dropout sits between the
        GELU and ``fc2``, on the ``[B, T, d_ff]`` hidden activations.
        """
        raise NotImplementedError(
            "FeedForward.forward: not implemented yet - see the docstring in feedforward.py"
        )
