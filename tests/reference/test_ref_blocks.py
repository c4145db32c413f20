"""1.6: encoder layer, decoder layer and GPT block, against ``nn.TransformerEncoderLayer``,
``nn.TransformerDecoderLayer`` (post-norm, GELU, dropout 0) and a hand-written pre-norm block.

``torch.nn`` boolean masks mean True = NOT allowed, so every mask is passed as ``~mask``.
"""

from __future__ import annotations

import pytest
import torch

from reference import attention, blocks

TOL = {"atol": 1e-10, "rtol": 1e-10}
B, T, S, D_MODEL, N_HEADS, D_FF = 2, 5, 6, 8, 2, 16


def _lengths_mask(lengths: list[int], T: int) -> torch.Tensor:
    """``[B, T]``, True on the first ``lengths[b]`` positions (real tokens)."""
    return torch.arange(T) < torch.tensor(lengths).unsqueeze(1)


def _x(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


# --- encoder layer -------------------------------------------------------------------------


def test_encoder_layer_has_the_contract_submodules() -> None:
    layer = blocks.EncoderLayer(D_MODEL, N_HEADS, D_FF)
    assert [name for name, _ in layer.named_children()][:4] == [
        "self_attn",
        "add_norm1",
        "ffn",
        "add_norm2",
    ]
    prefixes = {key.split(".")[0] for key in layer.state_dict()}
    assert prefixes == {"self_attn", "add_norm1", "ffn", "add_norm2"}


def test_encoder_layer_matches_torch_encoder_layer_without_a_mask(
    randomize, torch_encoder_layer
) -> None:
    layer = randomize(blocks.EncoderLayer(D_MODEL, N_HEADS, D_FF))
    x = _x(B, T, D_MODEL)
    before = x.clone()
    out = layer(x)
    assert out.shape == (B, T, D_MODEL) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch_encoder_layer(layer)(x), **TOL)
    assert torch.equal(x, before)


def test_encoder_layer_matches_torch_encoder_layer_with_a_padding_mask(
    randomize, torch_encoder_layer
) -> None:
    layer = randomize(blocks.EncoderLayer(D_MODEL, N_HEADS, D_FF))
    x = _x(3, T, D_MODEL)
    pad = _lengths_mask([5, 3, 1], T)
    expected = torch_encoder_layer(layer)(x, src_key_padding_mask=~pad)
    torch.testing.assert_close(layer(x, pad.unsqueeze(1)), expected, **TOL)


def test_encoder_layer_matches_torch_encoder_layer_with_a_square_mask(
    randomize, torch_encoder_layer
) -> None:
    layer = randomize(blocks.EncoderLayer(D_MODEL, N_HEADS, D_FF))
    x = _x(B, T, D_MODEL)
    causal = attention.causal_mask(T)
    expected = torch_encoder_layer(layer)(x, src_mask=~causal)
    torch.testing.assert_close(layer(x, causal), expected, **TOL)


# --- decoder layer -------------------------------------------------------------------------


def test_decoder_layer_has_the_contract_submodules() -> None:
    layer = blocks.DecoderLayer(D_MODEL, N_HEADS, D_FF)
    prefixes = {key.split(".")[0] for key in layer.state_dict()}
    assert prefixes == {"self_attn", "add_norm1", "cross_attn", "add_norm2", "ffn", "add_norm3"}


def test_decoder_layer_matches_torch_decoder_layer_without_masks(
    randomize, torch_decoder_layer
) -> None:
    layer = randomize(blocks.DecoderLayer(D_MODEL, N_HEADS, D_FF))
    x, memory = _x(B, T, D_MODEL), _x(B, S, D_MODEL)
    out = layer(x, memory)
    assert out.shape == (B, T, D_MODEL)
    torch.testing.assert_close(out, torch_decoder_layer(layer)(x, memory), **TOL)


def test_decoder_layer_matches_torch_decoder_layer_with_causal_and_memory_padding_masks(
    randomize, torch_decoder_layer
) -> None:
    layer = randomize(blocks.DecoderLayer(D_MODEL, N_HEADS, D_FF))
    x, memory = _x(B, T, D_MODEL), _x(B, S, D_MODEL)
    causal = attention.causal_mask(T)
    memory_pad = _lengths_mask([6, 2], S)
    expected = torch_decoder_layer(layer)(
        x, memory, tgt_mask=~causal, memory_key_padding_mask=~memory_pad
    )
    out = layer(x, memory, tgt_mask=causal, memory_mask=memory_pad.unsqueeze(1))
    torch.testing.assert_close(out, expected, **TOL)


def test_decoder_layer_matches_torch_decoder_layer_with_target_padding(
    randomize, torch_decoder_layer
) -> None:
    layer = randomize(blocks.DecoderLayer(D_MODEL, N_HEADS, D_FF))
    x, memory = _x(B, T, D_MODEL), _x(B, S, D_MODEL)
    causal, tgt_pad = attention.causal_mask(T), _lengths_mask([5, 3], T)
    memory_pad = _lengths_mask([4, 6], S)
    expected = torch_decoder_layer(layer)(
        x,
        memory,
        tgt_mask=~causal,
        tgt_key_padding_mask=~tgt_pad,
        memory_key_padding_mask=~memory_pad,
    )
    out = layer(x, memory, causal & tgt_pad.unsqueeze(1), memory_pad.unsqueeze(1))
    torch.testing.assert_close(out, expected, **TOL)


def test_decoder_layer_uses_the_target_mask_as_given(randomize) -> None:
    layer = randomize(blocks.DecoderLayer(D_MODEL, N_HEADS, D_FF))
    x, memory = _x(B, T, D_MODEL), _x(B, S, D_MODEL)
    # without a tgt_mask nothing is causal: the last token changes the first output
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(layer(x, memory)[:, 0], layer(changed, memory)[:, 0])


# --- GPT block -----------------------------------------------------------------------------


def test_transformer_block_has_the_contract_submodules() -> None:
    block = blocks.TransformerBlock(D_MODEL, N_HEADS, D_FF)
    prefixes = {key.split(".")[0] for key in block.state_dict()}
    assert prefixes == {"norm1", "attn", "norm2", "ffn"}


def test_transformer_block_matches_a_hand_written_pre_norm_block(
    randomize, torch_pre_norm_block
) -> None:
    block = randomize(blocks.TransformerBlock(D_MODEL, N_HEADS, D_FF))
    x = _x(B, T, D_MODEL)
    out = block(x)
    assert out.shape == (B, T, D_MODEL)
    torch.testing.assert_close(out, torch_pre_norm_block(block)(x), **TOL)


def test_transformer_block_matches_a_hand_written_pre_norm_block_with_padding(
    randomize, torch_pre_norm_block
) -> None:
    block = randomize(blocks.TransformerBlock(D_MODEL, N_HEADS, D_FF))
    x = _x(3, T, D_MODEL)
    pad = _lengths_mask([5, 2, 4], T)
    expected = torch_pre_norm_block(block)(x, key_padding=pad)
    torch.testing.assert_close(block(x, pad.unsqueeze(1)), expected, **TOL)


@pytest.mark.parametrize("cut", [1, 2, 4])
def test_transformer_block_is_causal_without_being_told(cut: int, randomize) -> None:
    block = randomize(blocks.TransformerBlock(D_MODEL, N_HEADS, D_FF))
    x = _x(B, T, D_MODEL)
    future_changed = x.clone()
    future_changed[:, cut:] = _x(B, T - cut, D_MODEL)
    a, b = block(x), block(future_changed)
    torch.testing.assert_close(a[:, :cut], b[:, :cut], atol=1e-12, rtol=0)
    assert not torch.allclose(a[:, cut:], b[:, cut:])


def test_transformer_block_equals_running_on_the_prefix_alone(randomize) -> None:
    block = randomize(blocks.TransformerBlock(D_MODEL, N_HEADS, D_FF))
    x = _x(B, T, D_MODEL)
    torch.testing.assert_close(block(x)[:, :3], block(x[:, :3]), **TOL)


@pytest.mark.parametrize(
    "make", [blocks.EncoderLayer, blocks.DecoderLayer, blocks.TransformerBlock]
)
def test_layer_dropout_changes_outputs_in_train_mode_and_not_in_eval(make, randomize) -> None:
    layer = randomize(make(D_MODEL, N_HEADS, D_FF, dropout=0.3))
    args = (
        (_x(B, T, D_MODEL),)
        if make is not blocks.DecoderLayer
        else (_x(B, T, D_MODEL), _x(B, S, D_MODEL))
    )
    evaluated = layer(*args)
    torch.testing.assert_close(layer(*args), evaluated, atol=0, rtol=0)
    layer.train()
    assert not torch.allclose(layer(*args), evaluated)
    layer.eval()
    torch.testing.assert_close(layer(*args), evaluated, atol=0, rtol=0)
