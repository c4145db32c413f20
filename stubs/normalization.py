"""1.5 - residual connections and layer normalisation.

References: Ba et al. 2016, "Layer Normalization"; Vaswani et al. 2017, section 3.1
("Add & Norm": ``LayerNorm(x + Sublayer(x))``).

Not allowed in ``LayerNorm`` (and so in ``AddNorm``): ``F.layer_norm`` and ``nn.LayerNorm``.
"""

from __future__ import annotations

import torch
from torch import nn


class LayerNorm(nn.Module):
    """Normalise each vector over its last dimension, then scale and shift.

    ``(x - mean) / sqrt(var + eps) * weight + bias`` with the *biased* variance (divide by N).
    Not allowed: ``F.layer_norm``, ``nn.LayerNorm``.
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        """Create the learnable gain and shift (already done for you; keep these names).

        - ``self.eps = eps``
        - ``self.weight = nn.Parameter(torch.ones(d_model))``: gain, starts as the identity
        - ``self.bias = nn.Parameter(torch.zeros(d_model))``: shift, starts at zero

        Your part: before creating them, raise ``ValueError`` naming the argument if
        ``d_model <= 0`` or ``eps <= 0``.
        """
        super().__init__()
        # your argument checks (see the docstring) go here, before the parameters are created
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the normalised ``x [..., d_model]``; same shape and dtype.

        Over the last dimension only (each token vector on its own, unlike BatchNorm)::

            mean = average of x                        # [..., 1] (keepdim=True)
            var  = average of (x - mean) ** 2          # biased: divide by d_model, not d_model-1
            y    = (x - mean) / sqrt(var + eps) * weight + bias

        ``eps`` keeps the division finite when a vector is constant. Note that
        ``Tensor.var`` defaults to the unbiased estimate; compute the average yourself or pass
        ``unbiased=False`` / ``correction=0``.
        """
        raise NotImplementedError(
            "LayerNorm.forward: not implemented yet - see the docstring in normalization.py"
        )


class AddNorm(nn.Module):
    """Post-norm residual: ``norm(x + dropout(sublayer_out))``."""

    def __init__(self, d_model: int, dropout: float = 0.0, eps: float = 1e-5):
        """Create the norm and the dropout (already done for you; keep these names).

        - ``self.norm = LayerNorm(d_model, eps)``: your ``LayerNorm`` from above
        - ``self.dropout = nn.Dropout(dropout)``

        Your part: before creating them, raise ``ValueError`` naming ``dropout`` unless
        ``0 <= dropout < 1`` (``LayerNorm`` already checks ``d_model`` and ``eps``).
        """
        super().__init__()
        # your argument check (see the docstring) goes here, before the layers are created
        self.norm = LayerNorm(d_model, eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer_out: torch.Tensor) -> torch.Tensor:
        """Return ``norm(x + dropout(sublayer_out))``; inputs and output are ``[B, T, d_model]``.

        ``x`` is the residual stream (the sub-layer's input) and ``sublayer_out`` is what the
        attention or feed-forward sub-layer computed from it. The residual path lets gradients
        flow straight through a deep stack.
        """
        raise NotImplementedError(
            "AddNorm.forward: not implemented yet - see the docstring in normalization.py"
        )
