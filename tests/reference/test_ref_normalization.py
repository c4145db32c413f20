"""1.5: LayerNorm and the post-norm residual ``AddNorm``, against ``nn.LayerNorm``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reference import normalization

TOL = {"atol": 1e-10, "rtol": 1e-10}


def _torch_twin(norm: nn.Module, d_model: int) -> nn.LayerNorm:
    twin = nn.LayerNorm(d_model, eps=norm.eps, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(norm.weight)
        twin.bias.copy_(norm.bias)
    return twin


def test_layer_norm_starts_as_weight_ones_and_bias_zeros() -> None:
    norm = normalization.LayerNorm(6)
    assert sorted(norm.state_dict()) == ["bias", "weight"]
    assert torch.equal(norm.weight, torch.ones(6)) and torch.equal(norm.bias, torch.zeros(6))
    assert norm.eps == 1e-5


@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.1, 1.0])
@pytest.mark.parametrize("shape", [(8,), (3, 8), (2, 4, 8)])
def test_layer_norm_matches_torch_layer_norm_with_random_affine(eps, shape, randomize) -> None:
    norm = randomize(normalization.LayerNorm(8, eps=eps))
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 1
    before = x.clone()
    out = norm(x)
    assert out.shape == x.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, _torch_twin(norm, 8)(x), **TOL)
    assert torch.equal(x, before), "the input must not be modified in place"


def test_layer_norm_uses_the_biased_variance() -> None:
    norm = normalization.LayerNorm(4, eps=1e-12).double()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    # mean 2.5, biased variance 1.25 (the unbiased one would be 5/3)
    expected = (x - 2.5) / 1.25**0.5
    torch.testing.assert_close(norm(x), expected, **TOL)


def test_layer_norm_output_has_zero_mean_and_unit_variance_before_the_affine() -> None:
    norm = normalization.LayerNorm(16, eps=1e-12).double()
    out = norm(torch.randn(5, 16, dtype=torch.float64) * 7 - 3)
    torch.testing.assert_close(out.mean(-1), torch.zeros(5, dtype=torch.float64), **TOL)
    torch.testing.assert_close(
        out.var(-1, unbiased=False), torch.ones(5, dtype=torch.float64), atol=1e-9, rtol=1e-9
    )


def test_layer_norm_keeps_float32_inputs_float32() -> None:
    norm = normalization.LayerNorm(8)
    x = torch.randn(3, 8)
    out = norm(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.layer_norm(x, (8,), eps=1e-5))


@pytest.mark.parametrize("kwargs", [{"d_model": 0}, {"d_model": -3}])
def test_layer_norm_rejects_a_non_positive_d_model(kwargs) -> None:
    with pytest.raises(ValueError, match="d_model"):
        normalization.LayerNorm(**kwargs)


def test_layer_norm_rejects_a_non_positive_eps() -> None:
    with pytest.raises(ValueError, match="eps"):
        normalization.LayerNorm(4, eps=0.0)


def test_add_norm_has_the_contract_state_dict() -> None:
    add_norm = normalization.AddNorm(6)
    assert isinstance(add_norm.norm, normalization.LayerNorm)
    assert sorted(add_norm.state_dict()) == ["norm.bias", "norm.weight"]


@pytest.mark.parametrize("eps", [1e-5, 1e-2])
def test_add_norm_normalises_the_residual_sum(eps, randomize) -> None:
    add_norm = randomize(normalization.AddNorm(8, eps=eps))
    assert add_norm.norm.eps == eps
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    sub = torch.randn(2, 5, 8, dtype=torch.float64)
    torch.testing.assert_close(add_norm(x, sub), _torch_twin(add_norm.norm, 8)(x + sub), **TOL)


def test_add_norm_dropout_acts_on_the_sublayer_output_in_train_mode_only(randomize) -> None:
    add_norm = randomize(normalization.AddNorm(8, dropout=0.5))
    twin = _torch_twin(add_norm.norm, 8)
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    sub = torch.randn(3, 4, 8, dtype=torch.float64)
    evaluated = add_norm(x, sub)
    torch.testing.assert_close(evaluated, twin(x + sub), **TOL)

    add_norm.train()
    torch.manual_seed(5)
    trained = add_norm(x, sub)
    torch.manual_seed(5)
    expected = twin(x + F.dropout(sub, 0.5, training=True))
    assert not torch.allclose(trained, evaluated)
    torch.testing.assert_close(trained, expected, **TOL)
