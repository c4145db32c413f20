"""Shared fixtures for the reference tests.

These tests check ``reference/`` against ``torch.nn`` and closed forms, independently of any
grader: every reference module gets random parameters, a ``torch.nn`` twin receives a copy
of them, and both run in float64 so tolerances can be tight (1e-10).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

# `reference/` sits at the top of the repository and is not an installed package
_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


@pytest.fixture(autouse=True)
def _seeded_plain_torch() -> Iterator[None]:
    """Seed every test, and keep ``torch.nn`` attention on its plain (non fused) code path.

    The fused CPU fast path of ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer``
    is a different kernel; the plain path is the specification we compare against.
    """
    torch.manual_seed(0)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(fastpath)


def _randomize(module: nn.Module, std: float = 0.5) -> nn.Module:
    """Float64, eval mode, and random parameters (LayerNorm weights included, so copies count)."""
    module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)
    return module


def _copy_linear(dst: nn.Linear, src: nn.Linear) -> None:
    dst.weight.copy_(src.weight)
    if src.bias is not None:
        dst.bias.copy_(src.bias)


def _copy_norm(dst: nn.LayerNorm, src: nn.Module) -> None:
    dst.weight.copy_(src.weight)
    dst.bias.copy_(src.bias)
    dst.eps = src.eps


def _copy_mha(dst: nn.MultiheadAttention, src: nn.Module) -> None:
    # torch packs the three projections as one [3 * d_model, d_model] matrix: [q; k; v]
    dst.in_proj_weight.copy_(torch.cat([src.q_proj.weight, src.k_proj.weight, src.v_proj.weight]))
    if src.q_proj.bias is not None:
        dst.in_proj_bias.copy_(torch.cat([src.q_proj.bias, src.k_proj.bias, src.v_proj.bias]))
    _copy_linear(dst.out_proj, src.out_proj)


def _torch_mha(ref: nn.Module) -> nn.MultiheadAttention:
    twin = nn.MultiheadAttention(
        ref.d_model,
        ref.n_heads,
        bias=ref.q_proj.bias is not None,
        batch_first=True,
        dtype=torch.float64,
    )
    with torch.no_grad():
        _copy_mha(twin, ref)
    return twin.eval()


def _torch_encoder_layer(ref: nn.Module) -> nn.TransformerEncoderLayer:
    twin = nn.TransformerEncoderLayer(
        ref.self_attn.d_model,
        ref.self_attn.n_heads,
        ref.ffn.fc1.out_features,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=False,
        dtype=torch.float64,
    )
    with torch.no_grad():
        _copy_mha(twin.self_attn, ref.self_attn)
        _copy_linear(twin.linear1, ref.ffn.fc1)
        _copy_linear(twin.linear2, ref.ffn.fc2)
        _copy_norm(twin.norm1, ref.add_norm1.norm)
        _copy_norm(twin.norm2, ref.add_norm2.norm)
    return twin.eval()


def _torch_decoder_layer(ref: nn.Module) -> nn.TransformerDecoderLayer:
    twin = nn.TransformerDecoderLayer(
        ref.self_attn.d_model,
        ref.self_attn.n_heads,
        ref.ffn.fc1.out_features,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=False,
        dtype=torch.float64,
    )
    with torch.no_grad():
        _copy_mha(twin.self_attn, ref.self_attn)
        _copy_mha(twin.multihead_attn, ref.cross_attn)
        _copy_linear(twin.linear1, ref.ffn.fc1)
        _copy_linear(twin.linear2, ref.ffn.fc2)
        _copy_norm(twin.norm1, ref.add_norm1.norm)
        _copy_norm(twin.norm2, ref.add_norm2.norm)
        _copy_norm(twin.norm3, ref.add_norm3.norm)
    return twin.eval()


def _torch_encoder(ref: nn.Module) -> nn.TransformerEncoder:
    twin = nn.TransformerEncoder(
        _torch_encoder_layer(ref.layers[0]), len(ref.layers), enable_nested_tensor=False
    )
    for i, layer in enumerate(ref.layers):
        twin.layers[i] = _torch_encoder_layer(layer)
    return twin.eval()


def _torch_decoder(ref: nn.Module) -> nn.TransformerDecoder:
    twin = nn.TransformerDecoder(_torch_decoder_layer(ref.layers[0]), len(ref.layers))
    for i, layer in enumerate(ref.layers):
        twin.layers[i] = _torch_decoder_layer(layer)
    return twin.eval()


@pytest.fixture
def randomize() -> Callable[..., nn.Module]:
    """``randomize(module)``: float64, eval mode, every parameter drawn from N(0, 0.5^2)."""
    return _randomize


@pytest.fixture
def torch_mha() -> Callable[[nn.Module], nn.MultiheadAttention]:
    """``torch_mha(ref)``: an ``nn.MultiheadAttention(batch_first=True)`` with ref's weights."""
    return _torch_mha


@pytest.fixture
def torch_encoder_layer() -> Callable[[nn.Module], nn.TransformerEncoderLayer]:
    """``torch_encoder_layer(ref)``: a post-norm GELU ``nn.TransformerEncoderLayer`` twin."""
    return _torch_encoder_layer


@pytest.fixture
def torch_decoder_layer() -> Callable[[nn.Module], nn.TransformerDecoderLayer]:
    """``torch_decoder_layer(ref)``: a post-norm GELU ``nn.TransformerDecoderLayer`` twin."""
    return _torch_decoder_layer


@pytest.fixture
def torch_encoder() -> Callable[[nn.Module], nn.TransformerEncoder]:
    """``torch_encoder(ref_encoder)``: an ``nn.TransformerEncoder`` with per-layer copies."""
    return _torch_encoder


@pytest.fixture
def torch_decoder() -> Callable[[nn.Module], nn.TransformerDecoder]:
    """``torch_decoder(ref_decoder)``: an ``nn.TransformerDecoder`` with per-layer copies."""
    return _torch_decoder


@pytest.fixture
def torch_pre_norm_block() -> Callable[[nn.Module], Callable[..., torch.Tensor]]:
    """``torch_pre_norm_block(ref_block)(x, key_padding=None)``: a hand-written GPT block.

    Built from ``nn.LayerNorm``, ``nn.MultiheadAttention`` (causal ``attn_mask``) and an
    ``F.gelu`` MLP with ref's weights; ``key_padding`` is ``[B, T]``, True = real token.
    """

    def build(ref: nn.Module) -> Callable[..., torch.Tensor]:
        d_model = ref.attn.d_model
        norm1 = nn.LayerNorm(d_model, dtype=torch.float64)
        norm2 = nn.LayerNorm(d_model, dtype=torch.float64)
        fc1 = nn.Linear(d_model, ref.ffn.fc1.out_features, dtype=torch.float64)
        fc2 = nn.Linear(ref.ffn.fc1.out_features, d_model, dtype=torch.float64)
        with torch.no_grad():
            _copy_norm(norm1, ref.norm1)
            _copy_norm(norm2, ref.norm2)
            _copy_linear(fc1, ref.ffn.fc1)
            _copy_linear(fc2, ref.ffn.fc2)
        attn = _torch_mha(ref.attn)

        def block(x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
            T = x.size(1)
            # torch's boolean masks mean "True = NOT allowed": the strict upper triangle
            future = torch.ones(T, T, dtype=torch.bool).triu(1)
            ignore = None if key_padding is None else ~key_padding
            h = norm1(x)
            a, _ = attn(h, h, h, attn_mask=future, key_padding_mask=ignore, need_weights=False)
            x = x + a
            return x + fc2(torch.nn.functional.gelu(fc1(norm2(x))))

        return block

    return build
