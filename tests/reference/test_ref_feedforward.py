"""1.5: GELU and the position-wise feed-forward network, against ``F.gelu`` and ``nn.Linear``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reference import feedforward

TOL = {"atol": 1e-10, "rtol": 1e-10}


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch_gelu(approximate: str) -> None:
    x = torch.cat([torch.linspace(-12, 12, 241, dtype=torch.float64), torch.randn(100).double()])
    before = x.clone()
    out = feedforward.gelu(x, approximate=approximate)
    torch.testing.assert_close(out, F.gelu(x, approximate=approximate), **TOL)
    assert torch.equal(x, before), "the input must not be modified in place"


def test_gelu_defaults_to_the_exact_erf_form() -> None:
    x = torch.randn(4, 5, dtype=torch.float64)
    expected = torch.tensor(
        [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.flatten().tolist()],
        dtype=torch.float64,
    ).view(4, 5)
    torch.testing.assert_close(feedforward.gelu(x), expected, **TOL)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_keeps_float32_inputs_float32(approximate: str) -> None:
    x = torch.randn(3, 7)
    out = feedforward.gelu(x, approximate=approximate)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.gelu(x, approximate=approximate))


@pytest.mark.parametrize("approximate", ["erf", "Tanh", "sigmoid", "", None])
def test_gelu_rejects_an_unknown_approximation(approximate) -> None:
    with pytest.raises(ValueError, match="approximate"):
        feedforward.gelu(torch.zeros(3), approximate=approximate)


def test_feedforward_has_the_contract_state_dict() -> None:
    ffn = feedforward.FeedForward(6, 24)
    assert {k: tuple(v.shape) for k, v in ffn.state_dict().items()} == {
        "fc1.weight": (24, 6),
        "fc1.bias": (24,),
        "fc2.weight": (6, 24),
        "fc2.bias": (6,),
    }


def test_feedforward_is_fc2_of_gelu_of_fc1(randomize) -> None:
    ffn = randomize(feedforward.FeedForward(6, 24))
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    hidden = F.gelu(F.linear(x, ffn.fc1.weight, ffn.fc1.bias))
    expected = F.linear(hidden, ffn.fc2.weight, ffn.fc2.bias)
    out = ffn(x)
    assert out.shape == (2, 5, 6)
    torch.testing.assert_close(out, expected, **TOL)


def test_feedforward_matches_a_torch_sequential_mlp(randomize) -> None:
    ffn = randomize(feedforward.FeedForward(8, 16))
    twin = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8)).double()
    twin.load_state_dict(
        {
            "0.weight": ffn.fc1.weight,
            "0.bias": ffn.fc1.bias,
            "2.weight": ffn.fc2.weight,
            "2.bias": ffn.fc2.bias,
        }
    )
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(ffn(x), twin(x), **TOL)


def test_feedforward_acts_on_each_position_independently(randomize) -> None:
    ffn = randomize(feedforward.FeedForward(4, 8))
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    perm = torch.randperm(6)
    torch.testing.assert_close(ffn(x[:, perm]), ffn(x)[:, perm], **TOL)


def test_feedforward_dropout_acts_after_gelu_in_train_mode_only(randomize) -> None:
    ffn = randomize(feedforward.FeedForward(4, 32, dropout=0.5))
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    evaluated = ffn(x)
    hidden = feedforward.gelu(ffn.fc1(x))

    ffn.train()
    torch.manual_seed(3)
    trained = ffn(x)
    torch.manual_seed(3)
    expected = ffn.fc2(F.dropout(hidden, 0.5, training=True))
    assert not torch.allclose(trained, evaluated)
    torch.testing.assert_close(trained, expected, **TOL)

    ffn.eval()
    torch.testing.assert_close(ffn(x), ffn.fc2(hidden), **TOL)
