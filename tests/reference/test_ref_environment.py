"""Part 0.2: ``get_device`` and ``count_parameters``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference import environment

_HAS_CUDA = torch.cuda.is_available()
_HAS_MPS = torch.backends.mps.is_available()


@pytest.mark.skipif(_HAS_CUDA or _HAS_MPS, reason="an accelerator is available here")
def test_get_device_without_preference_falls_back_to_cpu() -> None:
    assert environment.get_device(None) == torch.device("cpu")
    assert environment.get_device() == torch.device("cpu")


@pytest.mark.skipif(not _HAS_CUDA, reason="needs CUDA")
def test_get_device_without_preference_picks_cuda_first() -> None:
    assert environment.get_device(None).type == "cuda"


def test_get_device_returns_the_preferred_cpu() -> None:
    device = environment.get_device("cpu")
    assert isinstance(device, torch.device)
    assert device == torch.device("cpu")


@pytest.mark.skipif(_HAS_CUDA, reason="CUDA is available here")
def test_get_device_raises_runtime_error_for_unavailable_cuda() -> None:
    with pytest.raises(RuntimeError, match="cuda"):
        environment.get_device("cuda")


@pytest.mark.skipif(_HAS_MPS, reason="MPS is available here")
def test_get_device_raises_runtime_error_for_unavailable_mps() -> None:
    with pytest.raises(RuntimeError, match="mps"):
        environment.get_device("mps")


def test_get_device_rejects_an_unknown_name_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="prefer"):
        environment.get_device("tpu")


def test_count_parameters_counts_every_scalar_of_a_linear_layer() -> None:
    assert environment.count_parameters(nn.Linear(3, 4)) == 3 * 4 + 4
    assert environment.count_parameters(nn.Linear(3, 4, bias=False)) == 12


def test_count_parameters_of_a_module_without_parameters_is_zero() -> None:
    assert environment.count_parameters(nn.ReLU()) == 0


def test_count_parameters_skips_frozen_parameters_only_when_trainable_only() -> None:
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    model[0].weight.requires_grad_(False)  # 30 frozen
    model[1].requires_grad_(False)  # 12 frozen
    total = 5 * 6 + 6 + 6 + 6 + 6 * 2 + 2
    assert environment.count_parameters(model, trainable_only=False) == total
    assert environment.count_parameters(model, trainable_only=True) == total - 30 - 12
    assert environment.count_parameters(model) == total - 30 - 12


def test_count_parameters_counts_a_shared_parameter_once() -> None:
    embed = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embed.weight  # weight tying, as in GPT-2
    assert environment.count_parameters(nn.ModuleList([embed, head])) == 40


def test_count_parameters_ignores_buffers() -> None:
    model = nn.BatchNorm1d(4)  # weight, bias + running_mean, running_var, num_batches_tracked
    assert environment.count_parameters(model) == 8
