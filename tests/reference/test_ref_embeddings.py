"""1.1: token embeddings and positional encodings, against closed forms and ``nn.Embedding``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reference import embeddings

TOL = {"atol": 1e-10, "rtol": 1e-10}


def _pe_by_loops(seq_len: int, d_model: int, base: float) -> torch.Tensor:
    """The paper's formula, one scalar at a time with ``math`` (float64)."""
    pe = torch.zeros(seq_len, d_model, dtype=torch.float64)
    for p in range(seq_len):
        for i in range(d_model // 2):
            angle = p / base ** (2 * i / d_model)
            pe[p, 2 * i] = math.sin(angle)
            pe[p, 2 * i + 1] = math.cos(angle)
    return pe


@pytest.mark.parametrize(
    ("seq_len", "d_model", "base"),
    [(7, 4, 10000.0), (5, 8, 10000.0), (6, 6, 100.0), (4, 2, 2.0), (9, 10, 1234.5)],
)
def test_sinusoidal_table_matches_the_closed_form(seq_len: int, d_model: int, base: float) -> None:
    table = embeddings.sinusoidal_positional_encoding(
        seq_len, d_model, base=base, dtype=torch.float64
    )
    assert table.shape == (seq_len, d_model)
    torch.testing.assert_close(table, _pe_by_loops(seq_len, d_model, base), atol=1e-12, rtol=0)


def test_sinusoidal_table_defaults_to_base_10000_and_float32() -> None:
    table = embeddings.sinusoidal_positional_encoding(6, 8)
    assert table.dtype == torch.float32
    torch.testing.assert_close(table, _pe_by_loops(6, 8, 10000.0).float())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_sinusoidal_table_honours_the_dtype_argument(dtype: torch.dtype) -> None:
    table = embeddings.sinusoidal_positional_encoding(5, 4, dtype=dtype)
    assert table.dtype == dtype
    # computed precisely, then rounded once to the requested dtype
    assert torch.equal(table, _pe_by_loops(5, 4, 10000.0).to(dtype))


def test_sinusoidal_table_values_lie_in_minus_one_to_one() -> None:
    table = embeddings.sinusoidal_positional_encoding(300, 16, dtype=torch.float64)
    assert table.abs().max() <= 1.0
    assert torch.isfinite(table).all()


def test_sinusoidal_table_row_zero_alternates_zero_and_one() -> None:
    table = embeddings.sinusoidal_positional_encoding(3, 10, dtype=torch.float64)
    assert torch.equal(table[0], torch.tensor([0.0, 1.0] * 5, dtype=torch.float64))


def test_sinusoidal_table_pairs_lie_on_the_unit_circle() -> None:
    table = embeddings.sinusoidal_positional_encoding(50, 12, dtype=torch.float64)
    radius = table[:, 0::2] ** 2 + table[:, 1::2] ** 2
    torch.testing.assert_close(radius, torch.ones_like(radius), **TOL)


@pytest.mark.parametrize("d_model", [1, 3, 7, 0, -2])
def test_sinusoidal_table_rejects_odd_or_non_positive_d_model(d_model: int) -> None:
    with pytest.raises(ValueError, match="d_model"):
        embeddings.sinusoidal_positional_encoding(4, d_model)


def test_sinusoidal_encoding_adds_the_first_t_rows_of_the_table() -> None:
    module = embeddings.SinusoidalPositionalEncoding(8, max_len=12).eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    before = x.clone()
    out = module(x)
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert torch.equal(x, before), "the input must not be modified in place"
    expected = x + embeddings.sinusoidal_positional_encoding(5, 8, dtype=torch.float64)
    # the buffer is stored in float32 (the module's default dtype), so float32 rounding remains
    torch.testing.assert_close(out, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(out, x + module.pe[:5].double(), **TOL)


def test_sinusoidal_encoding_keeps_float32_inputs_float32() -> None:
    module = embeddings.SinusoidalPositionalEncoding(4, max_len=6).eval()
    x = torch.randn(3, 6, 4)
    out = module(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x + _pe_by_loops(6, 4, 10000.0).float())


def test_sinusoidal_encoding_buffer_is_not_saved_in_the_state_dict() -> None:
    module = embeddings.SinusoidalPositionalEncoding(6, max_len=20)
    assert "pe" in dict(module.named_buffers())
    assert module.pe.shape == (20, 6)
    assert "pe" not in module.state_dict()
    assert list(module.parameters()) == []
    assert torch.equal(module.pe, embeddings.sinusoidal_positional_encoding(20, 6))


def test_sinusoidal_encoding_buffer_follows_dtype_moves() -> None:
    module = embeddings.SinusoidalPositionalEncoding(6, max_len=20).double()
    assert module.pe.dtype == torch.float64


def test_sinusoidal_encoding_accepts_t_equal_to_max_len_and_rejects_longer() -> None:
    module = embeddings.SinusoidalPositionalEncoding(4, max_len=5)
    assert module(torch.zeros(1, 5, 4)).shape == (1, 5, 4)
    with pytest.raises(ValueError, match="max_len"):
        module(torch.zeros(1, 6, 4))


def test_learned_positional_embedding_adds_one_vector_per_position() -> None:
    module = embeddings.LearnedPositionalEmbedding(10, 6).double().eval()
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    before = x.clone()
    out = module(x)
    assert torch.equal(x, before)
    torch.testing.assert_close(out, x + module.embedding.weight[:4].unsqueeze(0), **TOL)


def test_learned_positional_embedding_has_the_contract_state_dict() -> None:
    module = embeddings.LearnedPositionalEmbedding(10, 6)
    assert isinstance(module.embedding, nn.Embedding)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "embedding.weight": (10, 6)
    }


def test_learned_positional_embedding_rejects_t_above_max_len() -> None:
    module = embeddings.LearnedPositionalEmbedding(3, 4)
    assert module(torch.zeros(2, 3, 4)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="max_len"):
        module(torch.zeros(2, 4, 4))


def test_learned_positional_embedding_is_the_same_for_every_batch_row() -> None:
    module = embeddings.LearnedPositionalEmbedding(8, 4).eval()
    out = module(torch.zeros(3, 5, 4))
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


@pytest.mark.parametrize("d_model", [4, 9, 16])
def test_token_embedding_is_nn_embedding_times_sqrt_d_model(d_model: int) -> None:
    module = embeddings.TokenEmbedding(11, d_model).double()
    twin = nn.Embedding(11, d_model, dtype=torch.float64)
    twin.load_state_dict(module.embedding.state_dict())
    tokens = torch.randint(0, 11, (2, 7))
    out = module(tokens)
    assert out.shape == (2, 7, d_model)
    torch.testing.assert_close(out, twin(tokens) * math.sqrt(d_model), **TOL)


def test_token_embedding_has_the_contract_state_dict() -> None:
    module = embeddings.TokenEmbedding(11, 5)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "embedding.weight": (11, 5)
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda p: embeddings.SinusoidalPositionalEncoding(8, max_len=16, dropout=p),
        lambda p: embeddings.LearnedPositionalEmbedding(16, 8, dropout=p),
    ],
    ids=["sinusoidal", "learned"],
)
def test_positional_dropout_acts_in_train_mode_and_is_identity_in_eval(make) -> None:
    module = make(0.5)
    x = torch.randn(4, 10, 8)
    clean = make(0.0).eval()
    clean.load_state_dict(module.state_dict())
    expected = clean(x)

    module.eval()
    assert torch.equal(module(x), expected)

    module.train()
    torch.manual_seed(1)
    noisy = module(x)
    assert not torch.allclose(noisy, expected)
    # inverted dropout: dropped entries are 0, kept ones are scaled by 1 / (1 - p)
    kept = noisy != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(noisy[kept], expected[kept] / 0.5)
    # the same random draw as F.dropout on the clean output
    torch.manual_seed(1)
    reference_draw = torch.nn.functional.dropout(expected, 0.5, training=True)
    assert torch.equal(noisy, reference_draw)
